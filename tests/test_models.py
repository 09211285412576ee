"Every model name builds with a 10-way head and takes a training step on spectrogram windows."
import pytest
import torch
import torch.nn.functional as F

from genre_classification.models import MODEL_NAMES, build_model


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_every_model_trains_a_step(name):
    torch.manual_seed(0)
    model = build_model(name, n_classes=10).train()
    x, y = torch.rand(4, 1, 64, 130), torch.tensor([0, 3, 7, 9])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    logits = model(x)
    assert logits.shape == (4, 10)
    F.cross_entropy(logits, y).backward()
    opt.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(changed), f'{name}: {changed.count(False)} parameter tensors got no update'
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert last.out_features == 10
