"""The main job (what `make train` runs) split into its phases, with wall times, peak memory and the accuracy it reached.

    .venv/bin/python benchmarks/main_job.py [--model resnet18] [--epochs 6] [--device auto] [--no-mlflow]
"""
import argparse, sys, tempfile, time
from pathlib import Path

from common import peak_rss_mb, table
from genre_classification.core import ProjectPaths, pick_device
from genre_classification.datasets import make_default_dataset
from genre_classification.metrics import evaluate
from genre_classification.train import TrainConfig, train
from genre_classification.training_data import audio_trackset


def main_job_phases(work: Path, log_to_mlflow: bool = True, **settings) -> tuple[dict[str, float], dict[str, float], TrainConfig]:
    "Run the main job in the empty folder `work` with `settings` (TrainConfig's); seconds per phase, test metrics, the config."
    paths = ProjectPaths(root=work)
    cfg = TrainConfig(**{'mlflow_tracking_uri': f"sqlite:///{work / 'mlflow.db'}", 'checkpoints_path': str(work / 'checkpoints'), **settings})
    times = {}
    t = time.perf_counter()
    make_default_dataset(paths.default_dataset, cfg.default_tracks_per_genre, cfg.default_clip_seconds, progress=False)
    times['dataset generation'] = time.perf_counter() - t
    t = time.perf_counter(); data = audio_trackset(cfg, paths, progress=False); times['finding tracks + log-mel cache'] = time.perf_counter() - t
    t = time.perf_counter(); result = train(cfg, paths, data=data, progress=False, log_to_mlflow=log_to_mlflow)
    times['training (incl. per-epoch validation' + (', MLflow)' if log_to_mlflow else ')')] = time.perf_counter() - t
    from genre_classification.models import load_model
    device = pick_device(cfg.device)
    model, _ = load_model(result.model_file)
    t = time.perf_counter(); test = evaluate(model.to(device), data, 'test', device)
    times['test evaluation'] = time.perf_counter() - t
    return times, test.metrics, cfg


def print_phases(title: str, times: dict[str, float], metrics: dict[str, float]) -> None:
    total = sum(times.values())
    table(title, ['phase', 'seconds', 'share'], [[k, f'{v:.1f}', f'{v / total:.0%}'] for k, v in times.items()] + [['total', f'{total:.1f}', '100%']])
    print(f"  test track accuracy {metrics['track_accuracy']:.3f}, macro-F1 {metrics['track_macro_f1']:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default=TrainConfig().model); p.add_argument('--epochs', type=int, default=TrainConfig().epochs)
    p.add_argument('--tracks-per-genre', type=int, default=TrainConfig().default_tracks_per_genre)
    p.add_argument('--device', default='auto'); p.add_argument('--no-mlflow', action='store_true')
    a = p.parse_args()
    times, metrics, cfg = main_job_phases(Path(tempfile.mkdtemp()), not a.no_mlflow, model=a.model, epochs=a.epochs,
                                          default_tracks_per_genre=a.tracks_per_genre, device=a.device)
    print_phases(f'main job: {cfg.model}, {cfg.epochs} epochs, built-in dataset ({cfg.default_tracks_per_genre} clips of '
                 f'{cfg.default_clip_seconds:g} s per genre)', times, metrics)
    print(f'  peak memory {peak_rss_mb():.0f} MB (largest worker {peak_rss_mb(children=True):.0f} MB)')
    print('  (make train adds interpreter and notebook-kernel start-up, and the feature MLP and two ONNX exports: ~20 s)')


if __name__ == '__main__':
    sys.exit(main())
