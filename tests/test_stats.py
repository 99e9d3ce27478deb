"""Every interval of `grpo_prm.stats` against scipy or brute force: t, paired, Welch, seed bands, avg@n and its
clustered standard error, pass@k."""

import itertools
import math
import random

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from grpo_prm import stats
from grpo_prm.cli import InputError
from grpo_prm.stats import avg_at_n, pass_at_k, pass_ks


def test_one_sample_gives_the_papers_error_bar():
    correct = [1] * 12 + [0] * 28  # AMC23: 12 of 40
    mean, se = avg_at_n(correct, 1)
    assert mean == 0.3 and se == pytest.approx(math.sqrt(0.3 * 0.7 / 39))


def test_clustered_stderr_is_the_stderr_of_per_problem_means():
    rng = random.Random(0)
    correct = [rng.randint(0, 4) for _ in range(50)]
    mean, se = avg_at_n(correct, 4)
    p = [c / 4 for c in correct]
    m = sum(p) / 50
    assert mean == pytest.approx(m)
    assert se == pytest.approx(math.sqrt(sum((x - m) ** 2 for x in p) / 49 / 50))


def test_clustered_stderr_is_wider_than_pretending_samples_are_independent():
    """Problems either always or never solved: n samples add no information, and the interval must not shrink."""
    correct = [4] * 10 + [0] * 30
    _, clustered = avg_at_n(correct, 4)
    _, one = avg_at_n([1] * 10 + [0] * 30, 1)
    naive = math.sqrt(0.25 * 0.75 / (4 * 40 - 1))  # Bernoulli SE over all 160 samples
    assert clustered == pytest.approx(one) and clustered > 1.9 * naive


@pytest.mark.parametrize("n, c, k", [(4, 0, 1), (4, 1, 1), (4, 1, 2), (4, 2, 3), (4, 4, 4), (6, 3, 4), (5, 2, 5)])
def test_pass_at_k_is_the_share_of_k_subsets_with_a_correct_sample(n, c, k):
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    brute = sum(any(s) for s in subsets) / len(subsets)
    assert pass_at_k([c], n, k) == pytest.approx(brute)


def test_pass_at_1_is_avg_at_n_and_bad_input_is_refused():
    correct = [0, 1, 3, 4, 2]
    assert pass_at_k(correct, 4, 1) == pytest.approx(avg_at_n(correct, 4)[0])
    with pytest.raises(ValueError):
        pass_at_k(correct, 4, 5)
    with pytest.raises(ValueError):
        avg_at_n([5], 4)
    assert pass_ks(4) == [1, 2, 4] and pass_ks(6) == [1, 2, 4, 6] and pass_ks(1) == [1]


def test_t_and_welch_intervals_are_scipys():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 0.2, 5), rng.normal(0.3, 0.05, 4)
    lo, hi = stats.t_interval(a.mean(), a.std(ddof=1), 5)
    assert (lo, hi) == pytest.approx(sp.t.interval(0.95, 4, loc=a.mean(), scale=sp.sem(a)))
    assert stats.mean_interval(a) == pytest.approx((a.mean(), lo, hi))
    diff, lo, hi = stats.welch_interval((a.mean(), a.std(ddof=1), 5), (b.mean(), b.std(ddof=1), 4))
    test = sp.ttest_ind(a, b, equal_var=False)
    assert (lo, hi) == pytest.approx(tuple(test.confidence_interval(0.95)))
    assert diff == pytest.approx(a.mean() - b.mean())
    assert all(math.isnan(x) for x in stats.t_interval(0.4, 0.1, 1))
    assert all(math.isnan(x) for x in stats.mean_interval([0.4])[1:])


def test_paired_interval_is_the_paired_t_test_over_common_seeds():
    a = pd.Series([0.9, 0.7, 0.8, 0.5], index=[0, 1, 2, 9])  # seed 9 has no partner
    b = pd.Series([0.6, 0.65, 0.5, 0.1], index=[2, 1, 0, 3])
    mean, lo, hi, pairs = stats.paired_interval(a, b)
    d = np.array([0.9 - 0.5, 0.7 - 0.65, 0.8 - 0.6])
    assert pairs == 3 and mean == pytest.approx(d.mean())
    assert (lo, hi) == pytest.approx(tuple(sp.ttest_1samp(d, 0).confidence_interval(0.95)))
    assert stats.paired_interval(a, pd.Series([0.1], index=[7]))[3] == 0


def test_seed_band_per_step_with_zero_width_for_one_seed():
    df = pd.DataFrame({"step": [1, 1, 1, 2], "acc": [0.2, 0.4, 0.9, 0.5]})
    band = stats.seed_band(df.groupby("step").acc)
    lo, hi = sp.t.interval(0.95, 2, loc=0.5, scale=sp.sem([0.2, 0.4, 0.9]))
    assert band.loc[0, ["mean", "n", "lo", "hi"]].tolist() == pytest.approx([0.5, 3, lo, hi])
    assert band.loc[1, ["mean", "n", "lo", "hi"]].tolist() == [0.5, 1, 0.5, 0.5]
    assert np.isnan(stats.t_half(0.1, 1)) and stats.t_half(np.array([0.1]), np.array([4]))[0] == pytest.approx(
        sp.t.ppf(0.975, 3) * 0.1 / 2
    )


def test_normal_interval_uses_both_standard_errors():
    diff, lo, hi = stats.normal_interval((0.6, 0.03), (0.5, 0.04))
    assert diff == pytest.approx(0.1) and (hi - diff, diff - lo) == pytest.approx((stats.Z95 * 0.05,) * 2)


def test_bad_counts_are_input_errors():
    with pytest.raises(InputError, match="correct <= n"):
        avg_at_n([3], 2)
    with pytest.raises(InputError, match="1 <= k <= n"):
        pass_at_k([1], 2, 3)
