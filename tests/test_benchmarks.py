"Every benchmark script runs and prints its tables (tiny sizes; the figures themselves come from `make bench`)."
import subprocess, sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks'

SMOKE = {'features.py': ['--clips', '4', '--runs', '1', '--memory-clips', '0'],
         'training.py': ['--tracks-per-genre', '3', '--runs', '1', '--steps', '2'],
         'main_job.py': ['--model', 'small_cnn', '--epochs', '1', '--tracks-per-genre', '3'],
         'predict.py': ['--model', 'small_cnn', '--clips', '3'],
         'batch.py': ['--model', 'small_cnn', '--clips', '2', '--workers', '1'],
         'data_steps.py': ['--workers', '1', '2', '--clips', '20', '--cache-clips', '20', '--feature-clips', '4'],
         # the GPU benchmark's code paths, on the CPU
         'gpu.py': ['--device', 'cpu', '--models', 'small_cnn', '--batches', '4', '8', '--steps', '1', '--epochs', '1',
                    '--accuracy-models', 'small_cnn', '--tracks-per-genre', '3', '--workers', '1', '2', '--clips', '20',
                    '--cache-clips', '20', '--feature-clips', '4']}


@pytest.mark.parametrize('script', sorted(SMOKE))
def test_benchmark_runs(script, tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / script), *SMOKE[script]], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count('\n') >= 5 and ('x' in done.stdout)
