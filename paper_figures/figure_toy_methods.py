"""Toy tree, every method in one plot (beyond arXiv 2509.21154 §4.3): target frequency over steps.

Usage:
    python paper_figures/figure_toy_methods.py --runs results/<profile>/toy/*/n*_r*/seed*.csv --n 1 --r-neg -1.0 \
        --out-prefix paper_figures/<profile>/figure_toy_methods

Writes <prefix>.png and <prefix>.pdf: for the runs with the given n and r_neg (the paper's figure cell: n = 1,
r_neg = −1.0), one line per method, the mean over seeds of each seed's `--smooth`-step trailing moving average of
the target frequency, with a band for the 95 % t-interval of that mean at each step. Nothing is written if any input
is bad; the script exits non-zero with a one-line error.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from grpo_prm.methods import METHOD_LABELS
from grpo_prm.stats import seed_band
from grpo_prm.toy_runs import figure_main


def smoothed_band(runs: list[pd.DataFrame], smooth: int) -> pd.DataFrame:
    """Per step: mean over seeds of the smoothed frequency, and the 95 % t-interval (low, high) of that mean."""
    curves = pd.concat(
        [df.set_index("step")["target_freq"].rolling(smooth, min_periods=1).mean() for df in runs],
        axis=1,
        ignore_index=True,
    )
    band = seed_band(curves.stack().groupby(level="step")).set_index("step")
    return band.rename(columns={"lo": "low", "hi": "high"})[["mean", "low", "high"]]


def plot_methods(by_method: dict[str, list], n: int, r_neg: float, smooth: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for i, (method, runs) in enumerate(by_method.items()):
        band = smoothed_band(runs, smooth)
        ax.plot(
            band.index,
            band["mean"],
            color=f"C{i}",
            lw=1.6,
            label=f"{METHOD_LABELS.get(method, method)} ({len(runs)} seeds)",
        )
        if len(runs) > 1:
            ax.fill_between(band.index, band["low"].clip(0, 1), band["high"].clip(0, 1), color=f"C{i}", alpha=0.15)
    ax.set_xlabel("training step")
    ax.set_ylabel("frequency of target path T")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    how = "raw per-step values" if smooth == 1 else f"{smooth}-step moving average"
    ax.set_title(
        f"Toy tree, n = {n}, $r_{{neg}}$ = {r_neg:.1f}: seed mean ({how}) and its 95 % t-interval", fontsize=10
    )
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> list[Path]:
    return figure_main(__doc__, plot_methods, argv)


if __name__ == "__main__":
    for path in main():
        print(path)
