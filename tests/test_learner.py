"""The learner's loop and its hooks as fastai's: events in order, misspelt events refused when a hook is given, cancel exceptions
(a batch skipped, a fit stopped early that is still scored and saved), early stopping, gradient clipping and accumulation, and
schedule / lr-scaling names checked."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genre_classification.core import BadInputError
from genre_classification.hooks.gradients import GradientAccumulation, GradientClip
from genre_classification.hooks.tracker import Checkpointing, EarlyStopping, ModelFile
from genre_classification.learner import (EVENTS, CancelBatchException, CancelFitException, Learner, TrainHook, fit, make_optimizer,
                                          make_schedule, scaled_lr)
from genre_classification.metrics import Evaluation
from genre_classification.model_meta import ModelMeta
from genre_classification.training_data import TensorBatches

gen = torch.Generator().manual_seed(0)
X = torch.cat([torch.randn(16, 2, generator=gen) + 2, torch.randn(16, 2, generator=gen) - 2])
Y = torch.arange(2).repeat_interleave(16)
TOY_META = ModelMeta(family='toy', model='toy', classes=['a', 'b'], input_kind='points')      # what its model files say


def evaluation(net) -> Evaluation:
    "The model scored on its training rows, as an `Evaluation`."
    with torch.no_grad(): probs = torch.softmax(net(X), 1).numpy()
    right = float((probs.argmax(1) == Y.numpy()).mean())
    return Evaluation(list(range(len(X))), Y.numpy(), probs, Y.numpy(), probs, {'track_macro_f1': right, 'track_accuracy': right})


def learner(epochs=2, hooks=(), batch_size=8, lr=0.1) -> Learner:
    "A linear model on two clusters (4 batches of 8 an epoch), plain SGD at a constant rate, validated and tested on its rows."
    torch.manual_seed(0)
    net = nn.Linear(2, 2); opt = torch.optim.SGD(net.parameters(), lr=lr)
    return Learner(net, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0), F.cross_entropy, TensorBatches(X, Y, batch_size, seed=0),
                   epochs, validate=lambda: evaluation(net), score_test=lambda: evaluation(net), hooks=list(hooks))


class Records(TrainHook):
    "Keeps the name of each event it sees."
    def __init__(self): self.events = []
for _event in EVENTS:
    setattr(Records, _event, lambda self, learn, event=_event: self.events.append(event))


def test_events_come_in_fastais_order():
    "One batch: forward, after_pred, loss, after_loss, before_backward, backward, before_step, step, after_step, zero_grad; validation wrapped."
    seen = []
    class Grads(TrainHook):
        def before_step(self, learn): seen.append(('before_step', learn.net.weight.grad is not None))
        def after_step(self, learn): seen.append(('after_step', learn.net.weight.grad is not None))
        def before_batch(self, learn): seen.append(('before_batch', learn.net.weight.grad is not None))
    learn = learner(1, [rec := Records(), Grads()], batch_size=16)
    fit(learn)
    batch = ['before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_backward', 'before_step', 'after_step', 'after_batch']
    assert rec.events == ['before_fit', 'before_epoch', 'before_train', *batch * 2, 'after_train', 'before_validate', 'after_validate',
                          'after_epoch', 'before_test', 'after_test', 'after_fit']
    # the gradients exist at the step and after it, and are zeroed after it: the next batch starts without them
    assert seen == [('before_batch', False), ('before_step', True), ('after_step', True)] * 2
    assert learn.valid.metrics['track_accuracy'] == learn.history[0]['valid_track_accuracy']


def test_a_misspelt_event_is_refused_when_the_hook_is_given():
    class Misspelt(TrainHook):
        def after_epochs(self, learn): pass
    with pytest.raises(BadInputError, match='hook Misspelt has after_epochs, which is no event'): learner(hooks=[Misspelt()])
    learn = learner()
    with pytest.raises(BadInputError, match='after_epochs'): learn.hooks = [Records(), Misspelt()]
    with pytest.raises(BadInputError, match="'no_such_event' is no event"): learn('no_such_event')
    learn.hooks.append(Misspelt())                       # slipped into the list: refused when the fit starts
    with pytest.raises(BadInputError, match='after_epochs'): fit(learn)


def test_a_cancelled_batch_is_skipped():
    class SkipSecond(TrainHook):
        def before_epoch(self, learn): self.n = 0
        def before_batch(self, learn):
            self.n += 1
            if self.n == 2: raise CancelBatchException()
    learn = learner(1, [SkipSecond(), rec := Records()])
    fit(learn)
    assert learn.history[0]['samples_seen'] == 24
    assert rec.events.count('after_cancel_batch') == 1 and rec.events.count('after_batch') == 3 and rec.events.count('after_step') == 3


def test_a_cancelled_fit_is_still_scored_and_saved(tmp_path):
    "CancelFitException after epoch 2 of 5: after_cancel_fit, the test scored, the model file written, after_fit without an error."
    class StopAfter2(TrainHook):
        def after_epoch(self, learn):
            if learn.epoch == 1: raise CancelFitException()
    class SeesTheEnd(TrainHook):
        def after_fit(self, learn): self.error = learn.error
    meta = lambda learn: TOY_META
    learn = learner(5, [StopAfter2(), rec := Records(), end := SeesTheEnd(), Checkpointing(tmp_path, meta), ModelFile(tmp_path / 'model.pt', meta)])
    test = fit(learn)
    assert isinstance(test, Evaluation) and len(learn.history) == 2 and end.error is None
    assert rec.events[-4:] == ['after_cancel_fit', 'before_test', 'after_test', 'after_fit']
    assert {p.name for p in tmp_path.iterdir()} == {'best.pt', 'last.pt', 'model.pt'}


class Scores(TrainHook):
    "Puts `scores[epoch]` in the row as the validation macro-F1."
    order = 25
    def __init__(self, scores): self.scores = scores
    def after_epoch(self, learn): learn.row['valid_track_macro_f1'] = self.scores[learn.epoch]


def test_early_stopping_stops_after_patience(tmp_path, capsys):
    scores = [0.5, 0.6, 0.62, 0.61, 0.9, 0.95]
    ck = Checkpointing(tmp_path, lambda learn: TOY_META)
    learn = learner(6, [Scores(scores), stopper := EarlyStopping(min_delta=0.05, patience=2), ck])
    assert isinstance(fit(learn), Evaluation)
    assert len(learn.history) == 4 and (stopper.best, stopper.best_epoch) == (0.6, 1)
    assert (ck.best, ck.best_epoch) == (0.62, 2)                 # its own tracker, without min_delta
    assert 'has not improved since epoch 2: stopping after epoch 4' in capsys.readouterr().out
    learn = learner(6, [Scores([0.5, 0.4, 0.45, 0.3]), EarlyStopping(patience=3)])
    fit(learn); assert len(learn.history) == 4
    learn = learner(4, [EarlyStopping('train_loss', comp=np.less, patience=1)])       # a loss: lower is better
    fit(learn); assert len(learn.history) == 4


def test_gradient_clip_leaves_the_norm_at_max_norm():
    norms = []
    class Norm(TrainHook):
        def after_step(self, learn): norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in learn.net.parameters()]))))
    fit(learner(1, [Norm()])); raw = list(norms); norms.clear()
    fit(learner(1, [GradientClip(0.01), Norm()]))
    assert min(raw) > 0.01 and norms == pytest.approx([0.01] * 4, rel=1e-4)


def test_four_accumulated_batches_of_8_step_as_one_batch_of_32():
    one_of_8 = learner(1, batch_size=32); fit(one_of_8)
    four_of_8 = learner(1, [acc := GradientAccumulation(4)], batch_size=8); fit(four_of_8)
    torch.testing.assert_close(four_of_8.net.weight, one_of_8.net.weight); torch.testing.assert_close(four_of_8.net.bias, one_of_8.net.bias)
    assert four_of_8.history[0]['train_loss'] == pytest.approx(one_of_8.history[0]['train_loss']) and acc.count == 0
    plain = learner(1, batch_size=8); fit(plain)
    assert not torch.allclose(plain.net.weight, one_of_8.net.weight)


def test_schedule_and_lr_rule_names_are_checked():
    opt = make_optimizer('sgd', [nn.Parameter(torch.zeros(1))], 0.1, 0)
    with pytest.raises(BadInputError, match="schedule 'cosin' is not one of onecycle, cosine"): make_schedule('cosin', opt, 0.1, 100)
    with pytest.raises(BadInputError, match="rule 'squareroot' is not one of auto, linear, sqrt, none"): scaled_lr(1e-3, 128, 'squareroot')
    assert isinstance(make_schedule('cosine', opt, 0.1, 100), torch.optim.lr_scheduler.CosineAnnealingLR)
