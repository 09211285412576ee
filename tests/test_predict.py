"""Predictions for users' files: every format, bad files reported while the batch goes on, long files in bounded memory,
the model `make train` leaves, and a real-music model that names the right genre on real GTZAN clips it never saw."""
import json, os, resource, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre_classification.core import GENRES, ProjectPaths
from genre_classification.data import ffmpeg_executable
from genre_classification.export import export_onnx
from genre_classification.predict import (Predictor, make_real_music_model, open_predictor, predict_file,
                                          predict_paths, predictors)
from genre_classification.datasets import make_default_dataset
from genre_classification.synth.genres import synth_track
from genre_classification.data import packaged_feature_table
from genre_classification.real_music import FEATURE_MODEL_NAME, make_feature_model, packaged_feature_model
from genre_classification.train import TrainConfig, train
from genre_classification.train_features import FeatureTrainConfig, train_feature_model

PYTHON = sys.executable
ENV = {**os.environ, 'PATH': f"{Path(PYTHON).parent}:{os.environ['PATH']}"}


@pytest.fixture(scope='module')
def cnn_onnx(tmp_path_factory) -> Path:
    "A small CNN trained as `make train` trains (built-in dataset, tiny), exported to ONNX."
    root = tmp_path_factory.mktemp('cnn')
    data = make_default_dataset(root / 'data', tracks_per_genre=4, seconds=4.0, progress=False)
    result = train(TrainConfig(model='small_cnn', epochs=2, batch_size=8, data_dir=str(data), device='cpu',
                               checkpoints_path=str(root / 'ck')), ProjectPaths(root=root), progress=False, log_to_mlflow=False)
    return export_onnx(result.model_file, root / 'small_cnn.onnx')


@pytest.fixture
def bad_folder(tmp_path) -> Path:
    "Two good files and five kinds of bad ones."
    d = tmp_path / 'songs'; d.mkdir()
    sf.write(d / 'good.wav', synth_track('rock', 1, 4.0), 22050)
    sf.write(d / 'good_24bit_stereo_48k.flac', np.stack([synth_track('jazz', 2, 4.0, 48000)] * 2, 1), 48000, subtype='PCM_24')
    (d / 'empty.wav').write_bytes(b'')
    (d / 'notes.mp3').write_text('this is not audio')
    sf.write(d / 'nan.wav', np.array([0.1, np.nan, 0.2] * 8000, np.float32), 22050, subtype='FLOAT')
    sf.write(d / 'whole.wav', synth_track('pop', 3, 4.0), 22050)
    (d / 'truncated.wav').write_bytes((d / 'whole.wav').read_bytes()[:30000]); (d / 'whole.wav').unlink()
    return d


def test_a_batch_goes_on_past_bad_files(bad_folder, cnn_onnx):
    done = subprocess.run(['predictors', str(bad_folder), '--model', str(cnn_onnx), '--format', 'json'], capture_output=True, text=True, env=ENV)
    assert done.returncode == 1, done.stderr
    records = {Path(r['path']).name: r for r in json.loads(done.stdout)}
    assert set(records) == {'good.wav', 'good_24bit_stereo_48k.flac', 'empty.wav', 'notes.mp3', 'nan.wav', 'truncated.wav'}
    for good in ['good.wav', 'good_24bit_stereo_48k.flac']: assert records[good]['genre'] in GENRES and records[good]['error'] is None
    assert 'empty' in records['empty.wav']['error']
    assert 'not a readable audio file' in records['notes.mp3']['error']
    assert 'NaN' in records['nan.wav']['error']
    assert 'truncated' in records['truncated.wav']['error']
    for bad in ['empty.wav', 'notes.mp3', 'nan.wav', 'truncated.wav']:           # one line each on stderr, naming the file
        assert sum(bad in line for line in done.stderr.splitlines()) == 1
    assert 'Traceback' not in done.stderr


def test_the_table_lists_errors_in_one_line_and_names_the_model(bad_folder, cnn_onnx):
    done = subprocess.run(['predictors', str(bad_folder / '*.wav'), str(bad_folder / 'missing.ogg'), '--model', str(cnn_onnx)],
                          capture_output=True, text=True, env=ENV)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith('model: small_cnn') and 'synthetic music only' in lines[0]
    assert any('missing.ogg' in l and 'error: no such file' in l for l in lines)
    assert any('good.wav' in l and any(g in l for g in GENRES) for l in lines)


def test_all_good_files_exit_zero_and_csv_output_file(tmp_path, cnn_onnx, shared_data):
    out = tmp_path / 'out.csv'
    assert predictors([str(shared_data / 'audio_formats'), '--model', str(cnn_onnx), '--format', 'csv', '--output', str(out), '--top-k', '2']) == 0
    table = pd.read_csv(out)
    assert len(table) == 5 and table.genre.isin(GENRES).all() and table.error.isna().all()
    assert {'.ogg', '.flac', '.mp3', '.wav'} <= {Path(p).suffix for p in table.path}


def test_python_and_cli_give_the_same_answers(cnn_onnx, shared_data):
    files = sorted((shared_data / 'audio_formats').glob('*.wav'))
    ours = [r.genre for r in predict_paths(files, Predictor(cnn_onnx))]
    done = subprocess.run(['predictors', *map(str, files), '--model', str(cnn_onnx), '--format', 'json'], capture_output=True, text=True, env=ENV)
    assert [r['genre'] for r in json.loads(done.stdout)] == ours


MEASURE = textwrap.dedent('''
    import resource, sys
    from genre_classification.predict import Predictor, predict_file
    r = predict_file(sys.argv[1], Predictor(sys.argv[2]), timeline=True)
    assert r.error is None, r.error
    print(len(r.timeline), r.seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
''')


def test_a_ten_minute_stereo_mp3_in_bounded_memory(tmp_path, cnn_onnx):
    "Peak memory for a 10-minute 44.1 kHz stereo MP3 stays within 100 MB of a 30-second one (decoding it whole would need 400+ MB)."
    exe = ffmpeg_executable()
    peaks = {}
    for seconds in (30, 600):
        mp3 = tmp_path / f'{seconds}.mp3'
        subprocess.run([exe, '-loglevel', 'error', '-f', 'lavfi', '-i', f'sine=frequency=220:duration={seconds}:sample_rate=44100',
                        '-f', 'lavfi', '-i', f'anoisesrc=duration={seconds}:sample_rate=44100:amplitude=0.1', '-filter_complex', 'amerge=inputs=2',
                        '-ac', '2', '-b:a', '64k', str(mp3)], check=True)
        done = subprocess.run([PYTHON, '-c', MEASURE, str(mp3), str(cnn_onnx)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        windows, length, peaks[seconds] = done.stdout.split()
        assert abs(int(windows) - (1 + seconds * 22050 // 512) // 130) <= 1 and abs(float(length) - seconds) < 0.2
    print('peak RSS (MB):', peaks)
    assert int(peaks[600]) - int(peaks[30]) < 100


@pytest.fixture(scope='module')
def features_without_clips(tmp_path_factory) -> Path:
    "The feature MLP trained on the real table WITHOUT the three shared clips' rows, exported to ONNX."
    root = tmp_path_factory.mktemp('features')
    table = pd.read_csv(packaged_feature_table())
    held_out = ['blues.00000.au', 'classical.00000.au', 'country.00000.au']
    table[~table.filename.isin(held_out)].to_csv(root / 'without.csv', index=False)
    result = train_feature_model(FeatureTrainConfig(features_csv=str(root / 'without.csv'), split='random',
                                                    checkpoints_path=str(root / 'ck')), ProjectPaths(root=root), log_to_mlflow=False)
    return export_onnx(result.model_file, root / 'models' / FEATURE_MODEL_NAME)


def test_the_feature_model_names_real_gtzan_clips(features_without_clips, shared_data):
    "The feature MLP trained on the real table without the three clips' rows names their genres."
    predictor = Predictor(features_without_clips)
    assert 'synthetic' not in predictor.describe()
    answers = {Path(r.path).parent.name: r for r in predict_paths([shared_data / 'gtzan_clips'], predictor)}
    print({g: r.top_k for g, r in answers.items()})
    assert {g: r.genre for g, r in answers.items()} == {'blues': 'blues', 'classical': 'classical', 'country': 'country'}


def test_the_real_music_model_names_real_gtzan_clips_and_explains(features_without_clips, shared_data):
    "musicnn's genre tags with the feature MLP (trained without these clips): right genres, and the tags behind them."
    manifest = make_real_music_model(features_without_clips.parent)
    predictor = open_predictor(manifest)
    assert 'musicnn genre tags' in predictor.describe() and 'synthetic' not in predictor.describe()
    answers = {Path(r.path).parent.name: r for r in predict_paths([shared_data / 'gtzan_clips'], predictor)}
    print({g: (r.top_k, r.tags) for g, r in answers.items()})
    assert {g: r.genre for g, r in answers.items()} == {'blues': 'blues', 'classical': 'classical', 'country': 'country'}
    assert answers['classical'].tags[0] == ('classical (MTT)', pytest.approx(0.81, abs=0.01))
    files = [str(f) for f in sorted((shared_data / 'audio_formats').iterdir()) if f.suffix != '.txt']
    done = subprocess.run(['predictors', *files, '--model', str(manifest), '--explain'], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('top tags:') == len(files) and done.stdout.count('genre evidence:') == len(files)
    done = subprocess.run(['predictors', files[0], '--model', str(manifest), '--format', 'json'], capture_output=True, text=True, env=ENV)
    [record] = json.loads(done.stdout)
    assert len(record['tags']) == 5 and set(record['genre_evidence']) == set(GENRES) and record['genre'] in GENRES


def test_the_real_music_timeline_is_the_fine_one_and_the_answer_is_decoded_once(features_without_clips, shared_data, monkeypatch):
    "`--timeline` lists the 3 s patches (what the page plots), not the 30 s windows; the file is decoded once for both models."
    import genre_classification.data as data
    predictor = open_predictor(make_real_music_model(features_without_clips.parent))
    clip = shared_data / 'gtzan_clips' / 'blues' / 'blues.00000.wav'
    decodes = []
    original = data._raw_blocks
    monkeypatch.setattr(data, '_raw_blocks', lambda *a, **k: decodes.append(a[0]) or original(*a, **k))
    windows = predictor.predict(clip)
    assert len(decodes) == 1
    from genre_classification.predictor import GenrePredictor
    assert isinstance(predictor, GenrePredictor) and isinstance(predictor.features, GenrePredictor)   # both kinds offer the one interface
    assert windows.probabilities.shape == (1, 10) and windows.timeline.shape == (10, 10) and windows.timeline_step == pytest.approx(2.992)
    r = predict_file(clip, predictor, timeline=True)
    assert [t for t, _, _ in r.timeline] == [round(k * 2.992, 2) for k in range(10)]
    assert [g for _, g, _ in r.timeline] == [predictor.classes[i] for i in windows.timeline.argmax(1)]


def test_paths_are_checked_before_a_model_loads_and_making_the_default_says_so_first(tmp_path, monkeypatch, capsys, shared_data):
    import genre_classification.predict as predict
    from genre_classification.core import BadInputError
    monkeypatch.setattr(predict, 'user_cache', lambda: tmp_path / 'cache')           # no default model anywhere yet
    monkeypatch.setattr(predict, 'ProjectPaths', lambda: ProjectPaths(root=tmp_path))
    made = []
    def make(folder): made.append(folder); raise BadInputError('stopped here: the test makes no model')
    monkeypatch.setattr(predict, 'make_real_music_model', make)
    assert predictors([str(tmp_path / 'snog.wav'), '--model', str(tmp_path / 'no_such_model.onnx')]) == 2
    assert predictors([str(tmp_path / 'snog.wav')]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f'predictors: error: no such file: {tmp_path / "snog.wav"}'] * 2 and not made     # one line each, no model touched
    assert predictors([str(shared_data / 'gtzan_clips')]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith('making the real-music default model once') and 'stopped here' in err[-1] and len(made) == 1


def test_a_broken_real_music_model_is_a_one_line_error(tmp_path, features_without_clips):
    sf.write(tmp_path / 'song.wav', synth_track('rock', 1, 2.0), 22050)
    (tmp_path / 'real_music.json').write_text('{"kind": "something else"}')
    done = subprocess.run(['predictors', str(tmp_path), '--model', str(tmp_path / 'real_music.json')], capture_output=True, text=True, env=ENV)
    assert done.returncode == 2 and "'kind' should be 'tags+features'" in done.stderr and 'Traceback' not in done.stderr
    (tmp_path / 'real_music.json').write_text('{"kind": "tags+features"}')
    with pytest.raises(Exception, match='without tagger, features_model, feature_weight'): open_predictor(tmp_path / 'real_music.json')
    from genre_classification.tagger import write_tagger
    with pytest.raises(Exception, match='not a genre model'): open_predictor(write_tagger(tmp_path / 'musicnn_tagger.onnx'))


def test_the_packaged_feature_model_is_what_the_package_s_training_makes(tmp_path):
    "The shipped gtzan_features_mlp.onnx records the settings and data of `pipeline train-using-audio-features`'s defaults, and training it again so answers as it does."
    from genre_classification.features import KAGGLE_FEATURES, read_feature_table
    from genre_classification.onnx_files import load_onnx
    (shipped, shipped_meta), (remade, remade_meta) = (load_onnx(f, threads=1) for f in (packaged_feature_model(), make_feature_model(tmp_path / 'remade.onnx')))
    made_with = lambda meta: ({k: v for k, v in meta.config.items() if k not in ('checkpoints_path', 'mlflow_tracking_uri', 'experiment')},
                              meta.dataset_fingerprint, meta.trained_on, meta.classes)
    assert made_with(shipped_meta) == made_with(remade_meta)
    X = read_feature_table(packaged_feature_table())[KAGGLE_FEATURES].to_numpy(np.float32)
    p, q = (session.run(None, {'input': X})[0] for session in (shipped, remade))
    differences, changed = np.abs(p - q), int((p.argmax(1) != q.argmax(1)).sum())
    print(f'probabilities: max |difference| {differences.max():.4f}, mean {differences.mean():.5f}; answers changed: {changed} of {len(X)}')
    # not equal bytes: another CPU's vector units round the same sums otherwise, and 100 epochs carry it on. With torch's kernels
    # limited to other instruction sets: within 0.04 (mean 0.0008), 3 answers changed; one epoch fewer: 0.05 (0.0011), 4; another seed: 0.27 (0.005), 21
    assert differences.max() < 0.15 and differences.mean() < 0.003 and changed <= 10


def test_a_folder_without_audio_is_an_error_not_an_empty_table(tmp_path, capsys, cnn_onnx):
    (tmp_path / 'notes.txt').write_text('no music here')
    assert predictors([str(tmp_path), '--model', str(cnn_onnx)]) == 2
    out, err = capsys.readouterr()
    assert out == '' and f'predictors: error: no audio files in {tmp_path}' in err and '.mp3' in err


def test_worker_processes_give_the_same_records_in_the_same_order(bad_folder, cnn_onnx):
    "Over a folder, files go to worker processes: the records, their order, the errors and the exit code are one process's."
    runs = [subprocess.run(['predictors', str(bad_folder), '--model', str(cnn_onnx), '--format', 'json', '--workers', n],
                           capture_output=True, text=True, env=ENV) for n in ('1', '2')]
    assert [r.returncode for r in runs] == [1, 1], runs[1].stderr
    one, two = ([(Path(x['path']).name, x['genre'], x['error']) for x in json.loads(r.stdout)] for r in runs)
    assert two == one and sum(e is not None for _, _, e in two) == 4
    assert [line for line in runs[1].stderr.splitlines() if line.startswith('predictors:')] == \
           [line for line in runs[0].stderr.splitlines() if line.startswith('predictors:')]


def test_predict_imports_only_what_the_model_needs(cnn_onnx):
    "Importing the command and opening an ONNX model import neither torch nor onnx nor librosa (about 3 s of start-up)."
    code = textwrap.dedent(f'''
        import sys
        from genre_classification.predict import open_predictor, predictors
        open_predictor({str(cnn_onnx)!r})
        print(sorted(m for m in ('torch', 'onnx', 'librosa', 'genre_classification.features') if m in sys.modules))''')
    done = subprocess.run([PYTHON, '-c', code], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['[]']


def test_build_real_music_model_refuses_a_bad_option_in_one_line(monkeypatch, capsys):
    "`pipeline build-real-music-model --models_dir ''` (the project root) is refused in one line naming it (exit 2), before any build."
    import genre_classification.predict as predict
    from genre_classification.cli import pipeline_cli
    monkeypatch.setattr(predict, 'make_real_music_model', lambda *a, **k: pytest.fail('a model was built'))
    assert pipeline_cli(['build-real-music-model', '--models_dir', '']) == 2
    assert capsys.readouterr().err == ("pipeline build-real-music-model: error: bad parameter 'models_dir' = '': "
                                       "String should have at least 1 character\n")
