"""Your own labels: what each route reaches on collections made here (accuracy figures, printed; no pass/fail).

1. The built-in synthetic genres under names that are none of GTZAN's, a folder per label: the CNN (small_cnn, from
   scratch), the musicnn probe and the feature MLP on features of the audio, all on the same stratified split.
2. Real recordings from ../shared/data sorted into two labels (classical-style and popular-style music, 3 + 5 tracks):
   leave-one-out, each recording the test track once (a `path,label,split` table per fold), the probe and the feature MLP.
3. Cross-validation (`pipeline cross-validate`'s `cross_validate`): the feature MLP in `--cv-folds` folds on the packaged
   GTZAN table (the artist-filtered split beside), and the probe in 5 folds by album on a collection of `--cv-tracks`
   synthetic tracks in albums of two: the time of the inputs (computed once) against the trainings'.
Every accuracy comes with its 95% bootstrap interval over the tracks.

    .venv/bin/python benchmarks/own_labels.py [--labels 5] [--tracks-per-label 16] [--seconds 10] [--cnn-epochs 10]
                                              [--probe-epochs 150] [--mlp-epochs 100] [--no-real] [--cv-folds 10] [--cv-tracks 70]
"""
import argparse, contextlib, sys, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from common import table
from genre_classification.confidence import score_intervals
from genre_classification.core import ProjectPaths, check_params
from genre_classification.cross_validate import cross_validate, cv_settings
from genre_classification.synth.genres import synth_track
from genre_classification.train import TrainConfig, train
from genre_classification.train_features import FeatureTrainConfig, train_feature_model

NAMES = {'lofi': 'jazz', 'k-pop': 'pop', 'afrobeat': 'reggae', 'shoegaze': 'rock', 'bluegrass': 'country', 'ambient': 'classical',
         'trap': 'hiphop', 'delta': 'blues'}          # our label: the synthetic genre that plays it
REAL = {'classical-style': ['gtzan_clips/classical/classical.00000.wav', 'audio_formats/cuidado__C_1.0__audio__cuidado_FallaCancion.flac',
                            'audio_formats/ballroom__B_1.0__audio__Waltz__Media-105901.wav'],
        'popular-style': ['gtzan_clips/blues/blues.00000.wav', 'gtzan_clips/country/country.00000.wav', 'audio_formats/Kevin_MacLeod_-_Vibe_Ace.hq.ogg',
                          'audio_formats/fma_keys__000__000010.mp3', 'audio_formats/rwc_popular__audio__rwc-p-m01__1.wav']}


PROBE_EPOCHS, MLP_EPOCHS = 150, FeatureTrainConfig().epochs      # `--probe-epochs`, `--mlp-epochs`


def routes(data_dir: str, root: Path, cnn_epochs: int, split: str = 'auto') -> dict:
    "Each route trained on `data_dir`: name -> (test labels, test predictions, classes, seconds)."
    paths, out = ProjectPaths(root=root), {}
    cnn = [('small_cnn (from scratch)', dict(model='small_cnn', epochs=cnn_epochs, batch_size=16))] if cnn_epochs else []
    for name, cfg in [*cnn, ('musicnn probe', dict(model='musicnn_probe', epochs=PROBE_EPOCHS, batch_size=16, lr=3e-3))]:
        t = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):      # the epochs' lines: progress, not figures
            r = train(TrainConfig(data_dir=data_dir, device='cpu', split=split, checkpoints_path=str(root / 'ck'), **cfg), paths, progress=False, log_to_mlflow=False)
        out[name] = (r.test.track_labels, r.test.track_probs.argmax(1), r.classes, time.perf_counter() - t)
    t = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr): f = train_feature_model(FeatureTrainConfig(data_dir=data_dir, split=split, epochs=MLP_EPOCHS, checkpoints_path=str(root / 'ck')), paths, log_to_mlflow=False)
    out['feature MLP (57 features)'] = (f.test.track_labels, f.test.track_probs.argmax(1), f.classes, time.perf_counter() - t)
    return out


def scores(y, p) -> tuple[str, str]:
    "Accuracy and macro-F1 of answers `p` to labels `y`, each with its 95% bootstrap interval over the tracks."
    return tuple(str(interval) for interval in score_intervals(np.asarray(y), np.asarray(p)).values())


def synthetic_collection(root: Path, labels: int, per_label: int, seconds: float) -> Path:
    for label, genre in list(NAMES.items())[:labels]:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label): sf.write(root / label / f'{label} {i:03d}.wav', synth_track(genre, 100 + i, seconds), 22050)
    return root


def leave_one_out(shared: Path, root: Path) -> dict:
    "Each real recording the test track once; a valid track of each label besides it, the rest train."
    tracks = [(shared / f, label) for label, files in REAL.items() for f in files]
    answers, seconds = {}, {}
    root.mkdir(parents=True, exist_ok=True)
    for k, (held, _) in enumerate(tracks):
        others = {label: [p for p, l in tracks if l == label and p != held] for label in REAL}
        valid = {others[label][k % len(others[label])] for label in REAL}          # a different valid track from fold to fold
        rows = [(str(p), label, 'test' if p == held else 'valid' if p in valid else 'train') for p, label in tracks]
        csv = root / f'fold{k}.csv'
        pd.DataFrame(rows, columns=['path', 'label', 'split']).to_csv(csv, index=False)
        for name, (y, p, classes, s) in routes(str(csv), root, 0, 'dataset').items():
            answers.setdefault(name, []).append((y[0], p[0])); seconds[name] = seconds.get(name, 0) + s
    return {name: (*zip(*pairs), len(pairs), seconds[name]) for name, pairs in answers.items()}


def cross_validations(root: Path, labels: int, tracks: int, seconds: float, folds: int) -> list[list]:
    "The feature MLP in `folds` folds on the packaged table, and the probe in 5 folds (at most `folds`) by album on `tracks` synthetic tracks."
    music = root / 'albums'
    for label, genre in list(NAMES.items())[:labels]:
        for i in range(tracks // labels):
            f = music / label / f'album {i // 2}' / f'{i}.wav'; f.parent.mkdir(parents=True, exist_ok=True)
            sf.write(f, synth_track(genre, 300 + i, seconds), 22050)
    rows = []
    for name, settings in [('feature MLP, packaged GTZAN table', dict(model='feature_mlp', folds=folds, epochs=MLP_EPOCHS)),
                           (f'musicnn probe, {tracks} tracks in albums', dict(model='musicnn_probe', folds=min(5, folds), data_dir=str(music), epochs=PROBE_EPOCHS,
                                                                             batch_size=16, lr=3e-3, device='cpu'))]:
        cfg = check_params(cv_settings(settings['model']), {**settings, 'checkpoints_path': str(root / 'ck-cv')})
        t = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr): r = cross_validate(cfg, ProjectPaths(root=root), progress=False, log_to_mlflow=False)
        total, summary = time.perf_counter() - t, r.summary().loc['track_accuracy']
        fixed = r.fixed.loc['track_accuracy'] if r.fixed is not None else None
        rows.append([name, f'{r.folds.fold.nunique()} by {r.grouping}', f'{summary["mean"]:.3f} ± {summary["std"]:.3f}',
                     f'{summary.out_of_fold:.3f} [{summary.low:.3f}, {summary.high:.3f}]',
                     f'{fixed.estimate:.3f} [{fixed.low:.3f}, {fixed.high:.3f}] ({r.fixed_split})' if fixed is not None else '-',
                     f"{r.seconds['inputs']:.1f}", f"{r.seconds['training']:.1f}", f"{r.seconds['training'] / total:.0%}", f'{total:.0f}'])
    return rows


def main():
    global PROBE_EPOCHS, MLP_EPOCHS
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--labels', type=int, default=5)
    ap.add_argument('--tracks-per-label', type=int, default=16)
    ap.add_argument('--seconds', type=float, default=10.0)
    ap.add_argument('--cnn-epochs', type=int, default=10)
    ap.add_argument('--probe-epochs', type=int, default=PROBE_EPOCHS)
    ap.add_argument('--mlp-epochs', type=int, default=MLP_EPOCHS, help="the feature MLP's (FeatureTrainConfig's default)")
    ap.add_argument('--no-real', action='store_true', help='skip the leave-one-out on the real recordings')
    ap.add_argument('--cv-folds', type=int, default=10, help="the feature MLP's folds on the packaged table (0: no cross-validations)")
    ap.add_argument('--cv-tracks', type=int, default=70, help="the probe's collection for its 5-fold cross-validation by album")
    args = ap.parse_args()
    PROBE_EPOCHS, MLP_EPOCHS = args.probe_epochs, args.mlp_epochs
    work = Path(tempfile.mkdtemp())
    data = synthetic_collection(work / 'my music', args.labels, args.tracks_per_label, args.seconds)
    rows = []
    for name, (y, p, classes, s) in routes(str(data), work, args.cnn_epochs).items():
        rows.append([name, len(y), *scores(y, p), f'{s:.0f}'])
    table(f'synthetic collection: {args.labels} labels ({", ".join(list(NAMES)[:args.labels])}), {args.tracks_per_label} tracks of '
          f'{args.seconds:g} s each, stratified split (chance {1 / args.labels:.2f})', ['route', 'test tracks', 'accuracy', 'macro-F1', 'train s'], rows)
    if args.cv_folds:
        table('cross-validation: inputs computed once for every fold (95% intervals over the tracks)',
              ['route', 'folds', 'accuracy mean ± std', 'out of fold', 'fixed split', 'inputs s', 'training s', 'training share', 'total s'],
              cross_validations(work, args.labels, args.cv_tracks, args.seconds, args.cv_folds))
    shared = Path(__file__).resolve().parents[2] / 'shared' / 'data'
    if args.no_real or not shared.is_dir(): return
    found = leave_one_out(shared, work / 'real')
    table(f'real recordings, 2 labels ({len(REAL["classical-style"])} classical-style, {len(REAL["popular-style"])} popular-style), leave-one-out',
          ['route', 'folds', 'accuracy', 'train s (all folds)'], [[n, k, scores(y, p)[0], f'{s:.0f}'] for n, (y, p, k, s) in found.items()])


if __name__ == '__main__':
    main()
