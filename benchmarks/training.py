"""Training speed: the log-mel cache (serial vs parallel build, cost of a hit), the input pipeline (cached log-mels vs
spectrogram PNGs: samples/s and the share of step time spent waiting for data), and the model step (eager fp32 vs
channels-last, bf16 autocast and torch.compile), each as median (min–max) with ratios from the same run.

    .venv/bin/python benchmarks/training.py [--tracks-per-genre 40] [--runs 3] [--steps 20]
"""
import argparse, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import fmt, repeat, table
from genre_classification.core import AudioConfig, ProjectPaths
from genre_classification.data import find_tracks, split_tracks
from genre_classification.features import build_log_mel_cache, create_image_features
from genre_classification.models import build_model
from genre_classification.synth import make_default_dataset
from genre_classification.train import (LOSSES, TrainConfig, WindowDataset, audio_trackset, epoch_plan, image_trackset,
                                        make_optimizer)


def cache_table(tracks, work: Path, runs: int):
    audio = AudioConfig()
    counter = iter(range(10**6))
    serial = repeat(lambda: build_log_mel_cache(tracks, audio, work / f'cache{next(counter)}', n_workers=1, progress=False), runs)
    parallel = repeat(lambda: build_log_mel_cache(tracks, audio, work / f'cache{next(counter)}', n_workers=2, progress=False), runs)
    hit = repeat(lambda: build_log_mel_cache(tracks, audio, work / 'cache0', progress=False), runs)
    n = len(tracks)
    table(f'log-mel cache, {n} clips', ['build', 'time', 'clips/s', 'ratio'],
          [['serial (1 process)', fmt(serial), f'{n / serial[0]:.1f}', '1.0x'],
           ['parallel (2 processes)', fmt(parallel), f'{n / parallel[0]:.1f}', f'{serial[0] / parallel[0]:.1f}x'],
           ['all hits (already cached)', fmt(hit), f'{n / hit[0]:.0f}', f'{serial[0] / hit[0]:.0f}x']])


def one_epoch(data, model_name: str) -> tuple[float, float]:
    "Samples/s of one training epoch of `model_name` on `data`, and the share of the time spent waiting for batches."
    torch.manual_seed(0)
    model = build_model(model_name, len(data.classes)).train()
    opt = make_optimizer('adamw', model.parameters(), 1e-3, 1e-4)
    rows = data.indices('train')
    plan = epoch_plan(data.tracks.frames.values[rows].tolist(), data.audio.segment_frames, 4, 0, 0)
    loader = torch.utils.data.DataLoader(WindowDataset(data, rows, plan), batch_size=32)
    wait = 0.0; start = time.perf_counter(); fetched = time.perf_counter()
    for x, y in loader:
        wait += time.perf_counter() - fetched
        loss = LOSSES['cross_entropy'](model(x), F.one_hot(y, len(data.classes)).float())
        opt.zero_grad(); loss.backward(); opt.step()
        fetched = time.perf_counter()
    total = time.perf_counter() - start
    return len(plan) / total, wait / total


def input_table(root: Path, paths: ProjectPaths, runs: int):
    cfg = TrainConfig(data_dir=str(root))
    cached = audio_trackset(cfg, paths, progress=False)
    images = root.parent / 'Image_data'
    create_image_features(find_tracks(root), images, n_workers=2, progress=False)
    png = image_trackset(TrainConfig(images_path=str(images)), paths)
    rows = []
    for name, data in [('cached log-mel arrays', cached), ('PNG images, decoded each epoch', png)]:
        results = [one_epoch(data, 'resnet18') for _ in range(runs)]
        speed = sorted(r[0] for r in results); waiting = sorted(r[1] for r in results)
        rows.append([name, f'{np.median(speed):.0f} ({speed[0]:.0f}–{speed[-1]:.0f})', f'{np.median(waiting):.1%} ({waiting[0]:.1%}–{waiting[-1]:.1%})'])
    ratio = float(rows[0][1].split()[0]) / float(rows[1][1].split()[0])
    table('input pipeline: one epoch of resnet18, batch 32', ['route', 'samples/s', 'waiting for data'], rows)
    print(f'  cached / PNG: {ratio:.1f}x')


def step_table(steps: int, compile_too: bool = True):
    rows = []
    for name in ['small_cnn', 'resnet18']:
        torch.manual_seed(0)
        x, y = torch.rand(32, 1, 64, 130), torch.randint(0, 10, (32,))
        results = {}
        def run(setting):
            torch.manual_seed(0)
            model = build_model(name).train()
            if 'channels-last' in setting: model = model.to(memory_format=torch.channels_last)
            if 'compile' in setting: model = torch.compile(model)
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            inp = x.contiguous(memory_format=torch.channels_last) if 'channels-last' in setting else x
            losses = []
            def step():
                with torch.autocast('cpu', dtype=torch.bfloat16, enabled='bf16' in setting):
                    loss = F.cross_entropy(model(inp).float(), y)
                opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
            stats = repeat(step, steps, warmup=3)
            return stats, losses
        for setting in ['eager fp32', 'channels-last fp32', 'bf16 autocast', 'channels-last + bf16'] + (['torch.compile fp32'] if compile_too else []):
            try: results[setting] = run(setting)
            except Exception as e: rows.append([name, setting, f'failed: {type(e).__name__}', '', '']); continue
        base_stats, base_losses = results['eager fp32']
        for setting, (stats, losses) in results.items():
            drift = abs(losses[-1] - base_losses[-1]) / base_losses[-1]
            rows.append([name, setting, fmt(stats, 1000, 'ms'), f'{32 / stats[0]:.0f}', f'{base_stats[0] / stats[0]:.2f}x',
                         f'{drift:.1%}'])
    table(f'model step, batch 32 of 1×64×130 ({torch.get_num_threads()} threads)',
          ['model', 'setting', 'step time', 'samples/s', 'vs eager', 'final-loss difference'], rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tracks-per-genre', type=int, default=40); p.add_argument('--runs', type=int, default=3)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--no-compile', action='store_true', help='leave torch.compile out (it compiles for a minute or two)')
    a = p.parse_args()
    work = Path(tempfile.mkdtemp()); paths = ProjectPaths(root=work)
    root = make_default_dataset(work / 'data', tracks_per_genre=a.tracks_per_genre, seconds=10.0, progress=False)
    tracks = split_tracks(find_tracks(root), 'random', 0)
    cache_table(tracks, work, a.runs)
    input_table(root, paths, a.runs)
    step_table(a.steps, not a.no_compile)


if __name__ == '__main__':
    sys.exit(main())
