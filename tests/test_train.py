"""Training runs you can trust: determinism, kill-and-resume, MLflow records (FAILED on interrupt), bad parameters
stopped with one line (Python, CLI, papermill), the image route, the musicnn probe through papermill (the papermill job with figures: test_hf), the feature MLP, and
`auto` step settings timed once per machine."""
import json, os, signal, subprocess, sys, textwrap
from pathlib import Path

import mlflow
import pandas as pd
import papermill as pm
import pytest

from genre_classification.core import BadInputError, ProjectPaths, check_params
from genre_classification.data import find_tracks
from genre_classification.features import create_image_features
from genre_classification.datasets import make_default_dataset
from genre_classification.hooks.step import MEASURE_ENV, STEP_CACHE_NAME, STEP_CHOICES, machine_name
from genre_classification.learner import TrainHook
from genre_classification.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@pytest.fixture(scope='module')
def tiny_audio(tmp_path_factory) -> Path:
    "A built-in dataset of 4 clips of 4 s per genre."
    return make_default_dataset(tmp_path_factory.mktemp('tiny') / 'data', tracks_per_genre=4, seconds=4.0, progress=False)


def tiny_config(project: Path, data: Path, **kw) -> TrainConfig:
    return TrainConfig(**{'model': 'small_cnn', 'epochs': 3, 'batch_size': 8, 'segments_per_track': 2, 'data_dir': str(data),
                          'device': 'cpu', 'checkpoints_path': str(project / 'checkpoints'),
                          'mlflow_tracking_uri': f"sqlite:///{project / 'mlflow.db'}", **kw})


def test_same_seed_same_metrics(tmp_path, tiny_audio):
    "Two runs with the same seed and data on CPU give identical histories and test metrics; another seed does not."
    runs = [train(tiny_config(tmp_path / name, tiny_audio, seed=seed, augment=True), ProjectPaths(root=tmp_path / name), progress=False,
                  log_to_mlflow=False) for name, seed in [('a', 0), ('b', 0), ('c', 1)]]
    pd.testing.assert_frame_equal(runs[0].history, runs[1].history)
    assert runs[0].test.metrics == runs[1].test.metrics
    assert not runs[0].history.train_loss.equals(runs[2].history.train_loss)


def test_auto_times_the_step_once_per_machine_and_trains_as_a_run_that_read_the_cache(tmp_path, tiny_audio, monkeypatch):
    "On a machine its cache has not seen, `auto` times the step's settings once, trains with the fastest, keeps it; the next run reads it."
    monkeypatch.delenv(MEASURE_ENV); monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    cache = tmp_path / 'cache' / 'genre_classification' / STEP_CACHE_NAME
    first = train(tiny_config(tmp_path / 'a', tiny_audio), ProjectPaths(root=tmp_path / 'a'), progress=False)
    (key, entry), = json.loads(cache.read_text()).items()
    assert key.startswith(machine_name('cpu')) and 'small_cnn | batch 8 of 1×64×130' in key, key
    assert set(entry['ms_per_step']) == set(STEP_CHOICES) and all(ms > 0 for ms in entry['ms_per_step'].values()), entry
    chosen, params = STEP_CHOICES[entry['setting']], mlflow.MlflowClient(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}").get_run(first.run_id).data.params
    assert (params['step_bf16'], params['step_channels_last']) == (str(chosen.bf16), str(chosen.channels_last)), params
    written = cache.stat().st_mtime_ns
    second = train(tiny_config(tmp_path / 'b', tiny_audio), ProjectPaths(root=tmp_path / 'b'), progress=False, log_to_mlflow=False)
    assert cache.stat().st_mtime_ns == written                           # read, not timed again
    pd.testing.assert_frame_equal(first.history, second.history)          # timing first left the run's random generators alone
    monkeypatch.setenv(MEASURE_ENV, 'table'); cache.unlink()
    train(tiny_config(tmp_path / 'c', tiny_audio, epochs=1), ProjectPaths(root=tmp_path / 'c'), progress=False, log_to_mlflow=False)
    assert not cache.exists()                                             # pinned to the table: nothing timed


KILLED_RUN = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path
    from genre_classification.hooks import tracker
    from genre_classification.core import ProjectPaths
    from genre_classification.train import TrainConfig, train
    project, data, model = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    save = tracker.save_atomically                   # what Checkpointing writes with
    def save_then_die(obj, target):
        save(obj, target)
        if target.name == 'last.pt' and obj['epoch'] == 1: os.kill(os.getpid(), signal.SIGKILL)   # killed after epoch 2
    tracker.save_atomically = save_then_die
    cfg = TrainConfig(model=model, epochs=3, batch_size=8, segments_per_track=2, data_dir=data, device='cpu',
                      checkpoints_path=str(project / 'checkpoints'), mlflow_tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    train(cfg, ProjectPaths(root=project), progress=False)
''')


def test_killed_run_resumes_to_the_same_result(tmp_path, tiny_audio):
    "SIGKILL after epoch 2 of 3, then `resume`: same history and test metrics as a run that was never killed."
    killed = subprocess.run([PYTHON, '-c', KILLED_RUN, str(tmp_path / 'k'), str(tiny_audio), 'small_cnn'], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = train(tiny_config(tmp_path / 'k', tiny_audio, resume=True), ProjectPaths(root=tmp_path / 'k'), progress=False)
    whole = train(tiny_config(tmp_path / 'w', tiny_audio), ProjectPaths(root=tmp_path / 'w'), progress=False, log_to_mlflow=False)
    pd.testing.assert_frame_equal(resumed.history, whole.history)
    assert resumed.test.metrics == whole.test.metrics
    # the resumed run continues the killed run's MLflow run, which then finishes
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'k' / 'mlflow.db'}")
    run = client.get_run(resumed.run_id)
    assert run.info.status == 'FINISHED'
    assert [m.step for m in client.get_metric_history(resumed.run_id, 'train_loss')] == [1, 2, 3]


def test_a_finished_run_records_everything(tmp_path, tiny_audio):
    "Parameters, per-epoch metrics, the figures, the model, the dataset fingerprint and the git commit."
    result = train(tiny_config(tmp_path, tiny_audio, epochs=2), ProjectPaths(root=tmp_path), progress=False)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result.run_id)
    assert run.info.status == 'FINISHED'
    assert run.data.params['model'] == 'small_cnn' and run.data.params['lr'] == str(TrainConfig().lr)
    assert len(client.get_metric_history(result.run_id, 'valid_track_accuracy')) == 2
    assert 'test_track_macro_f1' in run.data.metrics
    assert len(run.data.tags['dataset_fingerprint']) == 16 and run.data.tags['git_commit']
    artifacts = {a.path for a in client.list_artifacts(result.run_id)} | {a.path for a in client.list_artifacts(result.run_id, 'model')}
    assert {'confusion_matrix.png', 'learning_curve.png', 'model/model.pt'} <= artifacts
    for name in ['last.pt', 'best.pt', 'model.pt']: assert (result.run_dir / name).exists()


class StopInEpoch(TrainHook):
    "Raises `interruption` as epoch `epoch` (from 1) starts."
    def __init__(self, interruption, epoch): self.interruption, self.epoch = interruption, epoch
    def before_epoch(self, learn):
        if learn.epoch + 1 == self.epoch: raise self.interruption('stopped')


@pytest.mark.parametrize('interruption', [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_run_is_marked_failed(tmp_path, tiny_audio, interruption):
    "Ctrl-C (KeyboardInterrupt) or an error during epoch 2 ends the MLflow run FAILED; the exception goes on."
    with pytest.raises(interruption):
        train(tiny_config(tmp_path, tiny_audio), ProjectPaths(root=tmp_path), progress=False, hooks=[StopInEpoch(interruption, 2)])
    runs = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
        [mlflow.get_experiment_by_name('genre-classification').experiment_id])
    assert [r.info.status for r in runs] == ['FAILED']


def test_bad_parameters_are_named_in_one_line():
    with pytest.raises(BadInputError) as e: check_params(TrainConfig, {'model': 'resnet19', 'lr': -1.0})
    lines = str(e.value).split('; ')
    assert '\n' not in str(e.value)
    assert any(l.startswith("bad parameter 'model' = 'resnet19'") and 'resnet18' in l for l in lines)
    assert any(l.startswith("bad parameter 'lr' = -1.0") for l in lines)
    assert check_params(TrainConfig, {'optimizer': 'sdg'}).optimizer == 'sgd'   # the origin project's spelling


def test_the_cli_reports_a_bad_parameter_in_one_line():
    done = subprocess.run(['pipeline', 'train-using-original-audios', '--model', 'resnet19'], capture_output=True, text=True,
                          env={**os.environ, 'PATH': f"{Path(PYTHON).parent}:{os.environ['PATH']}"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"pipeline train-using-original-audios: error: bad parameter 'model' = 'resnet19': "
                                                 + done.stderr.split("'resnet19': ", 1)[1].strip()]
    assert 'Traceback' not in done.stderr


def test_papermill_stops_on_a_bad_parameter_before_any_work(tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(REPO / 'nbs' / '03_train.ipynb', tmp_path / 'out.ipynb', parameters={'lr': -1.0, 'split': 'by_artist'},
                            progress_bar=False, cwd=tmp_path)
    assert "bad parameter 'lr' = -1.0" in str(e.value) and "bad parameter 'split' = 'by_artist'" in str(e.value)
    assert not (tmp_path / 'checkpoints').exists()


def test_the_image_route_trains_on_spectrogram_pngs(tmp_path, tiny_audio):
    "Spectrogram PNGs in genre folders (as the origin project's Image_data) train like audio."
    images = tmp_path / 'Image_data'
    create_image_features(find_tracks(tiny_audio), images, n_workers=1, progress=False)
    assert len(list(images.glob('*/*.png'))) == 40
    result = train(TrainConfig(model='small_cnn', epochs=1, batch_size=8, images_path=str(images), device='cpu',
                               checkpoints_path=str(tmp_path / 'ck')), ProjectPaths(root=tmp_path), progress=False, log_to_mlflow=False)
    assert result.model_file.exists() and len(result.test.track_labels) > 0


def test_the_feature_model_trains_from_the_cli(tmp_path):
    done = subprocess.run(['pipeline', 'train-using-audio-features', '--epochs', '20', '--ensemble', '1',
                           '--checkpoints_path', str(tmp_path / 'ck'), '--mlflow_tracking_uri', f"sqlite:///{tmp_path / 'mlflow.db'}"],
                          capture_output=True, text=True, env={**os.environ, 'PATH': f"{Path(PYTHON).parent}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    accuracy = float(done.stdout.split('track accuracy ')[1].split(' ')[0])
    assert 'fault_filtered split' in done.stdout and '(95% intervals over 290 tracks)' in done.stdout
    assert 0.3 < accuracy <= 1.0
    assert list((tmp_path / 'ck').glob('feature_mlp-*/model.pt'))


class KeepRows(TrainHook):
    "A user hook: it keeps each epoch's row."
    def __init__(self): self.rows = []
    def after_epoch(self, learn): self.rows.append(dict(learn.row))


def test_the_probe_takes_user_hooks_and_resumes_after_a_kill(tmp_path, tiny_audio):
    """The musicnn probe trains through the same `fit`: a user hook sees every epoch; killed after epoch 2 of 3 and resumed, it ends
    where a run that was never killed does, and its MLflow run has each epoch once."""
    killed = subprocess.run([PYTHON, '-c', KILLED_RUN, str(tmp_path / 'k'), str(tiny_audio), 'musicnn_probe'], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [run_dir] = (tmp_path / 'k' / 'checkpoints').glob('musicnn_probe-*')
    assert {p.name for p in run_dir.iterdir()} == {'best.pt', 'last.pt'}            # killed before the model file
    probe = lambda project, **kw: tiny_config(project, tiny_audio, model='musicnn_probe', **kw)
    resumed_rows, whole_rows = KeepRows(), KeepRows()
    resumed = train(probe(tmp_path / 'k', resume=True), ProjectPaths(root=tmp_path / 'k'), progress=False, hooks=[resumed_rows])
    whole = train(probe(tmp_path / 'w'), ProjectPaths(root=tmp_path / 'w'), progress=False, log_to_mlflow=False, hooks=[whole_rows])
    pd.testing.assert_frame_equal(resumed.history, whole.history)
    assert resumed.test.metrics == whole.test.metrics
    assert [r['epoch'] for r in resumed_rows.rows] == [3] and whole_rows.rows == whole.history.to_dict('records')
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'k' / 'mlflow.db'}")
    assert client.get_run(resumed.run_id).info.status == 'FINISHED'
    assert [m.step for m in client.get_metric_history(resumed.run_id, 'train_loss')] == [1, 2, 3]
    import torch
    assert torch.load(resumed.model_file, weights_only=True)['meta']['model'] == 'musicnn_probe'
