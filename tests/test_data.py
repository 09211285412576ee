"The data layer on real files: every container in ../shared/data/audio_formats, the real GTZAN clips, and splits by track."
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre_classification.core import BadInputError, GENRES
from genre_classification.data import find_tracks, load_audio, probe_audio, split_tracks, stream_audio, track_id_of


def test_every_shared_audio_format_decodes(shared_data):
    "ogg, flac, mp3 and 44.1 kHz WAV (mono and stereo) all come out as finite 22050 Hz mono float32 of the right length."
    files = sorted(p for p in (shared_data / 'audio_formats').iterdir() if p.suffix != '.txt')
    assert {p.suffix for p in files} >= {'.ogg', '.flac', '.mp3', '.wav'}
    for path in files:
        y = load_audio(path)
        info = sf.info(str(path))
        assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all(), path.name
        assert abs(len(y) - info.duration * 22050) <= 2, (path.name, len(y), info.duration)
        assert 0.001 < np.abs(y).max() <= 1.0, path.name


def test_streaming_matches_whole_file_on_real_music(shared_data):
    path = shared_data / 'audio_formats' / 'Kevin_MacLeod_-_Vibe_Ace.hq.ogg'
    whole = load_audio(path)
    blocks = list(stream_audio(path, block_seconds=5.0))
    assert len(blocks) > 5 and max(len(b) for b in blocks) <= 1.01 * 5.0 * 22050
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_real_gtzan_clips_load_unchanged(shared_data):
    "22050 Hz mono clips pass through without resampling: same samples as soundfile reads."
    table = pd.read_csv(shared_data / 'gtzan_features_30_sec.csv').set_index('filename')
    for genre in ['blues', 'classical', 'country']:
        path = shared_data / 'gtzan_clips' / genre / f'{genre}.00000.wav'
        y = load_audio(path)
        assert len(y) == table.loc[f'{genre}.00000.au', 'length']
        np.testing.assert_array_equal(y, sf.read(str(path), dtype='float32')[0])


def test_find_tracks_on_gtzan_layout_with_a_bad_file(shared_data, tmp_path):
    "The real clips in the original archive's layout, plus an undecodable file that is warned about and skipped."
    for genre in ['blues', 'classical', 'country']:
        (tmp_path / 'genres' / genre).mkdir(parents=True)
        (tmp_path / 'genres' / genre / f'{genre}.00000.wav').symlink_to(shared_data / 'gtzan_clips' / genre / f'{genre}.00000.wav')
    (tmp_path / 'genres' / 'jazz').mkdir()
    (tmp_path / 'genres' / 'jazz' / 'jazz.00054.wav').write_bytes(b'RIFF' + bytes(300))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        tracks = find_tracks(tmp_path)
    assert tracks.track_id.tolist() == ['blues.00000', 'classical.00000', 'country.00000']
    assert len(caught) == 1 and 'jazz.00054.wav' in str(caught[0].message)


@pytest.mark.parametrize('content,reason', [
    (b'', 'empty'), (b'hello, not audio' * 10, 'not a readable audio file'), (b'RIFF\x24\x00\x00\x00WAVEfmt ', 'not a readable audio file')])
def test_bad_files_raise_one_error_type_naming_the_file(tmp_path, content, reason):
    path = tmp_path / 'song.wav'
    path.write_bytes(content)
    with pytest.raises(BadInputError) as err: load_audio(path)
    assert str(path) in str(err.value) and reason in str(err.value)
    assert probe_audio(path) is not None


def test_splits_never_put_a_track_on_two_sides():
    "Tracks and their 3-second segments (Kaggle's features_3_sec naming) are always on their track's side."
    tracks = pd.DataFrame([(f'{g}.{i:05d}', g, '') for g in GENRES for i in range(100)], columns=['track_id', 'genre', 'path'])
    for method in ['random', 'fault_filtered']:
        split = split_tracks(tracks, method, seed=3)
        assert split.track_id.is_unique
        side = split.set_index('track_id').split
        segments = pd.DataFrame({'filename': [f'{t}.{k}.wav' for t in split.track_id for k in range(10)]})
        segments['split'] = segments.filename.map(track_id_of).map(side)
        per_track = segments.groupby(segments.filename.map(track_id_of)).split.nunique()
        assert (per_track == 1).all()
        assert set(split.split) == {'train', 'valid', 'test'}


def test_the_dataset_commands_refuse_a_bad_option_in_one_line_before_writing(tmp_path, monkeypatch, capsys):
    "`pipeline make-default-dataset` and `pipeline prepare-dataset`: a bad option is one line naming it (exit 2), and nothing is written."
    import genre_classification.datasets as datasets
    from genre_classification.cli import pipeline_cli
    monkeypatch.setattr(datasets, 'make_default_dataset', lambda *a, **k: pytest.fail('a dataset was written'))
    monkeypatch.setattr(datasets, 'prepare_dataset', lambda *a, **k: pytest.fail('a dataset was written'))
    assert pipeline_cli(['make-default-dataset', '--dest', str(tmp_path / 'data'), '--sample_rate', '0']) == 2
    assert capsys.readouterr().err == ("pipeline make-default-dataset: error: bad parameter 'sample_rate' = 0: "
                                       "Input should be greater than or equal to 8000\n")
    assert pipeline_cli(['prepare-dataset', '--dest', str(tmp_path / 'data'), '--seed', '-1']) == 2
    assert capsys.readouterr().err == "pipeline prepare-dataset: error: bad parameter 'seed' = -1: Input should be greater than or equal to 0\n"
    assert not (tmp_path / 'data').exists()
