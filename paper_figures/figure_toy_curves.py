"""Toy-tree learning curves of arXiv 2509.21154 (§4.3): target-path frequency per training step.

Usage:
    python paper_figures/figure_toy_curves.py --runs results/<profile>/toy/*/n*_r*/seed*.csv --n 1 --r-neg -1.0 \
        --out-prefix results/<profile>/paper_figures/figure_toy_curves_n1_r-1.0

Writes <prefix>.png and <prefix>.pdf: one panel per method present (GRPO, λ-GRPO, then the scale-matched variant),
one thin line per seed, for the runs with the given n and r_neg (other runs passed in are read and checked, then
ignored). Curves are a trailing moving average over `--smooth` steps (default 10, stated in the title);
`--smooth 1` plots the raw per-step frequency. Nothing is written if any input is bad; the script exits non-zero
with a one-line error.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from grpo_prm.methods import METHOD_LABELS
from grpo_prm.toy_runs import figure_main


def plot_curves(by_method: dict[str, list], n: int, r_neg: float, smooth: int = 10) -> plt.Figure:
    """One panel per method, one line per seed; y is the (smoothed) fraction of each step's group equal to T."""
    fig, axes = plt.subplots(1, len(by_method), figsize=(4.0 * len(by_method), 3.4), sharey=True, squeeze=False)
    # one colour per seed across panels, so seed k is the same colour under every method
    seeds = sorted({int(df["seed"].iloc[0]) for runs in by_method.values() for df in runs})
    color = {s: f"C{i % 10}" for i, s in enumerate(seeds)}
    last_step = max(int(df["step"].max()) for runs in by_method.values() for df in runs)
    for ax, (method, runs) in zip(axes[0], by_method.items()):
        for df in runs:
            seed = int(df["seed"].iloc[0])
            y = df["target_freq"].rolling(smooth, min_periods=1).mean()
            ax.plot(df["step"], y, lw=1.0, alpha=0.85, color=color[seed], label=f"seed {seed}")
        ax.set_title(f"{METHOD_LABELS.get(method, method)} ({len(runs)} seeds)", fontsize=11)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
        ax.set_xlim(0, last_step)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("frequency of target path T")
    handles = [plt.Line2D([], [], color=color[s], lw=1.0, label=f"seed {s}") for s in seeds]
    axes[0][0].legend(handles=handles, fontsize=7, loc="upper right", frameon=False)
    how = "raw per-step values" if smooth == 1 else f"{smooth}-step trailing moving average"
    fig.suptitle(f"Toy tree, n = {n}, $r_{{neg}}$ = {r_neg:.1f}: target-path frequency ({how})", fontsize=11)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> list[Path]:
    return figure_main(__doc__, plot_curves, argv)


if __name__ == "__main__":
    for path in main():
        print(path)
