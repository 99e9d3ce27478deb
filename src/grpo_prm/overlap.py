"""Does GRPO induce a non-trivial PRM? The overlap analysis of §3 (arXiv 2509.21154), and Theorem 1 (§3; proof in
App. B) checked on recorded groups.

From a run recorded by `grpo_prm.recording`, per training step:
- `groups`, `flat_groups`, `nontrivial_share`: groups, groups whose tree is flat (no intermediate step, so the
  implied PRM is the ORM), and the non-flat share;
- `duplicate_share`: the share of the step's completions that have an identical copy in their group. Identical
  completions form one leaf of the authors' tree: they make no tree non-flat and their tokens are not intermediate;
- `path_depth_*`, `intermediate_proportion_*`: per-trajectory statistics, with the conventions of
  `grpo_prm.prefix_tree` (depth excludes the whole-group root span and is at least 1; proportion = share of a
  trajectory's tokens with 1 < |λ| < k outside a leaf), aggregated three ways, since the paper's monotone
  step-function curves may not be per-step values (§3 (overlap analysis)):
    `*_mean`, `*_median`          over the trajectories of that step (per-step);
    `*_mean_cum`, `*_median_cum`  over every trajectory of steps ≤ that step (cumulative);
    `*_mean_sorted`, ...          the per-step column sorted ascending (row s holds the s-th smallest per-step value).
  `nontrivial_share_cum` is the non-flat share of all groups up to the step.

Cost is linear in the recorded tokens: each group goes through `process_set_sizes` (O(k·T) plus O(k²) per group, no
k² per token) and `size_statistics`. `theorem1_check` and `theorem1_losses` verify Theorem 1 on a recorded group.
Reading the results back for tables and figures is `grpo_prm.overlap_runs`; the tree drawing is
`paper_figures/figure_overlap_tree.py`.

    python -m grpo_prm.overlap <run>/groups.parquet --out <run>/overlap --theorem1-groups 100
"""

import heapq
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from grpo_prm.cli import OneLineParser, exit_on_error, nonnegative_int
from grpo_prm.io import write_atomic
from grpo_prm.loss import group_advantage
from grpo_prm.prefix_tree import size_statistics, step_advantages
from grpo_prm.process_sets import duplicate_counts, prefix_node_ids, process_set_sizes
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
    """The §3 headline from `analyse`'s table: flat / total groups and the non-trivial percentage."""
    groups, flat = int(df["groups"].sum()), int(df["flat_groups"].sum())
    return {
        "steps": len(df),
        "groups": groups,
        "flat_groups": flat,
        "nontrivial_groups": groups - flat,
        "nontrivial_pct": 100.0 * (groups - flat) / groups if groups else float("nan"),
    }


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
    a = group_advantage(r, r, eps)  # GRPO advantage a_i, (k,)
    A = step_advantages(token_ids, mask, r, eps) if step_adv is None else torch.as_tensor(step_adv).double()
    node = prefix_node_ids(token_ids, mask)
    valid = node >= 0
    if not valid.any():
        return 0.0
    _, inverse = torch.unique(node[valid], return_inverse=True)
    size = torch.bincount(inverse).double()  # |λ| of every (λ, t)
    sum_a = torch.bincount(inverse, weights=a[:, None].expand_as(node)[valid])  # Σ_{j∈λ} a_j: GRPO
    return (sum_a[inverse] - size[inverse] * A[valid]).abs().max().item()  # vs |λ|·A_{i,t}: PRM


def theorem1_losses(token_ids, mask, rewards, eps: float = 1e-4) -> tuple[float, float]:
    """Values of L_GRPO (v1 Eq. 2a) and L_PRM (Eq. 6) of one group at μ = 1 and β = 0, where every P_{i,t} = 1.

    L_GRPO = Σ_{i,t} a_i / Σ len, L_PRM = Σ_{i,t} A_{i,t} / Σ len (token-level normalisation). Theorem 1 says they are
    equal; `theorem1_check` compares the terms that multiply each ∇log π, which also settles the gradients.
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)
    a = group_advantage(r, r, eps)  # (k,)
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
        rows.append(
            (step, group, ids.shape[0], int(mask.sum()), theorem1_check(ids, mask, rewards), grpo, prm, abs(grpo - prm))
        )
    return pd.DataFrame(
        rows, columns=["step", "group", "k", "tokens", "max_abs_diff", "loss_grpo", "loss_prm", "loss_abs_diff"]
    )


def theorem1_summary(check: pd.DataFrame) -> dict:
    """The largest differences over the checked groups (`theorem1_frame`)."""
    return {
        "theorem1_groups": len(check),
        "theorem1_tokens": int(check["tokens"].sum()),
        "theorem1_max_abs_diff": float(check["max_abs_diff"].max()),
        "theorem1_max_loss_diff": float(check["loss_abs_diff"].max()),
        "theorem1_max_abs_loss": float(check[["loss_grpo", "loss_prm"]].abs().max().max()),
    }


def write_analysis(recording, out, theorem1_groups: int = 0) -> dict:
    """<out>.csv (`analyse`) and <out>.json (`headline`, plus `theorem1_summary` of the first `theorem1_groups`
    groups if any), both or neither; prints and returns the summary."""
    df = analyse(recording)
    summary = headline(df)
    if theorem1_groups:
        summary |= theorem1_summary(theorem1_frame(recording, theorem1_groups))
    write_atomic(
        out,
        {
            ".csv": lambda p: df.to_csv(p, index=False),
            ".json": lambda p: Path(p).write_text(json.dumps(summary, indent=2) + "\n"),
        },
    )
    print(json.dumps(summary))
    return summary


def main(argv=None) -> None:
    parser = OneLineParser(description="Overlap analysis (§3) of a run recorded by grpo_prm.recording.")
    parser.add_argument("recording", help="the run's groups.parquet (or its .parts folder while it runs)")
    parser.add_argument("--out", required=True, help="output prefix: writes <out>.csv (per step) and <out>.json")
    parser.add_argument(
        "--theorem1-groups", type=nonnegative_int, default=0, help="check Theorem 1 on this many groups"
    )
    args = parser.parse_args(argv)
    exit_on_error(lambda: write_analysis(args.recording, args.out, args.theorem1_groups))


if __name__ == "__main__":
    main()
