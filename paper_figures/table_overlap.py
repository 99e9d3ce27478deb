"""The overlap headline of §3 (overlap analysis): how many GRPO groups induce a non-trivial PRM, ours beside the
paper's counts (12 flat trees of 6,700 at k = 6, 0 of 1,100 at k = 36).

Usage:
    python paper_figures/table_overlap.py --runs results/<profile>/overlap/<model>/k*/ \
        --paper paper_figures/reference/overlap_paper.csv --out-prefix paper_figures/<profile>/table_overlap

Metrics per run: flat / total groups (a flat tree has no intermediate step: no token with 1 < |λ| < k outside a leaf
of identical completions), the non-trivial share, the share of completions with an identical copy in their group,
and the mean path depth and intermediate proportion over every recorded trajectory and over the last step's. Rows are
ordered by k, larger first. Writes <prefix>.md and <prefix>.csv (both or neither); a bad input is a one-line error
and a non-zero exit.
"""

import pandas as pd

from grpo_prm.cli import exit_on_error, table_parser
from grpo_prm.io import save_table
from grpo_prm.overlap_runs import OverlapRunError, load_run

PAPER_COLUMNS = ["k", "steps", "groups", "flat_groups", "nontrivial_pct"]


def row(k: int, steps: pd.DataFrame, summary: dict) -> dict:
    last = steps.iloc[-1]
    return {
        "k": k,
        "steps": summary["steps"],
        "groups": summary["groups"],
        "flat_groups": summary["flat_groups"],
        "nontrivial_pct": summary["nontrivial_pct"],
        "duplicate_share": (steps["duplicate_share"] * steps["trajectories"]).sum() / steps["trajectories"].sum(),
        "path_depth_mean": last["path_depth_mean_cum"],
        "path_depth_mean_last": last["path_depth_mean"],
        "intermediate_proportion_mean": last["intermediate_proportion_mean_cum"],
        "intermediate_proportion_mean_last": last["intermediate_proportion_mean"],
    }


def build(folders, paper_csv) -> pd.DataFrame:
    ours = pd.DataFrame([row(*load_run(f)) for f in folders])
    try:
        paper = pd.read_csv(paper_csv)[PAPER_COLUMNS]
    except (OSError, KeyError, pd.errors.ParserError) as e:
        raise OverlapRunError(f"{paper_csv}: not the paper's overlap counts ({type(e).__name__}: {e})") from None
    table = ours.merge(paper.add_prefix("paper_").rename(columns={"paper_k": "k"}), on="k", how="left")
    return table.sort_values("k", ascending=False, ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
    def count(flat, groups):
        return "—" if pd.isna(groups) else f"{int(flat):,} / {int(groups):,}"

    shown = pd.DataFrame(
        {
            "k": table.k,
            "steps": table.steps,
            "flat / groups": [count(f, g) for f, g in zip(table.flat_groups, table.groups)],
            "non-trivial": table.nontrivial_pct.map("{:.2f} %".format),
            "duplicates": table.duplicate_share.map("{:.1%}".format),
            "path depth (all / last step)": [
                f"{a:.2f} / {b:.2f}" for a, b in zip(table.path_depth_mean, table.path_depth_mean_last)
            ],
            "intermediate proportion (all / last step)": [
                f"{a:.3f} / {b:.3f}"
                for a, b in zip(table.intermediate_proportion_mean, table.intermediate_proportion_mean_last)
            ],
            "paper steps": table.paper_steps.map(lambda v: "—" if pd.isna(v) else f"{int(v):,}"),
            "paper flat / groups": [count(f, g) for f, g in zip(table.paper_flat_groups, table.paper_groups)],
            "paper non-trivial": table.paper_nontrivial_pct.map(lambda v: "—" if pd.isna(v) else f"{v:.2f} %"),
        }
    )
    return (
        "Overlap headline (paper §3): groups whose prefix tree is flat (no token with 1 < |λ| < k outside a leaf "
        "of identical completions, so the implied PRM is the ORM), the share of completions with an identical "
        "copy in their group, and the mean path depth and intermediate proportion per trajectory.\n\n"
        f"{shown.to_markdown(index=False, disable_numparse=True)}\n"
    )


def main(argv=None) -> None:
    parser = table_parser(__doc__, "analysed overlap run folders", "<prefix>.md and <prefix>.csv")
    parser.add_argument("--paper", required=True, help="the paper's counts (k, steps, groups, flat_groups, ...)")
    args = parser.parse_args(argv)
    table = exit_on_error(lambda: build(args.runs, args.paper))
    save_table(table, args.out_prefix, markdown(table))


if __name__ == "__main__":
    main()
