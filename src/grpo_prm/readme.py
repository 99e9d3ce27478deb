"""Numbers in prose come from files: the run-derived numbers of README.md and docs/*.md, written from
`paper_figures/<profile>/`.

    python -m grpo_prm.readme                 # rewrite the blocks of README.md, docs/*.md, config/README.md
    python -m grpo_prm.readme --check         # exit 1, naming the blocks, if a document differs from what it writes

A block is the text between `<!-- numbers:NAME -->` and `<!-- /numbers -->`; everything outside the blocks is left
alone. Each NAME in `BLOCKS` renders one block from the tables (CSV) of the profile's folder, except `config_keys`:
config/README.md's key table, written from the config schema and profiles (`grpo_prm.config.keys_table`).

Claims carry their intervals (all from `grpo_prm.stats`): a table cell is a mean with its 95 % Student-t interval
over seeds and the seed count, and the prose says "higher", "lower" or "earlier" only where the 95 % Welch interval
of the difference of two means excludes 0 (otherwise "not distinguishable at n seeds"). Table 2's cells are
accuracies with a standard error over problems; their difference gets the normal interval from the two standard errors.

Every block's renderer sits in this one module (a few lines each, in README order), so a README claim and the code
that words it are found together; hence its length beyond 350 lines.
"""

import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from grpo_prm.cli import InputError, OneLineParser, exit_on_error
from grpo_prm.config import keys_table
from grpo_prm.methods import METHOD_LABELS
from grpo_prm.stats import normal_interval, t_interval, welch_interval

BLOCK = re.compile(r"(<!-- numbers:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /numbers -->)", re.DOTALL)


# ---- verdicts


def verdict(lo: float, hi: float, above: str, below: str, n: str) -> str:
    """`above` / `below` where the interval [lo, hi] excludes 0, else that the difference is not distinguishable."""
    if lo > 0:
        return above
    if hi < 0:
        return below
    return f"not distinguishable at {n}"


# ---- formatting


def num(x: float, digits: int = 3) -> str:
    return "—" if not math.isfinite(x) else f"{x:.{digits}f}".replace("-", "−")


def signed(x: float, digits: int = 3) -> str:
    return ("+" if x >= 0 else "") + num(x, digits)


def cell(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """`mean [lo, hi]`, or the mean alone without an interval."""
    return num(mean, digits) if not math.isfinite(lo) else f"{num(mean, digits)} [{num(lo, digits)}, {num(hi, digits)}]"


def span(values, digits: int = 2) -> str:
    lo, hi = min(values), max(values)
    return num(lo, digits) if num(lo, digits) == num(hi, digits) else f"{num(lo, digits)}–{num(hi, digits)}"


def label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def md_table(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def seeds_text(n) -> str:
    counts = sorted({int(v) for v in n})
    return f"{'/'.join(map(str, counts))} seed{'s' if counts != [1] else ''}"


# ---- toy (Table 1)


def _toy(figures: Path) -> tuple[pd.DataFrame, list[str]]:
    table = pd.read_csv(figures / "table1_toy.csv")
    methods = [m for m in METHOD_LABELS if f"{m}_mean" in table]
    return table, methods


def _toy_stats(row, method: str) -> tuple[float, float, int]:
    return row[f"{method}_mean"], row[f"{method}_std"], int(row[f"{method}_seeds"])


def toy_table(figures: Path) -> str:
    table, methods = _toy(figures)
    rows = []
    for _, r in table.iterrows():
        ours = [cell(r[f"{m}_mean"], *t_interval(*_toy_stats(r, m))) for m in methods]
        paper = [num(r[f"paper_{m}"], 4) for m in ("grpo", "lambda_grpo") if f"paper_{m}" in table]
        rows.append([str(int(r.n)), num(r.r_neg, 1), *ours, *paper])
    header = [
        "n",
        "r_neg",
        *(f"{label(m)} (ours)" for m in methods),
        *(f"{label(m)} (paper)" for m in ("grpo", "lambda_grpo") if f"paper_{m}" in table),
    ]
    n = seeds_text(table[[f"{m}_seeds" for m in methods]].to_numpy().ravel())
    intro = f"Each cell of ours is the mean over {n} and its 95 % t-interval (the paper gives means over 5 seeds):\n\n"
    return intro + md_table(header, ["--:"] * len(header), rows)


def _compare_cells(table, a: str, b: str) -> tuple[list[str], int, int]:
    """Per (n, r_neg) the Welch verdict of a against b, and the counts of cells where a is higher / lower."""
    out, higher, lower = [], 0, 0
    for _, r in table.iterrows():
        sa, sb = _toy_stats(r, a), _toy_stats(r, b)
        diff, lo, hi = welch_interval(sa, sb)
        higher, lower = higher + (lo > 0), lower + (hi < 0)
        out.append(f"n = {int(r.n)}, r_neg = {num(r.r_neg, 1)}: {signed(diff)} [{num(lo)}, {num(hi)}]")
    return out, higher, lower


def toy_claims(figures: Path) -> str:
    table, methods = _toy(figures)
    lines = []
    pairs = [
        (a, b) for a, b in (("lambda_grpo", "grpo"), ("lambda_grpo_scaled", "lambda_grpo")) if {a, b} <= set(methods)
    ]
    for a, b in pairs:
        cells, higher, lower = _compare_cells(table, a, b)
        n = seeds_text(table[[f"{a}_seeds", f"{b}_seeds"]].to_numpy().ravel())
        rest = len(table) - higher - lower
        lines.append(
            f"- **{label(a)} against {label(b)}.** {label(a)}'s mean is higher in "
            f"{int((table[f'{a}_mean'] > table[f'{b}_mean']).sum())} of {len(table)} cells; by the 95 % Welch interval "
            f"of the difference it is higher in {higher}, lower in {lower}, and not distinguishable at {n} in {rest} "
            f"(difference [interval]: {'; '.join(cells)})."
        )
    if "grpo" in methods:
        lines.append(
            f"- **Spread over seeds.** GRPO's std over seeds is {span(table.grpo_std)} across the cells"
            + (f", λ-GRPO's {span(table.lambda_grpo_std)}" if "lambda_grpo" in methods else "")
            + "."
        )
    return "\n".join(lines) + "\n"


def toy_methods(figures: Path) -> str:
    """Every method against λ-GRPO seed by seed (table_toy_seeds.csv): the table and, per method, where the paired
    95 % interval says it is higher or lower than λ-GRPO."""
    t = pd.read_csv(figures / "table_toy_seeds.csv")
    lr, mass = "learning_rate" in t, "mass_target" in t
    rows = [
        [
            str(int(r.n)),
            num(r.r_neg, 1),
            label(r.method),
            str(int(r.seeds)),
            cell(r["mean"], r.ci_low, r.ci_high),
            "—" if pd.isna(r["diff"]) else cell(r["diff"], r.diff_low, r.diff_high),
            "—" if pd.isna(r.extra_tokens_per_step) else f"{r.extra_tokens_per_step:.0f}",
            *([f"{r.learning_rate:g}"] if lr else []),
            *([f"{r.mass_target:.2f} / {r.mass_penalised:.2f} / {r.mass_other:.2f}"] if mass else []),
        ]
        for _, r in t.iterrows()
    ]
    header = [
        "n",
        "r_neg",
        "method",
        "seeds",
        "mean [95 % CI]",
        "− λ-GRPO, paired [95 % CI]",
        "extra tokens/step",
        *(["lr"] if lr else []),
        *(["mass T / subtree / +0.7"] if mass else []),
    ]
    lines = []
    for method, m in t.dropna(subset=["diff"]).groupby("method", sort=False):
        higher, lower = int((m.diff_low > 0).sum()), int((m.diff_high < 0).sum())
        lines.append(
            f"- **{label(method)}** against λ-GRPO, paired by seed: higher in {higher}, lower in {lower}, "
            f"not distinguishable at {seeds_text(m.paired_seeds)} in {len(m) - higher - lower} of {len(m)} "
            "cells."
        )
    align = ["--:", "--:", ":--", "--:", "--:", "--:", "--:", *(["--:"] if lr else []), *(["--:"] if mass else [])]
    return md_table(header, align, rows) + "\n" + "\n".join(lines) + "\n"


def toy_tuned(figures: Path) -> str:
    """What the tuned, powered comparison shows (table_toy_seeds.csv at each method's selected rate): per method,
    the cells where the paired interval against λ-GRPO excludes 0 (only those differences are quoted), and where the
    probability mass of the methods below λ-GRPO goes."""
    t = pd.read_csv(figures / "table_toy_seeds.csv")
    seeds = seeds_text(t.seeds)
    rates = (
        ""
        if "learning_rate" not in t
        else "; ".join(f"{label(m)} {g.learning_rate.iloc[0]:g}" for m, g in t.groupby("method", sort=False))
    )
    parts = [f"Over {seeds} per cell" + (f", each method at its own learning rate ({rates})" if rates else "") + ":"]
    for method, m in t.dropna(subset=["diff"]).groupby("method", sort=False):
        clear = m[(m.diff_low > 0) | (m.diff_high < 0)]
        quoted = "; ".join(
            f"n = {int(r.n)}, r_neg = {num(r.r_neg, 1)}: {cell(r['diff'], r.diff_low, r.diff_high)}"
            for _, r in clear.iterrows()
        )
        text = f"{label(method)} − λ-GRPO differs from 0 in {len(clear)} of {len(m)} cells"
        parts.append(text + (f" ({quoted})" if quoted else "") + ".")
    if "mass_target" in t:
        low = t[t["mean"] < 0.5]
        if len(low):
            parts.append(
                f"Where a method ends below 0.5 on T ({len(low)} method-cells), its policy puts "
                f"{span(low.mass_other)} of its probability on the +0.7 paths and {span(low.mass_penalised)} "
                "on T's penalised subtree: the deceptive +0.7 optimum, not the penalised region."
            )
    return " ".join(parts) + "\n"


# ---- math (peak table)


def _peak_stats(peaks: pd.DataFrame, column: str) -> pd.DataFrame:
    g = peaks.dropna(subset=[column]).groupby(["model", "beta", "method"], sort=False)[column]
    return g.agg(mean="mean", std="std", n="count")


def math_peaks(figures: Path) -> str:
    peaks = pd.read_csv(figures / "math_peaks.csv")
    columns = {"peak": 3, "peak_step": 1, "final": 3, "peak_step_vs_grpo": 2}
    summary = {c: _peak_stats(peaks, c) for c in columns}
    rows = []
    for key in summary["peak"].index:
        model, beta, method = key
        cells = []
        for c, digits in columns.items():
            s = summary[c]
            cells.append(cell(s.loc[key, "mean"], *t_interval(*s.loc[key]), digits) if key in s.index else "—")
        rows.append([model, num(beta, 2), label(method), *cells, str(int(summary["peak"].loc[key, "n"]))])
    final_step = span(peaks.final_step, 0)
    header = [
        "model",
        "β",
        "method",
        "peak",
        "step of peak",
        f"final (step {final_step})",
        "peak step / GRPO's",
        "seeds",
    ]
    return "Mean over seeds and its 95 % t-interval:\n\n" + md_table(
        header, ["---", "--:", "---", "--:", "--:", "--:", "--:", "--:"], rows
    )


def math_claims(figures: Path) -> str:
    peaks = pd.read_csv(figures / "math_peaks.csv")
    lines = []
    for (model, beta), runs in peaks.groupby(["model", "beta"], sort=False):
        per = {c: _peak_stats(runs, c).droplevel([0, 1]) for c in ("peak", "final", "peak_step")}
        if "grpo" not in per["final"].index:
            continue
        for method in [m for m in per["final"].index if m != "grpo"]:
            parts = []
            for column, what, above, below in (
                ("final", "final accuracy", "higher", "lower"),
                ("peak", "peak accuracy", "higher", "lower"),
                ("peak_step", "step of the peak", "later", "earlier"),
            ):
                a, b = per[column].loc[method], per[column].loc["grpo"]
                diff, lo, hi = welch_interval(tuple(a), tuple(b))
                n = seeds_text([a.n, b.n])
                digits = 1 if column == "peak_step" else 3
                parts.append(
                    f"{what} {num(a['mean'], digits)} against {num(b['mean'], digits)}, "
                    f"{verdict(lo, hi, above, below, n)} (difference {signed(diff, digits)}, 95 % interval "
                    f"[{num(lo, digits)}, {num(hi, digits)}])"
                )
            lines.append(f"- **{label(method)} against GRPO** ({model}, β = {num(beta, 2)}): " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


# ---- Table 2


def table2_ours(figures: Path) -> str:
    """Per protocol ("ours, <protocol>" rows of table2.csv), model and benchmark: every version's accuracy and the
    differences to GRPO at the same β with their normal 95 % intervals."""
    table = pd.read_csv(figures / "table2.csv")
    ours = table[table.source.str.startswith("ours")]
    benches = [c.removesuffix("_stderr") for c in table if c.endswith("_stderr")]
    benches = [b for b in benches if ours[b].notna().any()]
    lines = []
    for (source, model), rows in ours.groupby(["source", "model"], sort=False):
        for bench in benches:
            got = rows.dropna(subset=[bench])
            cells = [
                f"{label(r.method) if r.method != 'base' else 'Base'} {num(r[bench])} ± {num(r[f'{bench}_stderr'])}"
                + (f" ({int(r.seeds)} seed{'s' if int(r.seeds) != 1 else ''})" if r.method != "base" else "")
                for _, r in got.iterrows()
            ]
            protocol = source.removeprefix("ours").lstrip(":, ")
            line = (
                f"- **{model}, {bench}, {protocol} protocol** (mean over seeds and samples ± "
                f"standard error clustered by problem): {', '.join(cells)}."
            )
            for beta, at_beta in got[got.method != "base"].groupby("beta", sort=False):
                methods = at_beta.set_index("method")
                if "grpo" not in methods.index:
                    continue
                g = methods.loc["grpo"]
                for method, r in methods.drop(index="grpo").iterrows():
                    diff, lo, hi = normal_interval((r[bench], r[f"{bench}_stderr"]), (g[bench], g[f"{bench}_stderr"]))
                    line += (
                        f" {label(method)} − GRPO at β = {num(beta, 2)}: {signed(diff)}, 95 % interval "
                        f"[{num(lo)}, {num(hi)}], {verdict(lo, hi, 'higher', 'lower', 'this test-set size')}."
                    )
            lines.append(line)
    return "\n".join(lines) + "\n"


# ---- overlap


def overlap_table(figures: Path) -> str:
    t = pd.read_csv(figures / "table_overlap.csv")
    rows = []
    for _, r in t.iterrows():
        paper = (
            [f"{int(r.paper_flat_groups):,} / {int(r.paper_groups):,}", f"{num(r.paper_nontrivial_pct, 2)} %"]
            if math.isfinite(r.paper_groups)
            else ["—", "—"]
        )
        rows.append(
            [
                str(int(r.k)),
                str(int(r.steps)),
                f"{int(r.flat_groups)} / {int(r.groups)}",
                f"{num(r.nontrivial_pct, 2)} %",
                f"{100 * r.duplicate_share:.1f} %",
                f"{num(r.path_depth_mean, 2)} / {num(r.path_depth_mean_last, 2)}",
                f"{num(r.intermediate_proportion_mean)} / {num(r.intermediate_proportion_mean_last)}",
                *paper,
            ]
        )
    header = [
        "k",
        "steps",
        "flat / groups",
        "non-trivial",
        "duplicates",
        "path depth, mean (all / last step)",
        "intermediate proportion (all / last step)",
        "paper flat / groups",
        "paper non-trivial",
    ]
    return md_table(header, ["--:"] * len(header), rows)


def overlap_claims(figures: Path) -> str:
    t = pd.read_csv(figures / "table_overlap.csv").sort_values("k")
    th = pd.read_csv(figures / "table_theorem1.csv").sort_values("k", ascending=False)
    share = t.flat_groups / t.groups
    flat = "; ".join(f"k = {int(r.k)}: {num(100 * f, 1)} %" for (_, r), f in zip(t.iterrows(), share))
    depth = "; ".join(f"k = {int(r.k)}: {num(r.path_depth_mean, 2)}" for _, r in t.iterrows())
    fewer = "falls" if share.is_monotonic_decreasing and len(t) > 1 else "does not fall"
    deeper = "grows" if t.path_depth_mean.is_monotonic_increasing and len(t) > 1 else "does not grow"
    paper = [
        f"{num(100 * r.paper_flat_groups / r.paper_groups, 1)} % at k = {int(r.k)}"
        for _, r in t.iterrows()
        if math.isfinite(r.paper_groups)
    ]
    groups = ", ".join(f"{int(r.groups)} at k = {int(r.k)} ({int(r.tokens):,} tokens)" for _, r in th.iterrows())
    loss = " and ".join(f"{r.max_loss_diff:.1e}" for _, r in th.iterrows())
    grad = " and ".join(f"{r.max_abs_diff:.1e}" for _, r in th.iterrows())
    roundoff = "float64 round-off" if max(th.max_loss_diff.max(), th.max_abs_diff.max()) < 1e-12 else "NOT round-off"
    return (
        f"- **Flat share** (one run per k, no seeds): {flat}; it {fewer} as k grows"
        + (f" (paper: {', '.join(paper)})" if paper else "")
        + ".\n"
        f"- **Mean path depth over the run:** {depth}; it {deeper} with k.\n"
        f"- **Theorem 1.** On the recorded groups checked ({groups}), the largest |L_GRPO − L_PRM| is {loss}, and "
        f"the largest difference of a per-token gradient term is {grad}: {roundoff}.\n"
    )


BLOCKS: dict[str, Callable[[Path], str]] = {
    "toy_table1": toy_table,
    "toy_claims": toy_claims,
    "toy_methods": toy_methods,
    "toy_tuned": toy_tuned,
    "math_peaks": math_peaks,
    "math_claims": math_claims,
    "table2_ours": table2_ours,
    "overlap_table": overlap_table,
    "overlap_claims": overlap_claims,
    "config_keys": lambda figures: keys_table("config"),  # config/README.md's key table, from the schema
}


def render(readme: str, figures: Path) -> str:
    """`readme` with every number block rewritten from `figures`; an unknown block name is an error."""

    def fill(m: re.Match) -> str:
        if m["name"] not in BLOCKS:
            raise InputError(f"block numbers:{m['name']}: unknown (known: {', '.join(BLOCKS)})")
        return m.group(1) + BLOCKS[m["name"]](figures) + m.group(4)

    return BLOCK.sub(fill, readme)


def stale_blocks(readme: str, figures: Path) -> list[str]:
    """Names of the blocks whose text differs from what `render` would write now."""
    new = {m["name"]: m["body"] for m in BLOCK.finditer(render(readme, figures))}
    return [m["name"] for m in BLOCK.finditer(readme) if new[m["name"]] != m["body"]]


def documents() -> list[str]:
    """The documents that hold number blocks: README.md, docs/*.md and config/README.md (of the working directory)."""
    return ["README.md", *sorted(str(p) for p in Path("docs").glob("*.md")), "config/README.md"]


def main(argv=None) -> None:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--readme",
        nargs="+",
        default=None,
        metavar="DOC",
        help="the documents to rewrite (default: README.md, docs/*.md, config/README.md)",
    )
    parser.add_argument("--figures", default="paper_figures/default", help="the profile's tables")
    parser.add_argument("--check", action="store_true", help="only report blocks that differ (exit 1)")
    args = parser.parse_args(argv)
    paths, figures = [Path(d) for d in args.readme or documents()], Path(args.figures)

    def blocks() -> list[tuple[Path, list[str], str]]:
        out = []
        for path in paths:
            text = path.read_text(encoding="utf-8")
            try:
                out.append((path, stale_blocks(text, figures), render(text, figures)))
            except KeyError as e:
                raise InputError(f"{figures}: a table lacks the column {e}") from None
            except InputError as e:
                raise InputError(f"{path}: {e}") from None
        return out

    # Every document is rendered before any is written, so a bad block or table leaves all of them as they were.
    rendered = exit_on_error(blocks)
    if args.check:
        stale = [f"{path}: {', '.join(names)}" for path, names, _ in rendered if names]
        if stale:
            sys.exit(f"number blocks out of date: {'; '.join(stale)} (run `make readme`)")
        return
    for path, stale, new in rendered:
        exit_on_error(lambda path=path, new=new: path.write_text(new, encoding="utf-8"))
        print(f"{path}: {len(stale)} block(s) rewritten from {figures}/" + (f": {', '.join(stale)}" if stale else ""))


if __name__ == "__main__":
    main()
