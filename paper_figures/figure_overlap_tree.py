"""One real recorded GRPO group as a prefix tree (paper §3–§5): every process step λ with its span, |λ|, the
step reward R̂(λ) and the step advantage Â(λ), decoded with the run's tokenizer.

Usage:
    python paper_figures/figure_overlap_tree.py --run results/<profile>/overlap/<model>/k6 \
        --min-distinct 3 --max-chars 40 --out-prefix paper_figures/<profile>/figure_overlap_tree
    ... --step 57 --group 2      # a given group instead

Without --step the group is the first non-flat one whose tree has at least --min-distinct distinct step rewards
R̂(λ) (else the one with the most), so the drawn PRM is visibly more than the binary ORM. The run folder needs
groups.parquet and final/ (the tokenizer). Writes <prefix>.png and <prefix>.pdf, both or neither; a bad input is a
one-line error and a non-zero exit.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from transformers import AutoTokenizer

from grpo_prm.cli import exit_on_error
from grpo_prm.io import save_figure
from grpo_prm.overlap import pick_group, tree_figure


def load_group(run: Path, args):
    """The group to draw (`pick_group`) and the run's tokenizer (from `final/`)."""
    if not (run / "final").is_dir():
        raise ValueError(f"{run}/final: no such folder (the run's tokenizer)")
    picked = pick_group(run / "groups.parquet", args.step, args.group, args.min_distinct)
    return *picked, AutoTokenizer.from_pretrained(run / "final")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a math_rl run folder with groups.parquet and final/")
    parser.add_argument("--step", type=int, help="training step of the group (default: pick one, see above)")
    parser.add_argument("--group", type=int, default=0, help="group within --step (0)")
    parser.add_argument("--min-distinct", type=int, default=3, help="wanted distinct step rewards (3)")
    parser.add_argument("--max-chars", type=int, default=40, help="spans longer than this are cut (40)")
    parser.add_argument("--out-prefix", required=True)
    args = parser.parse_args(argv)
    run = Path(args.run)
    step, group, ids, mask, rewards, distinct, tokenizer = exit_on_error(lambda: load_group(run, args))
    k = ids.shape[0]
    title = (f"{run.name}: step {step}, group {group}; k = {k}, mean r = {rewards.mean():.2f}, "
             f"{distinct} distinct step rewards R̂(λ); colour = Â(λ)")
    fig = tree_figure(ids, mask, rewards, tokenizer=tokenizer, max_chars=args.max_chars, title=title)
    save_figure(fig, args.out_prefix)


if __name__ == "__main__":
    main()
