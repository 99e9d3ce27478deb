"""Toy tree, every method against λ-GRPO seed by seed (beyond arXiv 2509.21154 §4.3), with its cost.

Usage:
    python paper_figures/table_toy_seeds.py --runs results/<profile>/toy/*/n*_r*/seed*.csv --last 50 \
        --out-prefix paper_figures/<profile>/table_toy_seeds

Writes <prefix>.md, <prefix>.csv and <prefix>.tex; nothing if any input is bad (one-line error, non-zero exit).

Per (n, r_neg, method), over seeds: the mean final target frequency (Table 1's metric, see table1_toy) with a 95 %
t-interval, and the paired difference method − λ-GRPO: seed s of both methods shares the target path and the initial
policy, so the difference is taken per seed and its mean gets a 95 % t-interval (only seeds both methods ran).
Cost column: extra sampled tokens per step beyond the group's own completions (the explicit PRM's continuations).
Where the runs give them: each method's learning rate (its own, from the sweep, in the default), and where the
probability goes (the policy's exact mass on T, on T's penalised subtree — the paths sharing T's first n moves — and
on the +0.7 paths, mean over seeds of each run's mean over the last steps): a method at ~0 on T has found the
deceptive +0.7 optimum if its mass is there.
Wall time is not a column: it differs from run to run, and every committed table is byte-identical when rebuilt;
`benchmarks/bench_toy_step.py` measures each method's step time as a ratio to GRPO's, side by side.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from grpo_prm.cli import exit_on_error, table_parser
from grpo_prm.config import schema_defaults
from grpo_prm.io import tex_escape, write_texts
from grpo_prm.methods import METHOD_LABELS, TEX_LABELS, method_order
from grpo_prm.stats import mean_interval, paired_interval
from grpo_prm.toy_runs import MASS_COLUMNS, ToyRunError, per_seed_frequencies, read_runs

REFERENCE = "lambda_grpo"


def run_costs(runs: list[pd.DataFrame]) -> pd.DataFrame:
    """Per run: mean extra sampled tokens per step (NaN where the run CSV predates the column)."""
    rows = []
    for df in runs:
        key = df.loc[0, ["method", "n", "r_neg", "seed"]].to_dict()
        extra = df["prm/extra_sampled_tokens"].mean() if "prm/extra_sampled_tokens" in df else float("nan")
        rows.append({**key, "extra_tokens_per_step": extra})
    return pd.DataFrame(rows)


def build_table(runs: list[pd.DataFrame], last: int = 50) -> pd.DataFrame:
    """One row per (n, r_neg, method): seeds, mean, ci_low, ci_high, diff (vs λ-GRPO), diff_low, diff_high,
    paired_seeds, extra_tokens_per_step."""
    finals = per_seed_frequencies(runs, last).merge(run_costs(runs), on=["method", "n", "r_neg", "seed"])
    rows = []
    for (n, r_neg), cell in finals.groupby(["n", "r_neg"]):
        ref = cell[cell.method == REFERENCE].set_index("seed")["final_freq"]
        for method in method_order(cell.method.unique()):
            m = cell[cell.method == method]
            mean, low, high = mean_interval(m.final_freq)
            d, d_low, d_high, pairs = paired_interval(m.set_index("seed")["final_freq"], ref)
            if method == REFERENCE:
                d, d_low, d_high, pairs = np.nan, np.nan, np.nan, 0
            row = {
                "n": n,
                "r_neg": r_neg,
                "method": method,
                "seeds": len(m),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "diff": d,
                "diff_low": d_low,
                "diff_high": d_high,
                "paired_seeds": pairs,
                "extra_tokens_per_step": m.extra_tokens_per_step.mean(),
            }
            if "learning_rate" in m:
                rates = m.learning_rate.unique()
                row["learning_rate"] = rates[0] if len(rates) == 1 else float("nan")
            row.update({col: m[col].mean() for col in MASS_COLUMNS if col in m})
            rows.append(row)
    if not rows:
        raise ToyRunError("no runs")
    table = pd.DataFrame(rows)
    return table.sort_values(["n", "r_neg"], ascending=[True, False], kind="stable", ignore_index=True)


def _num(v, fmt="{:.3f}") -> str:
    return "—" if pd.isna(v) else fmt.format(v)


def display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": table.n.astype(int).astype(str),
            "r_neg": table.r_neg.map(lambda r: f"{r:.1f}"),
            "method": table.method.map(lambda m: METHOD_LABELS.get(m, m)),
            "seeds": table.seeds.astype(str),
            "mean [95 % CI]": [
                f"{_num(a)} [{_num(b)}, {_num(c)}]" for a, b, c in zip(table["mean"], table.ci_low, table.ci_high)
            ],
            "− λ-GRPO, paired [95 % CI]": [
                "—" if pd.isna(a) else f"{a:+.3f} [{_num(b, '{:+.3f}')}, {_num(c, '{:+.3f}')}]"
                for a, b, c in zip(table["diff"], table.diff_low, table.diff_high)
            ],
            "extra tokens/step": table.extra_tokens_per_step.map(lambda v: _num(v, "{:.0f}")),
            **({"lr": table.learning_rate.map(lambda v: _num(v, "{:g}"))} if "learning_rate" in table else {}),
            **(
                {
                    "mass T / subtree / +0.7": [
                        f"{a:.2f} / {b:.2f} / {c:.2f}"
                        for a, b, c in zip(table.mass_target, table.mass_penalised, table.mass_other)
                    ]
                }
                if "mass_target" in table
                else {}
            ),
        }
    )


def caption(runs: list[pd.DataFrame], table: pd.DataFrame, last: int) -> str:
    steps = sorted({int(df["step"].max()) for df in runs})
    seeds = sorted(set(table.seeds))
    return (
        f"Toy tree (arXiv 2509.21154 §4.3), beyond the paper: frequency of the target path T over the last {last} "
        f"of {'/'.join(map(str, steps))} steps, mean over {'/'.join(map(str, seeds))} seeds per cell with a "
        f"95 % t-interval; paired difference to λ-GRPO per seed (same target and initial policy); cost: extra "
        f"sampled tokens per step (each step samples the group's own completions besides)."
    )


def render(table: pd.DataFrame, cap: str) -> dict[str, str]:
    shown = display(table)
    md = f"{cap}\n\n{shown.to_markdown(index=False, disable_numparse=True)}\n"
    tex_df = shown.copy()
    tex_df["method"] = [TEX_LABELS.get(m, tex_escape(m)) for m in shown.method]
    tex_df.columns = [
        "$n$",
        r"$r_{\mathrm{neg}}$",
        "method",
        "seeds",
        r"mean [95\,\% CI]",
        r"$-\,\lambda$-GRPO [95\,\% CI]",
        "extra tok./step",
        *(["lr"] if "lr" in shown else []),
        *(["mass T / subtree / +0.7"] if "mass T / subtree / +0.7" in shown else []),
    ]
    tex_df[r"$r_{\mathrm{neg}}$"] = "$" + shown.r_neg + "$"
    for col in tex_df.columns[4:6]:
        tex_df[col] = tex_df[col].map(lambda s: s.replace("—", "--").replace("−", "-"))
    tex = tex_df.to_latex(
        index=False,
        escape=False,
        caption=tex_escape(cap),
        label="tab:toy_seeds",
        column_format="rrlrccr" + "l" * (len(tex_df.columns) - 7),
    )
    return {".md": md, ".csv": table.to_csv(index=False, float_format="%.6g"), ".tex": tex}


def main(argv: list[str] | None = None) -> list[Path]:
    parser = table_parser(__doc__, "run CSVs (one per method/n/r_neg/seed)", "<prefix>.md, <prefix>.csv, <prefix>.tex")
    parser.add_argument(
        "--last",
        type=int,
        default=schema_defaults("toy")["last_steps"],
        help="final steps averaged per run (paper: 50)",
    )
    args = parser.parse_args(argv)

    def build() -> dict[str, str]:
        runs = read_runs(args.runs)
        table = build_table(runs, args.last)
        return render(table, caption(runs, table, args.last))

    return write_texts(args.out_prefix, exit_on_error(build))


if __name__ == "__main__":
    for path in main():
        print(path)
