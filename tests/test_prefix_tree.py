"""The implicit PRM: prefix tree, step rewards/advantages and overlap statistics against hand-computed trees."""

import pytest
import torch

from grpo_prm.prefix_tree import build_prefix_tree, size_statistics, step_advantages
from grpo_prm.process_sets import duplicate_counts, process_set_sizes


def encode(texts):
    """Each character is a token (ids from 1); right-padded with 0."""
    T = max(map(len, texts))
    ids = torch.tensor([[ord(c) for c in t] + [0] * (T - len(t)) for t in texts])
    mask = torch.tensor([[1] * len(t) + [0] * (T - len(t)) for t in texts]).bool()
    return ids, mask


def steps_by_text(texts, tree):
    """{span text: (members, R̂, Â)} for readable assertions."""
    return {texts[s.members[0]][s.start : s.end]: (s.members, s.reward, s.advantage) for s in tree.steps}


def test_paper_anti_exploitation_example():
    """Eq. 8: ABCD .5, ABEFHI .5, JKLM 1, JKLNQST 0, JKLNQU 0, VWYZ .5 (mean 0.42)."""
    texts = ["ABCD", "ABEFHI", "JKLM", "JKLNQST", "JKLNQU", "VWYZ"]
    rewards = [0.5, 0.5, 1.0, 0.0, 0.0, 0.5]
    tree = build_prefix_tree(*encode(texts), rewards, eps=0.0)
    got = {span: round(adv, 2) for span, (_, _, adv) in steps_by_text(texts, tree).items()}
    assert got == {
        "AB": 0.22,
        "CD": 0.22,
        "EFHI": 0.22,
        "JKL": -0.22,
        "M": 1.55,
        "NQ": -1.11,
        "ST": -1.11,
        "U": -1.11,
        "VWYZ": 0.22,
    }
    steps = steps_by_text(texts, tree)
    assert steps["JKL"][0] == (2, 3, 4) and steps["JKL"][1] == pytest.approx(1 / 3)
    assert [tree.path_depth(i) for i in range(6)] == [2, 2, 2, 3, 3, 1]
    assert not tree.is_flat


def test_worked_example_of_section_3():
    """§3 and Eq. 5–6: A B C ⟨e⟩ ×2, A B D F ⟨e⟩, A B ⟨e⟩, G H ⟨e⟩ with rewards 1 1 0 0 1."""
    texts = ["ABCe", "ABCe", "ABDFe", "ABe", "GHe"]
    tree = build_prefix_tree(*encode(texts), [1, 1, 0, 0, 1], eps=0.0)
    steps = {(s.start, s.end, s.members): round(s.advantage, 3) for s in tree.steps}
    assert steps == {
        (0, 2, (0, 1, 2, 3)): -0.183,
        (2, 4, (0, 1)): 0.730,
        (2, 5, (2,)): -1.095,
        (2, 3, (3,)): -1.095,
        (0, 3, (4,)): 0.730,
    }
    A = step_advantages(*encode(texts), torch.tensor([1.0, 1, 0, 0, 1]), eps=0.0)
    assert A[3, :3].tolist() == pytest.approx([-0.1826, -0.1826, -1.0954], abs=1e-4)
    # Lemma 1 on the "AB" node: Σ over its members of a_i equals |λ|·Â(λ).
    a = A[:, -1].clone()
    a[:4] = torch.tensor([0.730, 0.730, -1.095, -1.095])
    assert a[:4].sum().item() == pytest.approx(4 * -0.183, abs=2e-3)


@pytest.mark.parametrize(
    "texts, flat, depths, props",
    [
        (["ab", "cd", "ef"], True, [1, 1, 1], [0, 0, 0]),  # diverge at token 0: the ORM
        (["xab", "xcd", "xef"], True, [1, 1, 1], [0, 0, 0]),  # shared by all, then diverge: still flat
        (["abc", "abc", "abc"], True, [1, 1, 1], [0, 0, 0]),  # all identical: the root is the leaf
        (["abcd", "abce", "abf", "g"], False, [3, 3, 2, 1], [3 / 4, 3 / 4, 2 / 3, 0]),  # a chain
        (["ab", "ab", "cd"], True, [1, 1, 1], [0, 0, 0]),  # duplicates share one leaf: no process step of its own
        (["abc", "abc", "abd", "e"], False, [2, 2, 2, 1], [2 / 3, 2 / 3, 2 / 3, 0]),  # duplicates below a branch
        (["ab", "abc", "d"], False, [1, 2, 1], [1, 2 / 3, 0]),  # strict prefix (no EOS): its own span is empty
    ],
)
def test_statistics_on_hand_built_trees(texts, flat, depths, props):
    ids, mask = encode(texts)
    tree = build_prefix_tree(ids, mask, [float(i % 2) for i in range(len(texts))])
    assert tree.is_flat == flat
    assert [tree.path_depth(i) for i in range(len(texts))] == depths
    assert [tree.intermediate_proportion(i) for i in range(len(texts))] == pytest.approx(props)
    fast = size_statistics(process_set_sizes(ids, mask), len(texts), duplicate_counts(ids, mask, len(texts)))
    assert fast["path_depth"].tolist() == depths
    assert fast["intermediate_proportion"].tolist() == pytest.approx(props)
    assert fast["flat"].tolist() == [flat]


def brute_force_intermediate(texts):
    """Per token: shared by some but not all (1 < |λ| < k) and its process set is not made of identical copies
    (the authors' tree merges identical completions into one leaf)."""
    k = len(texts)
    out = []
    for y in texts:
        row = []
        for t in range(len(y)):
            members = [z for z in texts if z[: t + 1] == y[: t + 1]]
            row.append(1 < len(members) < k and len(set(members)) > 1)
        out.append(row)
    return out


def test_size_statistics_on_random_groups_agree_with_tree_and_brute_force():
    gen = torch.Generator().manual_seed(0)
    duplicated = 0
    for _ in range(60):
        k = int(torch.randint(2, 8, (1,), generator=gen))
        texts = [
            "".join(
                "ab"[int(x)]
                for x in torch.randint(0, 2, (int(torch.randint(1, 5, (1,), generator=gen)),), generator=gen)
            )
            + "e"
            for _ in range(k)
        ]
        duplicated += len(set(texts)) < k
        ids, mask = encode(texts)
        tree = build_prefix_tree(ids, mask, [0.0] * k)
        dups = duplicate_counts(ids, mask, k)
        assert dups.tolist() == [texts.count(t) for t in texts]
        fast = size_statistics(process_set_sizes(ids, mask), k, dups)
        inner = brute_force_intermediate(texts)
        assert fast["path_depth"].tolist() == [tree.path_depth(i) for i in range(k)]
        assert fast["flat"].item() == tree.is_flat == (not any(map(any, inner)))
        props = [sum(row) / len(row) for row in inner]
        assert fast["intermediate_proportion"].tolist() == pytest.approx(props)
        assert [tree.intermediate_proportion(i) for i in range(k)] == pytest.approx(props)
    assert duplicated > 10  # the draw exercises duplicate leaves
