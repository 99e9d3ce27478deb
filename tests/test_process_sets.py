"""Process-set sizes |λ(i, t)| (§3 (process sets λ^(i,t))): worked example, brute force, edge cases, authors'
baseline, grouping; the pairwise prefix lengths and prefix ids built on the same sort."""

import importlib.util
import random
from pathlib import Path

import pytest
import torch

from grpo_prm.process_sets import process_set_sizes, process_set_sizes_grouped, shared_prefix_lengths

_BASELINE = Path(__file__).resolve().parents[1] / "benchmarks" / "authors_prefix_tree.py"


def _load_baseline():
    spec = importlib.util.spec_from_file_location("authors_prefix_tree", _BASELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.authors_process_set_sizes


authors_process_set_sizes = _load_baseline()

PAD = 0  # also a real token id below: padding must never be compared


def pack(rows: list[list[int]], T: int | None = None, pad_from: list[list[int]] | None = None):
    """Right-pad `rows` into (ids, mask). Pad positions hold `PAD`, or the tokens of `pad_from[i]` if given."""
    T = max(map(len, rows), default=0) if T is None else T
    ids = torch.full((len(rows), T), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
        if pad_from is not None and len(pad_from[i]) > len(row):
            fill = pad_from[i][len(row) : T]
            ids[i, len(row) : len(row) + len(fill)] = torch.tensor(fill, dtype=torch.long)
    return ids, mask


def brute_force(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """|λ(i, t)| = #{ j : y_j[:t+1] == y_i[:t+1] } straight from the definition, over valid tokens only."""
    seqs = [[tok for tok, v in zip(r, m) if v] for r, m in zip(ids.tolist(), mask.tolist())]
    out = torch.zeros(ids.shape, dtype=torch.long)
    for i, yi in enumerate(seqs):
        for t in range(len(yi)):
            out[i, t] = sum(len(yj) > t and yj[: t + 1] == yi[: t + 1] for yj in seqs)
    return out


def random_group(rng: random.Random, k: int | None = None, max_len: int = 14):
    """A random group with shared prefixes, duplicates, strict prefixes and adversarial padding."""
    k = rng.randint(2, 12) if k is None else k
    vocab = rng.choice([2, 3, 5, 50])  # small vocabularies collide by chance as well
    rows: list[list[int]] = []
    for i in range(k):
        kind = rng.random() if rows else 1.0
        parent = rows[rng.randrange(len(rows))] if rows else []
        if kind < 0.2:
            row = list(parent)  # duplicate
        elif kind < 0.35:
            row = parent[: rng.randint(0, len(parent))]  # strict prefix (possibly empty: all padding)
        elif kind < 0.7:
            cut = rng.randint(0, len(parent))
            row = parent[:cut] + [rng.randrange(vocab) for _ in range(rng.randint(0, max_len - cut))]
        else:
            row = [rng.randrange(vocab) for _ in range(rng.randint(1, max_len))]
        rows.append(row)
    T = max(max(map(len, rows)), 1) + rng.randint(0, 3)
    # Padding copies another row's tokens there, so comparing pad ids would make strict prefixes look shared.
    donors = [rows[rng.randrange(k)] for _ in range(k)]
    return pack(rows, T, pad_from=donors)


def test_paper_worked_example():
    A, B, C, D, E, F, G, H = range(1, 9)  # E = ⟨e⟩
    rows = [[A, B, C, E], [A, B, C, E], [A, B, D, F, E], [A, B, E], [G, H, E]]
    ids, mask = pack(rows, pad_from=[[E] * 5] * 5)  # pad id = EOS, as with Llama-3.2
    expected = torch.tensor(
        [[4, 4, 2, 2, 0], [4, 4, 2, 2, 0], [4, 4, 1, 1, 1], [4, 4, 1, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.long
    )
    got = process_set_sizes(ids, mask)
    assert got.dtype == torch.long
    assert torch.equal(got, expected)
    assert torch.equal(authors_process_set_sizes(ids, mask), expected)


@pytest.mark.parametrize(
    "implementation, reference, seed, groups",
    [
        (process_set_sizes, brute_force, 0, 300),
        (process_set_sizes, authors_process_set_sizes, 2, 150),
        (authors_process_set_sizes, brute_force, 3, 100),  # the benchmark's baseline is itself exact
    ],
)
def test_agrees_with_references_on_random_groups(implementation, reference, seed, groups):
    rng = random.Random(seed)
    for _ in range(groups):
        ids, mask = random_group(rng)
        assert torch.equal(implementation(ids, mask), reference(ids, mask)), (ids, mask)


def test_matches_brute_force_long_shared_prefixes():
    rng = random.Random(1)
    for k in (2, 7, 12):
        trunk = [rng.randrange(1000) for _ in range(150)]
        rows = [
            trunk[: rng.randint(100, 150)] + [rng.randrange(3) for _ in range(rng.randint(0, 60))] for _ in range(k)
        ]
        rows[-1] = list(rows[0])
        ids, mask = pack(rows, pad_from=[trunk + [0] * 100] * k)
        assert torch.equal(process_set_sizes(ids, mask), brute_force(ids, mask))


def test_mask_dtype_and_row_of_padding_only():
    ids, mask = pack([[3, 1, 2], [3, 1], []], T=4)
    expected = torch.tensor([[2, 2, 1, 0], [2, 2, 0, 0], [0, 0, 0, 0]])
    assert torch.equal(process_set_sizes(ids, mask.long()), expected)  # 0/1 integer masks work too


def test_all_identical_group_gives_k():
    k, T = 7, 11
    ids = torch.randint(0, 5, (1, T)).repeat(k, 1)
    mask = torch.ones((k, T), dtype=torch.bool)
    assert torch.equal(process_set_sizes(ids, mask), torch.full((k, T), k))
    mask[:, 8:] = False  # same length, padded: still k on every valid token, 0 after
    ids[:, 8:] = torch.arange(k)[:, None]  # padding differs between rows
    expected = torch.full((k, T), k)
    expected[:, 8:] = 0
    assert torch.equal(process_set_sizes(ids, mask), expected)


def test_divergence_at_token_zero_gives_one():
    k, T = 6, 9
    ids = torch.randint(0, 3, (k, T))
    ids[:, 0] = torch.arange(k) + 10  # all first tokens differ; the rest collide a lot
    lens = torch.tensor([9, 9, 5, 1, 9, 3])
    mask = torch.arange(T)[None] < lens[:, None]
    assert torch.equal(process_set_sizes(ids, mask), mask.long())


def test_grouped_equals_per_group():
    rng = random.Random(4)
    k, n_groups, T = 5, 4, 16
    groups = [random_group(rng, k=k, max_len=T) for _ in range(n_groups)]
    T = max(ids.shape[1] for ids, _ in groups)
    ids = torch.cat([torch.nn.functional.pad(i, (0, T - i.shape[1]), value=PAD) for i, _ in groups])
    mask = torch.cat([torch.nn.functional.pad(m, (0, T - m.shape[1]), value=False) for _, m in groups])
    got = process_set_sizes_grouped(ids, mask, k)
    expected = torch.cat([process_set_sizes(ids[g : g + k], mask[g : g + k]) for g in range(0, len(ids), k)])
    assert torch.equal(got, expected)
    assert torch.equal(got[:k], brute_force(ids[:k], mask[:k]))


def test_grouped_does_not_mix_groups():
    ids = torch.tensor([[1, 2], [1, 3], [1, 2], [1, 2]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    assert torch.equal(process_set_sizes_grouped(ids, mask, 2), torch.tensor([[2, 1], [2, 1], [2, 2], [2, 2]]))


@pytest.mark.parametrize("rows, group_size", [(6, 4), (5, 2), (4, 1), (4, 0)])
def test_grouped_rejects_bad_shapes(rows, group_size):
    ids = torch.zeros((rows, 3), dtype=torch.long)
    with pytest.raises(ValueError):
        process_set_sizes_grouped(ids, torch.ones_like(ids, dtype=torch.bool), group_size)


def dense_prefix_lengths(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """LCP(i, j) from the definition, k×k×T: equal valid tokens from the start until the first mismatch or pad."""
    mask = mask.bool()
    same = (ids[:, None] == ids[None, :]) & mask[:, None] & mask[None, :]
    return same.long().cumprod(dim=-1).sum(-1)


def test_shared_prefix_lengths_match_the_definition():
    rng = random.Random(5)
    for _ in range(200):
        ids, mask = random_group(rng)
        if rng.random() < 0.3:  # a row ends at its first False, whatever follows
            mask = mask | (torch.rand(mask.shape, generator=torch.Generator().manual_seed(rng.randrange(99))) < 0.3)
        lcp = shared_prefix_lengths(ids, mask)
        assert lcp.dtype == torch.long and torch.equal(lcp, dense_prefix_lengths(ids, mask)), (ids, mask)
    for shape in ((0, 3), (3, 0), (0, 0)):
        ids = torch.zeros(shape, dtype=torch.long)
        assert torch.equal(shared_prefix_lengths(ids, ids.bool()), torch.zeros((shape[0],) * 2, dtype=torch.long))
