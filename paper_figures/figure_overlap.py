"""The overlap figure of §3 (overlap analysis): 2 × 3 panels, one row per group size k (larger k on top).

Usage:
    python paper_figures/figure_overlap.py --runs results/<profile>/overlap/<model>/k*/ \
        --out-prefix paper_figures/<profile>/figure_overlap

Columns: greedy validation reward; path depth; intermediate proportion (definitions in docs/method.md and
`grpo_prm.prefix_tree`). Path depth and proportion are drawn per training step (mean and median over the step's
trajectories) and cumulatively (mean over every trajectory so far), since the paper's monotone curves may be either.
Each run folder needs config.json, metrics.jsonl and the analysis overlap.{csv,json} (`python -m grpo_prm.overlap`).
Writes <prefix>.png and <prefix>.pdf, both or neither; a bad run folder is a one-line error and a non-zero exit.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from grpo_prm.cli import exit_on_error, table_parser
from grpo_prm.curves import load_validation
from grpo_prm.io import save_figure
from grpo_prm.overlap_runs import OverlapRunError, load_run

PANELS = [("path_depth", "path depth"), ("intermediate_proportion", "intermediate proportion")]


def load(folders) -> list[tuple[int, object, object]]:
    """(k, per-step table, validation records) per run, larger k first."""
    runs = [(*load_run(f)[:2], load_validation([f])) for f in folders]
    ks = [k for k, _, _ in runs]
    if len(set(ks)) != len(ks):
        raise OverlapRunError(f"two runs with the same group size in {ks}")
    return sorted(runs, key=lambda run: -run[0])


def plot(runs) -> plt.Figure:
    fig, axes = plt.subplots(len(runs), 3, figsize=(11, 2.8 * len(runs)), squeeze=False, sharex="row")
    for row, (k, steps, val) in zip(axes, runs):
        row[0].plot(val.step, val.accuracy, color="C0", marker="o", ms=3, lw=1.4)
        row[0].set(ylabel=f"k = {k}\nvalidation reward", ylim=(0, None))
        for ax, (name, label) in zip(row[1:], PANELS):
            ax.plot(steps.step, steps[f"{name}_mean"], color="C1", lw=1.2, label="mean (per step)")
            ax.plot(steps.step, steps[f"{name}_median"], color="C2", lw=1.2, label="median (per step)")
            ax.plot(steps.step, steps[f"{name}_mean_cum"], color="k", lw=1.2, ls="--", label="mean (cumulative)")
            ax.set(ylabel=label)
        row[2].set_ylim(-0.02, 1.02)
        for ax in row:
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    axes[0, 1].legend(fontsize=7, frameon=False)
    fig.suptitle("Prefix overlap of GRPO groups (paper §3): one row per group size", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    parser = table_parser(__doc__, "analysed overlap run folders", "<prefix>.png, .pdf and .data.csv")
    args = parser.parse_args(argv)
    runs = exit_on_error(lambda: load(args.runs))
    fig = plot(runs)
    save_figure(fig, args.out_prefix)


if __name__ == "__main__":
    main()
