"""Table 2 of arXiv 2509.21154 (§5): downstream accuracy on five maths benchmarks, with its figure.

Usage:
    python paper_figures/table2.py --results $(find results/<profile>/eval -name "*.json") \
        --paper paper_figures/reference/table2_paper.csv --out-prefix results/<profile>/paper_figures/table2

Inputs are the `<out>.json` files of `python -m grpo_prm.evaluate`, each with an `identity` {model, beta, method,
seed} (method `base` has no beta), its `protocol` {name, samples} and per benchmark `scores` (per problem, in
problem order: the share of its n samples that are correct; 0/1 with one sample). Each protocol is its own source
of rows (`ours:<protocol>`), beside the paper's. Writes <prefix>.md (tables and counts), <prefix>.csv (one row per
source × model × β × method), <prefix>.tex (booktabs) and <prefix>.{png,pdf} (a compact bar chart), all or
nothing; bad input exits non-zero with a one-line error.

With `--sober`, the published rows of Hochlehnert et al. 2025 ("A Sober Look at Progress in Language Model
Reasoning", its mean ± std over seeds; DeepSeek-R1-Distill-Qwen-1.5B's base row) are a source of their own. A
protocol with `seed_spread` (sober) shows, beside the clustered ±, the std over seeds (`[seeds ± s]`, ddof 1) of
the per-seed accuracies (sample j of every problem is seed j's run).

Metric: per cell, accuracy averaged over seeds and samples (avg@n). Its ± is the standard error over problems of
the per-problem score averaged over seeds and samples, std(ddof=1)/sqrt(n): clustered by problem, so it counts
both which problems a benchmark holds and which samples were drawn (grpo_prm.stats); with one seed and one
sample it is the paper's (and lm-eval's) sqrt(p(1-p)/(n-1)). Avg is the unweighted mean of the five benchmarks.
Marking (the paper's colours of λ-GRPO cells, strict inequality): green beats GRPO (same model and β) and Base,
yellow only GRPO, orange only Base, red neither. A difference is supported by the intervals (marked `*`) where its
95 % interval excludes 0: |Δ| > 1.96·sqrt(se₁² + se₂²), the two cells' standard errors taken as independent (the
paper prints no per-problem scores, so ours are treated alike; pairing by problem would give narrower intervals).
"""

import json
import math
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from grpo_prm.cli import InputError, exit_on_error, table_parser
from grpo_prm.io import figure_savefig, write_atomic, write_text
from grpo_prm.methods import METHOD_LABELS
from grpo_prm.stats import Z95

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


# ---------------------------------------------------------------- reading


def read_result(path: str | Path) -> dict:
    """One evaluation JSON as `{source, model, beta, method, seed, scores: {benchmark: [share correct, ...]}}`."""
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
    bad = [b for b, s in scores.items() if not s or any(not isinstance(v, int | float) or not 0 <= v <= 1 for v in s)]
    if bad or not scores:
        raise InputError(
            f"{path}: no Table-2 benchmark (or offline test set) with per-problem scores"
            if not scores
            else f"{path}: bad scores for {bad[0]}"
        )
    beta = None if identity["method"] == "base" else float(identity["beta"])
    protocol = data.get("protocol") or {}
    source = f"ours:{protocol['name']}" if protocol.get("name") else "ours"  # results written before protocols
    # with seed_spread (sober), each seed's accuracy per benchmark (grpo_prm.evaluate's seed_accuracy)
    seeds = (
        {b: t.get("seed_accuracy") for b, t in data["tasks"].items() if b in scores}
        if protocol.get("seed_spread")
        else None
    )
    return {"source": source, "samples": samples_label(protocol.get("samples", 1)), "model": str(identity["model"]),
            "beta": beta, "method": str(identity["method"]), "seed": int(identity.get("seed", 0)), "scores": scores,
            "seed_accuracy": seeds, "path": str(path)}  # fmt: skip


def samples_label(samples) -> int | str:
    """Samples per problem: a number, or for samples per task (sober's 10 and 3) the range, "3–10"."""
    if not isinstance(samples, dict):
        return int(samples)
    low, high = min(samples.values()), max(samples.values())
    return low if low == high else f"{low}–{high}"


def read_paper(path: str | Path, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The paper's Table 2 (model, beta, method, per benchmark value and stderr, avg), or another published
    reference in the same columns (plus `extra` ones per benchmark, e.g. `_seed_std`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        paper = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable CSV ({type(e).__name__})") from None
    needed = KEYS + [c for b in BENCHMARKS for c in (b, f"{b}_stderr", *(f"{b}{x}" for x in extra))] + ["avg"]
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
    """One row per (source, model, beta, method): `<bench>`, `<bench>_stderr`, `avg`, `seeds` and `samples`,
    averaged over seeds and samples."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["source"], r["model"], r["beta"], r["method"]), []).append(r)
    rows = []
    for (source, *key), runs in groups.items():
        seeds = [r["seed"] for r in runs]
        if len(set(seeds)) < len(seeds):
            raise InputError(f"{runs[-1]['path']}: same (protocol, model, beta, method, seed) as another result")
        if len({r["samples"] for r in runs}) > 1:
            raise InputError(f"{runs[-1]['path']}: another number of samples than other seeds of its cell")
        row = {"source": source} | dict(zip(KEYS, key)) | {"seeds": len(runs), "samples": runs[0]["samples"]}
        for b in COLUMNS:
            per_seed = [r["scores"][b] for r in runs if b in r["scores"]]
            if per_seed and len(per_seed) < len(runs):
                raise InputError(f"{key}: {b} is missing for some seeds")
            if len({len(s) for s in per_seed}) > 1:
                raise InputError(f"{key}: {b} has a different number of problems across seeds")
            row[b], row[f"{b}_stderr"] = seed_cell(per_seed) if per_seed else (float("nan"), float("nan"))
            if runs[0]["seed_accuracy"] is not None:  # seed_spread: std over every seed's accuracy (ddof 1)
                accuracies = [a for r in runs for a in (r["seed_accuracy"].get(b) or [])]
                row[f"{b}_seed_std"] = pd.Series(accuracies, dtype=float).std(ddof=1)
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


SOBER = "Hochlehnert et al. 2025"  # source of the sober protocol's published base-model row (reference/)


def build_table2(ours: pd.DataFrame, paper: pd.DataFrame, sober: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ours and the paper's rows (and, given, the sober paper's), long (column `source`), with each λ row's marking
    per benchmark and Avg."""
    references = [paper.assign(source="paper", seeds=pd.NA, samples=1)]
    if sober is not None:
        references.append(sober.assign(source=SOBER, seeds=pd.NA, samples=pd.NA))
    table = pd.concat([ours, *references], ignore_index=True)
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
    """λ − GRPO and λ − Base per λ row, benchmark and Avg; `<bench>_supported`: its 95 % interval excludes 0."""
    rows = []
    for i in table.index[table["method"].str.startswith("lambda")]:
        row = table.loc[i]
        for ref in ("grpo", "base"):
            diff = {c: row[c] - _reference(table, row, ref, c) for c in [*COLUMNS, "avg"]}
            for c in COLUMNS:
                se = (row[f"{c}_stderr"] ** 2 + _reference(table, row, ref, f"{c}_stderr") ** 2) ** 0.5
                diff[f"{c}_supported"] = bool(abs(diff[c]) > Z95 * se) if pd.notna(diff[c]) and pd.notna(se) else None
            rows.append({"source": row["source"], **row[KEYS].to_dict(), "vs": METHODS[ref]} | diff)
    supported = [f"{c}_supported" for c in COLUMNS]
    return pd.DataFrame(rows, columns=["source", *KEYS, "vs", *COLUMNS, "avg", *supported])


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


def source_label(source: str, samples=1) -> str:
    """`ours:sampled` with 4 samples -> "ours, sampled, avg@4" (samples per task: "avg@3–10"); the paper's rows
    stay "paper"."""
    if not source.startswith("ours:"):
        return source
    if isinstance(samples, str) and not samples.isdigit():
        return f"ours, {source.removeprefix('ours:')}, avg@{samples}"
    n = 1 if pd.isna(samples) else int(samples)
    return f"ours, {source.removeprefix('ours:')}" + (f", avg@{n}" if n > 1 else "")


def _label(row) -> list[str]:
    beta = "—" if pd.isna(row["beta"]) else f"{row['beta']:g}"
    source = source_label(row["source"], row.get("samples", 1))
    return [MODELS.get(row["model"], row["model"]), beta, METHODS.get(row["method"], row["method"]), source]


def _cell(value, stderr, mark="", seed_std=float("nan")) -> str:
    if pd.isna(value):
        return "—"
    text = f"{value:.4f}" if pd.isna(stderr) else f"{value:.4f} ± {stderr:.4f}"
    text += "" if pd.isna(seed_std) else f" [seeds ± {seed_std:.4f}]"
    return f"{text} ({mark})" if mark else text


def shown(table: pd.DataFrame) -> list[str]:
    """The benchmark columns with at least one value (the offline set only in the embedded default)."""
    return [b for b in COLUMNS if table[b].notna().any()]


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as strings: Model, β, Version, Source, one `acc ± se (colour)` column per benchmark, Avg."""
    rows, cols = [], shown(table)
    for _, r in table.iterrows():
        cells = [_cell(r[b], r[f"{b}_stderr"], r[f"{b}_mark"], r.get(f"{b}_seed_std", float("nan"))) for b in cols]
        rows.append(_label(r) + cells + [_cell(r["avg"], float("nan"), r["avg_mark"])])
    return pd.DataFrame(rows, columns=["Model", "β", "Version", "Source", *(COLUMNS[b] for b in cols), "Avg."])


def _supported(value) -> bool:
    """A `<bench>_supported` value (True, False, or None/NaN where a value is missing) as a bool."""
    return value is not None and not pd.isna(value) and bool(value)


def _diff_cell(r, c) -> str:
    if pd.isna(r[c]):
        return "—"
    return f"{r[c]:+.4f}" + ("*" if _supported(r.get(f"{c}_supported")) else "")


def display_differences(diff: pd.DataFrame, cols: list[str], table: pd.DataFrame) -> pd.DataFrame:
    samples = {s: n for s, n in zip(table["source"], table["samples"])}
    rows = [
        _label(r)[:3] + [source_label(r["source"], samples.get(r["source"], 1)), f"λ − {r['vs']}"]
        + [_diff_cell(r, c) for c in [*cols, "avg"]]
        for _, r in diff.iterrows()
    ]  # fmt: skip
    return pd.DataFrame(
        rows, columns=["Model", "β", "Version", "Source", "Difference", *(COLUMNS[b] for b in cols), "Avg."]
    )


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else ("es" if word.endswith("s") else "s"))


def counts_text(table: pd.DataFrame, diff: pd.DataFrame) -> list[str]:
    lines = []
    samples = {s: n for s, n in zip(table["source"], table["samples"])}
    for source in sorted(set(table["source"]), key=lambda s: (s == "paper", s)):
        c = win_counts(table, source)
        if c["grpo"]["cells"] or c["base"]["cells"]:
            g, b = c["grpo"], c["base"]
            lines.append(
                f"- {source_label(source, samples.get(source, 1))}: λ-GRPO beats GRPO in {g['wins']} of {g['cells']} "
                f"benchmark cells ({_n(g['losses'], 'loss')}, {_n(g['ties'], 'tie')}) and Base in {b['wins']} of "
                f"{b['cells']} ({_n(b['losses'], 'loss')}, {_n(b['ties'], 'tie')}). "
                + supported_text(diff[(diff["source"] == source) & (diff["method"] == "lambda_grpo")])
            )
    return lines


def supported_text(diff: pd.DataFrame) -> str:
    """How many λ-GRPO − GRPO / − Base benchmark differences the 95 % intervals support, and which way."""
    parts = []
    for vs in ("GRPO", "Base"):
        rows = diff[diff["vs"] == vs]
        marks = [(r[c], r[f"{c}_supported"]) for _, r in rows.iterrows() for c in COLUMNS if pd.notna(r[c])]
        up = sum(1 for d, ok in marks if _supported(ok) and d > 0)
        down = sum(1 for d, ok in marks if _supported(ok) and d < 0)
        parts.append(f"vs {vs}, {up + down} of {len(marks)} ({up} up, {down} down)")
    return "Differences the 95 % intervals support: " + "; ".join(parts) + "."


CAPTION = (
    "Table 2 (arXiv 2509.21154 §5): exact-match accuracy, zero-shot, math-verify extractive match. Ours, per "
    "protocol (README, Evaluation protocols): mean over seeds and samples (avg@n) ± standard error clustered by "
    "problem; paper: its single sample per problem, as printed (± sqrt(p(1-p)/(n-1))). A 95 % interval is "
    "± 1.96 standard errors. λ-GRPO cells are marked green (beats GRPO and Base), yellow (only GRPO), orange (only "
    "Base), red (neither); ties do not count."
)


DIFF_HEADER = (
    "Differences (λ-GRPO minus GRPO at the same β, and minus Base); * = the difference's 95 % interval, "
    "±1.96·sqrt(se₁² + se₂²), excludes 0:"
)


def _tex(df: pd.DataFrame, cap: str, label: str) -> str:
    tex_df = df.map(lambda s: s.replace("±", r"$\pm$").replace("λ", r"$\lambda$").replace("—", "--").replace("−", "-"))
    tex_df.columns = [c.replace("λ", r"$\lambda$").replace("β", r"$\beta$").replace("−", "-") for c in df.columns]
    return tex_df.to_latex(
        index=False, escape=False, caption=cap, label=label, column_format="llll" + "c" * (df.shape[1] - 4)
    )


def render(table: pd.DataFrame) -> dict[str, str]:
    """The Markdown, CSV and LaTeX texts, keyed by file suffix."""
    diff_values = differences(table)
    shown_table, diff = display_table(table), display_differences(diff_values, shown(table), table)
    md_opts = {"index": False, "disable_numparse": True}
    md = "\n\n".join(
        [CAPTION, shown_table.to_markdown(**md_opts),
         DIFF_HEADER, diff.to_markdown(**md_opts),
         "Counts over the benchmark cells of every (model, β):\n" + "\n".join(counts_text(table, diff_values))]
    )  # fmt: skip
    tex = _tex(shown_table, CAPTION.replace("λ", r"$\lambda$").replace("§", r"\S "), "tab:table2") + "\n"
    tex += _tex(diff, r"$\lambda$-GRPO minus GRPO and minus Base (Table 2).", "tab:table2_diff")
    return {".md": md + "\n", ".csv": table.to_csv(index=False, float_format="%.6g"), ".tex": tex}


def figure(table: pd.DataFrame):
    """One panel per model: bars per (β, version, protocol) over the benchmarks and Avg, ours with ± one standard
    error, the paper's values as black dots on the bars of the same (β, version)."""
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.0), squeeze=False, sharey=True)
    cols = [*shown(table), "avg"]
    for ax, model in zip(axes[0], models):
        rows = table[table["model"] == model]
        betas = [None if pd.isna(b) else b for b in rows["beta"]]  # NaN != NaN would split Base in two
        ours_sources = [s for s in dict.fromkeys(rows["source"]) if s.startswith("ours")] or [None]
        variants = [(b, m, s) for b, m in dict.fromkeys(zip(betas, rows["method"])) for s in ours_sources]
        width = 0.8 / max(len(variants), 1)
        for k, (beta, method, source) in enumerate(variants):
            same = (rows["method"] == method) & (rows["beta"].isna() if beta is None else rows["beta"] == beta)
            xs = [j + (k - (len(variants) - 1) / 2) * width for j in range(len(cols))]
            label = METHODS.get(method, method) + ("" if beta is None else f" β={beta:g}")
            ours, paper = rows[same & (rows["source"] == source)], rows[same & (rows["source"] == "paper")]
            if len(ours):
                errs = [ours.iloc[0].get(f"{c}_stderr", float("nan")) for c in cols]
                name = source_label(source, ours.iloc[0]["samples"]).removeprefix("ours, ")
                ax.bar(xs, ours.iloc[0][cols].astype(float), width, yerr=errs, label=f"{label} ({name})", capsize=1.5)
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


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> list[Path]:
    parser = table_parser(
        __doc__, "grpo_prm.evaluate result JSONs", "<prefix>.{md,csv,tex,png,pdf}", inputs="--results"
    )
    parser.add_argument("--paper", required=True, help="the paper's Table 2 as CSV (reference/table2_paper.csv)")
    parser.add_argument(
        "--sober",
        default=None,
        help="Hochlehnert et al. 2025's rows as CSV (reference/table2_sober.csv), beside the sober protocol",
    )
    args = parser.parse_args(argv)
    table = exit_on_error(
        lambda: build_table2(
            build_ours([read_result(p) for p in args.results]),
            read_paper(args.paper),
            read_paper(args.sober, extra=("_seed_std",)) if args.sober else None,
        )
    )
    texts = render(table)
    fig = figure(table)
    writers = {suffix: partial(write_text, text) for suffix, text in texts.items()}
    writers |= {f".{fmt}": partial(figure_savefig, fig, fmt=fmt) for fmt in ("png", "pdf")}
    try:
        return write_atomic(args.out_prefix, writers)
    finally:
        plt.close(fig)


if __name__ == "__main__":
    for path in main():
        print(path)
