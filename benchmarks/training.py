"""Training speed on the CPU: the input pipeline (windows cut from one tensor, as training does, against one window at a
time through a DataLoader, from cached log-mels or spectrogram PNGs: samples/s and the share of the time spent waiting
for data), and the model step by setting (fp32, channels-last, bf16 autocast), with ratios from the same run.
(The log-mel cache's speed with 1 and 2 processes: benchmarks/data_steps.py.)

    .venv/bin/python benchmarks/training.py [--tracks-per-genre 40] [--runs 3] [--steps 20] [--step-models small_cnn resnet18]
"""
import argparse, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import table
from genre_classification.core import ProjectPaths
from genre_classification.data import find_tracks
from genre_classification.features import create_image_features
from genre_classification.models import build_model
from genre_classification.datasets import make_default_dataset
from genre_classification.learner import LOSSES, make_optimizer
from genre_classification.train import TrainConfig
from genre_classification.training_data import WindowDataset, WindowSource, audio_trackset, epoch_plan, image_trackset
from gpu import step_table


def one_epoch(data, model_name: str, route: str) -> tuple[float, float]:
    "Samples/s of one fp32 training epoch of `model_name` on `data`, and the share of the time spent waiting for batches."
    torch.manual_seed(0)
    model = build_model(model_name, len(data.classes)).train()
    opt = make_optimizer('adamw', model.parameters(), 1e-3, 1e-4)
    rows = data.indices('train')
    plan = epoch_plan(data.tracks.frames.values[rows].tolist(), data.audio.segment_frames, 4, 0, 0)
    batches = (WindowSource(data, rows).batches(plan, 32) if route == 'source' else
               torch.utils.data.DataLoader(WindowDataset(data, rows, plan), batch_size=32))
    wait = 0.0; start = time.perf_counter(); fetched = time.perf_counter()
    for x, y in batches:
        wait += time.perf_counter() - fetched
        loss = LOSSES['cross_entropy'](model(x), F.one_hot(y, len(data.classes)).float())
        opt.zero_grad(); loss.backward(); opt.step()
        fetched = time.perf_counter()
    total = time.perf_counter() - start
    return len(plan) / total, wait / total


def input_table(root: Path, paths: ProjectPaths, runs: int):
    cached = audio_trackset(TrainConfig(data_dir=str(root)), paths, progress=False)
    images = root.parent / 'Image_data'
    create_image_features(find_tracks(root), images, n_workers=2, progress=False)
    png = image_trackset(TrainConfig(images_path=str(images)), paths)
    rows = []
    for name, data, route in [('log-mels, batches cut from one tensor (training)', cached, 'source'),
                              ('log-mels, one window at a time (DataLoader)', cached, 'loader'),
                              ('PNG images, decoded per window (DataLoader)', png, 'loader')]:
        results = [one_epoch(data, 'resnet18', route) for _ in range(runs)]
        speed = sorted(r[0] for r in results); waiting = sorted(r[1] for r in results)
        rows.append([name, f'{np.median(speed):.0f} ({speed[0]:.0f}–{speed[-1]:.0f})', f'{np.median(waiting):.1%} ({waiting[0]:.1%}–{waiting[-1]:.1%})',
                     f'{np.median(speed) / float(rows[0][1].split()[0]) if rows else 1:.2f}x'])
    table('input pipeline: one epoch of resnet18, batch 32, fp32', ['route', 'samples/s', 'waiting for data', 'vs first'], rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tracks-per-genre', type=int, default=40); p.add_argument('--runs', type=int, default=3)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--step-models', nargs='*', default=['small_cnn', 'resnet18'], help='the models of the step table (none: no step table)')
    a = p.parse_args()
    work = Path(tempfile.mkdtemp()); paths = ProjectPaths(root=work)
    root = make_default_dataset(work / 'data', tracks_per_genre=a.tracks_per_genre, seconds=10.0, progress=False)
    input_table(root, paths, a.runs)
    if a.step_models: step_table(a.step_models, [32], 'cpu', a.steps)


if __name__ == '__main__':
    sys.exit(main())
