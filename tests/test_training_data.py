"Batch sources of 02d_training_data: what they say they hold is what they yield."
import pytest
import torch

from genre_classification.training_data import TensorBatches


@pytest.mark.parametrize('rows,batch', [(17, 8), (16, 8), (18, 8), (9, 4), (1, 8), (2, 8), (7, 1), (8, 2), (0, 4), (100, 33)])
def test_tensor_batches_len_is_what_is_yielded(rows, batch):
    "A one-row last batch is skipped (batch norm needs two rows), so `len` leaves it out too: schedules and progress bars count real steps."
    b = TensorBatches(torch.zeros(rows, 3), torch.zeros(rows), batch, seed=0)
    assert len(b) == len(list(b(0))) == len(list(b(1)))
