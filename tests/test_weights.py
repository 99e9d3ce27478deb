"""Per-token weights of the three weightings."""

import pytest
import torch

from grpo_prm.process_sets import process_set_sizes_grouped
from grpo_prm.weights import token_weights
from tests.conftest import EXAMPLE, example_ids, make_tokenizer


def example_batch(groups=2):
    rows = example_ids(make_tokenizer(), EXAMPLE) * groups
    T = max(map(len, rows))
    ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows]).bool()
    return ids, mask


def weights(ids, mask, group_size, weighting):
    """The trainer's path: |λ| per group (`process_set_sizes_grouped`), then `token_weights`."""
    return token_weights(process_set_sizes_grouped(ids, mask, group_size), group_size, weighting)


def test_lambda_weights_are_inverse_process_set_sizes():
    ids, mask = example_batch(1)
    w = weights(ids, mask, len(EXAMPLE), "lambda")
    assert w[0].tolist() == [0.25, 0.25, 0.5, 0.5, 0]
    assert w[2].tolist() == [0.25, 0.25, 1, 1, 1]
    assert w[3].tolist() == [0.25, 0.25, 1, 0, 0]
    assert w[4].tolist() == [1, 1, 1, 0, 0]


def test_grpo_weights_are_the_mask():
    ids, mask = example_batch()
    assert torch.equal(weights(ids, mask, len(EXAMPLE), "none"), mask.float())


def test_scaled_weights_sum_to_token_count_per_group_and_keep_proportions():
    ids, mask = example_batch(3)
    k = len(EXAMPLE)
    lam = weights(ids, mask, k, "lambda")
    scaled = weights(ids, mask, k, "lambda_scaled")
    per_group = scaled.reshape(-1, k * ids.shape[1]).sum(1)
    assert per_group.tolist() == pytest.approx(mask.reshape(-1, k * ids.shape[1]).sum(1).float().tolist())
    ratio = scaled[mask] / lam[mask]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio))  # one factor per group (identical groups here)
    assert (scaled[~mask] == 0).all()


def test_unknown_weighting_is_named():
    ids, mask = example_batch(1)
    with pytest.raises(ValueError, match="unknown weighting 'ppo'"):
        token_weights(process_set_sizes_grouped(ids, mask, len(EXAMPLE)), len(EXAMPLE), "ppo")
