"""The one home of the intervals that tables, figures and prose report (two-sided, `LEVEL` = 95 % unless told).

Over seeds (few, so Student-t with n − 1 degrees of freedom; fewer than 2 values give no interval):
- `t_half(std, n)`: half-width of the t-interval of a mean; `t_interval(mean, std, n)` its bounds;
  `mean_interval(values)` the mean of raw values with its bounds.
- `paired_interval(a, b)`: mean of the per-seed differences a − b (seed s of both shares target and initial
  policy) and its t-interval.
- `welch_interval(a, b)`: difference of two independent means and its Welch interval.
- `seed_band(groups)`: per group (a step of a curve), mean over seeds with its t-interval (the curves' bands).

Over problems (Table 2):
- `avg_at_n(correct, n)`: avg@n and its standard error clustered by problem; `mean_and_stderr(per_problem)`.
  Samples of one problem are not independent draws of the benchmark (they share the problem), so problems are the
  clusters: SE = `std(p_i, ddof=1) / sqrt(N)` with p_i = c_i / n, whose spread carries both which problems the
  benchmark holds and which samples were drawn. With n = 1 it is `sqrt(p(1-p)/(N-1))`, the paper's (and lm-eval's)
  error bar.
- `normal_interval(a, b)`: difference of two accuracies with the normal interval of their standard errors
  (`Z95` = z_0.975).
- `pass_at_k(correct, n, k)`: Chen et al. 2021's unbiased estimator (arXiv 2107.03374, Eq. 1),
  `1 - C(n-c, k) / C(n, k)` per problem, averaged over problems; `pass_ks(n)` the k reported.
"""

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy import stats

from grpo_prm.cli import InputError

LEVEL = 0.95
Z95 = NormalDist().inv_cdf(0.975)


class StatsError(InputError):
    """Counts that cannot be scored (a correct count outside 0..n, k outside 1..n)."""


# ---- over seeds: Student-t


def t_half(std, n, level: float = LEVEL):
    """Half-width of the `level` t-interval of a mean of `n` values with sample std `std` (NaN below 2 values);
    scalars or arrays."""
    n = np.asarray(n)
    return stats.t.ppf(0.5 + level / 2, np.where(n > 1, n - 1, np.nan)) * std / np.sqrt(n)


def t_interval(mean: float, std: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The `level` t-interval (low, high) of a mean over `n` values (NaN bounds below 2 values or a NaN std)."""
    if n < 2 or not math.isfinite(std):
        return math.nan, math.nan
    half = float(t_half(std, n, level))
    return mean - half, mean + half


def mean_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high) of raw values: their mean and its `level` t-interval (NaN bounds below 2 values)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < 2:
        return mean, math.nan, math.nan
    return (mean, *t_interval(mean, float(x.std(ddof=1)), len(x), level))


def paired_interval(a: pd.Series, b: pd.Series, level: float = LEVEL) -> tuple[float, float, float, int]:
    """(mean, low, high, pairs) of a − b over the index labels (seeds) both hold: the mean paired difference and
    its `level` t-interval; all NaN without a common label."""
    left, right = a.align(b, join="inner")
    diff = left - right
    if not len(diff):
        return math.nan, math.nan, math.nan, 0
    return (*mean_interval(diff, level), len(diff))


def welch_interval(
    a: tuple[float, float, int], b: tuple[float, float, int], level: float = LEVEL
) -> tuple[float, float, float]:
    """Difference a − b of two means (each `(mean, std, n)`) and its `level` Welch interval (NaN below 2 values)."""
    (ma, sa, na), (mb, sb, nb) = a, b
    diff = ma - mb
    if min(na, nb) < 2:
        return diff, math.nan, math.nan
    va, vb = sa**2 / na, sb**2 / nb
    if va + vb == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = stats.t.ppf(0.5 + level / 2, dof) * math.sqrt(va + vb)
    return diff, diff - half, diff + half


def seed_band(groups, level: float = LEVEL) -> pd.DataFrame:
    """Per group of a grouped column (e.g. `df.groupby(["method", "step"]).accuracy`): `mean` over seeds, seed
    count `n`, and the `level` t-interval `lo`, `hi` of the mean; a single seed's band has zero width."""
    out = groups.agg(mean="mean", sd="std", n="count").reset_index()
    half = np.where(out.n > 1, t_half(out.sd, out.n.to_numpy(), level), 0.0)
    return out.assign(lo=out["mean"] - half, hi=out["mean"] + half).drop(columns="sd")


# ---- over problems: avg@n, pass@k, normal intervals


def mean_and_stderr(per_problem: list[float]) -> tuple[float, float]:
    """Mean of per-problem scores and `std(ddof=1)/sqrt(N)` (NaN for a single problem)."""
    m = len(per_problem)
    mean = sum(per_problem) / m
    if m < 2:
        return mean, float("nan")
    var = sum((x - mean) ** 2 for x in per_problem) / (m - 1)
    return mean, math.sqrt(var / m)


def avg_at_n(correct: list[int], n: int) -> tuple[float, float]:
    """Mean accuracy over problems and its standard error clustered by problem (see module docstring)."""
    if n < 1 or not correct or any(not 0 <= c <= n for c in correct):
        raise StatsError(f"need 0 <= correct <= n = {n} for every problem, got {correct[:5]}...")
    return mean_and_stderr([c / n for c in correct])


def normal_interval(a: tuple[float, float], b: tuple[float, float], level: float = LEVEL) -> tuple[float, float, float]:
    """Difference a − b of two accuracies (each `(accuracy, stderr)`) and its `level` normal interval."""
    diff, half = a[0] - b[0], stats.norm.ppf(0.5 + level / 2) * math.hypot(a[1], b[1])
    return diff, diff - half, diff + half


def pass_at_k(correct: list[int], n: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. 2021, averaged over problems (k <= n)."""
    if not 1 <= k <= n:
        raise StatsError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    return sum(1.0 - math.comb(n - c, k) / math.comb(n, k) for c in correct) / len(correct)


def pass_ks(n: int) -> list[int]:
    """The k reported for n samples: powers of two up to n, and n itself."""
    return sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n})
