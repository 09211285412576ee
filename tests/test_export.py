"ONNX export: parity with torch on real inputs, the metadata prediction needs, and refusal of unsafe files."
import json

import numpy as np
import onnx
import pytest
import torch

from genre_classification.core import AudioConfig, BadInputError, GENRES
from genre_classification.data import load_audio
from genre_classification.export import export_onnx, max_probability_difference
from genre_classification.onnx_files import load_onnx
from genre_classification.features import KAGGLE_FEATURES, log_mel, track_windows
from genre_classification.models import build_model
from genre_classification.data import packaged_feature_table
from genre_classification.features import read_feature_table
from genre_classification.train_features import FeatureTrainConfig, feature_matrix, fit_feature_mlp


@pytest.fixture(scope='module')
def real_windows(shared_data) -> np.ndarray:
    "Log-mel windows of the three real GTZAN clips, as the CNNs see them (batch, 1, mels, frames)."
    audio = AudioConfig()
    wins = [track_windows(log_mel(load_audio(shared_data / 'gtzan_clips' / g / f'{g}.00000.wav'), audio), audio.segment_frames)
            for g in ['blues', 'classical', 'country']]
    return np.concatenate(wins)[:, None]


def cnn_file(tmp_path, name):
    torch.manual_seed(0)
    meta = {'model': name, 'classes': GENRES, 'input_kind': 'logmel', 'audio': AudioConfig().model_dump(),
            'trained_on': 'a test', 'synthetic_only': True, 'mlflow_run_id': 'abc123'}
    torch.save({'model': build_model(name).state_dict(), 'meta': meta}, tmp_path / f'{name}.pt')
    return tmp_path / f'{name}.pt'


@pytest.mark.parametrize('name', ['small_cnn', 'resnet18', 'efficientnet_b0'])
def test_cnn_parity_on_real_windows(tmp_path, real_windows, name):
    onnx_file = export_onnx(cnn_file(tmp_path, name))
    assert len(real_windows) == 27                    # nine whole 3 s windows per 30 s clip
    assert max_probability_difference(tmp_path / f'{name}.pt', onnx_file, real_windows) < 1e-4
    session, meta = load_onnx(onnx_file)
    assert session.run(None, {'input': real_windows[:1]})[0].shape == (1, 10)       # dynamic batch: 1 and 30
    # written as files were before the `family` key: read as a CNN's record
    assert (meta.family, meta.classes, meta.input_kind, meta.mlflow_run_id) == ('cnn', GENRES, 'logmel', 'abc123')
    assert meta.audio.sample_rate == 22050 and meta.audio.segment_seconds == 3.0


def test_feature_model_parity_and_metadata_on_real_rows(tmp_path):
    table = read_feature_table(packaged_feature_table())
    X, y = feature_matrix(table, GENRES)
    ensemble = fit_feature_mlp(X[:600], y[:600], 10, FeatureTrainConfig(epochs=10, ensemble=2))
    meta = {'model': 'feature_mlp', 'classes': GENRES, 'input_kind': 'kaggle_features', 'features': KAGGLE_FEATURES,
            'hidden': [512, 256], 'dropout': 0.4, 'ensemble': 2, 'trained_on': 'the real GTZAN table', 'synthetic_only': False,
            'feature_mean': ensemble.members[0].mean.tolist(), 'feature_std': ensemble.members[0].std.tolist(), 'mlflow_run_id': 'r1'}
    torch.save({'model': ensemble.state_dict(), 'meta': meta}, tmp_path / 'mlp.pt')
    onnx_file = export_onnx(tmp_path / 'mlp.pt', tmp_path / 'out' / 'mlp.onnx')
    assert max_probability_difference(tmp_path / 'mlp.pt', onnx_file, X[600:]) < 1e-4
    _, stored = load_onnx(onnx_file)
    assert stored.family == 'feature_mlp' and stored.features == KAGGLE_FEATURES and len(stored.feature_mean) == 57
    assert stored.trained_on == 'the real GTZAN table' and stored.source_model_file == str(tmp_path / 'mlp.pt')


def test_external_data_outside_the_folder_is_refused(tmp_path):
    onnx_file = export_onnx(cnn_file(tmp_path, 'small_cnn'))
    proto = onnx.load(str(onnx_file))
    # inside its folder: allowed
    onnx.save(proto, str(tmp_path / 'split.onnx'), save_as_external_data=True, location='split.weights', size_threshold=0)
    session, _ = load_onnx(tmp_path / 'split.onnx')
    assert session.run(None, {'input': np.zeros((1, 1, 64, 130), np.float32)})[0].shape == (1, 10)
    # pointing elsewhere: refused, naming the file and the place
    for location in ['../outside.weights', '/etc/passwd', 'sub/../../x.bin']:
        tampered = onnx.load(str(tmp_path / 'split.onnx'), load_external_data=False)
        for t in tampered.graph.initializer:
            for entry in t.external_data:
                if entry.key == 'location': entry.value = location
        onnx.save(tampered, str(tmp_path / 'tampered.onnx'))
        with pytest.raises(BadInputError) as e: load_onnx(tmp_path / 'tampered.onnx')
        assert "outside the model's folder" in str(e.value) and 'tampered.onnx' in str(e.value) and location in str(e.value)


def test_files_that_are_not_our_onnx_models_are_refused(tmp_path):
    (tmp_path / 'text.onnx').write_text('hello')
    with pytest.raises(BadInputError, match='not an ONNX model'): load_onnx(tmp_path / 'text.onnx')
    plain = onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node('Identity', ['x'], ['y'])], 'g',
                                   [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])]))
    onnx.save(plain, str(tmp_path / 'plain.onnx'))
    with pytest.raises(BadInputError, match='without genre_classification metadata'): load_onnx(tmp_path / 'plain.onnx')
