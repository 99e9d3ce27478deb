"""Benchmark baseline: the paper authors' recursive prefix tree, re-implemented.

A re-implementation (not a copy) of the behaviour of `InfPRMTree` / `InfPRMNode` in coli-saar/grpo-prm
`lambda_grpo/utils.py` (the authors' code, github.com/coli-saar/grpo-prm, lambda_grpo/utils.py), kept in pure Python
over lists as the original is:

1. Each completion's valid tokens become a tuple; identical tuples are merged into one entry that remembers all of
   their row indices (duplicates share a leaf but every index counts).
2. Entries are padded with `None` so a strict prefix diverges where it ends.
3. The tree is built recursively: starting at position `start`, advance while every entry of the member set has the
   same token there (one dict over the members per position), then split the set on the token at the first
   disagreeing position and recurse into each part. A set with a single distinct entry is a leaf owning the rest of
   its tokens.
4. A node's weight is 1/#(row indices below it); a row's per-token values are the concatenation of the node values
   along its root-to-leaf path, each repeated over the node's span.

The original reads out float weights `1/#members`; here the node value is the integer #members, i.e. |λ(i, t)|, so
the result can be compared exactly with `grpo_prm.process_sets.process_set_sizes`. The tree, the recursion and the
read-out are the same. One deliberate fix: the original pads every entry with `max_len - 2` Nones (it takes `len` of
the (indices, tokens) pair), which under-pads when the longest completion has fewer than two tokens; here each entry
gets enough Nones to reach `max_len + 1`.

Cost: O(Σ_nodes members × span) dict operations for the build, plus O(k·n) list copying for the read-out, all in the
interpreter. The paper states the set construction as O(k²·n).
"""

from __future__ import annotations

import torch


class _Node:
    """One process set: `span` tokens owned by this node, shared by the row indices `idx`."""

    __slots__ = ("children", "idx", "span")

    def __init__(self, content: list, idx: list[int] | None = None, children: list[_Node] | None = None):
        self.span = sum(1 for x in content if x is not None)  # pads (None) own no token
        self.children = children
        if children is None:
            self.idx = sorted(idx)
        else:
            self.idx = sorted(i for c in children for i in c.idx)

    def read_out(self, prefix: list[int], out: dict[int, list[int]]) -> None:
        """Append this node's value (#members) over its span to `prefix`; at a leaf, hand the path to every index."""
        path = prefix + [len(self.idx)] * self.span
        if self.children is None:
            for i in self.idx:
                out[i] = path
            return
        for c in self.children:
            c.read_out(path, out)


def _build(entries: list[tuple[list[int], list]], start: int) -> _Node:
    """Recursive split of `entries` (pairs of row indices and None-padded tokens), all equal on [:start]."""
    if len(entries) == 1:
        idx, toks = entries[0]
        return _Node(toks[start:], idx=idx)
    pos = start - 1
    by_token: dict = {None: None}
    while len(by_token) == 1:  # advance while every member has the same token at `pos`
        pos += 1
        by_token = {}
        for e in entries:
            tok = e[1][pos]
            if tok in by_token:
                by_token[tok].append(e)
            else:
                by_token[tok] = [e]
    return _Node(entries[0][1][start:pos], children=[_build(part, pos) for part in by_token.values()])


class AuthorsPrefixTree:
    """The authors' per-group prefix tree over a list of token sequences (pads already removed)."""

    def __init__(self, trajectories: list[list[int]]):
        rows_of: dict[tuple, list[int]] = {}
        for i, z in enumerate(trajectories):
            rows_of.setdefault(tuple(z), []).append(i)
        max_len = max((len(z) for z in rows_of), default=0)
        entries = [(idx, list(z) + [None] * (max_len + 1 - len(z))) for z, idx in rows_of.items()]
        self.k = len(trajectories)
        self.root = _build(entries, 0) if entries else None

    def sizes(self) -> list[list[int]]:
        """|λ(i, t)| per row, one list per trajectory (length = that trajectory's length)."""
        out: dict[int, list[int]] = {}
        if self.root is not None:
            self.root.read_out([], out)
        return [out[i] for i in range(self.k)]

    def loss_scales(self) -> list[list[float]]:
        """The authors' output: per-token weights 1/|λ(i, t)|."""
        return [[1.0 / n for n in row] for row in self.sizes()]


def authors_process_set_sizes(token_ids: torch.Tensor, mask: torch.Tensor) -> torch.LongTensor:
    """Same contract as `grpo_prm.process_sets.process_set_sizes`, computed with the authors' tree.

    Args:
        token_ids (`torch.LongTensor` of shape `(k, T)`): one group's completions, right-padded.
        mask (`torch.BoolTensor` of shape `(k, T)`): True on valid tokens.

    Returns:
        `torch.LongTensor` of shape `(k, T)`: |λ(i, t)| on valid tokens, 0 on padding.
    """
    k, T = token_ids.shape
    mask = mask.bool()
    ids, valid = token_ids.tolist(), mask.tolist()
    # Pads removed, as the authors feed the tree unpadded sequences.
    trajectories = [[tok for tok, v in zip(row, vrow) if v] for row, vrow in zip(ids, valid)]
    sizes = AuthorsPrefixTree(trajectories).sizes() if k else []
    out = torch.zeros((k, T), dtype=torch.long)
    for i, row in enumerate(sizes):
        if row:
            out[i][mask[i]] = torch.tensor(row, dtype=torch.long)
    return out
