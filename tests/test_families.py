"Model families: every model name resolves through the registry, and nothing else in the package compares model names or kinds."
import re
from pathlib import Path

import pytest
import torch

import genre_classification.train
from genre_classification.core import BadInputError, GENRES
from genre_classification.evaluate import evaluate_model_file
from genre_classification.families import family_of, known_models, load_families
from genre_classification.models import ARCHITECTURES, MODEL_NAMES, build_model
from genre_classification.train import TrainConfig
from genre_classification.train_features import FeatureTrainConfig

PACKAGE = Path(genre_classification.train.__file__).parent


def test_every_built_in_model_has_one_family_and_an_architecture():
    assert {m: family_of(m).name for m in [*MODEL_NAMES, 'musicnn_probe', 'feature_mlp', 'hf']} == \
        {**{m: 'cnn' for m in MODEL_NAMES}, 'musicnn_probe': 'musicnn_probe', 'feature_mlp': 'feature_mlp', 'hf': 'hf'}
    assert set(known_models()) <= set(ARCHITECTURES)
    assert known_models(FeatureTrainConfig) == ['feature_mlp'] and 'feature_mlp' not in known_models(TrainConfig)
    assert sorted(load_families()) == ['cnn', 'feature_mlp', 'hf', 'musicnn_probe']      # all the package's entry points declare


def test_train_refuses_a_model_its_settings_do_not_train():
    with pytest.raises(ValueError, match="one of 'small_cnn'"): TrainConfig(model='feature_mlp')


def test_no_module_compares_model_names_or_kinds_outside_the_registry():
    pattern = re.compile(r"== 'musicnn_probe'|== PROBE_MODEL|kind ==|== 'feature_mlp'|meta\['model'\] ==")
    found = [f'{p.name}:{i}: {line.strip()}' for p in sorted(PACKAGE.rglob('*.py')) if p.name not in ('families.py', '_modidx.py')
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found


def _model_file(tmp_path, meta: dict) -> Path:
    path = tmp_path / 'model.pt'
    torch.save({'model': build_model('small_cnn', len(GENRES)).state_dict(), 'meta': meta}, path)
    return path


def test_evaluating_a_model_file_no_family_knows_or_without_settings_is_one_line(tmp_path):
    meta = {'model': 'small_cnn', 'classes': GENRES, 'input_kind': 'logmel'}
    with pytest.raises(BadInputError, match='does not say how it was trained'): evaluate_model_file(_model_file(tmp_path, meta))
    with pytest.raises(BadInputError, match="unknown model 'nets_of_tomorrow'"):
        evaluate_model_file(_model_file(tmp_path, {**meta, 'model': 'nets_of_tomorrow'}))
