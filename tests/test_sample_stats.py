"""avg@n, its clustered standard error, and pass@k (`grpo_prm.sample_stats`) against brute force."""

import itertools
import math
import random

import pytest

from grpo_prm.sample_stats import avg_at_n, pass_at_k, pass_ks


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
