"""Does GRPO induce a non-trivial PRM? The overlap analysis of paper §3 (arXiv 2509.21154; paper.md §3–§6, §9).

From a run recorded by `grpo_prm.recording`, per training step:
- `groups`, `flat_groups`, `nontrivial_share`: groups, groups whose tree is flat (no intermediate step, so the
  implied PRM is the ORM), and the non-flat share;
- `duplicate_share`: the share of the step's completions that have an identical copy in their group. Identical
  completions form one leaf of the authors' tree: they make no tree non-flat and their tokens are not intermediate;
- `path_depth_*`, `intermediate_proportion_*`: per-trajectory statistics, with the conventions of
  `grpo_prm.prefix_tree` (depth excludes the whole-group root span and is at least 1; proportion = share of a
  trajectory's tokens with 1 < |λ| < k outside a leaf), aggregated three ways, since the paper's monotone
  step-function curves may not be per-step values (paper.md §9):
    `*_mean`, `*_median`          over the trajectories of that step (per-step);
    `*_mean_cum`, `*_median_cum`  over every trajectory of steps ≤ that step (cumulative);
    `*_mean_sorted`, ...          the per-step column sorted ascending (row s holds the s-th smallest per-step value).
  `nontrivial_share_cum` is the non-flat share of all groups up to the step.

Cost is linear in the recorded tokens: each group goes through `process_set_sizes` (O(k·T) plus O(k²) per group, no
k² per token) and `size_statistics`. `theorem1_check` and `theorem1_losses` verify Theorem 1 on a recorded group;
`pick_group` and `tree_figure` draw a group's prefix tree with |λ|, R̂(λ) and Â(λ) on every node (the paper's
worked-example view). `load_run` reads back an analysed run folder for the tables and figures.

    python -m grpo_prm.overlap <run>/groups.parquet --out <run>/overlap --theorem1-groups 100
"""

import argparse
import heapq
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from grpo_prm.cli import OneLineParser, exit_on_error
from grpo_prm.io import write_atomic
from grpo_prm.prefix_tree import build_prefix_tree, size_statistics, step_advantages
from grpo_prm.process_sets import duplicate_counts, process_set_sizes
from grpo_prm.recording import read_groups

STATS = ("path_depth", "intermediate_proportion")


def trajectory_frame(path) -> pd.DataFrame:
    """One row per recorded completion: step, group, index, k, length, reward, path_depth, intermediate_proportion,
    its group's `flat` flag and whether it has an identical copy in its group (`duplicate`)."""
    cols = {c: [] for c in ("step", "group", "k", "length", "reward", "flat", "duplicate", *STATS)}
    for step, group, ids, mask, rewards in read_groups(path):
        k = ids.shape[0]
        copies = duplicate_counts(ids, mask, k)
        stats = size_statistics(process_set_sizes(ids, mask), k, copies)  # (k,), (k,), (1,)
        cols["step"].append(np.full(k, step))
        cols["group"].append(np.full(k, group))
        cols["k"].append(np.full(k, k))
        cols["length"].append(mask.sum(1).numpy())
        cols["reward"].append(rewards.numpy())
        cols["flat"].append(np.full(k, bool(stats["flat"][0])))
        cols["duplicate"].append((copies > 1).numpy())
        for name in STATS:
            cols[name].append(stats[name].numpy().astype(np.float64))
    frame = pd.DataFrame({c: np.concatenate(v) if v else [] for c, v in cols.items()})
    frame.insert(2, "index", frame.groupby(["step", "group"]).cumcount())
    return frame


def running_median(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Median of values[:e] for every e in `ends` (increasing), with two heaps: O(n log n)."""
    low, high, out, n = [], [], [], 0  # low: max-heap (negated) of the smaller half; high: min-heap
    for end in ends:
        for v in values[n:end]:
            heapq.heappush(low, -heapq.heappushpop(high, v))
            if len(low) > len(high):
                heapq.heappush(high, -heapq.heappop(low))
        n = end
        out.append(np.nan if not n else high[0] if len(high) > len(low) else (high[0] - low[0]) / 2)
    return np.array(out, dtype=np.float64)


def step_frame(traj: pd.DataFrame) -> pd.DataFrame:
    """Per-step, cumulative and sorted overlap statistics from `trajectory_frame` (see the module docstring)."""
    traj = traj.sort_values(["step", "group", "index"], kind="stable")
    groups = traj.drop_duplicates(["step", "group"]).groupby("step")
    df = pd.DataFrame({"groups": groups.size(), "flat_groups": groups["flat"].sum().astype(int)})
    df["nontrivial_share"] = 1 - df["flat_groups"] / df["groups"]
    by_step = traj.groupby("step")
    df["trajectories"], df["tokens"] = by_step.size(), by_step["length"].sum()
    df["reward_mean"] = by_step["reward"].mean()
    df["duplicate_share"] = by_step["duplicate"].mean()
    for name in STATS:
        df[f"{name}_mean"], df[f"{name}_median"] = by_step[name].mean(), by_step[name].median()
    df["nontrivial_share_cum"] = 1 - df["flat_groups"].cumsum() / df["groups"].cumsum()
    ends = df["trajectories"].cumsum().to_numpy()
    for name in STATS:
        df[f"{name}_mean_cum"] = by_step[name].sum().cumsum() / df["trajectories"].cumsum()
        df[f"{name}_median_cum"] = running_median(traj[name].to_numpy(), ends)
        for how in ("mean", "median"):
            df[f"{name}_{how}_sorted"] = np.sort(df[f"{name}_{how}"].to_numpy())
    return df.reset_index()


def analyse(path) -> pd.DataFrame:
    """The per-step overlap table of a recorded run (`step_frame(trajectory_frame(path))`)."""
    return step_frame(trajectory_frame(path))


def headline(df: pd.DataFrame) -> dict:
    """The paper's §3 headline from `analyse`'s table: flat / total groups and the non-trivial percentage."""
    groups, flat = int(df["groups"].sum()), int(df["flat_groups"].sum())
    return {
        "steps": len(df),
        "groups": groups,
        "flat_groups": flat,
        "nontrivial_groups": groups - flat,
        "nontrivial_pct": 100.0 * (groups - flat) / groups if groups else float("nan"),
    }


def prefix_node_ids(token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """An id per distinct prefix y_{:t+1}, i.e. per (process set λ(i,t), position t); -1 on padding. Shape (k, T).

    Sorting the rows makes each prefix's rows contiguous, so a new id starts at sorted row p and position t exactly
    when row p shares fewer than t+1 tokens with row p−1. O(k·T) after the sort.
    """
    k, T = token_ids.shape
    ids, valid = token_ids.cpu().numpy(), mask.bool().cpu().numpy()
    lens = valid.sum(1)
    order = np.array(sorted(range(k), key=lambda i: ids[i, : lens[i]].tobytes()), dtype=np.int64)
    s_ids, s_lens = ids[order], lens[order]
    m = np.minimum(s_lens[1:], s_lens[:-1])  # (k-1,)
    t = np.arange(T)
    differ = (s_ids[1:] != s_ids[:-1]) | (t >= m[:, None])
    adj = np.where(differ.any(1), differ.argmax(1), T)  # LCP of sorted neighbours
    new = np.ones((k, T), dtype=bool)
    new[1:] = adj[:, None] <= t  # (k, T)
    local = np.cumsum(new, 0) - 1  # id within column t
    node = np.empty((k, T), dtype=np.int64)
    node[order] = t * k + local
    return torch.from_numpy(np.where(valid, node, -1))


def theorem1_check(token_ids, mask, rewards, step_adv=None, eps: float = 1e-4) -> float:
    """Largest |Σ_{j∈λ} a_j − |λ|·A_{i,t}| over every token (i, t) of one group, λ = λ(i, t) (Theorem 1, Lemma 1).

    With μ = 1 the members of a process set share the context and the token, so they share the gradient
    ∇log π(y_t | y_{:t}): GRPO weights it by Σ_{j∈λ} a_j, the PRM-aware loss (Eq. 6) by Σ_{j∈λ} A_{j,t} = |λ|·Â(λ).
    Every difference vanishes iff A_{i,t} = Â(λ(i,t)) on every token, and then the two losses agree term by term;
    in float64 the result is ≈1e-15. Comparing each member's own A_{i,t} (not only their sum) also catches step
    advantages that are not a function of the node, e.g. GRPO's a_i broadcast over tokens (the ORM).

    Args:
        token_ids (`torch.LongTensor` of shape `(k, T)`), mask (`torch.BoolTensor` of shape `(k, T)`): one group.
        rewards (`torch.Tensor` of shape `(k,)`): outcome rewards r_i.
        step_adv (`torch.Tensor` of shape `(k, T)`, *optional*): A_{i,t} to test; defaults to
            `prefix_tree.step_advantages` (O(k²·T) memory: a check, not the linear analysis path).
        eps (`float`, defaults to 1e-4): added to the group std, as in the trainer.
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)
    a = (r - r.mean()) / (r.std() + eps)  # GRPO advantage a_i, (k,)
    A = step_advantages(token_ids, mask, r, eps) if step_adv is None else torch.as_tensor(step_adv).double()
    node = prefix_node_ids(token_ids, mask)
    valid = node >= 0
    if not valid.any():
        return 0.0
    _, inverse = torch.unique(node[valid], return_inverse=True)
    size = torch.bincount(inverse).double()  # |λ| of every (λ, t)
    sum_a = torch.bincount(inverse, weights=a[:, None].expand_as(node)[valid])  # Σ_{j∈λ} a_j: GRPO
    return (sum_a[inverse] - size[inverse] * A[valid]).abs().max().item()  # vs |λ|·A_{i,t}: PRM


def span_text(ids: list[int], tokenizer=None, max_chars: int = 60) -> str:
    """A node's span for display: decoded (or ids), newlines shown as ↵, `$` escaped, long spans cut in the middle."""
    if not ids:
        return "∅"
    text = tokenizer.decode(ids) if tokenizer is not None else " ".join(map(str, ids))
    text = text.replace("\n", "↵")
    if len(text) > max_chars:
        text = f"{text[: max_chars // 2 - 1]} … {text[-(max_chars // 2 - 2) :]}"
    return text.replace("$", r"\$")  # literal dollars, not mathtext


def tree_figure(token_ids, mask, rewards, path=None, tokenizer=None, eps: float = 1e-4, max_chars: int = 60,
                title: str | None = None):
    """Draw one group's prefix tree: every node with its span, members, |λ|, R̂(λ) and Â(λ), coloured by Â.

    Args:
        token_ids (`torch.LongTensor` of shape `(k, T)`), mask (`torch.BoolTensor` of shape `(k, T)`): one group.
        rewards (sequence of `float`, length k): outcome rewards.
        path (`str` or `Path`, *optional*): write the figure there (format from the suffix) and close it.
        tokenizer (*optional*): decodes spans; token ids are shown otherwise.
        eps (`float`, defaults to 1e-4): std epsilon of Â (0 reproduces the paper's worked numbers).
        max_chars (`int`, defaults to 60): spans longer than this are cut in the middle.

    Returns:
        The saved path if `path` is given, else the `matplotlib.figure.Figure`.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

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
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5, zorder=2, family="DejaVu Sans",
                bbox={"boxstyle": "round,pad=0.3", "facecolor": face, "edgecolor": "0.3", "alpha": 0.95})
    ax.set_xlim(-0.5, depth + 0.5)
    ax.set_ylim(leaves - 0.4, -0.6)
    ax.axis("off")
    r = torch.tensor(rewards, dtype=torch.float64)
    ax.set_title(title or f"prefix tree of one group: k = {k}, mean r = {r.mean():.2f}, std r = {r.std():.2f}",
                 fontsize=9)
    fig.tight_layout()
    if path is None:
        return fig
    fmt = Path(path).suffix.lstrip(".") or "png"
    [out] = write_atomic(path, {"": lambda tmp: fig.savefig(tmp, format=fmt, dpi=150)})
    plt.close(fig)
    return out


def theorem1_losses(token_ids, mask, rewards, eps: float = 1e-4) -> tuple[float, float]:
    """Values of L_GRPO (v1 Eq. 2a) and L_PRM (Eq. 6) of one group at μ = 1 and β = 0, where every P_{i,t} = 1.

    L_GRPO = Σ_{i,t} a_i / Σ len, L_PRM = Σ_{i,t} A_{i,t} / Σ len (token-level normalisation). Theorem 1 says they are
    equal; `theorem1_check` compares the terms that multiply each ∇log π, which also settles the gradients.
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)
    a = (r - r.mean()) / (r.std() + eps)  # (k,)
    A = step_advantages(token_ids, mask, r, eps)  # (k, T)
    n = mask.sum()
    return (mask.sum(1) * a).sum().item() / n.item(), A[mask.bool()].sum().item() / n.item()


def theorem1_frame(path, max_groups: int | None = None) -> pd.DataFrame:
    """Theorem 1 on the first `max_groups` recorded groups (all by default): step, group, k, tokens, max_abs_diff
    (`theorem1_check`), loss_grpo, loss_prm and loss_abs_diff (`theorem1_losses`)."""
    rows = []
    for n, (step, group, ids, mask, rewards) in enumerate(read_groups(path)):
        if max_groups is not None and n >= max_groups:
            break
        grpo, prm = theorem1_losses(ids, mask, rewards)
        rows.append((step, group, ids.shape[0], int(mask.sum()), theorem1_check(ids, mask, rewards), grpo, prm,
                     abs(grpo - prm)))
    return pd.DataFrame(rows, columns=["step", "group", "k", "tokens", "max_abs_diff", "loss_grpo", "loss_prm",
                                       "loss_abs_diff"])


def theorem1_summary(check: pd.DataFrame) -> dict:
    """The largest differences over the checked groups (`theorem1_frame`)."""
    return {"theorem1_groups": len(check), "theorem1_tokens": int(check["tokens"].sum()),
            "theorem1_max_abs_diff": float(check["max_abs_diff"].max()),
            "theorem1_max_loss_diff": float(check["loss_abs_diff"].max()),
            "theorem1_max_abs_loss": float(check[["loss_grpo", "loss_prm"]].abs().max().max())}


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
        `(step, group, token_ids, mask, rewards, distinct)`; raises `ValueError` if the group is not recorded.
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
        raise ValueError(f"{path}: no recorded group" + (f" at step {step}, group {group}" if step is not None else ""))
    return best


ANALYSIS = "overlap"  # <run>/overlap.csv (per step) and <run>/overlap.json (headline), written by `main`


def load_run(folder) -> tuple[int, pd.DataFrame, dict]:
    """An analysed run folder: its group size k (config.json), per-step table and headline; `ValueError` names
    what is missing."""
    folder = Path(folder)
    try:
        k = int(json.loads((folder / "config.json").read_text())["group_size"])
        steps = pd.read_csv(folder / f"{ANALYSIS}.csv")
        summary = json.loads((folder / f"{ANALYSIS}.json").read_text())
    except (OSError, KeyError, json.JSONDecodeError, pd.errors.ParserError) as e:
        raise ValueError(f"{folder}: not an analysed overlap run ({type(e).__name__}: {e})") from None
    return k, steps, summary


def main(cfg: argparse.Namespace) -> None:
    df = analyse(cfg.recording)
    summary = headline(df)
    if cfg.theorem1_groups:
        summary |= theorem1_summary(theorem1_frame(cfg.recording, cfg.theorem1_groups))
    write_atomic(cfg.out, {".csv": lambda p: df.to_csv(p, index=False),
                           ".json": lambda p: Path(p).write_text(json.dumps(summary, indent=2) + "\n")})
    print(json.dumps(summary))


def cli(argv=None) -> None:
    parser = OneLineParser(description="Overlap analysis (paper §3) of a run recorded by grpo_prm.recording.")
    parser.add_argument("recording", help="the run's groups.parquet (or its .parts folder while it runs)")
    parser.add_argument("--out", required=True, help="output prefix: writes <out>.csv (per step) and <out>.json")
    parser.add_argument("--theorem1-groups", type=int, default=0, help="check Theorem 1 on this many groups")
    args = parser.parse_args(argv)
    exit_on_error(lambda: main(args))


if __name__ == "__main__":
    cli()
