"""`pipeline train-*` unchanged under torchrun: two CPU processes (gloo) against one process with the same seed."""
import os, subprocess, sys
from pathlib import Path

import pytest
import torch

from genre_classification.datasets import make_default_dataset

BIN = Path(sys.executable).parent


def history_of(checkpoints: Path) -> list[dict]:
    (last,) = checkpoints.glob('small_cnn-*/last.pt')
    return torch.load(last, weights_only=True)['history']


def test_two_processes_match_one(tmp_path):
    data = make_default_dataset(tmp_path / 'data', tracks_per_genre=4, seconds=4.0, progress=False)
    common = ['train-using-original-audios', '--audio_paths', str(data), '--model', 'small_cnn', '--epochs', '2', '--batch_size', '8',
              '--segments_per_track', '2', '--device', 'cpu', '--mlflow_tracking_uri', f"sqlite:///{tmp_path / 'mlflow.db'}"]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    single = subprocess.run([str(BIN / 'pipeline'), *common, '--checkpoints_path', str(tmp_path / 'one')],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run([str(BIN / 'torchrun'), '--standalone', '--nproc_per_node', '2', str(BIN / 'pipeline'), *common,
                             '--checkpoints_path', str(tmp_path / 'two')], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = history_of(tmp_path / 'one'), history_of(tmp_path / 'two')
    assert [h['samples_seen'] for h in one] == [h['samples_seen'] for h in two]     # the same windows per epoch, dealt over 2 ranks
    # two ranks of 8 windows average their gradients: twice the batch, half the steps; the loss and scores stay close
    assert abs(one[-1]['train_loss'] - two[-1]['train_loss']) < 0.35 * one[-1]['train_loss']
    for key in ['valid_track_accuracy', 'valid_segment_accuracy']: assert abs(one[-1][key] - two[-1][key]) <= 0.35, key
    assert double.stdout.count('epoch 2/2: loss') == 1                              # only rank 0 reports (and logs, and saves)
    assert len(list((tmp_path / 'two').glob('small_cnn-*/model.pt'))) == 1
