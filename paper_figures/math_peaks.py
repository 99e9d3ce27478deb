"""Peak validation accuracy of every math run (paper §5: λ-GRPO reaches "a higher peak in under half the steps").

Usage:
    python paper_figures/math_peaks.py --runs results/<profile>/math/*/beta*/*/seed*/config.json \
        --out-prefix paper_figures/<profile>/math_peaks

Writes <prefix>.csv (one row per run: peak, peak_step, final, final_step, peak_step_vs_grpo = this run's peak step
over the GRPO run's with the same model, β and seed) and <prefix>.md (seed means per (model, β, method), then the
per-run rows). Both or neither; a bad run folder is a one-line error and a non-zero exit.
"""

import pandas as pd

from grpo_prm.cli import exit_on_error, table_parser
from grpo_prm.curves import load_validation, peak_summary, peak_table
from grpo_prm.io import save_table
from grpo_prm.methods import METHOD_LABELS


def markdown(peaks, summary) -> str:
    fmt = {"peak": "{:.3f}", "final": "{:.3f}", "peak_step": "{:.1f}", "peak_step_vs_grpo": "{:.2f}"}

    def show(df):
        df = df.assign(method=df.method.map(lambda m: METHOD_LABELS.get(m, m)))
        for col, f in fmt.items():
            df[col] = df[col].map(lambda v, f=f: "—" if pd.isna(v) else f.format(v))
        return df.to_markdown(index=False)

    return (
        "## Seed means per (model, β, method)\n\npeak_step_vs_grpo < 1: the method peaks earlier than GRPO.\n\n"
        f"{show(summary)}\n\n## Per run\n\n{show(peaks)}\n"
    )


def main(argv=None) -> None:
    parser = table_parser(__doc__, "finished run folders or their config.json", "<prefix>.md and <prefix>.csv")
    args = parser.parse_args(argv)
    peaks = exit_on_error(lambda: peak_table(load_validation(args.runs)))
    summary = peak_summary(peaks)
    save_table(peaks, args.out_prefix, markdown(peaks, summary))


if __name__ == "__main__":
    main()
