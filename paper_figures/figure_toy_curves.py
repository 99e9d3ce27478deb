"""Toy-tree learning curves of arXiv 2509.21154 (§4.3; paper.md §10): target-path frequency per training step.

Usage:
    python paper_figures/figure_toy_curves.py --runs results/<profile>/toy/*/n*_r*/seed*.csv --n 1 --r-neg -1.0 \
        --out-prefix results/<profile>/paper_figures/figure_toy_curves_n1_r-1.0

Writes <prefix>.png and <prefix>.pdf: one panel per method present (GRPO, λ-GRPO, then the scale-matched variant),
one thin line per seed, for the runs with the given n and r_neg (other runs passed in are read and checked, then
ignored). Curves are a trailing moving average over `--smooth` steps (default 10, stated in the title);
`--smooth 1` plots the raw per-step frequency. Nothing is written if any input is bad; the script exits non-zero
with a one-line error.
"""

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table1_toy import R_DECIMALS, InputError, read_runs

from grpo_prm.config import schema_defaults
from grpo_prm.io import save_figure
from grpo_prm.weights import METHOD_LABELS, method_order


def select_runs(runs, n: int, r_neg: float) -> dict[str, list]:
    """Runs with this (n, r_neg), grouped by method in display order, each list sorted by seed."""
    chosen = [df for df in runs if df["n"].iloc[0] == n and df["r_neg"].iloc[0] == round(r_neg, R_DECIMALS)]
    if not chosen:
        raise InputError(f"no run with n={n}, r_neg={r_neg} among the {len(runs)} files given")
    methods = method_order({df["method"].iloc[0] for df in chosen})
    return {
        m: sorted((df for df in chosen if df["method"].iloc[0] == m), key=lambda df: df["seed"].iloc[0])
        for m in methods
    }


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


def figure_main(doc: str, name: str, plot, argv: list[str] | None = None) -> list[Path]:
    """The command line of a toy figure (this one and figure_toy_methods): read and check the runs, select the cell,
    `plot(by_method, n, r_neg, smooth)`, save PNG, PDF and the plotted data; one-line error and nothing written on
    bad input."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run CSVs (one per method/n/r_neg/seed)")
    parser.add_argument("--n", type=int, default=schema_defaults("toy")["figure"]["n"],
                        help="shared-prefix length n of the negative paths")
    parser.add_argument("--r-neg", type=float, default=schema_defaults("toy")["figure"]["r_neg"],
                        help="reward r_neg of the near-miss paths")
    parser.add_argument("--smooth", type=int, default=10, help="moving-average window in steps; 1 disables")
    parser.add_argument("--out-prefix", required=True, help="writes <prefix>.png and <prefix>.pdf")
    args = parser.parse_args(argv)
    try:
        if args.smooth < 1:
            raise InputError(f"--smooth must be >= 1, got {args.smooth}")
        by_method = select_runs(read_runs(args.runs), args.n, args.r_neg)
    except InputError as e:
        raise SystemExit(f"{name}: error: {e}") from None
    fig = plot(by_method, args.n, args.r_neg, args.smooth)
    try:
        return save_figure(fig, args.out_prefix)
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> list[Path]:
    return figure_main(__doc__, "figure_toy_curves", plot_curves, argv)


if __name__ == "__main__":
    for path in main():
        print(path)
