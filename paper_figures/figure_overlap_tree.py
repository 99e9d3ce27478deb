"""One real recorded GRPO group as a prefix tree (§3, Eq. 5–6): every process step λ with its span, |λ|, the
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

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import TwoSlopeNorm
from transformers import AutoTokenizer

from grpo_prm.cli import InputError, OneLineParser, exit_on_error
from grpo_prm.config import schema_defaults
from grpo_prm.io import save_figure
from grpo_prm.prefix_tree import build_prefix_tree, size_statistics
from grpo_prm.process_sets import duplicate_counts, process_set_sizes
from grpo_prm.recording import read_groups


def distinct_step_rewards(token_ids, mask, rewards) -> int:
    """How many different step rewards R̂(λ) the process steps of a group have (the whole-group root span, whose
    R̂ is the group mean, is not a step); a binary ORM alone gives at most 2."""
    k = token_ids.shape[0]
    tree = build_prefix_tree(token_ids, mask, [float(x) for x in rewards])
    return len({round(s.reward, 12) for s in tree.steps if len(s.members) < k})


def pick_group(path, step: int | None = None, group: int = 0, min_distinct: int = 3):
    """The recorded group to draw: (step, group) if `step` is given, else the first non-flat group whose tree has at
    least `min_distinct` distinct R̂(λ), else the one with the most (the earliest on ties).

    Returns:
        `(step, group, token_ids, mask, rewards, distinct)`; raises `InputError` if the group is not recorded.
    """
    best = None
    for s, g, ids, mask, rewards in read_groups(path):
        if step is not None:
            if (s, g) == (step, group):
                return s, g, ids, mask, rewards, distinct_step_rewards(ids, mask, rewards)
            continue
        k = ids.shape[0]
        flat = bool(size_statistics(process_set_sizes(ids, mask), k, duplicate_counts(ids, mask, k))["flat"][0])
        distinct = 0 if flat else distinct_step_rewards(ids, mask, rewards)
        if best is None or distinct > best[-1]:
            best = (s, g, ids, mask, rewards, distinct)
        if distinct >= min_distinct:
            return best
    if best is None:
        raise InputError(f"{path}: no recorded group" + (f" at step {step}, group {group}" if step is not None else ""))
    return best


def span_text(ids: list[int], tokenizer=None, max_chars: int = 60) -> str:
    """A node's span for display: decoded (or ids), newlines shown as ↵, `$` escaped, long spans cut in the middle."""
    if not ids:
        return "∅"
    text = tokenizer.decode(ids) if tokenizer is not None else " ".join(map(str, ids))
    text = text.replace("\n", "↵")
    if len(text) > max_chars:
        text = f"{text[: max_chars // 2 - 1]} … {text[-(max_chars // 2 - 2) :]}"
    return text.replace("$", r"\$")  # literal dollars, not mathtext


def tree_figure(
    token_ids, mask, rewards, tokenizer=None, eps: float = 1e-4, max_chars: int = 60, title: str | None = None
) -> plt.Figure:
    """Draw one group's prefix tree: every node with its span, members, |λ|, R̂(λ) and Â(λ), coloured by Â.

    Args:
        token_ids (`torch.LongTensor` of shape `(k, T)`), mask (`torch.BoolTensor` of shape `(k, T)`): one group.
        rewards (sequence of `float`, length k): outcome rewards.
        tokenizer (*optional*): decodes spans; token ids are shown otherwise.
        eps (`float`, defaults to 1e-4): std epsilon of Â (0 reproduces the paper's worked numbers).
        max_chars (`int`, defaults to 60): spans longer than this are cut in the middle.
    """
    k = token_ids.shape[0]
    rewards = [float(x) for x in rewards]
    tree = build_prefix_tree(token_ids, mask, rewards, eps=eps)
    children: dict[int, list[int]] = {-1: []}  # -1: a virtual root (the group) when no span is shared by all k
    ends: dict[int, list[int]] = {}
    for i, p in enumerate(tree.paths):
        for parent, child in zip([-1, *p[:-1]], p):
            if child not in children.setdefault(parent, []):
                children[parent].append(child)
        ends.setdefault(p[-1] if p else -1, []).append(i)
    root = children[-1][0] if len(children[-1]) == 1 and len(tree.steps[children[-1][0]].members) == k else -1

    pos: dict[int, tuple[int, float]] = {}
    leaves = 0

    def place(node, depth):  # leaves top to bottom in order of first member; parents centred on their children
        nonlocal leaves
        kids = sorted(children.get(node, []), key=lambda c: tree.steps[c].members[0])
        for c in kids:
            place(c, depth + 1)
        pos[node] = (depth, float(np.mean([pos[c][1] for c in kids])) if kids else float(leaves))
        leaves += not kids

    place(root, 0)
    depth = max(d for d, _ in pos.values())
    fig, ax = plt.subplots(figsize=(3.3 * (depth + 1), 0.35 + 1.0 * max(leaves, 2)))
    advs = [s.advantage for s in tree.steps] or [0.0]
    bound = max(1e-9, max(abs(x) for x in advs))
    norm, cmap = TwoSlopeNorm(0.0, -bound, bound), plt.get_cmap("RdBu")
    for node, (x, y) in pos.items():
        for c in children.get(node, []):
            cx, cy = pos[c]
            ax.plot([x, x + 0.5, x + 0.5, cx], [y, y, cy, cy], color="0.6", lw=1, zorder=1)
        if node == -1:
            text, face = rf"$\mathbb{{G}}$  (k = {k})", "white"
        else:
            s = tree.steps[node]
            span = textwrap.fill(span_text(token_ids[s.members[0], s.start : s.end].tolist(), tokenizer, max_chars), 26)
            members = ",".join(map(str, s.members))
            stats = rf"$|\lambda|$={len(s.members)}  $\hat{{R}}$={s.reward:.2f}  $\hat{{A}}$={s.advantage:+.2f}"
            lines = [span, stats, f"i = {members}"]
            if node in ends:
                lines[-1] += "  (r=" + ",".join(f"{rewards[i]:g}" for i in ends[node]) + ")"
            text, face = "\n".join(lines), cmap(0.2 + 0.6 * norm(s.advantage))
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=7.5,
            zorder=2,
            family="DejaVu Sans",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": face, "edgecolor": "0.3", "alpha": 0.95},
        )
    ax.set_xlim(-0.5, depth + 0.5)
    ax.set_ylim(leaves - 0.4, -0.6)
    ax.axis("off")
    r = torch.tensor(rewards, dtype=torch.float64)
    ax.set_title(
        title or f"prefix tree of one group: k = {k}, mean r = {r.mean():.2f}, std r = {r.std():.2f}", fontsize=9
    )
    fig.tight_layout()
    return fig


def load_group(run: Path, args):
    """The group to draw (`pick_group`) and the run's tokenizer (from `final/`)."""
    if not (run / "final").is_dir():
        raise InputError(f"{run}/final: no such folder (the run's tokenizer)")
    picked = pick_group(run / "groups.parquet", args.step, args.group, args.min_distinct)
    return *picked, AutoTokenizer.from_pretrained(run / "final")


def main(argv=None) -> None:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a math_rl run folder with groups.parquet and final/")
    parser.add_argument("--step", type=int, help="training step of the group (default: pick one, see above)")
    tree = schema_defaults("overlap")["tree"]  # the config's overlap.tree
    parser.add_argument("--group", type=int, default=tree["group"], help="group within --step (default: %(default)s)")
    parser.add_argument(
        "--min-distinct",
        type=int,
        default=tree["min_distinct_step_rewards"],
        help="wanted distinct step rewards (default: %(default)s)",
    )
    parser.add_argument(
        "--max-chars", type=int, default=tree["max_chars"], help="spans longer than this are cut (default: %(default)s)"
    )
    parser.add_argument("--out-prefix", required=True, help="writes <prefix>.png, .pdf and .data.csv")
    args = parser.parse_args(argv)
    run = Path(args.run)
    step, group, ids, mask, rewards, distinct, tokenizer = exit_on_error(lambda: load_group(run, args))
    k = ids.shape[0]
    title = (
        f"{run.name}: step {step}, group {group}; k = {k}, mean r = {rewards.mean():.2f}, "
        f"{distinct} distinct step rewards R̂(λ); colour = Â(λ)"
    )
    fig = tree_figure(ids, mask, rewards, tokenizer=tokenizer, max_chars=args.max_chars, title=title)
    save_figure(fig, args.out_prefix)


if __name__ == "__main__":
    main()
