"""Batch prediction on Ray on this machine: prints its figures (no pass/fail).

A folder of 30 s clips (a real GTZAN clip, copied, where ../shared/data is; else a synthetic one), predicted by the
`predictors` command (one process, its start-up included), then by `batch_predict` on a local Ray with 1 and 2 actors, in
the same run: files per second (the job alone, and with Ray's start-up), the ratios, and the peak memory of the driver and
of each actor (sampled every 0.2 s). The answers of every run are compared with `predictors`'.

    .venv/bin/python benchmarks/batch.py [--clips 24] [--workers 1 2] [--model real_music|small_cnn]
"""
import argparse, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

import pandas as pd
import psutil
import soundfile as sf

from common import table
from genre_classification.batch import batch_predict, ray_cluster, read_results
from genre_classification.core import project_root
from genre_classification.predict import FEATURE_MODEL_NAME, make_feature_model, make_real_music_model
from genre_classification.synth import synth_track


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
    "The real-music default (trained here, seconds, so that no user cache is touched) or an untrained small CNN (speed is the same)."
    if name == 'real_music':
        make_feature_model(work / 'real' / FEATURE_MODEL_NAME)
        return make_real_music_model(work / 'real')
    import torch
    from genre_classification.core import AudioConfig, GENRES
    from genre_classification.export import export_onnx
    from genre_classification.models import build_model
    meta = {'model': name, 'classes': GENRES, 'input_kind': 'logmel', 'audio': AudioConfig().model_dump(), 'trained_on': 'nothing', 'synthetic_only': True}
    torch.save({'model': build_model(name).state_dict(), 'meta': meta}, work / f'{name}.pt')
    return export_onnx(work / f'{name}.pt', work / f'{name}.onnx')


def run_predictors(folder: Path, model: Path) -> tuple[float, float, pd.DataFrame]:
    "Seconds (with start-up) and peak memory (MB) of the `predictors` command over `folder`, and its answers."
    # a small helper process runs the command and reports its child's peak memory (see benchmarks/predict.py)
    helper = ('import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); '
              'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(done.returncode)')
    out = folder.parent / 'predictors.csv'
    t = time.perf_counter()
    done = subprocess.run([sys.executable, '-c', helper, str(Path(sys.executable).parent / 'predictors'), str(folder), '--model', str(model),
                           '--format', 'csv', '--output', str(out)], capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    assert done.returncode == 0, done.stderr[-2000:]
    return elapsed, int(done.stderr.split()[-1]) / 1024, pd.read_csv(out)


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument('--clips', type=int, default=24); args.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    args.add_argument('--model', default='real_music', choices=['real_music', 'small_cnn'])
    a = args.parse_args()
    work = Path(tempfile.mkdtemp())
    shared = project_root().parent / 'shared' / 'data' / 'gtzan_clips' / 'blues' / 'blues.00000.wav'
    folder = work / 'clips'; folder.mkdir()
    source = shared if shared.exists() else work / 'clip.wav'
    if not shared.exists(): sf.write(source, synth_track('blues', 0, 30.0), 22050)
    for i in range(a.clips): shutil.copy(source, folder / f'clip{i:03d}.wav')
    model = model_file(a.model, work)
    print(f'machine: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; model: {a.model}; '
          f'{a.clips} clips of 30 s ({source.name})')

    seconds, memory, reference = run_predictors(folder, model)
    base = a.clips / seconds
    rows = [['predictors (one process)', f'{seconds:.1f}', '-', f'{base:.2f}', '1.00x', f'{memory:.0f}', '-', 'the reference']]
    for workers in a.workers:
        out = work / f'out{workers}'
        with PeakMemory() as peak:
            t0 = time.perf_counter()
            with ray_cluster('', workers):
                t1 = time.perf_counter()
                summary = batch_predict([folder], out, model=str(model), workers=workers, progress=False)
                t2 = time.perf_counter()
        assert summary.errors == 0 and summary.written == a.clips, summary
        got = read_results(out).set_index('path').genre
        same = (got.loc[reference.path].values == reference.genre.values).all()
        actors = ', '.join(f'{m:.0f}' for m in sorted(peak.actors.values())) or '-'
        rows.append([f'batch-predict, {workers} actor(s)', f'{t2 - t0:.1f}', f'{t2 - t1:.1f}', f'{a.clips / (t2 - t1):.2f}',
                     f'{a.clips / (t2 - t1) / base:.2f}x', f'{peak.driver:.0f}', actors, 'same genres' if same else 'DIFFERENT genres'])
    table(f'{a.clips} clips of 30 s, {a.model}: seconds (with Ray start-up, job alone), files/s of the job, x predictors, peak MB',
          ['run', 's total', 's job', 'files/s', 'x', 'driver MB', 'actor MB', 'answers'], rows)
    print('\nRay start-up (its raylet, GCS and worker processes) is paid once per job; on this machine Ray\'s own processes '
          'share the cores with the actors, so 2 actors on 2 cores give less than 2x.')


if __name__ == '__main__':
    sys.exit(main())
