"""The implicit PRM of a GRPO group: its prefix tree, step rewards and step advantages (§3, Eq. 5–6, Theorem 1).

A group's completions form a prefix tree whose nodes are process sets λ. Node λ owns a token span [start, end);
its Monte-Carlo step reward is the mean outcome reward of its members, R̂(λ), and its step advantage is
Â(λ) = (R̂(λ) − mean(group)) / (std(group) + eps) (Eq. 5, `grpo_prm.loss.group_advantage`). Theorem 1 (§3; proof in
App. B): with token-level normalisation and μ = 1, GRPO's loss equals the PRM-aware loss that gives token t of
completion i the advantage Â(λ(i,t)).

Statistics (conventions of the overlap analysis of §3, pinned down here):
- path depth of a trajectory: number of process steps on its root-to-leaf path, not counting the root span shared
  by the whole group (whose advantage is 0), and at least 1; a flat tree has depth 1 everywhere.
- intermediate proportion: share of a trajectory's tokens in an intermediate step: 1 < |λ| < k (shared, but not by
  everyone) and not a leaf. Identical completions end in one leaf of the authors' tree, whose tokens get no process
  reward beyond the outcome although |λ| counts every copy (λ-GRPO's weights keep counting them, as the authors').
- flat tree: no intermediate step, i.e. the implied PRM is the ORM.

`PrefixTree` states these definitions node by node; `size_statistics` computes the same numbers from |λ| for many
groups at once (the trainer and `grpo_prm.overlap` use it). Pairwise prefix lengths come from
`grpo_prm.process_sets`; `step_rewards` spends k² memory per token, fine for analysis and checks.
"""

from dataclasses import dataclass
from itertools import pairwise

import torch

from grpo_prm.loss import group_advantage
from grpo_prm.process_sets import shared_prefix_lengths


@dataclass(frozen=True)
class ProcessStep:
    """One node λ of the prefix tree: tokens [start, end) of every member."""

    start: int
    end: int
    members: tuple[int, ...]
    reward: float  # R̂(λ)
    advantage: float  # Â(λ)
    leaf: bool = False  # every member ends here: one completion, or identical copies of it

    def intermediate(self, group_size: int) -> bool:
        """Shared by some but not all completions, and a real branch point rather than a leaf of duplicates."""
        return 1 < len(self.members) < group_size and not self.leaf


@dataclass(frozen=True)
class PrefixTree:
    steps: list[ProcessStep]
    paths: list[list[int]]  # per trajectory, indices into `steps`, root to leaf
    group_size: int

    def path_depth(self, i: int) -> int:
        """Process steps on trajectory i's path, the whole-group root span excluded (1 if all k are identical)."""
        return max(1, sum(len(self.steps[s].members) < self.group_size for s in self.paths[i]))

    def intermediate_proportion(self, i: int) -> float:
        """Share of trajectory i's tokens that lie in an intermediate step (`ProcessStep.intermediate`)."""
        spans = [self.steps[s] for s in self.paths[i]]
        n = sum(s.end - s.start for s in spans)
        inner = sum(s.end - s.start for s in spans if s.intermediate(self.group_size))
        return inner / n if n else 0.0

    @property
    def is_flat(self) -> bool:
        return not any(s.intermediate(self.group_size) for s in self.steps)


def step_rewards(token_ids: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """R_{i,t} = R̂(λ(i,t)), the mean outcome reward of token t's process set. Shape (k, T), 0 on padding."""
    lcp = shared_prefix_lengths(token_ids, mask)
    t = torch.arange(token_ids.shape[1], device=token_ids.device)
    member = lcp[:, :, None] > t  # (k, k, T): j ∈ λ(i, t)
    total = (member * rewards.to(torch.float64)[None, :, None]).sum(1)
    return torch.where(mask.bool(), total / member.sum(1).clamp(min=1), 0.0)


def step_advantages(token_ids: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, eps: float = 1e-4):
    """A_{i,t} = (R_{i,t} − mean(r)) / (std_unbiased(r) + eps), Eq. 5; 0 on padding. Shape (k, T)."""
    r = rewards.to(torch.float64)
    return torch.where(mask.bool(), group_advantage(step_rewards(token_ids, mask, r), r, eps), 0.0)


def build_prefix_tree(token_ids: torch.Tensor, mask: torch.Tensor, rewards, eps: float = 1e-4) -> PrefixTree:
    """The group's prefix tree with step rewards and advantages.

    Args:
        token_ids (`torch.LongTensor` of shape `(k, T)`): completions of one group, right-padded.
        mask (`torch.BoolTensor` of shape `(k, T)`): valid tokens.
        rewards (sequence of `float`, length k): outcome rewards r_i.
        eps (`float`, defaults to 1e-4): added to the group std, as in the trainer.
    """
    k = token_ids.shape[0]
    r = torch.as_tensor(rewards, dtype=torch.float64)
    lcp = shared_prefix_lengths(token_ids, mask).tolist()
    lengths = mask.bool().sum(1).tolist()
    index: dict[tuple, int] = {}
    steps: list[ProcessStep] = []
    paths: list[list[int]] = []
    for i in range(k):
        # Membership only shrinks along a path; it changes exactly at the distinct lcp values.
        cuts = sorted({0, lengths[i], *(min(v, lengths[i]) for v in lcp[i])})
        path = []
        for start, end in pairwise(cuts):
            members = tuple(j for j in range(k) if lcp[i][j] >= end)
            key = (start, members)
            if key not in index:
                reward = sum(rewards[j] for j in members) / len(members)
                index[key] = len(steps)
                leaf = all(lengths[j] == end for j in members)
                steps.append(ProcessStep(start, end, members, reward, float(group_advantage(reward, r, eps)), leaf))
            path.append(index[key])
        paths.append(path)
    return PrefixTree(steps, paths, k)


def size_statistics(n_shared: torch.Tensor, group_size: int, duplicates: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same statistics from |λ| and the duplicate counts, vectorised for many groups (the trainer logs these).

    A new process step starts wherever |λ| changes along a row (membership only shrinks, so the size changes with
    it). The copies of a row are members of every one of its steps, so its tokens with |λ| equal to its number of
    copies are exactly its leaf. Rows come in consecutive groups of `group_size`.

    Args:
        n_shared (`torch.LongTensor` of shape `(B, T)`): |λ(i, t)|, 0 on padding (`process_sets`).
        group_size (`int`): k.
        duplicates (`torch.LongTensor` of shape `(B,)`): copies of each row in its group (`duplicate_counts`).

    Returns:
        dict with `path_depth` (B,), `intermediate_proportion` (B,) and `flat` (G,) (bool per group).
    """
    valid = n_shared > 0
    below_root = valid & (n_shared < group_size)
    starts = torch.ones_like(valid)
    starts[:, 1:] = n_shared[:, 1:] != n_shared[:, :-1]
    leaf = n_shared == duplicates[:, None]
    inner = valid & (n_shared > 1) & (n_shared < group_size) & ~leaf
    return {
        "path_depth": (starts & below_root).sum(1).clamp(min=1),
        "intermediate_proportion": inner.sum(1) / valid.sum(1).clamp(min=1),
        "flat": ~inner.reshape(-1, group_size * n_shared.shape[1]).any(1),
    }
