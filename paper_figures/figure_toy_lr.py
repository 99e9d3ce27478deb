"""Toy tree, learning-rate sweep per method (beyond arXiv 2509.21154 §4.3): final target frequency against rate.

Usage:
    python paper_figures/figure_toy_lr.py --runs results/<profile>/toy_sweep/*/lr*/n*_r*/seed*.csv --last 50 \
        --out-prefix paper_figures/<profile>/figure_toy_lr \
        --table-prefix paper_figures/<profile>/table_toy_lr

Writes <prefix>.png, <prefix>.pdf, <prefix>.data.csv and the table <table-prefix>.csv / .md. Per method and rate:
the mean over tuning seeds (each seed's mean over the cells) of the final target frequency (Table 1's metric), with
its 95 % t-interval as a band; the rate each method reports at (`selected`, the highest mean:
`grpo_prm.toy_runs.learning_rate_sweep`) is marked. train_toy reads the selection from the table's CSV. Nothing is
written if any input is bad (one-line error, non-zero exit).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from grpo_prm.cli import exit_on_error, table_parser
from grpo_prm.config import schema_defaults
from grpo_prm.io import save_figure, save_table
from grpo_prm.methods import METHOD_LABELS
from grpo_prm.toy_runs import learning_rate_sweep, read_runs


def plot(table) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for i, (method, rows) in enumerate(table.groupby("method", sort=False)):
        label = f"{METHOD_LABELS.get(method, method)} ({rows.seeds.max()} seeds × {rows.cells.max()} cells)"
        ax.plot(rows.learning_rate, rows["mean"], "o-", color=f"C{i}", lw=1.4, ms=3, label=label)
        ax.fill_between(rows.learning_rate, rows.ci_low.clip(0, 1), rows.ci_high.clip(0, 1), color=f"C{i}", alpha=0.15)
        best = rows[rows.selected]
        ax.plot(best.learning_rate, best["mean"], "*", color=f"C{i}", ms=12)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (Adam, constant)")
    ax.set_ylabel("final frequency of target path T")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title("Toy tree, tuning seeds: mean over seeds and cells, 95 % t-interval; ★ the rate reported", fontsize=9)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> list[Path]:
    parser = table_parser(__doc__, "sweep run CSVs", "<prefix>.png, <prefix>.pdf, <prefix>.data.csv")
    parser.add_argument(
        "--last",
        type=int,
        default=schema_defaults("toy")["last_steps"],
        help="final steps averaged per run (paper: 50)",
    )
    parser.add_argument("--table-prefix", required=True, help="<prefix>.csv and <prefix>.md of the selection table")
    args = parser.parse_args(argv)
    table = exit_on_error(lambda: learning_rate_sweep(read_runs(args.runs), args.last))
    fig = plot(table)
    try:
        paths = save_figure(fig, args.out_prefix)
    finally:
        plt.close(fig)
    shown = table.assign(
        method=table.method.map(lambda m: METHOD_LABELS.get(m, m)), selected=table.selected.map({True: "★", False: ""})
    )
    caption = (
        "Toy tree, learning-rate sweep on the tuning seeds (disjoint from the reporting seeds): final target "
        "frequency, mean over seeds (each the mean over the cells) with a 95 % t-interval; ★ the rate each "
        "method's rows of table_toy_seeds use (the highest mean)."
    )
    markdown = f"{caption}\n\n{shown.to_markdown(index=False, floatfmt='.3g')}\n"
    return [*paths, *save_table(table, args.table_prefix, markdown)]


if __name__ == "__main__":
    for path in main():
        print(path)
