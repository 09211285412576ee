"The Kaggle feature extractor reproduces the real Kaggle table on the real GTZAN clips (runs in CI against ../shared)."
import numpy as np
import pandas as pd
import pytest

from genre_classification.data import load_audio
from genre_classification.features import KAGGLE_FEATURES, NEAR_ZERO_FEATURES, feature_mismatches, kaggle_features, extract_features
from genre_classification.data import find_tracks


@pytest.mark.parametrize('genre', ['blues', 'classical', 'country'])
def test_features_match_the_kaggle_table(shared_data, genre):
    "Every column within 1% relative (harmony_mean and perceptr_mean: 1e-4 absolute; they are means of zero-centred waveforms)."
    table = pd.read_csv(shared_data / 'gtzan_features_30_sec.csv').set_index('filename')
    reference = table.loc[f'{genre}.00000.au', KAGGLE_FEATURES].to_dict()
    ours = kaggle_features(load_audio(shared_data / 'gtzan_clips' / genre / f'{genre}.00000.wav'))
    assert feature_mismatches(ours, reference) == {}
    assert abs(ours['tempo'] - reference['tempo']) <= 0.01 * reference['tempo']


def test_the_tolerances_are_tight_enough_to_fail(shared_data):
    "A 2% error in one column, or 2e-4 in a near-zero one, is caught."
    table = pd.read_csv(shared_data / 'gtzan_features_30_sec.csv').set_index('filename')
    reference = table.loc['blues.00000.au', KAGGLE_FEATURES].to_dict()
    assert list(feature_mismatches({**reference, 'mfcc3_var': reference['mfcc3_var'] * 1.02}, reference)) == ['mfcc3_var']
    assert list(feature_mismatches({**reference, 'harmony_mean': reference['harmony_mean'] + 2e-4}, reference)) == ['harmony_mean']


def test_extraction_table_has_the_kaggle_columns(shared_data, tmp_path):
    tracks = find_tracks(shared_data / 'gtzan_clips')
    table = extract_features(tracks, tmp_path / 'features.csv', n_workers=2, progress=False)
    kaggle = pd.read_csv(shared_data / 'gtzan_features_30_sec.csv', nrows=0).columns.tolist()
    assert table.columns.tolist()[1:len(kaggle) + 1] == kaggle         # track_id first, then Kaggle's columns in order
    assert sorted(table.track_id) == ['blues.00000', 'classical.00000', 'country.00000']
    assert np.isfinite(table[KAGGLE_FEATURES].to_numpy()).all()


def test_processes_that_import_features_together_leave_a_sound_numba_cache(tmp_path):
    """Three processes importing librosa at once on a cold numba cache (two through the features module, one drawing a clip as the
    synthesiser's notebooks do), then a fourth that computes features: without the lock, librosa's gufunc cache files could come
    from different processes, and the fourth would crash (numba#10128)."""
    import os, subprocess, sys
    draw = 'import matplotlib; matplotlib.use("Agg"); import numpy as np; from genre_classification.synth.sound import show_clip; show_clip(np.ones(22050, "float32"), "x")'
    for trial in range(2):
        env = {**os.environ, 'NUMBA_CACHE_DIR': str(tmp_path / f'numba{trial}')}
        importers = [subprocess.Popen([sys.executable, '-c', code], env=env) for code in ['import genre_classification.features'] * 2 + [draw]]
        assert [p.wait() for p in importers] == [0, 0, 0]
        user = subprocess.run([sys.executable, '-c', 'import numpy as np, librosa; y = np.random.default_rng(0).standard_normal(66150).astype("float32");'
                               'librosa.feature.chroma_stft(y=y, sr=22050); librosa.feature.zero_crossing_rate(y)'], env=env)
        assert user.returncode == 0, f'computing features after a concurrent first import crashed (exit {user.returncode})'


def test_the_feature_commands_refuse_a_bad_option_in_one_line_before_reading(tmp_path, monkeypatch, capsys):
    "`pipeline extract-features` and `pipeline create-image-features-from-audio`: a bad option is one line naming it (exit 2)."
    import genre_classification.features as features
    from genre_classification.cli import pipeline_cli
    monkeypatch.setattr(features, 'find_dataset', lambda *a, **k: pytest.fail('the audio was read'))
    assert pipeline_cli(['extract-features', str(tmp_path), '--segment_seconds', '-3']) == 2
    assert capsys.readouterr().err == ("pipeline extract-features: error: bad parameter 'segment_seconds' = -3.0: "
                                       "Input should be greater than or equal to 0\n")
    assert pipeline_cli(['create-image-features-from-audio', '--path_with_audios_dir', str(tmp_path), '--n_workers', '-1']) == 2
    assert capsys.readouterr().err == ("pipeline create-image-features-from-audio: error: bad parameter 'n_workers' = -1: "
                                       "Input should be greater than or equal to 0\n")
