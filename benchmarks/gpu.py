"""Speed on a GPU machine: the training step by model × batch × setting (fp32, channels-last, bf16 autocast), what the
default ('auto') picks and whether it trains as accurately as fp32, batch 256 against batch 32, the main job's phases on
the GPU and on the same machine's CPU cores, and the data steps' scaling with worker processes. About 4 minutes on one
H100/H200 with 16 cores (MLflow off: it is not needed for speed). It runs on a CPU too, for tests, at small sizes.

    python benchmarks/gpu.py [--models small_cnn resnet18 ...] [--batches 32 256] [--steps 20] [--workers 1 2 4 8 16]
"""
import argparse, sys, tempfile, time
from pathlib import Path

import torch

from common import table
from data_steps import scaling_rows
from main_job import main_job_phases, print_phases
from genre_classification.core import ProjectPaths, pick_device
from genre_classification.parallel import default_workers
from genre_classification.models import MODEL_NAMES
from genre_classification.hooks.step import (STEP_CHOICES, fastest_setting, machine_name, step_settings, table_step_settings,
                                             time_step_settings)
from genre_classification.hooks.step import step_table as measured_step_table
from genre_classification.train import TrainConfig, train
from genre_classification.training_data import audio_trackset


def sync(device: str) -> None:
    if device.startswith('cuda'): torch.cuda.synchronize()


def step_table(models: list[str], batches: list[int], device: str, steps: int) -> None:
    "Each model's step by setting (the library's own timing, `time_step_settings`), what 'auto' picks here, what the table says."
    rows = []
    for name in models:
        for batch in batches:
            seconds = time_step_settings(name, device, batch, (1, 64, 130), 10, steps=steps, warmup=3)
            fastest = min(seconds, key=seconds.get)
            picked = fastest_setting({k: v for k, v in seconds.items() if not STEP_CHOICES[k].bf16 or name in measured_step_table().bf16_accurate})
            listed = table_step_settings(name, device, batch)
            for label, s in STEP_CHOICES.items():
                rows.append([name, batch, label, f'{seconds[label] * 1000:.2f}', f'{batch / seconds[label]:.0f}',
                             f"{seconds['fp32'] / seconds[label]:.2f}x", ' '.join(w for w, on in [('fastest', label == fastest),
                             ('auto', label == picked), ('table', s == listed)] if on)])
    table(f'training step on {device} ({machine_name(device)}), 1×64×130 log-mel windows, fastest of {steps} steps after 3 warm-up',
          ['model', 'batch', 'setting', 'ms/step', 'samples/s', 'vs fp32', ''], rows)


def accuracy_table(work: Path, device: str, models: list[str], epochs: int, tracks_per_genre: int, big_batch: int) -> None:
    "The main job's test accuracy with fp32 and with 'auto' settings per model, and with batch `big_batch` against 32."
    paths = ProjectPaths(root=work)
    data = audio_trackset(TrainConfig(default_tracks_per_genre=tracks_per_genre), paths, progress=False)
    runs = []
    for name in models:
        runs.append((name, 32, 'fp32', 'contiguous', 'auto'))
        runs.append((name, 32, 'auto', 'auto', 'auto'))
    runs += [(models[-1], big_batch, 'auto', 'auto', rule) for rule in ('sqrt', 'linear', 'none')]
    rows = []
    for name, batch, precision, memory_format, scaling in runs:
        cfg = TrainConfig(model=name, batch_size=batch, precision=precision, memory_format=memory_format, lr_scaling=scaling,
                          epochs=epochs, device=device, default_tracks_per_genre=tracks_per_genre,
                          checkpoints_path=str(work / 'checkpoints'))
        sync(device); t = time.perf_counter()
        result = train(cfg, paths, data=data, progress=False, log_to_mlflow=False)
        sync(device); seconds = time.perf_counter() - t
        s = step_settings(name, device, batch, precision, memory_format, (1, 64, 130), 10)   # what the run used (cached)
        rows.append([name, batch, ('bf16' if s.bf16 else 'fp32') + (' channels-last' if s.channels_last else ''), scaling,
                     f"{result.test.metrics['track_accuracy']:.3f}", f"{result.history.valid_track_accuracy.max():.3f}",
                     f'{seconds:.1f}'])
    table(f'main job accuracy on {device}: {epochs} epochs, built-in dataset ({tracks_per_genre} clips per genre), seed 0',
          ['model', 'batch', 'step', 'lr scaling', 'test track acc.', 'best valid', 'seconds'], rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=MODEL_NAMES); p.add_argument('--batches', type=int, nargs='+', default=[32, 256])
    p.add_argument('--steps', type=int, default=20); p.add_argument('--epochs', type=int, default=6)
    p.add_argument('--accuracy-models', nargs='+', default=['small_cnn', 'resnet18'])
    p.add_argument('--tracks-per-genre', type=int, default=40)
    p.add_argument('--workers', type=int, nargs='+', default=sorted({1, 2, 4, 8, 16, default_workers()} & set(range(1, default_workers() + 1))))
    p.add_argument('--clips', type=int, default=160); p.add_argument('--cache-clips', type=int, default=400)
    p.add_argument('--feature-clips', type=int, default=64)
    p.add_argument('--device', default='auto', help='where the GPU parts run (auto: cuda if there is one)')
    p.add_argument('--only', nargs='+', choices=['steps', 'accuracy', 'main', 'data'], default=['steps', 'accuracy', 'main', 'data'],
                   help='the tables to print (default: all)')
    a = p.parse_args()
    device = pick_device(a.device)
    work = Path(tempfile.mkdtemp())
    name = torch.cuda.get_device_name(device) if device.startswith('cuda') else 'no GPU'
    print(f'{name}; {default_workers()} CPU cores; torch {torch.__version__}', flush=True)
    started = time.perf_counter()
    if 'steps' in a.only: step_table(a.models, a.batches, device, a.steps)
    if 'accuracy' in a.only: accuracy_table(work / 'accuracy', device, a.accuracy_models, a.epochs, a.tracks_per_genre, max(a.batches))
    for where in dict.fromkeys([device, 'cpu']) if 'main' in a.only else []:
        times, metrics, cfg = main_job_phases(work / f'main-{where}', False, model='resnet18', epochs=a.epochs,
                                              default_tracks_per_genre=a.tracks_per_genre, device=where)
        print_phases(f'main job on {where} ({name if where.startswith("cuda") else f"{torch.get_num_threads()} threads"}): '
                     f'resnet18, {a.epochs} epochs, {a.tracks_per_genre} clips per genre', times, metrics)
    if 'data' in a.only:
        rows = scaling_rows(a.workers, a.clips, a.cache_clips, a.feature_clips, work / 'scaling')
        table(f'data steps by worker processes ({default_workers()} cores)', ['step', 'workers', 'seconds', 'clips/s', 'speed-up'], rows)
    print(f'\n{time.perf_counter() - started:.0f} s in all')


if __name__ == '__main__':
    sys.exit(main())
