"""HTTP serving the MLflow way: the registered pyfunc model served by `mlflow models serve` on a loopback port answers
good payloads with genre, probabilities, model name and version; bad ones with a 400 and a one-line reason, and keeps
serving (or error rows, when asked for them); a bounded load (200 requests, 8 at a time) has no errors. The pyfunc itself
has an output signature that a batch engine (Spark's spark_udf) can read."""
import base64, json, os, subprocess, sys, urllib.request
from pathlib import Path

import pytest

from conftest import free_port, running_server
from genre_classification.core import GENRES, ProjectPaths
from genre_classification.serve import register_model

BIN = Path(sys.executable).parent
BENCH = Path(__file__).resolve().parents[1] / 'benchmarks'


@pytest.fixture(scope='module')
def server(served_models, tmp_path_factory):
    "The real-music model registered in a fresh registry and served with `mlflow models serve` (a 2 MB limit for the test)."
    work = tmp_path_factory.mktemp('serve')
    uri = f"sqlite:///{work / 'mlflow.db'}"
    assert register_model(served_models / 'real_music.json', tracking_uri=uri, paths=ProjectPaths(root=work)) == 1
    assert register_model(served_models / 'real_music.json', tracking_uri=uri, paths=ProjectPaths(root=work)) == 2
    port = free_port()
    env = {**os.environ, 'MLFLOW_TRACKING_URI': uri, 'PATH': f"{BIN}:{os.environ['PATH']}", 'GENRE_CLASSIFICATION_MAX_AUDIO_MB': '2'}
    cmd = [str(BIN / 'mlflow'), 'models', 'serve', '-m', 'models:/genre-classifier/latest', '--env-manager', 'local', '-h', '127.0.0.1', '-p', str(port)]
    with running_server(cmd, f'http://127.0.0.1:{port}/ping', env):
        yield f'http://127.0.0.1:{port}'


def post(url: str, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url + '/invocations', body, {'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=120) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b'{}')


def b64(path: Path) -> str: return base64.b64encode(path.read_bytes()).decode()


def test_good_payloads_get_genre_probabilities_and_model_version(server, shared_data):
    files = [shared_data / 'audio_formats' / 'fma_keys__000__000010.mp3', shared_data / 'gtzan_clips' / 'classical' / 'classical.00000.wav']
    status, answer = post(server, {'dataframe_records': [{'audio': b64(f)} for f in files]})
    assert status == 200, answer
    mp3, classical = answer['predictions']
    for a in (mp3, classical):
        assert a['error'] is None and a['genre'] in GENRES and len(a['probabilities']) == len(GENRES)
        assert a['model'] == 'genre-classifier' and a['model_version'] == '2'
        assert abs(sum(a['probabilities']) - 1) < 1e-3 and GENRES[max(range(10), key=a['probabilities'].__getitem__)] == a['genre']
    assert classical['genre'] == 'classical'


def test_bad_payloads_get_a_400_with_one_line_and_the_server_keeps_serving(server, shared_data, tmp_path):
    good = {'dataframe_records': [{'audio': b64(shared_data / 'audio_formats' / 'fma_keys__000__000010.mp3')}]}
    big = tmp_path / 'big.wav'; big.write_bytes(b'RIFF' + bytes(3 * 2**20))
    cases = {'not base64': {'dataframe_records': [{'audio': 'this is not base64!'}]},
             'not a readable audio file': {'dataframe_records': [{'audio': base64.b64encode(b'just some text, not a song').decode()}]},
             'empty': {'dataframe_records': [{'audio': ''}]},
             'larger than 2 MB': {'dataframe_records': [{'audio': b64(big)}]},
             'audio': {'dataframe_records': [{'song': 'abc'}]}}                       # no 'audio' column
    for expected, payload in cases.items():
        status, answer = post(server, payload)
        message = answer.get('message', '')
        print(status, message[:200])
        assert 400 <= status < 500, (expected, status, answer)
        assert expected.lower() in message.lower() and 'Traceback' not in message and '\n' not in message.strip(), (expected, message)
        assert post(server, good)[0] == 200                                           # still serving
    # a body that is not JSON never reaches the model: MLflow's own parser answers 400 (its message quotes the body)
    assert post(server, b'{"dataframe_records": [{"audio": ')[0] == 400 and post(server, good)[0] == 200
    status, answer = post(server, {'dataframe_records': [good['dataframe_records'][0], {'audio': 'not base64!'}]})
    assert status == 200 and answer['predictions'][0]['error'] is None and 'row 1' in answer['predictions'][1]['error']
    # a batch engine asks for error rows instead of a 400 when a whole chunk is bad
    status, answer = post(server, {'dataframe_records': [{'audio': 'not base64!'}, {'audio': ''}], 'params': {'errors_as_rows': True}})
    assert status == 200, answer
    assert [a['genre'] for a in answer['predictions']] == [None, None] and 'row 1: empty' in answer['predictions'][1]['error']


def test_the_pyfunc_answers_in_its_signature_and_can_give_error_rows(served_models, shared_data, tmp_path):
    "Called directly, as Spark's spark_udf or a Ray job would: the output signature names the struct, errors_as_rows keeps a bad chunk."
    import mlflow, pandas as pd
    from mlflow.exceptions import MlflowException
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register_model(served_models / 'real_music.json', tracking_uri=uri, paths=ProjectPaths(root=tmp_path))
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model('models:/genre-classifier/1')
    outputs = {c['name']: c for c in model.metadata.signature.outputs.to_dict()}
    assert list(outputs) == ['genre', 'probability', 'probabilities', 'seconds', 'model', 'model_version', 'error']
    assert outputs['probabilities']['type'] == 'array' and outputs['probabilities']['items']['type'] == 'double'
    assert outputs['probability']['type'] == 'double' and outputs['error']['type'] == 'string'
    labels = model.metadata.metadata['labels']
    assert labels == GENRES
    classical = b64(shared_data / 'gtzan_clips' / 'classical' / 'classical.00000.wav')
    good, bad = model.predict(pd.DataFrame({'audio': [classical, 'not base64!']}))
    assert set(good) == set(outputs) == set(bad) and good['genre'] == labels[max(range(len(labels)), key=good['probabilities'].__getitem__)]
    assert bad['probabilities'] is None and 'row 1: ' in bad['error']
    chunk = pd.DataFrame({'audio': ['not base64!', '']})
    with pytest.raises(MlflowException, match='not base64'): model.predict(chunk)
    rows = model.predict(chunk, params={'errors_as_rows': True})
    assert [r['genre'] for r in rows] == [None, None] and all(r['error'] for r in rows)


def test_a_bounded_load_has_no_errors(served_models):
    "200 requests, 8 at a time, against a fresh server on loopback (benchmarks/serve.py prints the latency figures)."
    done = subprocess.run([sys.executable, str(BENCH / 'serve.py'), '--model', str(served_models / 'real_music.json'),
                           '--requests', '200', '--concurrency', '8'], capture_output=True, text=True, timeout=900)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert 'errors: 0' in done.stdout and 'p95' in done.stdout


def test_bad_options_are_one_line_before_the_registry_is_touched(tmp_path, monkeypatch, capsys):
    "`pipeline serve` and `pipeline register-model` refuse a bad option in one line naming it (exit 2): nothing registered or started."
    import mlflow
    import genre_classification.serve as serve
    from genre_classification.cli import pipeline_cli
    monkeypatch.setattr(serve, 'register_model', lambda *a, **k: pytest.fail('a model was registered'))
    monkeypatch.setattr(mlflow, 'MlflowClient', lambda *a, **k: pytest.fail('the registry was opened'))
    monkeypatch.setattr(os, 'execve', lambda *a, **k: pytest.fail('mlflow models serve was started'))
    uri = (tmp_path / 'mlruns').as_uri()
    assert pipeline_cli(['serve', '--port', '0', '--mlflow_tracking_uri', uri]) == 2
    assert capsys.readouterr().err == "pipeline serve: error: bad parameter 'port' = 0: Input should be greater than or equal to 1\n"
    assert pipeline_cli(['serve', '--version', 'newest', '--mlflow_tracking_uri', uri]) == 2
    assert capsys.readouterr().err.startswith("pipeline serve: error: bad parameter 'version' = 'newest'")
    assert pipeline_cli(['register-model', '--model_file', str(tmp_path / 'none.json'), '--name', '', '--mlflow_tracking_uri', uri]) == 2
    assert capsys.readouterr().err == "pipeline register-model: error: bad parameter 'name' = '': String should have at least 1 character\n"
