"""Table 2 of arXiv 2509.21154 (§5; paper.md §12): downstream accuracy on five maths benchmarks, with its figure.

Usage:
    python paper_figures/table2.py --results results/<profile>/eval/*.json \
        --paper paper_figures/reference/table2_paper.csv --out-prefix results/<profile>/paper_figures/table2

Inputs are the `<out>.json` files of `python -m grpo_prm.evaluate`, each with an `identity` {model, beta, method,
seed} (method `base` has no beta) and per benchmark `scores` (0/1 per problem, in problem order). Writes
<prefix>.md (tables and counts), <prefix>.csv (one row per source × model × β × method), <prefix>.tex (booktabs)
and <prefix>.{png,pdf} (a compact bar chart), all or nothing; bad input exits non-zero with a one-line error.

Metric: per cell, accuracy averaged over seeds. Its ± is the standard error over problems of the seed-averaged
per-problem score, std(ddof=1)/sqrt(n); with one seed this is the paper's (and lm-eval's) sqrt(p(1-p)/(n-1)).
Avg is the unweighted mean of the five benchmarks. Marking (the paper's colours of λ-GRPO cells, strict
inequality): green beats GRPO (same model and β) and Base, yellow only GRPO, orange only Base, red neither.
"""

import argparse
import json
import math
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from grpo_prm.io import figure_savefig, write_atomic
from grpo_prm.weights import METHOD_LABELS

BENCHMARKS = {
    "aime24": "AIME24",
    "math500": "MATH-500",
    "amc23": "AMC23",
    "minerva_math": "Minerva",
    "olympiadbench": "OB",
}
# The embedded default evaluates on its offline held-out test set with the same mechanism; it gets its own column and
# stays out of Avg. (the paper's five-benchmark mean).
COLUMNS = BENCHMARKS | {"offline": "Offline test"}
METHODS = {"base": "Base"} | METHOD_LABELS
MODELS = {"qwen": "Qwen", "llama": "Llama"}  # the paper's two; others are shown by their identity name
KEYS = ["model", "beta", "method"]
COLOURS = {(True, True): "green", (True, False): "yellow", (False, True): "orange", (False, False): "red"}


class InputError(Exception):
    """A bad input file; main() turns it into a one-line error and a non-zero exit."""


# ---------------------------------------------------------------- reading


def read_result(path: str | Path) -> dict:
    """One evaluation JSON as `{model, beta, method, seed, scores: {benchmark: [0/1, ...]}}`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not JSON ({type(e).__name__})") from None
    identity = data.get("identity") or {}
    missing = [k for k in ("model", "method") if k not in identity]
    missing += ["beta"] if identity.get("method") != "base" and identity.get("beta") is None else []
    if missing:
        raise InputError(f"{path}: identity lacks {', '.join(missing)}")
    scores = {b: t.get("scores") for b, t in (data.get("tasks") or {}).items() if b in COLUMNS}
    bad = [b for b, s in scores.items() if not s or any(v not in (0, 1) for v in s)]
    if bad or not scores:
        raise InputError(
            f"{path}: no Table-2 benchmark (or offline test set) with per-problem scores"
            if not scores
            else f"{path}: bad scores for {bad[0]}"
        )
    beta = None if identity["method"] == "base" else float(identity["beta"])
    return {"model": str(identity["model"]), "beta": beta, "method": str(identity["method"]),
            "seed": int(identity.get("seed", 0)), "scores": scores, "path": str(path)}  # fmt: skip


def read_paper(path: str | Path) -> pd.DataFrame:
    """The paper's Table 2 (model, beta, method, per benchmark value and stderr, avg)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    paper = pd.read_csv(path)
    needed = KEYS + [c for b in BENCHMARKS for c in (b, f"{b}_stderr")] + ["avg"]
    missing = [c for c in needed if c not in paper.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    return paper.astype({"model": str, "method": str})


# ---------------------------------------------------------------- metric


def seed_cell(scores: list[list[int]]) -> tuple[float, float]:
    """Accuracy and stderr of one benchmark cell from each seed's per-problem 0/1 scores (same problems)."""
    per_problem = pd.DataFrame(scores).mean(axis=0)  # seed mean per problem, (n,)
    n = len(per_problem)
    stderr = per_problem.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
    return float(per_problem.mean()), float(stderr)


def build_ours(results: list[dict]) -> pd.DataFrame:
    """One row per (model, beta, method): `<bench>`, `<bench>_stderr`, `avg` and `seeds`, averaged over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["model"], r["beta"], r["method"]), []).append(r)
    rows = []
    for key, runs in groups.items():
        seeds = [r["seed"] for r in runs]
        if len(set(seeds)) < len(seeds):
            raise InputError(f"{runs[-1]['path']}: same (model, beta, method, seed) as another result")
        row = dict(zip(KEYS, key)) | {"seeds": len(runs)}
        for b in COLUMNS:
            per_seed = [r["scores"][b] for r in runs if b in r["scores"]]
            if per_seed and len(per_seed) < len(runs):
                raise InputError(f"{key}: {b} is missing for some seeds")
            if len({len(s) for s in per_seed}) > 1:
                raise InputError(f"{key}: {b} has a different number of problems across seeds")
            row[b], row[f"{b}_stderr"] = seed_cell(per_seed) if per_seed else (float("nan"), float("nan"))
        rows.append(row)
    ours = pd.DataFrame(rows)
    ours["avg"] = ours[list(BENCHMARKS)].mean(axis=1, skipna=False)  # unweighted; NaN unless all five present
    return ours


def _sort_key(df: pd.DataFrame) -> pd.DataFrame:
    """Paper order: Qwen, Llama, then other models; Base first; β ascending; GRPO before λ-GRPO."""
    model_rank = {m: i for i, m in enumerate(MODELS)}
    method_rank = {m: i for i, m in enumerate(METHODS)}
    return df.assign(
        _m=df["model"].map(lambda m: (model_rank.get(m, len(MODELS)), m)),
        _b=df["beta"].fillna(-1.0),
        _x=df["method"].map(lambda m: (method_rank.get(m, len(METHODS)), m)),
    )


def build_table2(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Ours and the paper's rows, long (column `source`), with each λ row's marking per benchmark and Avg."""
    table = pd.concat([ours.assign(source="ours"), paper.assign(source="paper", seeds=pd.NA)], ignore_index=True)
    table = _sort_key(table).sort_values(["_m", "_b", "_x", "source"]).drop(columns=["_m", "_b", "_x"])
    table = table.reset_index(drop=True)
    for col in [*COLUMNS, "avg"]:
        table[f"{col}_mark"] = [marking(table, i, col) for i in table.index]
    return table


def _reference(table: pd.DataFrame, row: pd.Series, method: str, col: str) -> float:
    """The value of `col` in the same source and model's `method` row (GRPO: same β too), or NaN."""
    same = (table["source"] == row["source"]) & (table["model"] == row["model"]) & (table["method"] == method)
    if method != "base":
        same &= table["beta"] == row["beta"]
    values = table.loc[same, col]
    return float(values.iloc[0]) if len(values) else float("nan")


def marking(table: pd.DataFrame, i: int, col: str) -> str:
    """The paper's colour of a λ-GRPO cell (green/yellow/orange/red), or "" for other rows or missing values."""
    row = table.loc[i]
    if not str(row["method"]).startswith("lambda") or pd.isna(row[col]):
        return ""
    grpo, base = _reference(table, row, "grpo", col), _reference(table, row, "base", col)
    if pd.isna(grpo) or pd.isna(base):
        return ""
    return COLOURS[(row[col] > grpo, row[col] > base)]


def differences(table: pd.DataFrame) -> pd.DataFrame:
    """λ − GRPO and λ − Base per λ row, benchmark and Avg."""
    rows = []
    for i in table.index[table["method"].str.startswith("lambda")]:
        row = table.loc[i]
        for ref in ("grpo", "base"):
            diff = {c: row[c] - _reference(table, row, ref, c) for c in [*COLUMNS, "avg"]}
            rows.append({"source": row["source"], **row[KEYS].to_dict(), "vs": METHODS[ref]} | diff)
    return pd.DataFrame(rows, columns=["source", *KEYS, "vs", *COLUMNS, "avg"])


def win_counts(table: pd.DataFrame, source: str, method: str = "lambda_grpo") -> dict:
    """Benchmark cells (not Avg) where `method` beats / ties / loses to GRPO and to Base, for one source."""
    marks = table[(table["source"] == source) & (table["method"] == method)]
    counts = {}
    for ref in ("grpo", "base"):
        diffs = [
            marks.loc[i, b] - _reference(table, marks.loc[i], ref, b)
            for i in marks.index
            for b in COLUMNS
            if not pd.isna(marks.loc[i, b] - _reference(table, marks.loc[i], ref, b))
        ]
        counts[ref] = {"wins": sum(d > 0 for d in diffs), "ties": sum(d == 0 for d in diffs), "cells": len(diffs)}
        counts[ref]["losses"] = counts[ref]["cells"] - counts[ref]["wins"] - counts[ref]["ties"]
    return counts


# ---------------------------------------------------------------- rendering


def _label(row) -> list[str]:
    beta = "—" if pd.isna(row["beta"]) else f"{row['beta']:g}"
    return [MODELS.get(row["model"], row["model"]), beta, METHODS.get(row["method"], row["method"]), row["source"]]


def _cell(value, stderr, mark="") -> str:
    if pd.isna(value):
        return "—"
    text = f"{value:.4f}" if pd.isna(stderr) else f"{value:.4f} ± {stderr:.4f}"
    return f"{text} ({mark})" if mark else text


def shown(table: pd.DataFrame) -> list[str]:
    """The benchmark columns with at least one value (the offline set only in the embedded default)."""
    return [b for b in COLUMNS if table[b].notna().any()]


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as strings: Model, β, Version, Source, one `acc ± se (colour)` column per benchmark, Avg."""
    rows, cols = [], shown(table)
    for _, r in table.iterrows():
        cells = [_cell(r[b], r[f"{b}_stderr"], r[f"{b}_mark"]) for b in cols]
        rows.append(_label(r) + cells + [_cell(r["avg"], float("nan"), r["avg_mark"])])
    return pd.DataFrame(rows, columns=["Model", "β", "Version", "Source", *(COLUMNS[b] for b in cols), "Avg."])


def display_differences(diff: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    rows = [
        _label(r)[:3] + [r["source"], f"λ − {r['vs']}"] + ["—" if pd.isna(r[c]) else f"{r[c]:+.4f}" for c in [*cols, "avg"]]
        for _, r in diff.iterrows()
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["Model", "β", "Version", "Source", "Difference", *(COLUMNS[b] for b in cols), "Avg."])


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else ("es" if word.endswith("s") else "s"))


def counts_text(table: pd.DataFrame) -> list[str]:
    lines = []
    for source in ("ours", "paper"):
        c = win_counts(table, source)
        if c["grpo"]["cells"] or c["base"]["cells"]:
            g, b = c["grpo"], c["base"]
            lines.append(
                f"- {source}: λ-GRPO beats GRPO in {g['wins']} of {g['cells']} benchmark cells "
                f"({_n(g['losses'], 'loss')}, {_n(g['ties'], 'tie')}) and Base in {b['wins']} of {b['cells']} "
                f"({_n(b['losses'], 'loss')}, {_n(b['ties'], 'tie')})."
            )
    return lines


CAPTION = (
    "Table 2 (arXiv 2509.21154 §5): exact-match accuracy, zero-shot, greedy, math-verify on the first boxed answer. "
    "Ours: mean over seeds ± standard error over problems; paper: as printed. λ-GRPO cells are marked green (beats "
    "GRPO and Base), yellow (only GRPO), orange (only Base), red (neither); ties do not count."
)


def _tex(df: pd.DataFrame, cap: str, label: str) -> str:
    tex_df = df.map(lambda s: s.replace("±", r"$\pm$").replace("λ", r"$\lambda$").replace("—", "--").replace("−", "-"))
    tex_df.columns = [c.replace("λ", r"$\lambda$").replace("β", r"$\beta$").replace("−", "-") for c in df.columns]
    return tex_df.to_latex(
        index=False, escape=False, caption=cap, label=label, column_format="llll" + "c" * (df.shape[1] - 4)
    )


def render(table: pd.DataFrame) -> dict[str, str]:
    """The Markdown, CSV and LaTeX texts, keyed by file suffix."""
    shown_table, diff = display_table(table), display_differences(differences(table), shown(table))
    md_opts = {"index": False, "disable_numparse": True}
    md = "\n\n".join(
        [CAPTION, shown_table.to_markdown(**md_opts), "Differences (λ-GRPO minus GRPO at the same β, and minus Base):",
         diff.to_markdown(**md_opts), "Counts over the benchmark cells of every (model, β):\n" + "\n".join(counts_text(table))]
    )  # fmt: skip
    tex = _tex(shown_table, CAPTION.replace("λ", r"$\lambda$").replace("§", r"\S "), "tab:table2") + "\n"
    tex += _tex(diff, r"$\lambda$-GRPO minus GRPO and minus Base (Table 2).", "tab:table2_diff")
    return {".md": md + "\n", ".csv": table.to_csv(index=False, float_format="%.6g"), ".tex": tex}


def figure(table: pd.DataFrame):
    """One panel per model: bars per (β, version) over the five benchmarks and Avg, ours with ± and paper as dots."""
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.0), squeeze=False, sharey=True)
    cols = [*shown(table), "avg"]
    for ax, model in zip(axes[0], models):
        rows = table[table["model"] == model]
        betas = [None if pd.isna(b) else b for b in rows["beta"]]  # NaN != NaN would split Base in two
        variants = list(dict.fromkeys(zip(betas, rows["method"])))
        width = 0.8 / max(len(variants), 1)
        for k, (beta, method) in enumerate(variants):
            same = (rows["method"] == method) & (rows["beta"].isna() if beta is None else rows["beta"] == beta)
            xs = [j + (k - (len(variants) - 1) / 2) * width for j in range(len(cols))]
            label = METHODS.get(method, method) + ("" if beta is None else f" β={beta:g}")
            ours, paper = rows[same & (rows["source"] == "ours")], rows[same & (rows["source"] == "paper")]
            if len(ours):
                errs = [ours.iloc[0].get(f"{c}_stderr", float("nan")) for c in cols]
                ax.bar(xs, ours.iloc[0][cols].astype(float), width, yerr=errs, label=label, capsize=1.5)
            if len(paper):
                ax.plot(
                    xs, paper.iloc[0][cols].astype(float), "k.", ms=3, label=None if len(ours) else f"{label} (paper)"
                )
        ax.set_title(MODELS.get(model, model))
        ax.set_xticks(range(len(cols)), [*(COLUMNS[c] for c in cols[:-1]), "Avg."], rotation=30, fontsize=7)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("accuracy (black dots: paper)")
    fig.tight_layout()
    return fig


def _write_text(text: str, path: str) -> None:
    Path(path).write_text(text, encoding="utf-8")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", nargs="+", required=True, help="grpo_prm.evaluate result JSONs")
    parser.add_argument("--paper", required=True, help="the paper's Table 2 as CSV (reference/table2_paper.csv)")
    parser.add_argument("--out-prefix", required=True, help="writes <prefix>.{md,csv,tex,png,pdf}")
    args = parser.parse_args(argv)
    try:
        table = build_table2(build_ours([read_result(p) for p in args.results]), read_paper(args.paper))
        texts = render(table)
    except InputError as e:
        raise SystemExit(f"table2: error: {e}") from None
    fig = figure(table)
    writers = {suffix: partial(_write_text, text) for suffix, text in texts.items()}
    writers |= {f".{fmt}": partial(figure_savefig, fig, fmt=fmt) for fmt in ("png", "pdf")}
    try:
        return write_atomic(args.out_prefix, writers)
    finally:
        plt.close(fig)


if __name__ == "__main__":
    for path in main():
        print(path)
