"The evaluation notebook as a pipeline: reports, figures, metrics written back into the training run, and the CLI."
import json, re, os, subprocess, sys
from pathlib import Path

import mlflow
import papermill as pm
import pytest

from genre_classification.core import ProjectPaths
from genre_classification.datasets import make_default_dataset
from genre_classification.train import TrainConfig, train

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
