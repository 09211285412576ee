"""The main job (what `make train` runs) split into its phases, with wall times, peak memory and the accuracy it reached;
then the job again with the training step the table gave before `auto` was measured on the machine, and once more as a
later run that reads the choice from the cache, with the ratios (`--no-compare` leaves both out). The first run starts from an
empty cache, so its time includes the timing itself.

    .venv/bin/python benchmarks/main_job.py [--model resnet18] [--epochs 6] [--tracks-per-genre 40] [--clip-seconds 10]
                                            [--device auto] [--no-mlflow] [--no-compare]
"""
import argparse, os, sys, tempfile, time
from pathlib import Path

from common import peak_rss_mb, table
from genre_classification.core import ProjectPaths, pick_device
from genre_classification.datasets import make_default_dataset
from genre_classification.hooks.step import step_settings, table_step_settings
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
    p.add_argument('--clip-seconds', type=float, default=TrainConfig().default_clip_seconds)
    p.add_argument('--device', default='auto'); p.add_argument('--no-mlflow', action='store_true')
    p.add_argument('--no-compare', action='store_true', help='leave out the run with the table\'s step settings')
    a = p.parse_args()
    if not a.no_compare: os.environ['XDG_CACHE_HOME'] = tempfile.mkdtemp()    # an empty user cache: `auto` times the step here
    times, metrics, cfg = main_job_phases(Path(tempfile.mkdtemp()), not a.no_mlflow, model=a.model, epochs=a.epochs,
                                          default_tracks_per_genre=a.tracks_per_genre, default_clip_seconds=a.clip_seconds, device=a.device)
    print_phases(f'main job: {cfg.model}, {cfg.epochs} epochs, built-in dataset ({cfg.default_tracks_per_genre} clips of '
                 f'{cfg.default_clip_seconds:g} s per genre)', times, metrics)
    print(f'  peak memory {peak_rss_mb():.0f} MB (largest worker {peak_rss_mb(children=True):.0f} MB)')
    print('  (make train adds interpreter and notebook-kernel start-up, and the feature MLP and two ONNX exports: ~20 s)')
    if not a.no_compare: compare_step_settings(times, metrics, cfg, not a.no_mlflow)


def work_seconds(times: dict[str, float]) -> float: return sum(v for k, v in times.items() if k != 'dataset generation')


def compare_step_settings(times: dict[str, float], metrics: dict[str, float], cfg: TrainConfig, log_to_mlflow: bool) -> None:
    "The same job with the step the table gives (today's settings before `auto` was measured) beside the run above."
    device, audio = pick_device(cfg.device), cfg.audio()
    listed = table_step_settings(cfg.model, device, cfg.batch_size)
    measured = step_settings(cfg.model, device, cfg.batch_size, input_shape=(1, audio.n_mels, audio.segment_frames))  # the run's, cached
    before, before_metrics, _ = main_job_phases(Path(tempfile.mkdtemp()), log_to_mlflow, model=cfg.model, epochs=cfg.epochs,
                                                default_tracks_per_genre=cfg.default_tracks_per_genre,
                                                default_clip_seconds=cfg.default_clip_seconds, device=cfg.device, precision='bf16' if listed.bf16 else 'fp32',
                                                memory_format='channels_last' if listed.channels_last else 'contiguous')
    again, again_metrics, _ = main_job_phases(Path(tempfile.mkdtemp()), log_to_mlflow, model=cfg.model, epochs=cfg.epochs,   # reads the cache
                                              default_tracks_per_genre=cfg.default_tracks_per_genre,
                                              default_clip_seconds=cfg.default_clip_seconds, device=cfg.device)
    train_key = next(k for k in times if k.startswith('training'))
    name = lambda s: ('bf16' if s.bf16 else 'fp32') + (' channels-last' if s.channels_last else '')
    rows = [['the table (before)', name(listed), f'{work_seconds(before):.1f}', f'{before[train_key]:.1f}', f"{before_metrics['track_accuracy']:.3f}", '1.00x'],
            ['auto, first run (timing it)', name(measured), f'{work_seconds(times):.1f}', f'{times[train_key]:.1f}', f"{metrics['track_accuracy']:.3f}",
             f'{work_seconds(times) / work_seconds(before):.2f}x'],
            ['auto, a later run (cached)', name(measured), f'{work_seconds(again):.1f}', f'{again[train_key]:.1f}',
             f"{again_metrics['track_accuracy']:.3f}", f'{work_seconds(again) / work_seconds(before):.2f}x']]
    table(f'main job by step settings: {cfg.model}, {cfg.epochs} epochs, same data, same run (work: all but the dataset generation)',
          ['step from', 'setting', 'work s', 'training s', 'test track acc.', 'work vs table'], rows)


if __name__ == '__main__':
    sys.exit(main())
