"""Finished toy runs (arXiv 2509.21154 §4.3) as the tables and figures read them.

A toy run (`python -m grpo_prm.toy`) writes one CSV per (method, n, r_neg, seed), one row per training step. This
module reads and checks those files (`read_run`, `read_runs`), computes Table 1's metric (`final_frequency`,
`per_seed_frequencies`: the mean target-path frequency over a run's last steps) and picks one (n, r_neg) cell for
a figure (`select_runs`), and gives the toy figures their one command line (`figure_main`). `table1_toy.py`,
`table_toy_seeds.py` and the two toy figures in `paper_figures/` use it.
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from grpo_prm.cli import InputError, exit_on_error, table_parser
from grpo_prm.config import schema_defaults
from grpo_prm.io import save_figure
from grpo_prm.methods import method_order

REQUIRED_COLUMNS = ("method", "n", "r_neg", "seed", "step", "target_freq")
COST_COLUMNS = ("prm/extra_sampled_tokens", "wall_s")  # kept when present (runs before these columns lack them)
# grpo_prm.toy_batched's: the run's learning rate, and the probability its policy puts on T, on T's penalised
# subtree (paths sharing T's first n moves) and on the rest (the +0.7 paths), per step
MASS_COLUMNS = ("mass_target", "mass_penalised", "mass_other")
OPTIONAL_COLUMNS = (*COST_COLUMNS, "learning_rate", *MASS_COLUMNS)
R_DECIMALS = 6  # r_neg is a float key: round before grouping/merging so -1.0 from two files compares equal


class ToyRunError(InputError):
    """A bad toy run file or selection; the message names it."""


def read_run(path: str | Path) -> pd.DataFrame:
    """Read one run CSV and check it holds exactly one (method, n, r_neg, seed) with unique, numeric steps.

    Args:
        path (`str` or `Path`): a file written by one toy run, one row per training step.

    Returns:
        `pd.DataFrame` with the columns of `REQUIRED_COLUMNS` (others dropped), sorted by step.
    """
    path = Path(path)
    if not path.is_file():
        raise ToyRunError(f"{path}: no such file")
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ToyRunError(f"{path}: unreadable CSV ({type(e).__name__})") from e
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ToyRunError(f"{path}: missing required column(s) {', '.join(missing)}")
    df = df[list(REQUIRED_COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in df.columns]].copy()
    if df.empty:
        raise ToyRunError(f"{path}: no rows")
    for col in ("n", "r_neg", "seed", "step", "target_freq"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
        if df[col].isna().any():
            raise ToyRunError(f"{path}: column {col} has missing or non-numeric values")
    if not df["target_freq"].between(0.0, 1.0).all():
        raise ToyRunError(f"{path}: target_freq outside [0, 1]")
    df["method"] = df["method"].astype(str)
    df["n"] = df["n"].astype(int)
    df["seed"] = df["seed"].astype(int)
    df["step"] = df["step"].astype(int)
    df["r_neg"] = df["r_neg"].round(R_DECIMALS)
    for col in ("method", "n", "r_neg", "seed", *(["learning_rate"] if "learning_rate" in df else [])):
        if df[col].nunique() != 1:
            raise ToyRunError(f"{path}: column {col} takes several values; one run per file expected")
    if df["step"].duplicated().any():
        raise ToyRunError(f"{path}: duplicated step values")
    df = df.sort_values("step", ignore_index=True)
    df.attrs["path"] = str(path)  # lets later errors name the file
    return df


def read_runs(paths: list[str | Path]) -> list[pd.DataFrame]:
    """Read every run file (see `read_run`) and reject two files holding the same (method, n, r_neg, seed) (and
    learning rate, where the runs give it)."""
    runs, seen = [], {}
    for p in paths:
        df = read_run(p)
        rate = ["learning_rate"] if "learning_rate" in df else []
        key = tuple(df.loc[0, ["method", "n", "r_neg", "seed", *rate]])
        if key in seen:
            raise ToyRunError(f"{p}: same (method, n, r_neg, seed[, learning_rate]) = {key} as {seen[key]}")
        seen[key] = p
        runs.append(df)
    return runs


def final_frequency(df: pd.DataFrame, last: int = 50) -> float:
    """Mean of `target_freq` over the run's last `last` steps (the paper's Table 1 metric, per seed).

    Args:
        df (`pd.DataFrame`): one run, with columns `step` and `target_freq`.
        last (`int`, defaults to `50`): how many final steps to average.

    Returns:
        `float`: the mean frequency of the target path T over those steps.
    """
    if last < 1:
        raise ToyRunError(f"--last must be >= 1, got {last}")
    if len(df) < last:
        label = df.attrs.get("path") or "/".join(
            f"{c}={df[c].iloc[0]}" for c in ("method", "n", "r_neg", "seed") if c in df
        )
        raise ToyRunError(f"{label}: only {len(df)} steps, fewer than --last {last}")
    return float(df.sort_values("step")["target_freq"].iloc[-last:].mean())


def per_seed_frequencies(runs: list[pd.DataFrame], last: int = 50) -> pd.DataFrame:
    """One row per run: method, n, r_neg, seed, steps (max step), final_freq (see `final_frequency`); where the runs
    give them, learning_rate and the final probability mass (MASS_COLUMNS, mean over the same last steps)."""
    rows = []
    for df in runs:
        row = {
            **df.loc[0, ["method", "n", "r_neg", "seed"]].to_dict(),
            "steps": int(df["step"].max()),
            "final_freq": final_frequency(df, last),
        }
        if "learning_rate" in df:
            row["learning_rate"] = float(df["learning_rate"].iloc[0])
        for col in MASS_COLUMNS:
            if col in df:
                row[col] = float(df.sort_values("step")[col].iloc[-last:].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def learning_rate_sweep(runs: list[pd.DataFrame], last: int = 50) -> pd.DataFrame:
    """Per (method, learning_rate) of a sweep: the mean final target frequency over its cells and tuning seeds, with
    a 95 % t-interval over seeds (each seed's mean over the cells), and `selected`: the rate each method reports at,
    the one with the highest mean (the smaller rate on a tie)."""
    from grpo_prm.stats import mean_interval  # the repository's Student-t interval

    finals = per_seed_frequencies(runs, last)
    if "learning_rate" not in finals:
        raise ToyRunError("sweep runs carry no learning_rate column (written by grpo_prm.toy_batched or grpo_prm.toy)")
    rows = []
    for (method, lr), group in finals.groupby(["method", "learning_rate"]):
        per_seed = group.groupby("seed")["final_freq"].mean()
        mean, low, high = mean_interval(per_seed)
        k = len(per_seed)
        cells = group[["n", "r_neg"]].drop_duplicates().shape[0]
        rows.append(
            {
                "method": method,
                "learning_rate": lr,
                "seeds": k,
                "cells": cells,
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
            }
        )
    table = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(method_order(table.method.unique()))}
    table = table.sort_values(
        ["method", "learning_rate"], key=lambda c: c.map(order) if c.name == "method" else c, ignore_index=True
    )
    best = table.sort_values(["mean", "learning_rate"], ascending=[False, True]).groupby("method").head(1).index
    table["selected"] = table.index.isin(best)
    return table


def selected_learning_rate(path: str | Path, method: str) -> float:
    """The learning rate `learning_rate_sweep` selected for `method`, read from its CSV (table_toy_lr.csv)."""
    table = pd.read_csv(path)
    chosen = table[(table.method == method) & table.selected]
    if len(chosen) != 1:
        raise ToyRunError(f"{path}: no selected learning rate for method {method!r}")
    return float(chosen.learning_rate.iloc[0])


def select_runs(runs: list[pd.DataFrame], n: int, r_neg: float) -> dict[str, list]:
    """Runs with this (n, r_neg), grouped by method in display order, each list sorted by seed."""
    chosen = [df for df in runs if df["n"].iloc[0] == n and df["r_neg"].iloc[0] == round(r_neg, R_DECIMALS)]
    if not chosen:
        raise ToyRunError(f"no run with n={n}, r_neg={r_neg} among the {len(runs)} files given")
    methods = method_order({df["method"].iloc[0] for df in chosen})
    return {
        m: sorted((df for df in chosen if df["method"].iloc[0] == m), key=lambda df: df["seed"].iloc[0])
        for m in methods
    }


def figure_main(doc: str, plot: Callable, argv: list[str] | None = None) -> list[Path]:
    """The command line of a toy figure (`paper_figures/figure_toy_*.py`): read and check the runs, select the cell,
    `plot(by_method, n, r_neg, smooth)`, save PNG, PDF and the plotted data; one-line error and nothing written on
    bad input."""
    import matplotlib.pyplot as plt  # only the figure scripts pay for it (the caller has chosen the backend)

    parser = table_parser(doc, "run CSVs (one per method/n/r_neg/seed)", "<prefix>.png and <prefix>.pdf")
    cell = schema_defaults("toy")["figure"]  # the paper's figure cell
    parser.add_argument("--n", type=int, default=cell["n"], help="shared-prefix length n of the negative paths")
    parser.add_argument("--r-neg", type=float, default=cell["r_neg"], help="reward r_neg of the near-miss paths")
    parser.add_argument("--smooth", type=int, default=10, help="moving-average window in steps; 1 disables")
    args = parser.parse_args(argv)

    def select() -> dict[str, list]:
        if args.smooth < 1:
            raise ToyRunError(f"--smooth must be >= 1, got {args.smooth}")
        return select_runs(read_runs(args.runs), args.n, args.r_neg)

    fig = plot(exit_on_error(select), args.n, args.r_neg, args.smooth)
    try:
        return save_figure(fig, args.out_prefix)
    finally:
        plt.close(fig)
