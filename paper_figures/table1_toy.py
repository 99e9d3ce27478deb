"""Table 1 of arXiv 2509.21154 (§4.3; paper.md §10): final target-path frequency on the depth-4 L/R toy tree.

Usage:
    python paper_figures/table1_toy.py --runs results/<profile>/toy/*/n*_r*/seed*.csv --last 50 \
        --paper paper_figures/reference/table1_paper.csv --out-prefix results/<profile>/paper_figures/table1_toy

Writes <prefix>.md (caption + pipe table), <prefix>.csv (numbers, one row per (n, r_neg)) and <prefix>.tex
(booktabs table). Nothing is written if any input is bad; the script exits non-zero with a one-line error.

Metric (as in the paper): per run, the mean of `target_freq` (fraction of a step's group that is the target path T)
over the last `--last` training steps; per (n, r_neg, method), the mean and sample std (ddof=1) over seeds.
Each run CSV needs the columns method, n, r_neg, seed, step, target_freq; other columns are ignored.
"""

import argparse
from functools import partial
from pathlib import Path

import pandas as pd

from grpo_prm.config import schema_defaults
from grpo_prm.io import write_atomic
from grpo_prm.weights import METHOD_LABELS, method_order

REQUIRED_COLUMNS = ("method", "n", "r_neg", "seed", "step", "target_freq")
COST_COLUMNS = ("prm/extra_sampled_tokens", "wall_s")  # kept when present (runs before these columns lack them)
PAPER_COLUMNS = ("n", "r_neg", "grpo", "lambda_grpo")
# Known methods in display order; any other method name is shown after these, verbatim.
TEX_LABELS = {"GRPO": "GRPO", "λ-GRPO": r"$\lambda$-GRPO", "λ-GRPO (scale-matched)": r"$\lambda$-GRPO (scale-m.)",
              "explicit PRM (MC)": "PRM (MC)", "explicit PRM (exact)": "PRM (exact)"}
R_DECIMALS = 6  # r_neg is a float key: round before grouping/merging so -1.0 from two files compares equal


class InputError(Exception):
    """A bad input file; main() turns it into a one-line error and a non-zero exit."""


# ---------------------------------------------------------------- reading


def read_run(path: str | Path) -> pd.DataFrame:
    """Read one run CSV and check it holds exactly one (method, n, r_neg, seed) with unique, numeric steps.

    Args:
        path (`str` or `Path`): a file written by one toy run, one row per training step.

    Returns:
        `pd.DataFrame` with the columns of `REQUIRED_COLUMNS` (others dropped), sorted by step.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable CSV ({type(e).__name__})") from e
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}")
    df = df[list(REQUIRED_COLUMNS) + [c for c in COST_COLUMNS if c in df.columns]].copy()
    if df.empty:
        raise InputError(f"{path}: no rows")
    for col in ("n", "r_neg", "seed", "step", "target_freq"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
        if df[col].isna().any():
            raise InputError(f"{path}: column {col} has missing or non-numeric values")
    if not df["target_freq"].between(0.0, 1.0).all():
        raise InputError(f"{path}: target_freq outside [0, 1]")
    df["method"] = df["method"].astype(str)
    df["n"] = df["n"].astype(int)
    df["seed"] = df["seed"].astype(int)
    df["step"] = df["step"].astype(int)
    df["r_neg"] = df["r_neg"].round(R_DECIMALS)
    for col in ("method", "n", "r_neg", "seed"):
        if df[col].nunique() != 1:
            raise InputError(f"{path}: column {col} takes several values; one run per file expected")
    if df["step"].duplicated().any():
        raise InputError(f"{path}: duplicated step values")
    df = df.sort_values("step", ignore_index=True)
    df.attrs["path"] = str(path)  # lets later errors name the file
    return df


def read_runs(paths: list[str | Path]) -> list[pd.DataFrame]:
    """Read every run file (see `read_run`) and reject two files holding the same (method, n, r_neg, seed)."""
    runs, seen = [], {}
    for p in paths:
        df = read_run(p)
        key = tuple(df.loc[0, ["method", "n", "r_neg", "seed"]])
        if key in seen:
            raise InputError(f"{p}: same (method, n, r_neg, seed) = {key} as {seen[key]}")
        seen[key] = p
        runs.append(df)
    return runs


def read_paper(path: str | Path) -> pd.DataFrame:
    """Read the paper's published Table 1 (columns n, r_neg, grpo, lambda_grpo)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    paper = pd.read_csv(path)
    missing = [c for c in PAPER_COLUMNS if c not in paper.columns]
    if missing:
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}")
    paper = paper[list(PAPER_COLUMNS)].copy()
    paper["n"] = paper["n"].astype(int)
    paper["r_neg"] = paper["r_neg"].astype(float).round(R_DECIMALS)
    return paper


# ---------------------------------------------------------------- metric


def final_frequency(df: pd.DataFrame, last: int = 50) -> float:
    """Mean of `target_freq` over the run's last `last` steps (the paper's Table 1 metric, per seed).

    Args:
        df (`pd.DataFrame`): one run, with columns `step` and `target_freq`.
        last (`int`, defaults to `50`): how many final steps to average.

    Returns:
        `float`: the mean frequency of the target path T over those steps.
    """
    if last < 1:
        raise InputError(f"--last must be >= 1, got {last}")
    if len(df) < last:
        label = df.attrs.get("path") or "/".join(
            f"{c}={df[c].iloc[0]}" for c in ("method", "n", "r_neg", "seed") if c in df
        )
        raise InputError(f"{label}: only {len(df)} steps, fewer than --last {last}")
    return float(df.sort_values("step")["target_freq"].iloc[-last:].mean())


def per_seed_frequencies(runs: list[pd.DataFrame], last: int = 50) -> pd.DataFrame:
    """One row per run: method, n, r_neg, seed, steps (max step), final_freq (see `final_frequency`)."""
    rows = [
        {
            **df.loc[0, ["method", "n", "r_neg", "seed"]].to_dict(),
            "steps": int(df["step"].max()),
            "final_freq": final_frequency(df, last),
        }
        for df in runs
    ]
    return pd.DataFrame(rows)


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
        caption=_tex_escape(cap),
        label="tab:table1_toy",
        column_format="rr" + "c" * (tex_df.shape[1] - 2),
    )
    return {".md": md, ".csv": table.to_csv(index=False, float_format="%.6g"), ".tex": tex}


def _tex_escape(s: str) -> str:
    for a, b in (("{", r"\{"), ("}", r"\}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    for a, b in (("λ", r"$\lambda$"), ("±", r"$\pm$"), ("§", r"\S "), ("–", "--"), ("—", "--")):
        s = s.replace(a, b)
    return s


def _tex_header(col: str) -> str:
    if col == "r_neg":
        return r"$r_{\mathrm{neg}}$"
    for label, tex in sorted(TEX_LABELS.items(), key=lambda kv: -len(kv[0])):
        if col.startswith(label + " ("):
            return tex + col[len(label) :]
    return _tex_escape(col)


def _write_text(text: str, path: str) -> None:
    Path(path).write_text(text, encoding="utf-8")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run CSVs (one per method/n/r_neg/seed)")
    parser.add_argument("--last", type=int, default=schema_defaults("toy")["last_steps"],
                        help="final steps averaged per run (paper: 50)")
    parser.add_argument("--paper", required=True, help="the paper's Table 1 as CSV (n, r_neg, grpo, lambda_grpo)")
    parser.add_argument("--out-prefix", required=True, help="writes <prefix>.md, <prefix>.csv, <prefix>.tex")
    args = parser.parse_args(argv)

    try:
        runs = read_runs(args.runs)
        paper = read_paper(args.paper)
        table = build_table1(runs, paper, args.last)
        texts = render(table, caption(runs, table, args.last))
    except InputError as e:
        raise SystemExit(f"table1_toy: error: {e}") from None
    return write_atomic(args.out_prefix, {suffix: partial(_write_text, text) for suffix, text in texts.items()})


if __name__ == "__main__":
    for path in main():
        print(path)
