"""Cross-validation as a job: `pipeline cross-validate` on the packaged GTZAN table (random folds with the artist-filtered
figure beside) and on a folder per label with album subfolders (the musicnn probe, folds by album, its embeddings computed
once); group folds that never put a group on two sides; bad folds stopped in one line before any training."""
import re, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_classification.training_data import fold_sides, track_folds

BIN = Path(sys.executable).parent


def run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.mark.parametrize('seed', range(20))
def test_group_folds_never_put_a_group_on_two_sides(seed):
    "Random collections (labels of uneven size, groups of uneven size, a few tracks without a group): every group in one fold, every label trained in every fold."
    rng = np.random.default_rng(seed)
    rows = []
    for label in range(int(rng.integers(2, 5))):
        for group in range(int(rng.integers(5, 9))):
            name = None if rng.random() < 0.1 else f'artist {label}-{group}'
            rows += [(f'{label}/{group}/{i}', f'label {label}', name) for i in range(int(rng.integers(1, 6)))]
    tracks = pd.DataFrame(rows, columns=['track_id', 'genre', 'artist'])
    fold, grouping = track_folds(tracks, 5, seed)
    assert grouping == 'artist'
    grouped = tracks.assign(fold=fold).dropna(subset=['artist'])
    assert (grouped.groupby('artist').fold.nunique() == 1).all()
    for k in range(5):
        assert set(tracks.genre[fold_sides(fold, k, 5) == 'train']) == set(tracks.genre)
        assert (fold == k).any()


def test_the_most_telling_group_is_taken():
    "FMA's artist_id before an album folder; `group_by` picks another, or the track."
    tracks = pd.DataFrame({'track_id': [f't{i}' for i in range(24)], 'genre': ['a', 'b'] * 12,
                           'album': [f'al{i // 2}' for i in range(24)], 'artist_id': [str(i % 8) for i in range(24)]})
    assert track_folds(tracks, 3)[1] == 'artist_id'
    fold, grouping = track_folds(tracks, 3, group_by='album')
    assert grouping == 'album' and (tracks.assign(fold=fold).groupby('album').fold.nunique() == 1).all()
    assert track_folds(tracks, 3, group_by='track')[1] == 'track'


def test_cross_validate_the_feature_mlp_on_the_packaged_table(tmp_path):
    "From the shell: random folds by track with their mean, spread and interval, the artist-filtered split beside, child runs in MLflow."
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run([BIN / 'pipeline', 'cross-validate', '--model', 'feature_mlp', '--folds', '4', '--epochs', '20', '--ensemble', '1',
                '--checkpoints_path', tmp_path / 'ck', '--mlflow_tracking_uri', uri], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert 'feature_mlp: 4 folds x 1 repeat(s) of 1000 tracks, folds by track (random folds' in out, out
    cv = float(re.search(r'track_accuracy: ([\d.]+) ± [\d.]+ over folds; out of fold [\d.]+ \[[\d.]+, [\d.]+\]', out)[1])
    artist_filtered = float(re.search(r'fault_filtered split, trained once: track_accuracy ([\d.]+) \[', out)[1])
    assert cv > artist_filtered + 0.1 and artist_filtered > 0.35, out      # the leakage gap; chance is 0.1
    import mlflow
    client = mlflow.MlflowClient(uri)
    parent_id = re.search(r'MLflow run: (\w+)', out)[1]
    children = client.search_runs([client.get_run(parent_id).info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(children) == 5 and all(c.info.status == 'FINISHED' for c in children)
    assert client.get_run(parent_id).data.metrics['cv_track_accuracy_mean'] == pytest.approx(cv, abs=5e-4)


def test_cross_validate_the_probe_by_album(tmp_path):
    "A folder per label with album subfolders: the musicnn probe cross-validated with folds by album, its embeddings computed once."
    import soundfile as sf
    from genre_classification.synth.genres import synth_track
    music = tmp_path / 'my music'
    for label, genre in {'afrobeat': 'reggae', 'k-pop': 'pop', 'lofi': 'jazz'}.items():
        for album in range(3):
            for i in range(2):
                f = music / label / f'album {album}' / f'song {i}.wav'
                f.parent.mkdir(parents=True, exist_ok=True)
                sf.write(f, synth_track(genre, album * 2 + i, 3.0), 22050)
    done = run([BIN / 'pipeline', 'cross-validate', '--model', 'musicnn_probe', '--folds', '3', '--data_dir', music, '--epochs', '60',
                '--batch_size', '16', '--lr', '0.003', '--checkpoints_path', tmp_path / 'ck', '--mlflow_tracking_uri', f"sqlite:///{tmp_path / 'mlflow.db'}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert 'musicnn_probe: 3 folds x 1 repeat(s) of 18 tracks, folds by album: no album on two sides' in out, out
    assert 'split, trained once' not in out                             # auto: a random split, so nothing beside
    assert float(re.search(r'out of fold ([\d.]+)', out)[1]) > 0.5, out      # chance: 1 in 3
    assert len(list((tmp_path / 'data' / 'cache').rglob('*.npy'))) == 18     # one embedding pass for the three folds
    assert re.search(r'time: inputs [\d.]+ s \(once, for every fold\), training [\d.]+ s \(\d+% of', out)


@pytest.mark.parametrize('args, message', [
    (['--folds', '7'], "has 6 tracks, fewer than the 7 folds: use folds=6 or fewer"),
    (['--folds', '3', '--group_by', 'artist'], "group_by='artist': the tracks have no artist"),
])
def test_bad_folds_stop_in_one_line_before_any_training(tmp_path, args, message):
    import soundfile as sf
    from genre_classification.synth.genres import synth_track
    for label, genre in {'afrobeat': 'reggae', 'lofi': 'jazz'}.items():
        for i in range(6):
            (tmp_path / 'music' / label).mkdir(parents=True, exist_ok=True)
            sf.write(tmp_path / 'music' / label / f'{i}.wav', synth_track(genre, i, 1.0), 22050)
    done = run([BIN / 'pipeline', 'cross-validate', '--model', 'feature_mlp', '--data_dir', tmp_path / 'music', *args,
                '--checkpoints_path', tmp_path / 'ck'], tmp_path)
    last = done.stderr.strip().splitlines()[-1]           # after the feature extraction's progress bars
    assert done.returncode == 2 and last.startswith('pipeline cross-validate: error: ') and message in last and 'Traceback' not in done.stderr, done.stderr
    assert not (tmp_path / 'ck').exists()
