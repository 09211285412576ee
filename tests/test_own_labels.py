"""Your own music, your own labels: a collection whose labels are none of GTZAN's trains with each of the three routes
(papermill and `pipeline`), evaluates, exports and is answered by `predictors` and the registered (served) pyfunc with
those labels; FMA and Hugging Face `audiofolder` layouts in their published formats; bad datasets stopped with one line."""
import json, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import papermill as pm
import pytest
import soundfile as sf

from genre_classification.data import ffmpeg_executable
from genre_classification.synth.genres import synth_track

from conftest import LABELS, OURS, write_collection

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
def run(args: list, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=900)
    if check: assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope='module')
def collection(tmp_path_factory) -> Path:
    return write_collection(tmp_path_factory.mktemp('own') / 'my music')


@pytest.fixture(scope='module')
def work(tmp_path_factory) -> Path:
    "A project folder for the commands (their checkpoints, caches and MLflow store go there, not into the checkout)."
    return tmp_path_factory.mktemp('project')


def predict_json(model: Path, files: list[Path], cwd: Path) -> list[dict]:
    return json.loads(run([BIN / 'predictors', *files, '--model', model, '--format', 'json', '--top_k', '3'], cwd).stdout)


@pytest.fixture(scope='module')
def cnn(collection, work) -> Path:
    "The CNN route through papermill, exported to ONNX."
    out = work / '03_train.ipynb'
    pm.execute_notebook(REPO / 'nbs' / '03_train.ipynb', out, progress_bar=False, cwd=work,
                        parameters=dict(model='small_cnn', data_dir=str(collection), epochs=2, batch_size=8, device='cpu',
                                        checkpoints_path=str(work / 'ck'), mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}"))
    onnx = work / 'models' / 'own_cnn.onnx'
    run([BIN / 'pipeline', 'export', '--model', 'small_cnn', '--checkpoints_path', work / 'ck', '--output', onnx], work)
    return onnx


def test_the_cnn_route_learns_evaluates_and_answers_with_our_labels(cnn, collection, work):
    from genre_classification.onnx_files import load_onnx
    meta = load_onnx(cnn)[1]
    assert meta.classes == OURS and meta.config['split'] == 'auto'
    report = run([BIN / 'pipeline', 'evaluate', '--model_file', work / 'ck', '--data_dir', collection], work).stdout
    assert all(label in report for label in OURS) and 'blues' not in report
    answers = predict_json(cnn, [collection / 'lofi' / 'lofi song 0.wav', collection / 'k-pop' / 'k-pop song 1.wav'], work)
    assert all(a['error'] is None and a['genre'] in OURS and {g for g, _ in a['top_k']} <= set(OURS) for a in answers), answers


def test_the_probe_route_through_pipeline_with_class_weights(collection, work):
    done = run([BIN / 'pipeline', 'train-using-original-audios', '--model', 'musicnn_probe', '--data_dir', collection, '--epochs', '150',
                '--batch_size', '16', '--lr', '0.003', '--class_weighted', '--checkpoints_path', work / 'ck-probe',
                '--mlflow_tracking_uri', f"sqlite:///{work / 'mlflow.db'}"], work)
    assert 'macro-F1' in done.stdout
    import mlflow
    client = mlflow.MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    [probe_run] = [r for r in client.search_runs([client.get_experiment_by_name('genre-classification').experiment_id])
                   if r.data.params.get('model') == 'musicnn_probe']
    assert probe_run.info.status == 'FINISHED' and 'test_track_accuracy' in probe_run.data.metrics
    assert list((work / 'data' / 'cache' / 'musicnn').rglob('*.npy'))             # the embeddings are cached in the project
    onnx = work / 'models' / 'own_probe.onnx'
    run([BIN / 'pipeline', 'export', '--model', 'musicnn_probe', '--checkpoints_path', work / 'ck-probe', '--output', onnx], work)
    files = sorted(collection.rglob('*.wav'))
    answers = predict_json(onnx, files, work)
    assert all(a['genre'] in OURS and 'musicnn_probe on musicnn embeddings' in a['model'] for a in answers), answers[0]
    # evaluated as its family says: its head on the musicnn embeddings of the held-out tracks (log-mels once crashed it)
    report = run([BIN / 'pipeline', 'evaluate', '--model_file', work / 'ck-probe', '--data_dir', collection], work).stdout
    assert 'musicnn_probe' in report and all(label in report for label in OURS) and 'track_accuracy' in report, report
    drift = run([BIN / 'pipeline', 'monitor', collection / 'lofi', '--model', onnx, '--output_dir', work / 'monitor-probe'], work, check=False)
    assert drift.returncode in (0, 1) and '5 rows against the reference' in drift.stdout, drift.stderr[-2000:]
    # a few tracks per label are enough for the probe: it tells the three styles apart (chance: 1 in 3)
    right = [a['genre'] == Path(a['path']).relative_to(collection).parts[0] for a in answers]
    assert sum(right) >= 0.7 * len(files), answers


def test_the_feature_route_on_features_of_our_audio_and_the_served_pyfunc(collection, work):
    pm.execute_notebook(REPO / 'nbs' / '03a_train_features.ipynb', work / '03a.ipynb', progress_bar=False, cwd=work,
                        parameters=dict(data_dir=str(collection), epochs=30, ensemble=1, checkpoints_path=str(work / 'ck-features'),
                                        mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}"))
    onnx = work / 'models' / 'own_features.onnx'
    run([BIN / 'pipeline', 'export', '--model', 'feature_mlp', '--checkpoints_path', work / 'ck-features', '--output', onnx], work)
    report = run([BIN / 'pipeline', 'evaluate', '--model_file', work / 'ck-features'], work).stdout
    assert all(label in report for label in OURS)
    answers = predict_json(onnx, [collection / 'afrobeat' / 'afrobeat song 2.wav'], work)
    assert answers[0]['genre'] in OURS
    # the real-music model's tag mapping is GTZAN's: it says so rather than mix our labels with its genres
    (work / 'real').mkdir(); shutil.copy(onnx, work / 'real' / 'gtzan_features_mlp.onnx')
    done = run([BIN / 'pipeline', 'build-real-music-model', '--models_dir', work / 'real'], work, check=False)
    assert done.returncode == 2 and "maps musicnn's tags to GTZAN's ten genres" in done.stderr, done.stderr[-2000:]
    # the served model: registered as `pipeline register-model` does, loaded as `mlflow models serve` loads it
    import base64, mlflow
    from genre_classification.core import ProjectPaths
    from genre_classification.serve import register_model
    uri = f"sqlite:///{work / 'serving.db'}"
    assert register_model(onnx, name='own-labels', tracking_uri=uri, paths=ProjectPaths(root=work)) == 1
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model('models:/own-labels/1')
    assert served.metadata.metadata['labels'] == OURS
    clip = base64.b64encode((collection / 'lofi' / 'lofi song 0.wav').read_bytes()).decode()
    answer = served.predict(pd.DataFrame({'audio': [clip]}))[0]
    assert answer['genre'] in OURS and len(answer['probabilities']) == 3


def test_drift_is_checked_against_the_models_own_training_data(collection, work):
    done = run([BIN / 'pipeline', 'monitor', collection / 'lofi', '--model', work / 'models' / 'own_features.onnx',
                '--output_dir', work / 'monitor'], work, check=False)
    assert done.returncode in (0, 1) and '5 rows against the reference' in done.stdout, done.stderr[-2000:]
    assert (work / 'monitor' / 'drift_report.html').is_file()


def _fma(root: Path) -> Path:
    "A small FMA in the published format: fma_small/000/000002.mp3 … and fma_metadata/tracks.csv with its two-row header."
    rows, k = {}, 0
    for label, genre in {'Hip-Hop': 'hiphop', 'Folk': 'country', 'Electronic': 'disco'}.items():
        for i, split in enumerate(['training'] * 4 + ['validation', 'test']):
            tid = 2 + k; k += 1
            rows[tid] = (label, split, 'small')
            f = root / 'fma_small' / f'{tid:06d}'[:3] / f'{tid:06d}.mp3'
            f.parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / 'clip.wav', synth_track(genre, i, 3.0), 22050)
            subprocess.run([ffmpeg_executable(), '-loglevel', 'error', '-y', '-i', str(root / 'clip.wav'), str(f)], check=True)
    rows[999] = (None, 'training', 'large')
    columns = pd.MultiIndex.from_tuples([('album', 'title'), ('set', 'split'), ('set', 'subset'), ('track', 'genre_top'), ('track', 'title')])
    meta = pd.DataFrame([['an album', s, sub, g, f'track {t}'] for t, (g, s, sub) in rows.items()], columns=columns,
                        index=pd.Index(list(rows), name='track_id'))
    (root / 'fma_metadata').mkdir(); meta.to_csv(root / 'fma_metadata' / 'tracks.csv')
    return root


def test_fma_trains_on_its_own_genres_and_split(tmp_path):
    fma = _fma(tmp_path / 'fma')
    assert (fma / 'fma_metadata' / 'tracks.csv').read_text().splitlines()[2].startswith('track_id,')
    from genre_classification.core import ProjectPaths
    from genre_classification.train_features import FeatureTrainConfig, train_feature_model
    result = train_feature_model(FeatureTrainConfig(data_dir=str(fma / 'fma_small'), epochs=10, ensemble=1, checkpoints_path=str(tmp_path / 'ck')),
                                 ProjectPaths(root=tmp_path), log_to_mlflow=False)
    assert result.classes == ['Electronic', 'Folk', 'Hip-Hop'] and len(result.test.track_labels) == 3      # FMA's test tracks, one a genre


def test_a_hugging_face_audiofolder_with_metadata_csv(tmp_path, work):
    "Hugging Face's layout: split folders and a metadata.csv with file_name and a label column; the CNN trains on its split."
    root = tmp_path / 'hf'
    rows = []
    for split, n in [('train', 3), ('validation', 1), ('test', 1)]:
        for label, genre in LABELS.items():
            for i in range(n):
                name = f'{split}/{label}_{i}.wav'
                (root / split).mkdir(parents=True, exist_ok=True); sf.write(root / name, synth_track(genre, 10 * len(rows) + i, 3.0), 22050)
                rows.append((name, label))
    pd.DataFrame(rows, columns=['file_name', 'label']).to_csv(root / 'metadata.csv', index=False)
    from genre_classification.core import ProjectPaths
    from genre_classification.train import TrainConfig, train
    result = train(TrainConfig(model='small_cnn', epochs=1, batch_size=8, data_dir=str(root), device='cpu', checkpoints_path=str(tmp_path / 'ck')),
                   ProjectPaths(root=tmp_path), progress=False, log_to_mlflow=False)
    assert result.classes == OURS and len(result.test.track_ids) == 3       # the folders' test split: one track of each label


@pytest.mark.parametrize('case', ['missing file', 'fma without tracks.csv', 'one track', 'one label'])
def test_bad_datasets_stop_with_one_line(case, tmp_path, work):
    root = tmp_path / 'data'
    if case == 'missing file':
        (root / 'clips').mkdir(parents=True); sf.write(root / 'clips' / 'a.wav', np.zeros(22050, np.float32), 22050)
        (root / 'tracks.csv').write_text('path,label\nclips/a.wav,lofi\nclips/gone.wav,jazzhop\n'); data, expected = root / 'tracks.csv', 'do not exist'
    elif case == 'fma without tracks.csv':
        (root / 'fma_small' / '000').mkdir(parents=True); data, expected = root / 'fma_small', 'FMA audio without'
    elif case == 'one track':
        write_collection(root, per_label=4, seconds=2.0); shutil.rmtree(root / 'lofi' / 'album one')
        for f in list((root / 'lofi').glob('*.wav'))[1:]: f.unlink()
        data, expected = root, "label 'lofi' has 1 track(s)"
    else:
        write_collection(root, per_label=3, seconds=2.0); shutil.rmtree(root / 'k-pop'); shutil.rmtree(root / 'lofi')
        data, expected = root, "one label only ('afrobeat')"
    done = run([BIN / 'pipeline', 'train-using-audio-features', '--data_dir', data, '--checkpoints_path', tmp_path / 'ck'], work, check=False)
    assert done.returncode != 0 and expected in done.stderr, done.stderr[-2000:]
    errors = [l for l in done.stderr.splitlines() if l.startswith('pipeline') and ': error: ' in l]
    assert 'Traceback' not in done.stderr and len(errors) == 1 and expected in errors[0], done.stderr
