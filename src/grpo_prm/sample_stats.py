"""avg@n, its interval, and pass@k from per-problem correct counts (the evaluation's statistics; Table 2).

With n seeded samples per problem, problem i has c_i correct of n. The samples of one problem are not independent
draws of the benchmark (they share the problem), so the interval treats problems as clusters:

- **avg@n** = mean over problems of p_i = c_i / n.
- **Its standard error** is the cluster-robust (over problems) standard error of that mean, equal-sized clusters:
  `std(p_i, ddof=1) / sqrt(N)`. The spread of p_i carries both sources of variation, which problems the benchmark
  holds and which samples were drawn (Var(p_i) = between-problem variance + within-problem Bernoulli variance / n).
  With n = 1 it is `sqrt(p(1-p)/(N-1))`, the paper's (and lm-eval's) error bar.
- **The 95 % interval** is mean ± z_0.975 · SE (normal approximation, z = 1.95996).
- **pass@k** (k ≤ n) is the unbiased estimator of Chen et al. 2021 (arXiv 2107.03374, Eq. 1),
  `1 - C(n-c, k) / C(n, k)` per problem, averaged over problems.
"""

import math
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)


def avg_at_n(correct: list[int], n: int) -> tuple[float, float]:
    """Mean accuracy over problems and its standard error clustered by problem (see module docstring)."""
    if n < 1 or not correct or any(not 0 <= c <= n for c in correct):
        raise ValueError(f"need 0 <= correct <= n = {n} for every problem, got {correct[:5]}...")
    return mean_and_stderr([c / n for c in correct])


def mean_and_stderr(per_problem: list[float]) -> tuple[float, float]:
    """Mean of per-problem scores and `std(ddof=1)/sqrt(N)` (NaN for a single problem)."""
    m = len(per_problem)
    mean = sum(per_problem) / m
    if m < 2:
        return mean, float("nan")
    var = sum((x - mean) ** 2 for x in per_problem) / (m - 1)
    return mean, math.sqrt(var / m)


def pass_at_k(correct: list[int], n: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. 2021, averaged over problems (k <= n)."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    return sum(1.0 - math.comb(n - c, k) / math.comb(n, k) for c in correct) / len(correct)


def pass_ks(n: int) -> list[int]:
    """The k reported for n samples: powers of two up to n, and n itself."""
    return sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n})
