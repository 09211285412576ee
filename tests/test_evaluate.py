"The evaluation notebook as a pipeline: reports, figures, metrics written back into the training run, and the CLI."
import json, re, os, subprocess, sys
from pathlib import Path

import mlflow
import papermill as pm
import pytest

from genre_classification.core import ProjectPaths
from genre_classification.datasets import make_default_dataset
from genre_classification.core import BadInputError
from genre_classification.evaluate import compare_model_files
from genre_classification.train import TrainConfig, train
from genre_classification.train_features import FeatureTrainConfig, train_feature_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval')
    data = make_default_dataset(root / 'data', tracks_per_genre=4, seconds=4.0, progress=False)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    result = train(TrainConfig(model='small_cnn', epochs=2, batch_size=8, data_dir=str(data), device='cpu',
                               checkpoints_path=str(root / 'ck'), mlflow_tracking_uri=uri), ProjectPaths(root=root), progress=False)
    return root, uri, result


def test_the_evaluation_notebook_reports_and_writes_back(trained):
    root, uri, result = trained
    out = root / 'evaluate.ipynb'
    pm.execute_notebook(REPO / 'nbs' / '04_evaluate.ipynb', out, progress_bar=False, cwd=REPO / 'nbs',
                        parameters=dict(run_id=result.run_id, mlflow_tracking_uri=uri, log_to_run=True))
    cells = json.loads(out.read_text())['cells']
    outputs = [o for c in cells if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    assert any('image/png' in o.get('data', {}) for o in outputs)
    html = ''.join(''.join(o.get('data', {}).get('text/html', '')) for o in outputs)
    assert 'macro average' in html and 'share of true genre' in html and result.run_id in html
    run = mlflow.MlflowClient(uri).get_run(result.run_id)
    assert run.data.metrics['eval_test_track_accuracy'] == pytest.approx(result.test.metrics['track_accuracy'])
    assert run.data.metrics['eval_test_track_accuracy_low'] <= run.data.metrics['eval_test_track_accuracy'] <= run.data.metrics['eval_test_track_accuracy_high']
    artifacts = [a.path for a in mlflow.MlflowClient(uri).list_artifacts(result.run_id)]
    assert 'eval_test_confusion_matrix.png' in artifacts


def test_a_bad_split_is_named(trained):
    root, uri, result = trained
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(REPO / 'nbs' / '04_evaluate.ipynb', root / 'bad.ipynb', progress_bar=False, cwd=root,
                            parameters=dict(split='holdout'))
    assert "bad parameter 'split' = 'holdout'" in str(e.value)


def test_the_cli_prints_per_genre_metrics(trained):
    root, uri, result = trained
    done = subprocess.run([str(Path(sys.executable).parent / 'pipeline'), 'evaluate', '--model_file', str(result.model_file)],
                          capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    assert 'macro average' in done.stdout and 'most confused' in done.stdout
    printed = {l.split()[0]: float(l.split()[1]) for l in done.stdout.splitlines() if l.startswith(('track_', 'segment_'))}
    # the interval table: each score with its 95% bootstrap bounds, over the test tracks
    estimate, low, high = map(float, next(l for l in done.stdout.splitlines() if l.startswith('track_accuracy') and len(l.split()) == 4).split()[1:])
    assert low <= estimate <= high and re.search(r'95% bootstrap intervals over the \d+ tracks', done.stdout), done.stdout
    assert printed['track_accuracy'] == pytest.approx(result.test.metrics['track_accuracy'], abs=5e-4)


def test_compare_models_gives_the_difference_with_its_interval_and_mcnemars_p(trained):
    "`pipeline compare-models`: the same network after one epoch and after two, on the same test tracks; a missing file is one line."
    root, uri, result = trained
    younger = train(result.config.model_copy(update={'epochs': 1, 'checkpoints_path': str(root / 'ck1')}), ProjectPaths(root=root), progress=False)
    pipeline = str(Path(sys.executable).parent / 'pipeline')
    done = subprocess.run([pipeline, 'compare-models', str(result.model_file), str(younger.model_file)], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    row = next(l for l in done.stdout.splitlines() if 'A (small_cnn) - B (small_cnn)' in l and 'accuracy' in l).split()
    estimate, low, high, p = map(float, row[-4:])
    assert estimate == pytest.approx(result.test.metrics['track_accuracy'] - younger.test.metrics['track_accuracy'], abs=5e-4)
    assert low <= estimate <= high and 0 <= p <= 1, done.stdout
    missing = subprocess.run([pipeline, 'compare-models', str(result.model_file), str(root / 'nowhere.pt')], capture_output=True, text=True, cwd=root)
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1 and 'nowhere.pt' in missing.stderr, missing.stderr
    # the feature MLP's test tracks are rows of its table, not these tracks: no track-by-track comparison
    mlp = train_feature_model(FeatureTrainConfig(epochs=2, ensemble=1, checkpoints_path=str(root / 'ck-mlp')), ProjectPaths(root=root), log_to_mlflow=False)
    with pytest.raises(BadInputError, match='test tracks are not those of'): compare_model_files(result.model_file, mlp.model_file, paths=ProjectPaths(root=root))
