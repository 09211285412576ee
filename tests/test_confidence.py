"The confidence statistics at small sizes: McNemar is the binomial test of the discordant tracks, intervals are seeded, a model against itself differs by 0, and a 95% interval covers the true accuracy about 95% of the time."
import numpy as np
import pytest
from scipy import stats

from genre_classification.confidence import Interval, McNemar, bootstrap_ci, compare_models, macro_f1, mcnemar_exact, paired_bootstrap
from genre_classification.core import BadInputError


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_tracks():
    right_a = np.array([True] * 7 + [False] * 2 + [True] * 4 + [False] * 3)     # 7 only A, 2 only B, 4 both, 3 neither
    right_b = np.array([False] * 7 + [True] * 2 + [True] * 4 + [False] * 3)
    assert mcnemar_exact(right_a, right_b) == McNemar(7, 2, stats.binomtest(7, 9, 0.5).pvalue)
    assert mcnemar_exact(right_b, right_a) == McNemar(2, 7, stats.binomtest(2, 9, 0.5).pvalue)
    assert mcnemar_exact(right_a, right_a) == McNemar(0, 0, 1.0)


def test_intervals_are_seeded_and_a_model_against_itself_differs_by_zero():
    rng = np.random.default_rng(1)
    y_true, pred = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
    assert bootstrap_ci(y_true, pred, 'macro_f1', n_resamples=300, seed=5) == bootstrap_ci(y_true, pred, macro_f1, n_resamples=300, seed=5)
    assert bootstrap_ci(y_true, pred, 'accuracy', n_resamples=300, seed=5) != bootstrap_ci(y_true, pred, 'accuracy', n_resamples=300, seed=6)
    assert paired_bootstrap(y_true, pred, pred, 'accuracy', n_resamples=300) == Interval(0.0, 0.0, 0.0)
    assert bootstrap_ci([1] * 8, [1] * 8, 'accuracy', n_resamples=300) == Interval(1.0, 1.0, 1.0)
    with pytest.raises(BadInputError, match=r'differ in length \(30, 30, 29\)'): compare_models(y_true, pred, pred[:-1])


def test_macro_f1_is_sklearns():
    f1_score = pytest.importorskip('sklearn.metrics').f1_score
    rng = np.random.default_rng(2)
    for n_genres in [2, 5, 10]:
        y_true, pred = rng.integers(0, n_genres, 40), rng.integers(0, n_genres - 1, 40)
        assert macro_f1(y_true, pred) == pytest.approx(f1_score(y_true, pred, average='macro', zero_division=0))


def test_a_95_percent_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    draws = np.random.default_rng(0).random((100, 50)) < 0.7          # 100 draws of 50 tracks, each right with probability 0.7
    intervals = [bootstrap_ci(np.ones(50), right.astype(float), 'accuracy', n_resamples=300, seed=i) for i, right in enumerate(draws)]
    assert 0.88 <= np.mean([iv.low <= 0.7 <= iv.high for iv in intervals]) <= 0.99
    assert np.mean([iv.high - iv.low for iv in intervals]) == pytest.approx(2 * 1.96 * np.sqrt(0.7 * 0.3 / 50), rel=0.15)
