"""Process sets of a group of completions (paper §3, arXiv 2509.21154).

The k completions of one query form a prefix tree. The process set of token t of completion i is

    λ(i, t) = { j : y_j[:t+1] == y_i[:t+1] }        (duplicates count; i itself included)

and λ-GRPO weights that token's loss term by 1 / |λ(i, t)|.

The authors build the tree recursively in O(k²·T). Here |λ| comes from one sort and one pass (O(k·T) after an
O(k log k · T) sort), with no Python loop over tokens: sort the rows lexicographically, so that the rows sharing a
prefix form a contiguous run; the run containing row i at column t is cut wherever two neighbours' longest common
prefix is ≤ t; |λ(i, t)| is the length of that run.
"""

import torch


def process_set_sizes(token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """|λ(i, t)| for every token of one group.

    Args:
        token_ids (`torch.LongTensor` of shape `(k, T)`):
            The group's k completions (completion tokens only, right-padded).
        mask (`torch.BoolTensor` of shape `(k, T)`):
            True on real tokens (including the first EOS), False on padding. Pad ids are never compared, so a pad id
            equal to EOS is harmless, and a strict prefix of another completion diverges where it ends.

    Returns:
        `torch.LongTensor` of shape `(k, T)`: `n_shared[i, t] = |λ(i, t)|` on valid tokens, 0 on padding.
    """
    k, T = token_ids.shape
    mask = mask.bool()
    if k == 0 or T == 0:
        return torch.zeros((k, T), dtype=torch.long, device=token_ids.device)
    # Lexicographic order of the rows; padding becomes -1 so it never matches a real token.
    ids = token_ids.masked_fill(~mask, -1)
    _, rank = torch.unique(ids, dim=0, return_inverse=True)  # rank of each row among the distinct rows
    order = torch.argsort(rank, stable=True)  # (k,)
    s_ids, s_mask = ids[order], mask[order]
    # still_shared[j, t]: sorted rows j and j+1 share the prefix [:t+1] (both valid up to t).
    same = (s_ids[1:] == s_ids[:-1]) & s_mask[1:] & s_mask[:-1]  # (k-1, T)
    still_shared = same.long().cumprod(dim=1).bool()
    # Run id of each sorted row per column: the number of cuts above it. Offset by column so ids are global.
    cuts = torch.cat([torch.zeros((1, T), dtype=torch.long, device=ids.device), (~still_shared).long()], dim=0)
    run_id = cuts.cumsum(dim=0) + torch.arange(T, device=ids.device) * k  # (k, T)
    run_len = torch.bincount(run_id.flatten(), minlength=k * T)[run_id]  # (k, T)
    sizes = torch.empty_like(run_len)
    sizes[order] = run_len
    return sizes.masked_fill(~mask, 0)


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
        raise ValueError(f"group_size must be at least 2, got {group_size}")
    if B % group_size:
        raise ValueError(f"batch of {B} rows is not a whole number of groups of {group_size}")
    return torch.cat(
        [
            process_set_sizes(token_ids[g : g + group_size], mask[g : g + group_size])
            for g in range(0, B, group_size)
        ]
    )
