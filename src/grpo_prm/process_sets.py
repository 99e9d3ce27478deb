"""Process sets of a group of completions (§3 (process sets λ^(i,t)), arXiv 2509.21154).

The k completions of one query form a prefix tree. The process set of token t of completion i is

    λ(i, t) = { j : y_j[:t+1] == y_i[:t+1] }        (duplicates count; i itself included)

and λ-GRPO weights that token's loss term by 1 / |λ(i, t)|.

The authors build the tree recursively in O(k²·T) Python. Here the whole tree is summarised by the k×k matrix of
pairwise longest common prefixes (LCP), since |λ(i, t)| = #{ j : LCP(i, j) > t } (with LCP(i, i) = len(y_i)):

1. sort the rows lexicographically (rows sharing a prefix become contiguous);
2. LCP of sorted neighbours = their first mismatch, capped by both lengths;
3. LCP of any two sorted rows = the minimum of the neighbour LCPs between them;
4. per row, start at k, subtract 1 at each LCP value and cumulate along t.

Steps 1-3 read the k×T tokens a constant number of times and otherwise cost O(k log k + k²); they run on the host
(numpy), where sorting rows and finding first mismatches is cheap. Step 4 writes the (k, T) result on the input's
device. There is no Python loop over tokens, only over the k rows (sort keys, neighbour pairs).

This module is the only place that computes prefixes: the trainer's weights (`process_set_sizes`), the prefix tree
and step rewards of `grpo_prm.prefix_tree` (`shared_prefix_lengths`) and the Theorem-1 check of `grpo_prm.overlap`
(`prefix_node_ids`) all start from steps 1-2. A row ends at its first False in `mask`: anything after it is padding.
"""

from itertools import pairwise

import numpy as np
import torch

from grpo_prm.errors import SettingError


def _sorted_rows(ids: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-2 for k ≥ 1 rows of T ≥ 1 tokens: `(order, lens, adj)`, the rows in lexicographic order, each row's
    length (position of its first pad, T if none) and adj[n] = LCP(order[n], order[n+1])."""
    k, T = ids.shape
    first_pad = valid.argmin(1)
    lens = np.where(valid[np.arange(k), first_pad], T, first_pad)
    # 1. Lexicographic order of the rows' real tokens. Comparing the raw bytes is enough: fixed-width tokens make
    #    "same first t tokens" the same as "same first t·itemsize bytes", so every prefix's rows are contiguous.
    order = sorted(range(k), key=lambda i: ids[i, : lens[i]].tobytes())
    # 2. Neighbour LCP: first mismatch within the shorter row (pad ids are never compared), else its length.
    #    A loop over the k-1 neighbour pairs: cheaper than materialising the sorted (k, T) copy.
    adj = np.empty(k - 1, dtype=np.int64)
    for n, (a, b) in enumerate(pairwise(order)):
        m = min(lens[a], lens[b])
        differ = ids[a, :m] != ids[b, :m]
        j = differ.argmax() if m else 0
        adj[n] = j if m and differ[j] else m
    return np.array(order), lens, adj


def _sorted_lcp(order: np.ndarray, lens: np.ndarray, adj: np.ndarray, T: int) -> np.ndarray:
    """Step 3: LCP(order[a], order[b]) for every pair of sorted positions, (k, k); the diagonal is each row's length."""
    k = len(order)
    # LCP(sorted a, sorted b) = min(adj[a:b]) for a < b: a running minimum along each row of the upper triangle.
    lcp = np.full((k, k), T)
    lcp[:-1, 1:] = np.minimum.accumulate(np.where(np.triu(np.ones((k - 1, k - 1), bool)), adj, T), axis=1)
    lcp = np.minimum(lcp, lcp.T)
    lcp[np.arange(k), np.arange(k)] = lens[order]  # a row shares its own prefix up to its length
    return lcp


def process_set_sizes(token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """|λ(i, t)| for every token of one group.

    Args:
        token_ids (`torch.LongTensor` of shape `(k, T)`):
            The group's k completions (completion tokens only, right-padded).
        mask (`torch.BoolTensor` of shape `(k, T)`):
            True on real tokens (including the first EOS), False on padding. Pad ids are never compared, so a pad id
            equal to EOS is harmless, and a strict prefix of another completion diverges where it ends. A row ends at
            its first False: anything after it counts as padding.

    Returns:
        `torch.LongTensor` of shape `(k, T)`: `n_shared[i, t] = |λ(i, t)|` on valid tokens, 0 on padding.
    """
    k, T = token_ids.shape
    device = token_ids.device
    if k == 0 or T == 0:
        return torch.zeros((k, T), dtype=torch.long, device=device)
    order, lens, adj = _sorted_rows(token_ids.cpu().numpy(), mask.bool().cpu().numpy())
    lcp = _sorted_lcp(order, lens, adj, T)
    # 4. |λ(i, t)| = k − #{ j : LCP(i, j) ≤ t }: a -1 at (i, LCP(i, j)) for every j, then a cumulative sum over t.
    #    LCP = T never counts. Past its length a row has LCP ≤ t with every j, hence 0 on padding.
    events = torch.from_numpy((order[:, None] * T + lcp)[lcp < T]).to(device)
    sizes = torch.zeros((k, T), dtype=torch.long, device=device)
    sizes[:, 0] = k
    sizes.view(-1).index_put_((events,), torch.tensor(-1, device=device), accumulate=True)
    return sizes.cumsum_(1)


def shared_prefix_lengths(token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """lcp[i, j]: length of the longest common prefix of completions i and j (valid tokens only); lcp[i, i] is row
    i's length. `torch.LongTensor` of shape (k, k), on the input's device."""
    k, T = token_ids.shape
    lcp = np.zeros((k, k), dtype=np.int64)
    if k and T:
        order, lens, adj = _sorted_rows(token_ids.cpu().numpy(), mask.bool().cpu().numpy())
        lcp[np.ix_(order, order)] = _sorted_lcp(order, lens, adj, T)
    return torch.from_numpy(lcp).to(token_ids.device)


def prefix_node_ids(token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """An id per distinct prefix y_{:t+1}, i.e. per (process set λ(i,t), position t); -1 on padding. Shape (k, T).

    Each prefix's rows are contiguous in sorted order (step 1), so a new id starts at sorted row p and position t
    exactly when row p shares fewer than t+1 tokens with row p−1 (step 2). O(k·T) after the sort.
    """
    k, T = token_ids.shape
    if k == 0 or T == 0:
        return torch.full((k, T), -1, dtype=torch.long, device=token_ids.device)
    order, lens, adj = _sorted_rows(token_ids.cpu().numpy(), mask.bool().cpu().numpy())
    t = np.arange(T)
    new = np.ones((k, T), dtype=bool)
    new[1:] = adj[:, None] <= t  # (k, T)
    local = np.cumsum(new, 0) - 1  # id within column t
    node = np.empty((k, T), dtype=np.int64)
    node[order] = t * k + local
    return torch.from_numpy(np.where(t < lens[:, None], node, -1)).to(token_ids.device)


def process_set_sizes_grouped(token_ids: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """`process_set_sizes` for a batch whose rows come in consecutive groups of `group_size` (TRL's layout).

    Args:
        token_ids (`torch.LongTensor` of shape `(B, T)`): completions, `B` a multiple of `group_size`.
        mask (`torch.BoolTensor` of shape `(B, T)`): valid-token mask.
        group_size (`int`): k, the number of completions per query.

    Returns:
        `torch.LongTensor` of shape `(B, T)`: |λ| per token, computed within each group.
    """
    B = token_ids.shape[0]
    if group_size < 2:
        raise SettingError(f"group_size must be at least 2, got {group_size}")
    if B % group_size:
        raise ValueError(f"batch of {B} rows is not a whole number of groups of {group_size}")
    return torch.cat(
        [process_set_sizes(token_ids[g : g + group_size], mask[g : g + group_size]) for g in range(0, B, group_size)]
    )


def duplicate_counts(token_ids: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """How many completions of its group are identical to each row (itself included), for rows in consecutive
    groups of `group_size`. Shape (B,).

    Identical completions share one leaf of the authors' prefix tree: the tokens of that leaf are a process step of
    their own, not a shared prefix, although |λ| counts every copy there (and λ-GRPO weights them by it).
    """
    valid = mask.bool().long().cumprod(1).bool()  # a row ends at its first pad, as in `process_set_sizes`
    group = torch.arange(token_ids.shape[0], device=token_ids.device)[:, None] // group_size
    keyed = torch.cat([group, token_ids.masked_fill(~valid, -1)], 1)
    _, inverse, counts = torch.unique(keyed, dim=0, return_inverse=True, return_counts=True)
    return counts[inverse]
