"Drift monitoring on real material: the real GTZAN table against itself (no drift) and against synthetic music (drift)."
import json, subprocess, sys
from pathlib import Path

import pandas as pd

from genre_classification.datasets import make_default_dataset

PIPELINE = str(Path(sys.executable).parent / 'pipeline')


def monitor(*args, cwd):
    return subprocess.run([PIPELINE, 'monitor', *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_a_batch_from_the_training_table_shows_no_drift(tmp_path, shared_data):
    table = pd.read_csv(shared_data / 'gtzan_features_30_sec.csv')
    table.sample(150, random_state=1).to_csv(tmp_path / 'batch.csv', index=False)
    done = monitor(tmp_path / 'batch.csv', '--reference', shared_data / 'gtzan_features_30_sec.csv', '--output_dir', tmp_path / 'r', cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith('no drift')
    assert (tmp_path / 'r' / 'drift_report.html').stat().st_size > 10_000
    assert json.loads((tmp_path / 'r' / 'drift_report.json').read_text())[0]['metric_name'].startswith('DriftedColumnsCount')


def test_synthetic_music_drifts_from_real_music(tmp_path, shared_data):
    "Features of the built-in synthetic dataset, computed from its audio by our extractor, against the real table."
    audio = make_default_dataset(tmp_path / 'synthetic', tracks_per_genre=3, seconds=10.0, progress=False)
    done = monitor(audio, '--reference', shared_data / 'gtzan_features_30_sec.csv', '--output_dir', tmp_path / 'r', cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout.startswith('DRIFT') and '(30 rows' in done.stdout


def test_predictions_that_are_all_one_genre_drift(tmp_path):
    records = [{'path': f'song{i}.mp3', 'genre': 'metal', 'probability': 0.9, 'error': None} for i in range(30)]
    records.append({'path': 'bad.mp3', 'genre': None, 'probability': None, 'error': 'the file is empty (0 bytes)'})
    (tmp_path / 'predictions.json').write_text(json.dumps(records))
    done = monitor(tmp_path / 'predictions.json', cwd=tmp_path)
    assert done.returncode == 1 and 'of predictions columns drifted (30 rows' in done.stdout


def test_a_missing_batch_is_one_line(tmp_path):
    done = monitor(tmp_path / 'nothing', cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().count('\n') == 0 and 'no such file or folder' in done.stderr


def test_a_bad_option_is_one_line(tmp_path, capsys):
    "A share outside 0..1 is refused in one line naming it (exit 2), before any batch is read."
    from genre_classification.cli import pipeline_cli
    assert pipeline_cli(['monitor', str(tmp_path / 'nothing'), '--drift_share', '1.5', '--output_dir', str(tmp_path / 'monitor')]) == 2
    assert capsys.readouterr().err == "pipeline monitor: error: bad parameter 'drift_share' = 1.5: Input should be less than or equal to 1\n"
