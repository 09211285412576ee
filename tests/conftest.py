"Shared fixtures: where the real reference data is, and small built-in datasets."
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared' / 'data'
LABELS = {'afrobeat': 'reggae', 'k-pop': 'pop', 'lofi': 'jazz'}      # labels of our own: the synthetic genre that plays each
OURS = sorted(LABELS)
# runs take the table's step settings, as `make notebooks` does, so that no result depends on which setting the machine timed
# fastest (test_train's own test times them); set before any fixture trains, and inherited by the commands tests start
os.environ.setdefault('GENRE_CLASSIFICATION_STEP_SETTINGS', 'table')


@pytest.fixture(scope='session')
def shared_data() -> Path:
    "`../shared/data` beside the checkout: skipped on a user's machine that lacks it, a failure in CI (where CI is set)."
    if not SHARED.is_dir():
        message = f'{SHARED} (the shared real-audio data) is missing'
        if os.environ.get('CI'): pytest.fail(message + ', and CI is set: it must be there')
        pytest.skip(message)
    return SHARED


@pytest.fixture(scope='session')
def served_models(tmp_path_factory) -> Path:
    "A models folder as `make train` leaves it, at small sizes: the real-music model (tagger + the packaged feature MLP) and a tiny CNN."
    from genre_classification.core import ProjectPaths
    from genre_classification.export import export_onnx
    from genre_classification.predict import make_real_music_model
    from genre_classification.datasets import make_default_dataset
    from genre_classification.train import TrainConfig, train
    root = tmp_path_factory.mktemp('served')
    models = root / 'models'
    make_real_music_model(models)
    data = make_default_dataset(root / 'data', tracks_per_genre=3, seconds=4.0, progress=False)
    cnn = train(TrainConfig(model='small_cnn', epochs=1, batch_size=8, data_dir=str(data), device='cpu', checkpoints_path=str(root / 'ck')),
                ProjectPaths(root=root), progress=False, log_to_mlflow=False)
    export_onnx(cnn.model_file, models / 'small_cnn.onnx')
    return models


def write_collection(root: Path, per_label: int = 5, seconds: float = 4.0, suffix: str = '.wav') -> Path:
    "A folder per label of our own names (an album folder inside one), synthetic music of a different genre in each."
    import soundfile as sf
    from genre_classification.synth.genres import synth_track
    for label, genre in LABELS.items():
        for i in range(per_label):
            f = root / label / ('album one' if label == 'lofi' and i % 2 else '') / f'{label} song {i}{suffix}'
            f.parent.mkdir(parents=True, exist_ok=True)
            sf.write(f, synth_track(genre, i, seconds), 22050)
    return root


@pytest.fixture(scope='session')
def own_models(tmp_path_factory) -> Path:
    "A models folder with one model whose labels are none of GTZAN's: a tiny CNN on `write_collection`'s music, exported to ONNX."
    from genre_classification.core import ProjectPaths
    from genre_classification.export import export_onnx
    from genre_classification.train import TrainConfig, train
    root = tmp_path_factory.mktemp('own-models')
    data = write_collection(root / 'my music', per_label=4, seconds=3.0)
    cnn = train(TrainConfig(model='small_cnn', epochs=1, batch_size=8, data_dir=str(data), device='cpu', checkpoints_path=str(root / 'ck')),
                ProjectPaths(root=root), progress=False, log_to_mlflow=False)
    export_onnx(cnn.model_file, root / 'models' / 'own_labels_cnn.onnx')
    return root / 'models'


def free_port() -> int:
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait_for_http(url: str, proc, seconds: float = 120, log: Path | None = None) -> None:
    "Wait until `url` answers (any status), failing early (with the end of `log`) if `proc` exits."
    import time, urllib.error, urllib.request
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None: raise RuntimeError(f'the server exited with {proc.returncode}: {log.read_text()[-3000:] if log else ""}')
        try: urllib.request.urlopen(url, timeout=2); return
        except urllib.error.HTTPError: return
        except OSError: time.sleep(0.5)
    raise TimeoutError(f'{url} did not answer within {seconds} s')


@contextmanager
def running_server(cmd: list[str], url: str, env: dict | None = None, log: Path | None = None, seconds: float = 180, cwd: Path | None = None):
    "Start `cmd` in its own process group (output to `log`, a file: a pipe nobody reads would block it), wait until `url` answers, yield; then stop the group."
    import signal, subprocess, tempfile
    log = log or Path(tempfile.mkdtemp()) / 'server.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)
        try:
            wait_for_http(url, proc, seconds, log)
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try: proc.wait(30)
            except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
