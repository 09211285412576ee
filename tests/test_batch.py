"""Batch prediction and training caches on Ray (local mode, 2 CPUs, a capped object store, no dashboard): the same answers
as `predictors`, error rows instead of failed jobs, resume, an actor killed mid-run, the command, and the embedding cache
that training then reads without computing it."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre_classification.core import BadInputError, ProjectPaths
from genre_classification.datasets import make_default_dataset
from genre_classification.synth.genres import synth_track

if os.environ.get('CI'): import ray        # the `batch` extra: `make test` installs it, so CI must have it
else: ray = pytest.importorskip('ray')
from genre_classification import batch
from genre_classification.batch import EmbeddingsConfig, batch_predict, build_embeddings, read_results, written_rows

PYTHON = sys.executable
ENV = {**os.environ, 'PATH': f"{Path(PYTHON).parent}:{os.environ['PATH']}"}


@pytest.fixture(scope='module', autouse=True)
def local_ray():
    "One local Ray for the tests of this module that call the functions (the command tests start their own)."
    ray.init(num_cpus=2, object_store_memory=128 * 2**20, include_dashboard=False, logging_level='WARNING')
    yield
    ray.shutdown()


def bad_files(folder: Path) -> Path:
    "A text file named .mp3, a WAV cut short and an empty file in `folder`."
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'notes.mp3').write_text('this is not audio')
    sf.write(folder / 'whole.wav', synth_track('pop', 3, 4.0), 22050)
    (folder / 'cut.wav').write_bytes((folder / 'whole.wav').read_bytes()[:30000]); (folder / 'whole.wav').unlink()
    (folder / 'empty.wav').write_bytes(b'')
    return folder


@pytest.fixture(scope='module')
def library(tmp_path_factory, shared_data) -> Path:
    "Real clips (links to ../shared/data), synthetic songs and three bad files, in nested folders."
    root = tmp_path_factory.mktemp('library')
    (root / 'real').mkdir()
    for clip in sorted((shared_data / 'gtzan_clips').rglob('*.wav')) + [shared_data / 'audio_formats' / 'fma_keys__000__000010.mp3']:
        (root / 'real' / clip.name).symlink_to(clip)
    (root / 'synthetic').mkdir()
    for i, genre in enumerate(['rock', 'jazz']): sf.write(root / 'synthetic' / f'{genre}.wav', synth_track(genre, 50 + i, 6.0), 22050)
    bad_files(root / 'bad')
    return root


def predictors_json(paths, model) -> list[dict]:
    done = subprocess.run(['predictors', *map(str, paths), '--model', str(model), '--format', 'json'], capture_output=True, text=True, env=ENV)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_same_answers_as_predictors_and_error_rows(library, served_models, tmp_path):
    model = served_models / 'real_music.json'
    summary = batch_predict([library], tmp_path / 'out', model=str(model), workers=2, progress=False)
    assert (summary.files, summary.written, summary.skipped, summary.errors) == (9, 9, 0, 3)
    rows = read_results(tmp_path / 'out').set_index('path')
    expected = {r['path']: r for r in predictors_json([library], model)}
    assert set(rows.index) == set(expected)
    for path, want in expected.items():
        got = rows.loc[path]
        assert got.error == want['error'] or (got.error is None and want['error'] is None), path
        if want['error']: assert got.genre is None and got.probabilities is None; continue
        assert got.genre == want['genre'] and abs(got.probability - want['probability']) < 1e-6
        np.testing.assert_allclose(got.probabilities, want['probabilities'], atol=1e-6)
        assert [(t['genre'], t['probability']) for t in got.top_k] == [tuple(t) for t in want['top_k']]
        assert got.model == want['model'] and got.seconds == want['seconds']
    assert rows.loc[str(library / 'real' / 'classical.00000.wav')].genre == 'classical'
    assert 'not a readable audio file' in rows.loc[str(library / 'bad' / 'notes.mp3')].error
    assert 'truncated' in rows.loc[str(library / 'bad' / 'cut.wav')].error
    labels = read_results(tmp_path / 'out').attrs['labels']
    assert len(labels) == len(rows.probabilities.dropna().iloc[0])


def test_a_batch_of_bad_files_is_error_rows_and_resume_writes_nothing_new(tmp_path, served_models):
    folder = bad_files(tmp_path / 'bad')
    model = str(served_models / 'small_cnn.onnx')
    first = batch_predict([folder], tmp_path / 'out', model=model, workers=2, progress=False)
    assert (first.files, first.written, first.errors) == (3, 3, 3)
    parts = sorted((tmp_path / 'out').iterdir())
    again = batch_predict([folder], tmp_path / 'out', model=model, workers=2, resume=True, progress=False)
    assert (again.written, again.skipped, again.errors) == (0, 3, 3)
    assert sorted((tmp_path / 'out').iterdir()) == parts                       # not a file more
    with pytest.raises(BadInputError, match='--resume'): batch_predict([folder], tmp_path / 'out', model=model, progress=False)
    with pytest.raises(BadInputError, match='another model'):                  # a table of two models' answers: refused
        batch_predict([folder], tmp_path / 'out', model=str(served_models / 'real_music.json'), resume=True, progress=False)


def test_resume_does_only_what_is_missing(tmp_path, served_models):
    songs = tmp_path / 'songs'; songs.mkdir()
    for i in range(4): sf.write(songs / f'{i}.wav', synth_track('blues', i, 4.0), 22050)
    model = str(served_models / 'small_cnn.onnx')
    batch_predict(sorted(songs.glob('[0-1].wav')), tmp_path / 'out', model=model, workers=2, progress=False)   # a job stopped half-way
    summary = batch_predict([songs], tmp_path / 'out', model=model, workers=2, resume=True, progress=False)
    assert (summary.written, summary.skipped) == (2, 2)
    assert sorted(read_results(tmp_path / 'out').path) == sorted(map(str, songs.glob('*.wav')))


def dying(actor: type, after: int, marker: Path) -> type:
    "`actor` whose process exits after `after` files, once: the first to get there leaves `marker` behind, as a killed worker would."
    class Dying(actor):      # a local class: Ray pickles it by value, so the actors run it without importing this module
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs); self.done = 0
        def row(self, path: str) -> dict:
            if self.done == after and not marker.exists(): marker.touch(); os._exit(1)
            self.done += 1
            return super().row(path)
    return Dying


def test_an_actor_killed_mid_run_loses_no_file(tmp_path, served_models, monkeypatch):
    songs = tmp_path / 'songs'; songs.mkdir()
    for i in range(10): sf.write(songs / f'{i}.wav', synth_track('rock', i, 3.0), 22050)
    mapped = batch.map_in_actors
    monkeypatch.setattr(batch, 'map_in_actors', lambda ray, paths, actor, *args, **kwargs:
                        mapped(ray, paths, dying(actor, 2, tmp_path / 'died'), *args, **kwargs))
    summary = batch_predict([songs], tmp_path / 'out', model=str(served_models / 'small_cnn.onnx'), workers=2, progress=False)
    assert (tmp_path / 'died').exists()                                      # an actor did die
    rows = read_results(tmp_path / 'out')
    assert summary.written == 10 and sorted(rows.path) == sorted(map(str, songs.glob('*.wav'))) and rows.error.isna().all()


def test_no_test_hook_in_the_library():
    "Killing an actor is the test's business (`dying` above): neither the job nor the actor takes a parameter for it, nor exits a process."
    import inspect
    assert not {'die_after', 'die_marker'} & set(inspect.signature(batch_predict).parameters)
    assert not {'die_after', 'die_marker'} & set(inspect.signature(batch.FilePredictor).parameters)
    assert 'os._exit' not in inspect.getsource(batch)


def test_the_command_writes_parquet_says_where_and_exits_1_on_errors(tmp_path, served_models):
    songs = tmp_path / 'songs'; songs.mkdir()
    sf.write(songs / 'a.wav', synth_track('jazz', 1, 4.0), 22050)
    (songs / 'notes.mp3').write_text('not audio')
    (tmp_path / 'list.txt').write_text('songs/a.wav\nsongs/notes.mp3\n')
    cmd = ['pipeline', 'batch-predict', str(tmp_path / 'list.txt'), '--output', str(tmp_path / 'out'),
           '--model', str(served_models / 'small_cnn.onnx'), '--workers', '1']
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"2 files: 2 rows written to {tmp_path / 'out'}; 1 with an error" in done.stdout
    assert sum('notes.mp3' in line and 'not a readable audio file' in line for line in done.stderr.splitlines()) == 1
    assert 'Traceback' not in done.stderr
    assert set(written_rows(tmp_path / "out")) == {str(songs / "a.wav"), str(songs / "notes.mp3")}
    again = subprocess.run(cmd + ['--resume'], capture_output=True, text=True, env=ENV, timeout=300)   # nothing to do: no Ray started
    assert again.returncode == 1 and '0 rows written' in again.stdout and '2 there already' in again.stdout
    nobody = subprocess.run(cmd + ['--resume', '--address', '127.0.0.1:1'], capture_output=True, text=True, env=ENV, timeout=120)
    assert nobody.returncode == 2 and nobody.stderr.count('\n') == 1 and 'nothing answers at 127.0.0.1:1' in nobody.stderr


def test_without_ray_one_line_says_how_to_install(tmp_path, served_models):
    sf.write(tmp_path / 'song.wav', synth_track('pop', 0, 3.0), 22050)
    script = f'''
import sys
class NoRay:               # `import ray` raises ImportError, as where the batch extra is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'ray': raise ModuleNotFoundError(f"No module named '{{name}}' (made unimportable)")
sys.meta_path.insert(0, NoRay())
from genre_classification.cli import pipeline
sys.exit(pipeline(['batch-predict', {str(tmp_path / 'song.wav')!r}, '--output', {str(tmp_path / 'out')!r},
                   '--model', {str(served_models / 'small_cnn.onnx')!r}]))
'''
    done = subprocess.run([PYTHON, '-c', script], capture_output=True, text=True, env=ENV)
    assert done.returncode == 2 and done.stderr.count('\n') == 1, done.stderr
    assert 'Ray is not installed: pip install "genre_classification[batch]"' in done.stderr


def test_the_embedding_cache_built_on_ray_is_the_one_training_reads(tmp_path, monkeypatch):
    import genre_classification.musicnn as musicnn
    from genre_classification.data import find_tracks
    from genre_classification.features import build_log_mel_cache
    from genre_classification.core import AudioConfig
    from genre_classification.train import TrainConfig, train
    data = make_default_dataset(tmp_path / 'data' / 'music', tracks_per_genre=3, seconds=3.5, progress=False)
    paths = ProjectPaths(root=tmp_path)
    (data / 'genres_original' / 'rock' / 'broken.wav').write_bytes(b'RIFF broken')
    with pytest.warns(UserWarning, match='broken.wav'):   # found unreadable when the tracks are listed, as training finds it
        table = build_embeddings(EmbeddingsConfig(data_dir=str(data), workers=2), paths, progress=False)
    assert len(table) == 30 and table.error.isna().all() and (table.length == 1).all()
    one = table.path[0]
    local = musicnn.patch_embeddings(musicnn.MusicnnPair({m: musicnn.load_musicnn(m) for m in musicnn.MUSICNN_MODELS}).eval(),
                                     musicnn.musicnn_input_of_file(one))
    np.testing.assert_allclose(np.load(table.cache_file[0]), local, atol=1e-4)
    logmels = build_embeddings(EmbeddingsConfig(data_dir=str(data), kind='logmel', workers=2), paths, progress=False)
    assert sorted(logmels.cache_file) == sorted(build_log_mel_cache(find_tracks(data), AudioConfig(), paths.cache, progress=False).cache_file)
    # training on the head node reads the cache: computing an embedding now would fail
    monkeypatch.setattr(musicnn, 'patch_embeddings', lambda *a, **k: pytest.fail('an embedding was computed again'))
    result = train(TrainConfig(model='musicnn_probe', data_dir=str(data), epochs=1, checkpoints_path=str(tmp_path / 'ck')), paths,
                   progress=False, log_to_mlflow=False)
    assert result.model_file.is_file()
