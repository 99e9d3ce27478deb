"""Validation-accuracy curves of the math runs (paper §5): one panel, every method's seed mean and confidence band.

Usage:
    python paper_figures/math_curves.py --runs results/<profile>/math/<model>/beta<β>/*/seed*/config.json \
        --interval 0.95 --out-prefix paper_figures/<profile>/math_curves_<model>_beta<β>

Writes <prefix>.png and <prefix>.pdf (both or neither); the runs must share one (model, β). A bad run folder is a
one-line error and a non-zero exit.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from grpo_prm.cli import exit_on_error, open_fraction, table_parser
from grpo_prm.config import schema_defaults
from grpo_prm.curves import MathRunError, load_validation, seed_band
from grpo_prm.io import save_figure
from grpo_prm.methods import METHOD_LABELS, method_order


def plot(band, level: float) -> plt.Figure:
    ((model, beta),) = band[["model", "beta"]].drop_duplicates().itertuples(index=False, name=None)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, (method, m) in enumerate(band.groupby("method", sort=False)):
        seeds = int(m.n.max())
        ax.plot(m.step, m["mean"], color=f"C{i}", lw=1.6, label=f"{METHOD_LABELS.get(method, method)} ({seeds} seeds)")
        ax.fill_between(m.step, m.lo, m.hi, color=f"C{i}", alpha=0.18, lw=0)
    ax.set(xlabel="training step", ylabel="validation accuracy (greedy)", ylim=(0, None))
    ax.set_title(f"{model}, β = {beta:g}: mean over seeds, {level:.0%} t-interval", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def load_one_cell(paths):
    """Validation records of runs that share one (model, β)."""
    df = load_validation(paths)
    if len(df[["model", "beta"]].drop_duplicates()) != 1:
        raise MathRunError("the runs span several (model, beta); give one pair per figure")
    return df


def main(argv=None) -> None:
    parser = table_parser(__doc__, "finished run folders or their config.json", "<prefix>.png, .pdf and .data.csv")
    parser.add_argument(
        "--interval",
        type=open_fraction,
        default=schema_defaults("math")["figure"]["interval"],
        help="confidence level of the band",
    )
    args = parser.parse_args(argv)
    df = exit_on_error(lambda: load_one_cell(args.runs))
    order = method_order(df.method.unique())
    band = seed_band(df, args.interval)
    band = band.set_index("method").loc[order].reset_index()
    fig = plot(band, args.interval)
    save_figure(fig, args.out_prefix)


if __name__ == "__main__":
    main()
