"""The main job (what `make train` runs) split into its phases, with wall times, peak memory and the accuracy it reached.

    .venv/bin/python benchmarks/main_job.py
"""
import argparse, sys, tempfile, time
from pathlib import Path

from common import peak_rss_mb, table
from genre_classification.core import ProjectPaths
from genre_classification.synth import make_default_dataset
from genre_classification.train import TrainConfig, audio_trackset, evaluate, train


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default=TrainConfig().model); p.add_argument('--epochs', type=int, default=TrainConfig().epochs)
    p.add_argument('--tracks-per-genre', type=int, default=TrainConfig().default_tracks_per_genre)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp()); paths = ProjectPaths(root=work)
    cfg = TrainConfig(model=a.model, epochs=a.epochs, default_tracks_per_genre=a.tracks_per_genre,
                      mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}", checkpoints_path=str(work / 'checkpoints'))
    times = {}
    t = time.perf_counter()
    make_default_dataset(paths.default_dataset, cfg.default_tracks_per_genre, cfg.default_clip_seconds, progress=False)
    times['dataset generation'] = time.perf_counter() - t
    t = time.perf_counter(); data = audio_trackset(cfg, paths, progress=False); times['finding tracks + log-mel cache'] = time.perf_counter() - t
    t = time.perf_counter(); result = train(cfg, paths, data=data, progress=False); times['training (incl. per-epoch validation, MLflow)'] = time.perf_counter() - t
    from genre_classification.models import load_model
    model, _ = load_model(result.model_file)
    t = time.perf_counter(); test = evaluate(model, data, 'test'); times['test evaluation'] = time.perf_counter() - t
    total = sum(times.values())
    table(f'main job: {cfg.model}, {cfg.epochs} epochs, built-in dataset ({cfg.default_tracks_per_genre} clips of '
          f'{cfg.default_clip_seconds:g} s per genre)', ['phase', 'seconds', 'share'],
          [[k, f'{v:.1f}', f'{v / total:.0%}'] for k, v in times.items()] + [['total', f'{total:.1f}', '100%']])
    print(f"  test track accuracy {test.metrics['track_accuracy']:.3f}, macro-F1 {test.metrics['track_macro_f1']:.3f}; "
          f'peak memory {peak_rss_mb():.0f} MB (largest worker {peak_rss_mb(children=True):.0f} MB)')
    print('  (make train adds interpreter and notebook-kernel start-up, and the feature MLP and two ONNX exports: ~20 s)')


if __name__ == '__main__':
    sys.exit(main())
