"""The Dockerfile built and run for real, through `.ci/image` as `make image` builds it (docker where its daemon answers,
else podman; a stand-in base image where python:3.11-slim cannot be pulled). The predict image answers as `predictors`
does on the host, a bad file in one line with exit code 1, as a non-root user without torch or compilers, and over HTTP
with `pipeline serve`; the build context leaves out what .dockerignore names. The training image (dl_pipelines) is not
built here: with PyTorch's CPU index out of reach its build takes PyPI's CUDA torch (7.6 GB, 3 to 5 minutes), more than
CI's time allows; `make image` builds it. Each target is built once (layers reused), several checks run against each image, and the images
are removed after them. Without an engine these skip, except under CI."""
import json, os, shutil, subprocess, sys, urllib.request, uuid
from pathlib import Path

import pytest

from conftest import REPO, free_port, running_server

IMAGE_SCRIPT = REPO / '.ci' / 'image'
BIN = Path(sys.executable).parent
BUILD_SECONDS = 1200
# runc cannot raise podman's default limits where the host's are lower (they are here): the same small limits everywhere
PODMAN_RUN = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024']


@pytest.fixture(scope='session')
def engine() -> str:
    "docker or podman, as `.ci/image engine` picks it: skipped where there is none, a failure under CI."
    done = subprocess.run([str(IMAGE_SCRIPT), 'engine'], capture_output=True, text=True)
    if done.returncode:
        if os.environ.get('CI'): pytest.fail(f'{done.stderr.strip()}, and CI is set: .ci/run installs podman')
        pytest.skip(done.stderr.strip())
    return done.stdout.strip()


def containers(engine: str) -> set[str]:
    "Every container the engine knows, buildah's working containers of a build included."
    cmd = [engine, 'ps', '--all', '--quiet', '--no-trunc'] + (['--external'] if engine == 'podman' else [])
    return set(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split())


def build(engine: str, target: str, tag: str, log: Path, *options: str) -> str:
    "Build `target` as `tag` with `.ci/image build` (output to `log`); the build's output. A failed build's containers are removed."
    before = containers(engine)
    with open(log, 'w') as out:
        done = subprocess.run([str(IMAGE_SCRIPT), 'build', target, tag, *options], stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, 'ENGINE': engine}, timeout=BUILD_SECONDS)
    text = log.read_text()
    if done.returncode:
        for left in containers(engine) - before: subprocess.run([engine, 'rm', '--force', left], capture_output=True)
        pytest.fail(f'building {target} failed ({done.returncode}):\n{text[-4000:]}')
    print(text.splitlines()[-1])      # TARGET: TAG built in N s, SIZE
    return text


def untagged_images(engine: str) -> set[str]:
    "The ids of the engine's images without a name: a build's intermediate layers and stages."
    listed = subprocess.run([engine, 'images', '--all', '--no-trunc', '--format', '{{.ID}} {{.Repository}}'], capture_output=True, text=True, check=True)
    return {i for i, name in (line.split(' ', 1) for line in listed.stdout.splitlines()) if name == '<none>'}


@pytest.fixture(scope='module')
def images(engine, tmp_path_factory):
    "Tags made by these tests, removed after them with the unnamed layers their builds left (the base image stays, as a pulled one would)."
    tags, before = [], untagged_images(engine)
    yield tags
    for tag in tags: subprocess.run([engine, 'rmi', '--force', tag], capture_output=True)
    for _ in range(3):          # a stage's layer goes only after the layers built on it: a few passes
        if left := untagged_images(engine) - before: subprocess.run([engine, 'rmi', *left], capture_output=True)


@pytest.fixture(scope='module')
def predict_image(engine, images, tmp_path_factory) -> str:
    tag = f'genre-classification-test:predict-{uuid.uuid4().hex[:8]}'
    images.append(tag)
    build(engine, 'predict', tag, tmp_path_factory.mktemp('build') / 'predict.log')
    return tag


def run(engine: str, image: str, *args: str, options: tuple = (), timeout: float = 600) -> subprocess.CompletedProcess:
    "`engine run --rm [options] image args`, its output captured."
    cmd = [engine, 'run', '--rm', *(PODMAN_RUN if engine == 'podman' else []), *options, image, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def writable_folder(path: Path) -> Path:
    "A folder the image's user (uid 1000) can write to when mounted."
    path.mkdir(parents=True, exist_ok=True); path.chmod(0o777)
    return path


def test_the_build_context_leaves_out_git_venv_data_runs_and_models(engine, tmp_path):
    "A context with .dockerignore and every folder it names, copied whole into an image: only what the builds need gets in."
    context = tmp_path / 'context'
    for name in ['.git/HEAD', '.venv/bin/python', 'data/default/blues/a.wav', 'runs/03_train.ipynb', 'models/real_music.json',
                 'mlruns/mlflow.db', 'checkpoints/pipeline/model.pt', '.aws/credentials', '.dvc/config.local', '.dvc/config',
                 '.dvc/cache/files/md5/ab/cdef', '.dvc/tmp/lock', 'Image_data/blues/a.png', 'nbs/03_train.ipynb',
                 'genre_classification/__init__.py', 'genre_classification/__pycache__/core.cpython-311.pyc', 'settings.ini']:
        (context / name).parent.mkdir(parents=True, exist_ok=True); (context / name).write_text('x')
    shutil.copy(REPO / '.dockerignore', context)
    (tmp_path / 'Dockerfile').write_text('FROM python:3.11-slim\nCOPY . /context\nCMD ["find", "/context", "-type", "f"]\n')
    tag = f'genre-classification-test:context-{uuid.uuid4().hex[:8]}'
    base = subprocess.run([str(REPO / '.ci' / 'base-image'), engine], capture_output=True, text=True)
    assert base.returncode == 0, base.stdout + base.stderr
    options = ['--pull=never'] if engine == 'podman' else []
    done = subprocess.run([engine, 'build', *options, '-f', str(tmp_path / 'Dockerfile'), '-t', tag, str(context)], capture_output=True, text=True)
    try:
        assert done.returncode == 0, done.stderr[-3000:]
        found = run(engine, tag)
        assert found.returncode == 0, found.stderr
        files = sorted(f.removeprefix('/context/') for f in found.stdout.split())
    finally: subprocess.run([engine, 'rmi', '--force', tag], capture_output=True)
    assert files == ['.dockerignore', '.dvc/config', 'genre_classification/__init__.py', 'nbs/03_train.ipynb', 'settings.ini'], files


def predictions(output: str) -> dict[str, dict]:
    "`predictors --format json` output as {file name: result}."
    return {Path(r['path']).name: r for r in json.loads(output)}


def test_the_predict_image_answers_as_predictors_on_the_host(engine, predict_image, shared_data, tmp_path):
    "`predictors` in the image on ../shared/data mounted read-only, and on the host with the image's model: same genres, probabilities within 1e-5."
    models = writable_folder(tmp_path / 'models')
    copied = run(engine, predict_image, 'cp', '-r', '/app/models/.', '/out/', options=('-v', f'{models}:/out'))
    assert copied.returncode == 0, copied.stderr
    folders = ['audio_formats', 'gtzan_clips']
    inside = run(engine, predict_image, 'predictors', *[f'/music/{f}' for f in folders], '--format', 'json',
                 options=('-v', f'{shared_data}:/music:ro'))
    assert inside.returncode == 0, inside.stderr[-3000:]
    host = subprocess.run([str(BIN / 'predictors'), *[str(shared_data / f) for f in folders], '--format', 'json',
                           '--model', str(models / 'real_music.json')], capture_output=True, text=True, timeout=600)
    assert host.returncode == 0, host.stderr[-3000:]
    inside, host = predictions(inside.stdout), predictions(host.stdout)
    assert sorted(inside) == sorted(host) and len(inside) >= 8
    for name, r in host.items():
        assert r['error'] is None and inside[name]['genre'] == r['genre'], (name, inside[name], r)
        assert max(abs(a - b) for a, b in zip(inside[name]['probabilities'], r['probabilities'])) <= 1e-5, name
    assert inside['classical.00000.wav']['genre'] == 'classical'


def test_the_default_command_reads_the_mounted_folder_and_a_bad_file_is_one_line(engine, predict_image, shared_data, tmp_path):
    "No command given: `predictors /music`. A file that is no audio: its one-line error in the table, exit code 1."
    answered = run(engine, predict_image, options=('-v', f"{shared_data / 'audio_formats'}:/music:ro"))
    assert answered.returncode == 0, answered.stderr[-3000:]
    assert answered.stdout.startswith('model: ') and '/music/fma_keys__000__000010.mp3' in answered.stdout
    music = writable_folder(tmp_path / 'music')
    (music / 'not a song.mp3').write_text('just some text, not a song')
    shutil.copy(shared_data / 'audio_formats' / 'fma_keys__000__000010.mp3', music)
    failed = run(engine, predict_image, options=('-v', f'{music}:/music:ro'))
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    [line] = [l for l in failed.stdout.splitlines() if 'not a song.mp3' in l]
    assert 'error: ' in line and 'Traceback' not in failed.stdout + failed.stderr
    assert any('fma_keys__000__000010.mp3' in l and 'error' not in l for l in failed.stdout.splitlines())   # the good one still answers
    missing = run(engine, predict_image, 'predictors', '/music/nothing-here.mp3')
    assert missing.returncode == 2 and missing.stderr.strip().count('\n') == 0 and 'nothing-here.mp3' in missing.stderr, missing.stderr


def test_the_predict_image_runs_as_a_user_without_torch_or_compilers(engine, predict_image):
    done = run(engine, predict_image, 'sh', '-c', 'id -u; python -c "import torch" 2>&1 | tail -1; '
                                                  'for c in gcc cc c++ clang; do command -v $c; done; echo end')
    uid, torch, *compilers = done.stdout.split('\n', 2)
    assert uid != '0' and uid.isdigit(), done.stdout
    assert "No module named 'torch'" in torch and compilers[0].strip() == 'end', done.stdout


def test_pipeline_serve_answers_over_http(engine, predict_image, shared_data):
    "`pipeline serve --host 0.0.0.0` in the image, its port published on loopback: /invocations answers with a genre."
    import base64
    port, name = free_port(), f'genre-classification-test-serve-{uuid.uuid4().hex[:8]}'
    cmd = [engine, 'run', '--rm', '--name', name, *(PODMAN_RUN if engine == 'podman' else []), '-p', f'127.0.0.1:{port}:5001',
           predict_image, 'pipeline', 'serve', '--host', '0.0.0.0']
    audio = base64.b64encode((shared_data / 'gtzan_clips' / 'classical' / 'classical.00000.wav').read_bytes()).decode()
    body = json.dumps({'dataframe_records': [{'audio': audio}, {'audio': 'not base64!'}]}).encode()
    try:
        with running_server(cmd, f'http://127.0.0.1:{port}/ping'):
            request = urllib.request.Request(f'http://127.0.0.1:{port}/invocations', body, {'Content-Type': 'application/json'})
            with urllib.request.urlopen(request, timeout=120) as r: good, bad = json.loads(r.read())['predictions']
    finally: subprocess.run([engine, 'rm', '--force', name], capture_output=True)     # the container, should the client have died first
    assert good['genre'] == 'classical' and good['error'] is None and good['model'] == 'genre-classifier' and good['model_version'] == '1'
    assert bad['genre'] is None and 'row 1' in bad['error']
