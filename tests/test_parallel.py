"map_in_processes' workers: one thread per numeric library each, and the script that started them is not run again in each."
import subprocess, sys, textwrap

PROBE = '''
import os
def threads(_):
    "What a worker sees: its pid, OMP_NUM_THREADS and the most threads any loaded BLAS/OpenMP library would use."
    from threadpoolctl import threadpool_info
    return os.getpid(), os.environ.get('OMP_NUM_THREADS'), max(i['num_threads'] for i in threadpool_info())
'''

SCRIPT = '''
import os, sys
sys.path.insert(0, {here!r})
print('script runs', flush=True)
import numpy, probe
from genre_classification.parallel import map_in_processes
if __name__ == '__main__':
    for _, result, error in map_in_processes(probe.threads, range(6), n_workers=2, progress=False):
        print('worker', *result, error, flush=True)
'''


def test_workers_use_one_thread_and_do_not_rerun_the_script(tmp_path):
    (tmp_path / 'probe.py').write_text(PROBE)
    (tmp_path / 'job.py').write_text(textwrap.dedent(SCRIPT.format(here=str(tmp_path))))
    done = subprocess.run([sys.executable, str(tmp_path / 'job.py')], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines.count('script runs') == 1, done.stdout
    workers = [line.split() for line in lines if line.startswith('worker')]
    assert len(workers) == 6 and len({w[1] for w in workers}) >= 1
    assert all(w[2:] == ['1', '1', 'None'] for w in workers), workers
