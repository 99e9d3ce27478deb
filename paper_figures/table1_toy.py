"""Table 1 of arXiv 2509.21154 (§4.3): final target-path frequency on the depth-4 L/R toy tree.

Usage:
    python paper_figures/table1_toy.py --runs results/<profile>/toy/*/n*_r*/seed*.csv --last 50 \
        --paper paper_figures/reference/table1_paper.csv --out-prefix results/<profile>/paper_figures/table1_toy

Writes <prefix>.md (caption + pipe table), <prefix>.csv (numbers, one row per (n, r_neg)) and <prefix>.tex
(booktabs table). Nothing is written if any input is bad; the script exits non-zero with a one-line error.

Metric (as in the paper): per run, the mean of `target_freq` (fraction of a step's group that is the target path T)
over the last `--last` training steps; per (n, r_neg, method), the mean and sample std (ddof=1) over seeds.
Each run CSV needs the columns method, n, r_neg, seed, step, target_freq; other columns are ignored.
"""

from pathlib import Path

import pandas as pd

from grpo_prm.cli import exit_on_error, table_parser
from grpo_prm.config import schema_defaults
from grpo_prm.io import tex_escape, write_texts
from grpo_prm.methods import METHOD_LABELS, TEX_LABELS, method_order
from grpo_prm.toy_runs import R_DECIMALS, ToyRunError, per_seed_frequencies, read_runs

PAPER_COLUMNS = ("n", "r_neg", "grpo", "lambda_grpo")


# ---------------------------------------------------------------- reading


def read_paper(path: str | Path) -> pd.DataFrame:
    """Read the paper's published Table 1 (columns n, r_neg, grpo, lambda_grpo)."""
    path = Path(path)
    if not path.is_file():
        raise ToyRunError(f"{path}: no such file")
    try:
        paper = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ToyRunError(f"{path}: unreadable CSV ({type(e).__name__})") from None
    missing = [c for c in PAPER_COLUMNS if c not in paper.columns]
    if missing:
        raise ToyRunError(f"{path}: missing required column(s) {', '.join(missing)}")
    paper = paper[list(PAPER_COLUMNS)].copy()
    paper["n"] = paper["n"].astype(int)
    paper["r_neg"] = paper["r_neg"].astype(float).round(R_DECIMALS)
    return paper


# ---------------------------------------------------------------- metric


def build_table1(runs: list[pd.DataFrame], paper: pd.DataFrame, last: int = 50) -> pd.DataFrame:
    """Table 1 in numbers: per (n, r_neg) our mean/std/seed count per method, beside the paper's values.

    Args:
        runs (`list[pd.DataFrame]`): runs as returned by `read_run`.
        paper (`pd.DataFrame`): columns n, r_neg, grpo, lambda_grpo (see `read_paper`).
        last (`int`, defaults to `50`): final steps averaged per run.

    Returns:
        `pd.DataFrame` with columns n, r_neg, then `<method>_mean`, `<method>_std`, `<method>_seeds` for each method
        present, then `paper_grpo`, `paper_lambda_grpo`. Rows are the union of our and the paper's (n, r_neg), so a
        configuration not yet run still shows the paper's numbers (ours NaN).
    """
    finals = per_seed_frequencies(runs, last)
    stats = finals.groupby(["n", "r_neg", "method"])["final_freq"].agg(mean="mean", std="std", seeds="count")
    wide = stats.unstack("method")
    methods = method_order(finals["method"].unique())
    wide = wide.reindex(columns=[(s, m) for m in methods for s in ("mean", "std", "seeds")])
    wide.columns = [f"{m}_{s}" for s, m in wide.columns]
    wide = wide.reset_index()
    ref = paper.rename(columns={"grpo": "paper_grpo", "lambda_grpo": "paper_lambda_grpo"})
    table = wide.merge(ref, on=["n", "r_neg"], how="outer")
    for m in methods:
        table[f"{m}_seeds"] = table[f"{m}_seeds"].fillna(0).astype(int)
    # r_neg descending (−0.5, −1.0, −1.5) as in the paper
    return table.sort_values(["n", "r_neg"], ascending=[True, False], ignore_index=True)


# ---------------------------------------------------------------- rendering


def _cell(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as strings: n, r_neg, one `mean ± std` column per method of ours, then the paper's two columns."""
    methods = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    out = pd.DataFrame({"n": table["n"].astype(int).astype(str), "r_neg": table["r_neg"].map(lambda r: f"{r:.1f}")})
    for m in methods:
        label = METHOD_LABELS.get(m, m)
        out[f"{label} (ours)"] = [_cell(a, b) for a, b in zip(table[f"{m}_mean"], table[f"{m}_std"])]
    for m in ("grpo", "lambda_grpo"):
        out[f"{METHOD_LABELS[m]} (paper)"] = table[f"paper_{m}"].map(lambda v: "—" if pd.isna(v) else f"{v:.4f}")
    return out


def _span(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def caption(runs: list[pd.DataFrame], table: pd.DataFrame, last: int) -> str:
    """One line: the metric, the seeds and the number of training steps behind the table."""
    seeds = sorted({int(df["seed"].iloc[0]) for df in runs})
    counts = [int(v) for c in table.columns if c.endswith("_seeds") for v in table[c] if v > 0]
    steps = [int(df["step"].max()) for df in runs]
    return (
        f"Table 1 (toy tree, arXiv 2509.21154 §4.3): frequency of the target path T averaged over the last {last} "
        f"of {_span(steps)} training steps; ours: mean ± std over seeds {{{', '.join(map(str, seeds))}}} "
        f"({_span(counts)} per cell); paper: mean over 5 seeds, 250 steps."
    )


def render(table: pd.DataFrame, cap: str) -> dict[str, str]:
    """The three output texts, keyed by file suffix."""
    shown = display_table(table)
    table_md = shown.to_markdown(index=False, disable_numparse=True, colalign=("right",) * shown.shape[1])
    md = f"{cap}\n\n{table_md}\n"
    tex_df = shown.copy()
    tex_df.columns = [_tex_header(c) for c in tex_df.columns]
    tex_df = tex_df.map(lambda s: s.replace("±", r"$\pm$").replace("—", "--"))
    tex_df[tex_df.columns[1]] = "$" + shown["r_neg"] + "$"  # math minus sign
    tex = tex_df.to_latex(
        index=False,
        escape=False,
        caption=tex_escape(cap),
        label="tab:table1_toy",
        column_format="rr" + "c" * (tex_df.shape[1] - 2),
    )
    return {".md": md, ".csv": table.to_csv(index=False, float_format="%.6g"), ".tex": tex}


def _tex_header(col: str) -> str:
    if col == "r_neg":
        return r"$r_{\mathrm{neg}}$"
    for label, tex in sorted(TEX_LABELS.items(), key=lambda kv: -len(kv[0])):
        if col.startswith(label + " ("):
            return tex + col[len(label) :]
    return tex_escape(col)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> list[Path]:
    parser = table_parser(__doc__, "run CSVs (one per method/n/r_neg/seed)", "<prefix>.md, <prefix>.csv, <prefix>.tex")
    parser.add_argument(
        "--last",
        type=int,
        default=schema_defaults("toy")["last_steps"],
        help="final steps averaged per run (paper: 50)",
    )
    parser.add_argument("--paper", required=True, help="the paper's Table 1 as CSV (n, r_neg, grpo, lambda_grpo)")
    args = parser.parse_args(argv)

    def build() -> dict[str, str]:
        runs = read_runs(args.runs)
        table = build_table1(runs, read_paper(args.paper), args.last)
        return render(table, caption(runs, table, args.last))

    return write_texts(args.out_prefix, exit_on_error(build))


if __name__ == "__main__":
    for path in main():
        print(path)
