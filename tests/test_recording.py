"""Group recording: exact Parquet round trip, a killed run keeps its flushed steps, and the trainer's on_batch hook."""

import pyarrow.parquet as pq
import pytest
import torch

from grpo_prm.loss import group_advantage
from grpo_prm.recording import BatchRecorder, GroupRecorder, parts_dir, read_groups
from tests.conftest import EXAMPLE, EXAMPLE_REWARDS, example_ids, make_trainer

torch.set_num_threads(1)


def random_batch(gen, groups, k, T=9, vocab=50_000):
    """(B, T) ids with right padding (pad id 7, never compared), lengths 0..T, float rewards and advantages."""
    B = groups * k
    ids = torch.randint(0, vocab, (B, T), generator=gen)
    lengths = torch.randint(0, T + 1, (B,), generator=gen)
    mask = torch.arange(T) < lengths[:, None]
    ids[~mask] = 7
    return ids, mask, torch.rand(B, generator=gen, dtype=torch.float64), torch.randn(B, generator=gen)


def expected_groups(batches, k):
    """What read_groups should yield: per group, ids trimmed to the group's longest row and zero-padded."""
    out = []
    for step, (ids, mask, rewards, _) in batches:
        for g in range(ids.shape[0] // k):
            rows = slice(g * k, (g + 1) * k)
            T = int(mask[rows].sum(1).max())
            out.append((step, g, torch.where(mask[rows], ids[rows], 0)[:, :T], mask[rows][:, :T], rewards[rows]))
    return out


def assert_same_groups(got, expected):
    assert len(got) == len(expected)
    for (s, g, ids, mask, r), (s2, g2, ids2, mask2, r2) in zip(got, expected):
        assert (s, g) == (s2, g2)
        assert ids.dtype == torch.long and mask.dtype == torch.bool and r.dtype == torch.float64
        assert torch.equal(ids, ids2) and torch.equal(mask, mask2) and torch.equal(r, r2)


def test_round_trip_is_exact(tmp_path):
    gen = torch.Generator().manual_seed(0)
    k, path = 4, tmp_path / "groups.parquet"
    batches = [(step, random_batch(gen, groups=3, k=k)) for step in range(5)]
    with GroupRecorder(path, flush_every=2) as rec:
        for step, (ids, mask, rewards, adv) in batches:
            rec.add(step, ids, mask, rewards, adv, k)
    assert path.is_file() and not parts_dir(path).exists()
    assert pq.ParquetFile(path).num_row_groups == 3  # flushes after steps 1 and 3, the rest at close
    table = pq.read_table(path)
    assert table.num_rows == 5 * 3 * k
    assert table["token_ids"].type.value_type.bit_width == 32
    cat = [torch.cat(x) for x in zip(*(b for _, b in batches))]
    ids, mask, rewards, adv = cat
    assert table["length"].to_pylist() == mask.sum(1).tolist()
    assert table["token_ids"].to_pylist() == [row[m].tolist() for row, m in zip(ids, mask)]
    assert table["reward"].to_pylist() == rewards.tolist()
    assert table["advantage"].to_pylist() == adv.double().tolist()  # float32 in, exact in float64
    assert table["index"].to_pylist() == list(range(k)) * 15
    assert_same_groups(list(read_groups(path)), expected_groups(batches, k))


def test_killed_run_keeps_flushed_steps(tmp_path):
    gen = torch.Generator().manual_seed(1)
    k, path = 3, tmp_path / "groups.parquet"
    batches = [(step, random_batch(gen, groups=2, k=k)) for step in range(5)]
    rec = GroupRecorder(path, flush_every=2)
    for step, (ids, mask, rewards, adv) in batches:
        rec.add(step, ids, mask, rewards, adv, k)
    # No close(): as if the process were killed. Steps 0–3 were flushed, step 4 was only buffered.
    assert not path.exists()
    assert_same_groups(list(read_groups(path)), expected_groups(batches[:4], k))
    with pytest.raises(FileExistsError):
        GroupRecorder(path)
    rec.close()  # a later close still merges everything
    assert_same_groups(list(read_groups(path)), expected_groups(batches, k))
    GroupRecorder(path, overwrite=True).close()
    assert list(read_groups(path)) == []


def test_repeated_step_continues_group_numbers_and_bad_masks_fail(tmp_path):
    gen = torch.Generator().manual_seed(2)
    ids, mask, rewards, adv = random_batch(gen, groups=2, k=2)
    with GroupRecorder(tmp_path / "g.parquet") as rec:
        rec.add(7, ids, mask, rewards, adv, 2)
        rec.add(7, ids, mask, rewards, adv, 2)  # steps_per_generation < accumulation: two batches in one step
        rec.add(8, ids, mask, rewards, adv, 2)
        holes = mask.clone()
        holes[0, :2] = torch.tensor([False, True])
        with pytest.raises(ValueError, match="prefix"):
            rec.add(9, ids, holes, rewards, adv, 2)
        with pytest.raises(ValueError, match="whole number"):
            rec.add(9, ids, mask, rewards, adv, 3)
    assert [(s, g) for s, g, *_ in read_groups(tmp_path / "g.parquet")] == [
        (7, 0),
        (7, 1),
        (7, 2),
        (7, 3),
        (8, 0),
        (8, 1),
    ]


def test_trainer_hook_records_rewards_and_unshuffled_groups(tiny_model, tokenizer, tmp_path):
    with GroupRecorder(tmp_path / "groups.parquet") as groups:
        trainer = make_trainer(
            tiny_model, tokenizer, "lambda_grpo", 0.0, "token", tmp=str(tmp_path), on_batch=BatchRecorder(groups)
        )
        inputs = trainer._prepare_inputs([{"prompt": "Q"}] * len(EXAMPLE))
    [(step, group, ids, mask, rewards)] = list(read_groups(tmp_path / "groups.parquet"))
    assert (step, group) == (0, 0)
    assert [row[m].tolist() for row, m in zip(ids, mask)] == example_ids(tokenizer)  # generation order, unshuffled
    assert rewards.tolist() == EXAMPLE_REWARDS
    table = pq.read_table(tmp_path / "groups.parquet")
    rewards = torch.tensor(EXAMPLE_REWARDS)
    expected = group_advantage(rewards, rewards)  # one group: the paper's advantage of each completion
    assert table["advantage"].to_pylist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert sorted(inputs["advantages"].tolist()) == pytest.approx(sorted(expected.tolist()), abs=1e-6)
