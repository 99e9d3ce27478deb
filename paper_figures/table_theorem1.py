"""Theorem 1 (§3; proof in App. B) on real recorded groups: GRPO's loss equals the PRM-aware loss of Eq. 6.

Usage:
    python paper_figures/table_theorem1.py --runs results/<profile>/overlap/<model>/k*/ \
        --out-prefix paper_figures/<profile>/table_theorem1

Per run, over the groups the analysis checked (`python -m grpo_prm.overlap --theorem1-groups N`, the first N
recorded groups): the largest |L_GRPO − L_PRM| in value (μ = 1, β = 0, token-level normalisation), next to the
largest |L_GRPO| for scale, and the largest difference of the terms that multiply each ∇log π(y_t | y_{:t}),
|Σ_{j∈λ} a_j − |λ|·Â(λ)|, which settles the gradients too. Float64 round-off (~1e-15) means equal. Writes
<prefix>.md and <prefix>.csv (both or neither); a bad input is a one-line error and a non-zero exit.
"""

import pandas as pd

from grpo_prm.cli import exit_on_error, table_parser
from grpo_prm.io import save_table
from grpo_prm.overlap_runs import OverlapRunError, load_run

COLUMNS = [
    "theorem1_groups",
    "theorem1_tokens",
    "theorem1_max_loss_diff",
    "theorem1_max_abs_loss",
    "theorem1_max_abs_diff",
]


def build(folders) -> pd.DataFrame:
    rows = []
    for folder in folders:
        k, _, summary = load_run(folder)
        if not summary.get("theorem1_groups"):
            raise OverlapRunError(f"{folder}: Theorem 1 was not checked (run the analysis with --theorem1-groups N)")
        rows.append({"k": k, **{c.removeprefix("theorem1_"): summary[c] for c in COLUMNS}})
    return pd.DataFrame(rows).sort_values("k", ascending=False, ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
    shown = pd.DataFrame(
        {
            "k": table.k,
            "groups checked": table.groups,
            "tokens": table.tokens.map("{:,}".format),
            "max |L_GRPO − L_PRM|": table.max_loss_diff.map("{:.1e}".format),
            "max |L_GRPO|": table.max_abs_loss.map("{:.3f}".format),
            "max per-step term difference": table.max_abs_diff.map("{:.1e}".format),
        }
    )
    return (
        "Theorem 1 on recorded groups: GRPO's loss against the PRM-aware loss (Eq. 6) with step advantages "
        "Â(λ), at μ = 1, β = 0, token-level normalisation.\n\n"
        f"{shown.to_markdown(index=False, disable_numparse=True)}\n"
    )


def main(argv=None) -> None:
    parser = table_parser(__doc__, "analysed overlap run folders", "<prefix>.md and <prefix>.csv")
    args = parser.parse_args(argv)
    table = exit_on_error(lambda: build(args.runs))
    save_table(table, args.out_prefix, markdown(table))


if __name__ == "__main__":
    main()
