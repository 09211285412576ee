"""The Hugging Face family (03b_train_hf) on tiny models built offline from configurations (random weights, saved with
`save_pretrained`): the probe's embeddings built on Ray, both ways learn above chance, fine-tuning resumes after a kill, and a
trained model is evaluated, exported (parity with torch) and answered by `predictors` without torch or transformers, and by batch
prediction. (Through papermill and DVC: `tests/test_dvc.py`.)"""
import json, signal, subprocess, sys, textwrap
from pathlib import Path

import pandas as pd
import pytest

from test_layers import WITHOUT_TORCH

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(PYTHON).parent
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
WAVEFORM_TINY = dict(conv_dim=(16, 16), conv_kernel=(10, 8), conv_stride=(10, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


@pytest.fixture(scope='module')
def tiny_models(tmp_path_factory) -> Path:
    "Tiny AST, HuBERT and wav2vec 2.0 models, each in a folder as `save_pretrained` leaves it, with its feature extractor."
    import torch
    from transformers import (ASTConfig, ASTFeatureExtractor, ASTModel, HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor,
                              Wav2Vec2Model)
    root = tmp_path_factory.mktemp('hf')
    torch.manual_seed(0)
    for name, model, extractor in [
            ('ast', ASTModel(ASTConfig(num_mel_bins=32, max_length=100, **TINY)), ASTFeatureExtractor(num_mel_bins=32, max_length=100)),
            ('hubert', HubertModel(HubertConfig(**TINY, **WAVEFORM_TINY)), Wav2Vec2FeatureExtractor(sampling_rate=16000)),
            ('wav2vec2', Wav2Vec2Model(Wav2Vec2Config(**TINY, **WAVEFORM_TINY)), Wav2Vec2FeatureExtractor(sampling_rate=16000))]:
        model.save_pretrained(root / name); extractor.save_pretrained(root / name)
    return root


@pytest.fixture(scope='module')
def songs(tmp_path_factory) -> Path:
    "The built-in synthetic dataset, 8 clips of 4 s per genre: 20 validation and test tracks, so that chance (1 in 10) is told apart."
    from genre_classification.datasets import make_default_dataset
    return make_default_dataset(tmp_path_factory.mktemp('songs') / 'data', tracks_per_genre=8, seconds=4.0, progress=False)


def hf_config(project: Path, model: Path, data: Path, **kw):
    from genre_classification.hf import HfTrainConfig
    return HfTrainConfig(**{'hf_model': str(model), 'segment_seconds': 1.0, 'data_dir': str(data), 'epochs': 3, 'batch_size': 16, 'lr': 3e-3,
                            'backbone_lr': 1e-3, 'device': 'cpu', 'precision': 'fp32', 'checkpoints_path': str(project / 'checkpoints'),
                            'mlflow_tracking_uri': f"sqlite:///{project / 'mlflow.db'}", **kw})


def held_out_right(result) -> int:
    "How many validation and test tracks the trained model gets right (its test evaluation, and the last epoch's validation)."
    from genre_classification.evaluate import evaluate_model_file
    from genre_classification.core import ProjectPaths
    valid, _ = evaluate_model_file(result.model_file, 'valid', paths=ProjectPaths(root=result.run_dir.parents[1]))
    return sum(int((ev.track_probs.argmax(1) == ev.track_labels).sum()) for ev in (valid, result.test))


def test_a_probe_on_embeddings_built_on_ray_learns_above_chance(tmp_path, tiny_models, songs, monkeypatch):
    """`pipeline build-embeddings --kind hf` fills the cache on Ray (two actors) that the probe then reads, computing no embedding
    itself. 20 held-out tracks of 10 genres: by chance, 6 or more right happens about once in 90 runs; the probe gets about half (measured: 11)."""
    from genre_classification import hf
    from genre_classification.core import ProjectPaths
    from genre_classification.train import train
    (tmp_path / 'settings.ini').write_text('[DEFAULT]\nlib_name = genre_classification\n')     # the project the command runs in
    bad = run([BIN / 'pipeline', 'build-embeddings', '--kind', 'hf', '--data_dir', songs], tmp_path, check=False)
    assert bad.returncode == 2 and "bad parameter 'hf_model'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    built = run([BIN / 'pipeline', 'build-embeddings', '--kind', 'hf', '--hf_model', tiny_models / 'hubert', '--segment_seconds', '1.0',
                 '--data_dir', songs, '--workers', '2'], tmp_path)
    assert '80 of 80 tracks cached' in built.stdout, built.stdout
    def computed_in_training(*args): raise AssertionError('an embedding was computed in training, not read from the cache')
    monkeypatch.setattr(hf, '_embed_into', computed_in_training)
    result = train(hf_config(tmp_path, tiny_models / 'hubert', songs, epochs=20), ProjectPaths(root=tmp_path), progress=False, log_to_mlflow=False)
    assert len(result.test.track_labels) == 10 and held_out_right(result) >= 6


FINETUNE = dict(hf_mode='finetune', epochs=3, segments_per_track=2)

KILLED_FINETUNE = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from genre_classification.hooks import tracker
    from genre_classification.core import ProjectPaths
    from genre_classification.train import train
    from test_hf import FINETUNE, hf_config
    project, model, data = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[4])
    save = tracker.save_atomically                   # what Checkpointing writes with
    def save_then_die(obj, target):
        save(obj, target)
        if target.name == 'last.pt' and obj['epoch'] == 1: os.kill(os.getpid(), signal.SIGKILL)   # killed after epoch 2
    tracker.save_atomically = save_then_die
    train(hf_config(project, model, data, **FINETUNE), ProjectPaths(root=project), progress=False)
''')


def test_fine_tuning_resumes_after_a_kill_to_the_same_result_and_learns_above_chance(tmp_path, tiny_models, songs):
    "SIGKILL after epoch 2 of 3, then `resume`: the history and test metrics of a run never killed, which beats chance."
    from genre_classification.core import ProjectPaths
    from genre_classification.train import train
    model = tiny_models / 'hubert'
    killed = subprocess.run([PYTHON, '-c', KILLED_FINETUNE, str(tmp_path / 'k'), str(model), str(Path(__file__).parent), str(songs)],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = train(hf_config(tmp_path / 'k', model, songs, resume=True, **FINETUNE), ProjectPaths(root=tmp_path / 'k'), progress=False)
    whole = train(hf_config(tmp_path / 'w', model, songs, **FINETUNE), ProjectPaths(root=tmp_path / 'w'), progress=False, log_to_mlflow=False)
    pd.testing.assert_frame_equal(resumed.history, whole.history)
    assert resumed.test.metrics == whole.test.metrics
    assert held_out_right(whole) >= 5          # by chance: about once in 25 runs (measured here: 6)


def run(cmd, cwd, check=True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, **kw)
    assert not check or done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


def test_a_tiny_ast_then_every_command(tmp_path, tiny_models, songs):
    """A probe on a tiny AST (the notebook exports a fine-tuned HuBERT; `tests/test_dvc.py` trains one through papermill, `-p model hf
    -p hf_model FOLDER`), then `pipeline evaluate`, `pipeline export` (one ONNX file with the preprocessing, parity with torch),
    `predictors` where torch cannot be imported, and batch prediction."""
    from genre_classification.core import ProjectPaths
    from genre_classification.train import train
    model_file = train(hf_config(tmp_path, tiny_models / 'ast', songs, epochs=2), ProjectPaths(root=tmp_path),
                       progress=False).model_file
    report = run([BIN / 'pipeline', 'evaluate', '--model_file', model_file], tmp_path).stdout
    assert 'track_accuracy' in report and 'blues' in report
    onnx_file = tmp_path / 'ast.onnx'
    run([BIN / 'pipeline', 'export', '--model_file', model_file, '--output', onnx_file, '--reports_dir', tmp_path], tmp_path)
    assert json.loads((tmp_path / 'export.json').read_text())['max_probability_difference'] < 1e-4
    files = sorted(songs.rglob('*.wav'))[:3]
    script = WITHOUT_TORCH + f'''
from genre_classification.predict import predictors
code = predictors([*{[str(f) for f in files]!r}, '--model', {str(onnx_file)!r}, '--format', 'json'])
assert 'torch' not in sys.modules and 'transformers' not in sys.modules
sys.exit(code)
'''
    answers = json.loads(run([PYTHON, '-c', script], tmp_path).stdout)
    assert [a['error'] for a in answers] == [None] * 3 and 'hf on audio samples' in answers[0]['model']
    from genre_classification.batch import read_results
    run([BIN / 'pipeline', 'batch-predict', songs / 'genres_original' / 'blues', '--model', onnx_file, '--output', tmp_path / 'batch', '--workers', '1'], tmp_path)
    table = read_results(tmp_path / 'batch')
    assert len(table) == 8 and table.error.isna().all()
    # each answer is the ONNX model's: the same top genre as `predictors` gave the same file
    by_path = dict(zip(table.path, table.genre))
    assert all(by_path[a['path']] == a['genre'] for a in answers if a['path'] in by_path)


def test_what_is_no_audio_model_is_one_line(tmp_path):
    "A folder that holds a text model: the training command says so in one line, before any work."
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path / 'bert')
    done = run([BIN / 'pipeline', 'train-using-original-audios', '--model', 'hf', '--hf_model', tmp_path / 'bert', '--epochs', '1'], tmp_path, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    assert 'not a Hugging Face audio model folder' in done.stderr or 'is not an audio model' in done.stderr
