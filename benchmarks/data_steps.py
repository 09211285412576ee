"""The data steps with 1, 2, … worker processes: writing the built-in dataset, filling the log-mel cache and extracting the
Kaggle features, each into a fresh folder, with the speed-up over one process.

    .venv/bin/python benchmarks/data_steps.py [--workers 1 2] [--clips 100] [--cache-clips 400] [--feature-clips 40]
"""
import argparse, sys, tempfile, time
from pathlib import Path

from common import table
from genre_classification.core import AudioConfig
from genre_classification.parallel import default_workers
from genre_classification.data import find_tracks
from genre_classification.features import build_log_mel_cache, extract_features
from genre_classification.datasets import make_default_dataset


def timed(fn) -> float:
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def scaling_rows(workers: list[int], clips: int, cache_clips: int, feature_clips: int, work: Path) -> list[list]:
    "Rows of (step, workers, seconds, clips/s, speed-up over the first worker count) for each step."
    per_genre = lambda n: max(3, -(-n // 10))
    source = find_tracks(make_default_dataset(work / 'source', per_genre(max(cache_clips, feature_clips)), 10.0, progress=False))
    steps = {
        f'built-in dataset, {per_genre(clips) * 10} clips of 10 s':
            lambda n: make_default_dataset(work / f'dataset{n}', per_genre(clips), 10.0, n_workers=n, progress=False),
        f'log-mel cache, {min(cache_clips, len(source))} clips':
            lambda n: build_log_mel_cache(source.head(cache_clips), AudioConfig(), work / f'cache{n}', n_workers=n, progress=False),
        f'Kaggle features, {min(feature_clips, len(source))} clips':
            lambda n: extract_features(source.head(feature_clips), work / f'features{n}.csv', n_workers=n, progress=False)}
    rows = []
    for step, run in steps.items():
        first = None
        for n in workers:
            seconds = timed(lambda: run(n)); first = first or seconds
            count = int(step.split(', ')[1].split()[0])
            rows.append([step, n, f'{seconds:.2f}', f'{count / seconds:.1f}', f'{first / seconds:.2f}x'])
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--workers', type=int, nargs='+', default=sorted({1, min(2, default_workers())}))
    p.add_argument('--clips', type=int, default=100); p.add_argument('--cache-clips', type=int, default=400)
    p.add_argument('--feature-clips', type=int, default=40)
    a = p.parse_args()
    rows = scaling_rows(a.workers, a.clips, a.cache_clips, a.feature_clips, Path(tempfile.mkdtemp()))
    table(f'data steps by worker processes ({default_workers()} cores here)', ['step', 'workers', 'seconds', 'clips/s', 'speed-up'], rows)


if __name__ == '__main__':
    sys.exit(main())
