"""Distributed tuning for real: three `worker` processes share one study, in a PostgreSQL server on loopback and in a
journal file; one worker is killed mid-trial. Trials are neither lost nor duplicated, the killed one ends failed and is
made up for, nothing stays RUNNING, the best value is reported, and the password never appears in any output."""
import os, shutil, signal, socket, subprocess, sys, tempfile, time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from genre_classification.datasets import make_default_dataset
from genre_classification.tune import TuneConfig, open_storage

WORKER = str(Path(sys.executable).parent / 'worker')
PASSWORD = 'tuner-s3cret-pw'
N_TRIALS = 6


def _postgres_bin() -> Path | None:
    for d in sorted(Path('/usr/lib/postgresql').glob('*/bin'), reverse=True):
        if (d / 'initdb').exists(): return d
    return Path(shutil.which('initdb')).parent if shutil.which('initdb') else None


def _unavailable(reason: str):
    if os.environ.get('CI'): pytest.fail(f'PostgreSQL is needed in CI: {reason}')
    pytest.skip(reason)


@pytest.fixture(scope='module')
def postgres():
    "A PostgreSQL server of Debian's package on a free loopback port; (optuna URL, mlflow URL). Installs the package if missing."
    if _postgres_bin() is None and shutil.which('apt-get') and os.geteuid() == 0:
        subprocess.run(['apt-get', 'install', '-y', '-q', 'postgresql'], capture_output=True, env={**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'})
    bin_dir = _postgres_bin()
    if bin_dir is None: _unavailable('PostgreSQL is not installed and cannot be installed here (apt-get install postgresql)')
    root = os.geteuid() == 0
    if root and subprocess.run(['id', 'postgres'], capture_output=True).returncode != 0:
        _unavailable("running as root and there is no 'postgres' user to run the server as")
    base = Path(tempfile.mkdtemp(prefix='pg-', dir='/tmp'))
    (base / 'pw').write_text(PASSWORD)
    if root:
        for p in [base, base / 'pw']: shutil.chown(p, 'postgres')
    as_user = ['runuser', '-u', 'postgres', '--'] if root else []
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    subprocess.run(as_user + [str(bin_dir / 'initdb'), '-D', str(base / 'data'), '-U', 'tuner', f'--pwfile={base / "pw"}',
                              '-A', 'scram-sha-256'], check=True, capture_output=True)
    subprocess.run(as_user + [str(bin_dir / 'pg_ctl'), '-D', str(base / 'data'), '-l', str(base / 'log'), '-w', 'start',
                              '-o', f'-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200'], check=True, capture_output=True)
    env = {**os.environ, 'PGPASSWORD': PASSWORD}
    subprocess.run([str(bin_dir / 'createdb'), '-h', '127.0.0.1', '-p', str(port), '-U', 'tuner', 'mlflow'], check=True, env=env)
    try: yield (f'postgresql+psycopg2://tuner:{PASSWORD}@127.0.0.1:{port}/postgres',
                f'postgresql+psycopg2://tuner:{PASSWORD}@127.0.0.1:{port}/mlflow')
    finally:
        subprocess.run(as_user + [str(bin_dir / 'pg_ctl'), '-D', str(base / 'data'), '-m', 'fast', 'stop'], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> Path:
    return make_default_dataset(tmp_path_factory.mktemp('tune') / 'data', tracks_per_genre=3, seconds=4.0, progress=False)


def run_three_workers_and_kill_one(workdir: Path, storage_args: list[str], env: dict, study_storage: str, tiny: Path, mlflow_uri: str):
    cmd = [WORKER, '--study', 'genres', *storage_args, '--n-trials', str(N_TRIALS), '--epochs', '2', '--models', 'small_cnn',
           '--data-dir', str(tiny), '--device', 'cpu', '--heartbeat', '1', '--mlflow-tracking-uri', mlflow_uri]
    procs = []
    victim_log = open(workdir / 'victim.log', 'w')     # a file, not a pipe: nothing of a killed process can hold it open
    for i in range(3):
        out = dict(stdout=victim_log, stderr=subprocess.STDOUT) if i == 0 else dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(subprocess.Popen(cmd, cwd=workdir, env=env, text=True, **out))
        time.sleep(1.0)
    victim = procs[0]
    storage = open_storage(study_storage, TuneConfig(heartbeat_interval=1, grace_period=3))
    deadline, killed_trial = time.time() + 120, None
    while killed_trial is None and time.time() < deadline:            # wait until the victim is inside a trial, then kill it
        try: study = optuna.load_study(study_name='genres', storage=storage)
        except KeyError: time.sleep(0.5); continue
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.user_attrs.get('worker', '').endswith(f':{victim.pid}')]
        if running: victim.send_signal(signal.SIGKILL); victim.wait(); killed_trial = running[0].number   # reaped, as a shell would
        else: time.sleep(0.2)
    if killed_trial is None:
        for p in procs: p.kill()
        raise AssertionError('the victim never started a trial; its output:\n' + (workdir / 'victim.log').read_text()[-3000:])
    outputs = [p.communicate(timeout=600) for p in procs[1:]]
    for p, (out, err) in zip(procs[1:], outputs): assert p.returncode == 0, err[-3000:]
    return optuna.load_study(study_name='genres', storage=storage), killed_trial, outputs


def check_study(study, killed_trial, outputs):
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == N_TRIALS, [s.name for s in states]                     # what was asked
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states    # nothing left hanging
    assert study.trials[killed_trial].state == TrialState.FAIL                       # the killed trial ended failed
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert sorted(t.number for t in trials) == list(range(len(trials)))              # no number lost or doubled
    model_files = [t.user_attrs['model_file'] for t in finished if t.state == TrialState.COMPLETE]
    assert len(model_files) == len(set(model_files))                                 # no trial ran twice into one model
    assert any('best value' in out for out, _ in outputs)
    for out, err in outputs: assert PASSWORD not in out + err


def test_three_workers_on_postgresql_with_one_killed(tmp_path, postgres, tiny):
    optuna_url, mlflow_url = postgres
    env = {**os.environ, 'OPTUNA_STORAGE': optuna_url}
    study, killed, outputs = run_three_workers_and_kill_one(tmp_path, ['--storage-env', 'OPTUNA_STORAGE'], env, optuna_url, tiny, mlflow_url)
    check_study(study, killed, outputs)
    retried = [optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in study.trials]
    assert killed in retried                                                         # taken over by another worker
    import mlflow
    runs = mlflow.MlflowClient(mlflow_url).search_runs([mlflow.MlflowClient(mlflow_url).get_experiment_by_name('genre-tuning').experiment_id])
    parent = study.user_attrs['mlflow_run_id']
    children = [r for r in runs if r.data.tags.get('mlflow.parentRunId') == parent]
    assert len({r.data.tags['optuna_trial'] for r in children}) >= N_TRIALS


def test_three_workers_on_a_journal_file_with_one_killed(tmp_path, tiny):
    journal = str(tmp_path / 'study.journal')
    study, killed, outputs = run_three_workers_and_kill_one(tmp_path, ['--storage', journal], dict(os.environ), journal, tiny,
                                                             f"sqlite:///{tmp_path / 'mlflow.db'}")
    check_study(study, killed, outputs)


def test_a_bad_storage_url_is_reported_without_its_password(tmp_path):
    "A driver that is not installed: said at once (no waiting for a database to come up), in one line, the password masked."
    done = subprocess.run([WORKER, '--study', 's', '--storage-env', 'MY_DB', '--n-trials', '1'], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, 'MY_DB': f'postgresql+nosuchdriver://u:{PASSWORD}@127.0.0.1:1/none'}, timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert 'cannot open the Optuna storage' in done.stderr and 'u:***@' in done.stderr and PASSWORD not in done.stderr + done.stdout


def test_the_tuning_notebook_shows_its_three_plots(tmp_path, tiny):
    import json, papermill as pm, yaml
    out = tmp_path / 'tune.ipynb'
    pm.execute_notebook(Path(__file__).resolve().parents[1] / 'nbs' / '07_tune.ipynb', out, progress_bar=False, cwd=tmp_path,
                        parameters=dict(study='nb', storage=str(tmp_path / 'nb.journal'), n_trials=4, epochs=1, models='small_cnn',
                                        data_dir=str(tiny), device='cpu', mlflow_tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
                                        best_params_file=str(tmp_path / 'best.yaml')))
    cells = json.loads(out.read_text())['cells']
    images = [o for c in cells if c['cell_type'] == 'code' for o in c.get('outputs', []) if 'image/png' in o.get('data', {})]
    assert len(images) == 3
    best = yaml.safe_load((tmp_path / 'best.yaml').read_text())
    assert best['model'] == 'small_cnn' and best['epochs'] == 1 and 0 < best['lr'] < 1


def test_a_worker_whose_trials_all_fail_stops_with_one_line(tmp_path, monkeypatch):
    "Failed trials do not count towards n_trials: a worker stops after FAILED_IN_A_ROW of its own in a row, naming the error."
    from genre_classification import tune
    from genre_classification.core import BadInputError, ProjectPaths
    def broken_train(*args, **kwargs): raise RuntimeError('CUDA error: out of memory\nCUDA kernel errors might be reported later')
    monkeypatch.setattr(tune, 'train', broken_train)
    cfg = TuneConfig(study='broken', n_trials=10, timeout=60, storage=str(tmp_path / 'journal.log'), device='cpu')
    started = time.time()
    with pytest.raises(BadInputError) as failed: tune.run_worker(cfg, ProjectPaths(root=tmp_path), log_to_mlflow=False)
    assert time.time() - started < 30                                         # it stopped; it did not run until the timeout
    message = str(failed.value)
    assert '\n' not in message and message.startswith(f'{tune.FAILED_IN_A_ROW} trials in a row failed')
    assert 'RuntimeError: CUDA error: out of memory' in message
    study = optuna.load_study(study_name='broken', storage=open_storage(str(tmp_path / 'journal.log'), cfg))
    assert [t.state for t in study.trials] == [TrialState.FAIL] * tune.FAILED_IN_A_ROW
