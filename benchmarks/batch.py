"""Batch prediction on Ray on this machine: prints its figures (no pass/fail).

A folder of 30 s clips (a real GTZAN clip, copied, where ../shared/data is; else a synthetic one), predicted by the
`predictors` command (one process), then by `pipeline batch-predict` on a local Ray with 1 and 2 actors, in the same run,
each a whole command with its start-up: files per second, the ratios, and the peak memory of the command (the driver) and
of each actor (sampled every 0.2 s). The answers of every run are compared with `predictors`'.

    .venv/bin/python benchmarks/batch.py [--clips 24] [--workers 1 2] [--model real_music|small_cnn]
"""
import argparse, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

import pandas as pd
import psutil
import soundfile as sf

from common import table
from genre_classification.batch import read_results
from genre_classification.predict import make_real_music_model
from genre_classification.synth.genres import synth_track

REPO = Path(__file__).resolve().parents[1]


class PeakMemory:
    "Peak resident memory (MB) of this process and of each Ray actor process, sampled in a thread while the block runs."
    def __init__(self, every: float = 0.2): self.every, self.driver, self.actors = every, 0.0, {}

    def sample(self):
        self.driver = max(self.driver, psutil.Process().memory_info().rss / 2**20)
        for p in psutil.process_iter(['pid', 'cmdline', 'memory_info']):
            if p.info['cmdline'] and 'MapWorker' in ' '.join(p.info['cmdline']) and p.info['memory_info']:
                self.actors[p.info['pid']] = max(self.actors.get(p.info['pid'], 0), p.info['memory_info'].rss / 2**20)

    def __enter__(self):
        self.running = True
        def loop():
            while self.running: self.sample(); time.sleep(self.every)
        self.thread = threading.Thread(target=loop, daemon=True); self.thread.start()
        return self

    def __exit__(self, *exc): self.running = False; self.thread.join()


def model_file(name: str, work: Path) -> Path:
    "The real-music default (made here, seconds, so that no user cache is touched) or an untrained small CNN (speed is the same)."
    if name == 'real_music': return make_real_music_model(work / 'real')
    import torch
    from genre_classification.core import AudioConfig, GENRES
    from genre_classification.export import export_onnx
    from genre_classification.models import build_model
    meta = {'model': name, 'classes': GENRES, 'input_kind': 'logmel', 'audio': AudioConfig().model_dump(), 'trained_on': 'nothing', 'synthetic_only': True}
    torch.save({'model': build_model(name).state_dict(), 'meta': meta}, work / f'{name}.pt')
    return export_onnx(work / f'{name}.pt', work / f'{name}.onnx')


def run_command(args: list[str]) -> tuple[float, float, PeakMemory]:
    "Seconds (with start-up) and peak memory (MB) of a command of .venv's, and the peak memory of the Ray actors while it ran."
    # a small helper process runs the command and reports its child's peak memory (see benchmarks/predict.py)
    helper = ('import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); '
              'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)')
    with PeakMemory() as actors:
        t = time.perf_counter()
        done = subprocess.run([sys.executable, '-c', helper, str(Path(sys.executable).parent / args[0]), *args[1:]], capture_output=True, text=True)
        elapsed = time.perf_counter() - t
    assert done.returncode == 0, done.stderr[-2000:]
    return elapsed, int(done.stdout.split()[-1]) / 1024, actors


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument('--clips', type=int, default=24); args.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    args.add_argument('--model', default='real_music', choices=['real_music', 'small_cnn'])
    a = args.parse_args()
    work = Path(tempfile.mkdtemp())
    shared = REPO.parent / 'shared' / 'data' / 'gtzan_clips' / 'blues' / 'blues.00000.wav'
    folder = work / 'clips'; folder.mkdir()
    source = shared if shared.exists() else work / 'clip.wav'
    if not shared.exists(): sf.write(source, synth_track('blues', 0, 30.0), 22050)
    for i in range(a.clips): shutil.copy(source, folder / f'clip{i:03d}.wav')
    model = model_file(a.model, work)
    print(f'machine: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; model: {a.model}; '
          f'{a.clips} clips of 30 s ({source.name}); every figure is a whole command, start-up included')

    seconds, memory, _ = run_command(['predictors', str(folder), '--model', str(model), '--format', 'csv', '--output', str(work / 'predictors.csv')])
    reference = pd.read_csv(work / 'predictors.csv')
    base = a.clips / seconds
    rows = [['predictors (one process)', f'{seconds:.1f}', f'{base:.2f}', '1.00x', '-', f'{memory:.0f}', '-', 'the reference']]
    one_actor = None
    for workers in a.workers:
        out = work / f'out{workers}'
        seconds, memory, actors = run_command(['pipeline', 'batch-predict', str(folder), '--output', str(out), '--model', str(model),
                                               '--workers', str(workers)])
        got = read_results(out).set_index('path').genre
        same = (got.loc[reference.path].values == reference.genre.values).all() and got.notna().all()
        one_actor = one_actor or (a.clips / seconds if workers == 1 else None)
        rows.append([f'batch-predict, {workers} actor(s)', f'{seconds:.1f}', f'{a.clips / seconds:.2f}', f'{a.clips / seconds / base:.2f}x',
                     f'{a.clips / seconds / one_actor:.2f}x' if one_actor else '-', f'{memory:.0f}',
                     ', '.join(f'{m:.0f}' for m in sorted(actors.actors.values())) or '-', 'same genres' if same else 'DIFFERENT genres'])
    table(f'{a.clips} clips of 30 s, {a.model}: seconds, files/s, x predictors, x one actor, peak MB of the command (its largest process) and of each actor',
          ['run', 's', 'files/s', 'x predictors', 'x 1 actor', 'largest process MB', 'actor MB', 'answers'], rows)
    print("\nA batch-predict command pays for a local Ray's start (raylet, GCS, a worker per actor: about 10 s here) and each "
          "actor's own imports and model; predictors already keeps both cores busy (onnxruntime's threads), and Ray's own "
          'processes share the cores with the actors, so on one small machine Ray is for jobs that outgrow it, not for speed.')


if __name__ == '__main__':
    sys.exit(main())
