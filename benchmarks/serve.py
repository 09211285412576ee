"""HTTP serving speed: `mlflow models serve` with the registered genre model, under a bounded load on loopback.

Registers the model in a temporary MLflow registry, starts the server on a free loopback port, sends `--requests`
requests (a 2 s clip each, base64 in JSON), `--concurrency` at a time, and prints p50/p95 latency and requests/s. Exits 1
if any request failed. Only loopback addresses are used; the client stops by itself.

    .venv/bin/python benchmarks/serve.py [--model FILE] [--requests 200] [--concurrency 8]

Without --model it serves `predictors`' default, the real-music model (models/real_music.json after `make train`, else
the user cache's, made there on first use), so `make bench` works before `make train`.
"""
import argparse, base64, io, json, os, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf

from genre_classification.core import ProjectPaths
from genre_classification.predict import default_model_file
from genre_classification.serve import REGISTERED_NAME, register_model
from genre_classification.synth.genres import synth_track


def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def start_server(model: Path, work: Path) -> tuple[subprocess.Popen, str]:
    "Register `model` in a registry under `work` and serve it on a loopback port; the process and its base URL."
    uri = f"sqlite:///{work / 'mlflow.db'}"
    version = register_model(model, tracking_uri=uri, paths=ProjectPaths(root=work))
    port = free_port()
    env = {**os.environ, 'MLFLOW_TRACKING_URI': uri, 'PATH': f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(['mlflow', 'models', 'serve', '-m', f'models:/{REGISTERED_NAME}/{version}', '--env-manager', 'local',
                             '-h', '127.0.0.1', '-p', str(port)], env=env, stdout=open(work / 'server.log', 'w'), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None: raise RuntimeError((work / 'server.log').read_text()[-3000:])
        try:
            if urllib.request.urlopen(url + '/ping', timeout=2).status == 200: return proc, url
        except OSError: time.sleep(0.5)
    raise TimeoutError('the server did not start in 180 s')


def post(url: str, body: bytes, timeout: float = 120) -> tuple[int, float, dict]:
    "POST `body` to `url`/invocations: status, seconds, decoded answer."
    request = urllib.request.Request(url + '/invocations', body, {'Content-Type': 'application/json'})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r: status, data = r.status, r.read()
    except urllib.error.HTTPError as e: status, data = e.code, e.read()
    return status, time.perf_counter() - t, json.loads(data or b'{}')


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument('--model', default='', help="a model file (default: predictors' real-music model, made on first use)")
    args.add_argument('--requests', type=int, default=200); args.add_argument('--concurrency', type=int, default=8)
    a = args.parse_args()
    a.model = a.model or str(default_model_file())
    if not Path(a.model).is_file(): print(f'serve.py: error: {a.model}: no such model file', file=sys.stderr); return 2
    work = Path(tempfile.mkdtemp())
    buf = io.BytesIO(); sf.write(buf, synth_track('rock', 0, 2.0), 22050, format='WAV')
    body = json.dumps({'dataframe_records': [{'audio': base64.b64encode(buf.getvalue()).decode()}]}).encode()
    proc, url = start_server(Path(a.model), work)
    try:
        post(url, body)                                                      # warm-up: the first request loads lazily
        started = time.perf_counter()
        with ThreadPoolExecutor(a.concurrency) as pool: results = list(pool.map(lambda _: post(url, body), range(a.requests)))
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM); proc.wait(30)
    errors = [r for r in results if r[0] != 200 or not r[2].get('predictions') or r[2]['predictions'][0].get('error')]
    latencies = sorted(r[1] for r in results)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f'model: {a.model}; mlflow models serve (--env-manager local), one worker, loopback')
    print(f'requests: {a.requests}, {a.concurrency} at a time, a 2 s WAV clip each')
    print(f'errors: {len(errors)}')
    print(f'latency: p50 {p(0.5) * 1000:.0f} ms, p95 {p(0.95) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms')
    print(f'throughput: {a.requests / elapsed:.1f} requests/s ({elapsed:.1f} s in all)')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
