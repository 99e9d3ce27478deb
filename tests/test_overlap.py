"""Overlap analysis (§3 (overlap analysis)) of recorded runs against hand-computed trees; the Theorem 1 checker."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from grpo_prm.config import ConfigError, validate_config
from grpo_prm.overlap import (
    analyse,
    headline,
    running_median,
    step_frame,
    theorem1_check,
    theorem1_frame,
    theorem1_losses,
    theorem1_summary,
    trajectory_frame,
)
from grpo_prm.prefix_tree import step_advantages
from grpo_prm.process_sets import prefix_node_ids, process_set_sizes
from tests.helpers import TREES, encode, random_group, record

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", TREES)
def test_metrics_of_hand_built_trees_read_back_from_parquet(tmp_path, name):
    texts, flat, depths, props = TREES[name]
    path = record(tmp_path / "g.parquet", [[texts]])
    traj = trajectory_frame(path)
    assert traj["index"].tolist() == list(range(len(texts)))
    assert traj["path_depth"].tolist() == depths
    assert traj["intermediate_proportion"].tolist() == pytest.approx(props)
    assert traj["flat"].tolist() == [flat] * len(texts)
    assert traj["length"].tolist() == [len(t) for t in texts]
    [row] = step_frame(traj).to_dict("records")
    assert (row["groups"], row["flat_groups"], row["nontrivial_share"]) == (1, int(flat), 1.0 - flat)
    assert row["path_depth_mean"] == pytest.approx(np.mean(depths))
    assert row["path_depth_median"] == pytest.approx(np.median(depths))
    assert row["intermediate_proportion_median"] == pytest.approx(np.median(props))


def test_per_step_cumulative_and_sorted_columns_and_headline(tmp_path):
    chain, flat, dup = TREES["chain"][0], ["wxyz", "abcd", "efgh", "ijkl"], ["ab", "ab", "cd", "ef"]
    # step 0: chain + flat; step 1: flat + flat; step 2: duplicates + flat (k = 4 throughout)
    path = record(tmp_path / "g.parquet", [[chain, flat], [flat, flat], [dup, flat]])
    df = analyse(path)
    assert df["step"].tolist() == [0, 1, 2]
    assert df["groups"].tolist() == [2, 2, 2] and df["flat_groups"].tolist() == [1, 2, 2]  # duplicates: flat
    assert df["nontrivial_share"].tolist() == [0.5, 0.0, 0.0]
    assert df["nontrivial_share_cum"].tolist() == pytest.approx([1 / 2, 1 / 4, 1 / 6])
    assert df["duplicate_share"].tolist() == [0.0, 0.0, 2 / 8]
    depth0, depth2 = [3, 3, 2, 1, 1, 1, 1, 1], [1] * 8
    assert df["path_depth_mean"].tolist() == pytest.approx([np.mean(depth0), 1.0, 1.0])
    assert df["path_depth_median"].tolist() == [1.0, 1.0, 1.0]
    props0 = [3 / 4, 3 / 4, 2 / 3, 0, 0, 0, 0, 0]
    props2 = [0] * 8
    assert df["intermediate_proportion_mean"].tolist() == pytest.approx([np.mean(props0), 0, np.mean(props2)])
    everything = [props0, [0] * 8, props2]
    cum = [np.concatenate(everything[: s + 1]) for s in range(3)]
    assert df["intermediate_proportion_mean_cum"].tolist() == pytest.approx([np.mean(c) for c in cum])
    assert df["path_depth_mean_cum"].tolist() == pytest.approx(
        [np.mean(depth0), np.mean(depth0 + [1] * 8), np.mean(depth0 + [1] * 8 + depth2)]
    )
    assert df["intermediate_proportion_mean_sorted"].tolist() == pytest.approx(
        sorted([np.mean(props0), 0, np.mean(props2)])
    )
    assert headline(df) == {
        "steps": 3,
        "groups": 6,
        "flat_groups": 5,
        "nontrivial_groups": 1,
        "nontrivial_pct": pytest.approx(100 / 6),
    }


def test_running_median_matches_numpy():
    gen = np.random.default_rng(0)
    values = gen.integers(0, 9, 200).astype(float) * gen.random(200)
    ends = np.array([0, 1, 2, 7, 50, 51, 200])
    expected = [np.nan] + [np.median(values[:e]) for e in ends[1:]]
    assert running_median(values, ends) == pytest.approx(expected, nan_ok=True)


def test_prefix_node_ids_give_the_process_set_sizes():
    gen = np.random.default_rng(3)
    for _ in range(40):
        ids, mask = random_group(gen, int(gen.integers(1, 9)))
        node = prefix_node_ids(ids, mask)
        assert torch.equal(node >= 0, mask)
        counts = {n: (node == n).sum().item() for n in node[mask].tolist()}
        sizes = torch.tensor([[counts.get(n, 0) for n in row] for row in node.tolist()])
        assert torch.equal(sizes, process_set_sizes(ids, mask))


def test_theorem1_holds_on_random_groups_and_the_checker_catches_wrong_step_advantages():
    gen = np.random.default_rng(4)
    checked = 0
    for _ in range(40):
        k = int(gen.integers(2, 9))
        ids, mask = random_group(gen, k)
        rewards = torch.from_numpy(gen.integers(0, 2, k).astype(float) + gen.random(k) * (gen.random() < 0.5))
        assert theorem1_check(ids, mask, rewards) < 1e-12
        assert theorem1_check(ids, mask, rewards, eps=0.0) < 1e-12 or rewards.std() == 0
        A = step_advantages(ids, mask, rewards)
        a = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
        orm = torch.where(mask, a[:, None].expand_as(A), 0.0)  # GRPO's a_i in place of Â: the ORM, not the PRM
        if not torch.allclose(orm[mask], A[mask], atol=1e-9):
            assert theorem1_check(ids, mask, rewards, step_adv=orm) > 1e-3
            checked += 1
        wrong = A.clone()
        i, t = int(gen.integers(k)), 0
        if mask[i, t]:
            wrong[i, t] += 0.5
            size = process_set_sizes(ids, mask)[i, t].item()
            assert theorem1_check(ids, mask, rewards, step_adv=wrong) == pytest.approx(0.5 * size)
    assert checked > 10


def test_theorem1_on_the_worked_example_and_a_recorded_run(tmp_path, tokenizer):
    ids, mask = encode(["ABCe", "ABCe", "ABDFe", "ABe", "GHe"])
    assert theorem1_check(ids, mask, [1.0, 1, 0, 0, 1], eps=0.0) < 1e-15
    path = record(tmp_path / "g.parquet", [[TREES["chain"][0], TREES["chain"][0]], [TREES["worked_example"][0]]])
    frame = theorem1_frame(path)
    assert frame[["step", "group", "k"]].values.tolist() == [[0, 0, 4], [0, 1, 4], [1, 0, 5]]
    assert frame["max_abs_diff"].max() < 1e-12


def test_theorem1_losses_by_hand_on_the_worked_example():
    ids, mask = encode(["ABCe", "ABCe", "ABDFe", "ABe", "GHe"])
    grpo, prm = theorem1_losses(ids, mask, [1.0, 1, 0, 0, 1], eps=0.0)
    a_pos, a_neg = 0.4 / np.sqrt(0.3), -0.6 / np.sqrt(0.3)  # r_mean 0.6, r_std √0.3 (Eq. 5–6)
    expected = (4 * a_pos + 4 * a_pos + 5 * a_neg + 3 * a_neg + 3 * a_pos) / 19  # Σ len_i · a_i / Σ len
    assert grpo == pytest.approx(expected, abs=1e-12) and prm == pytest.approx(expected, abs=1e-12)
    # node "AB" carries Â = −0.183 on its 2 × 4 tokens; GRPO spreads the same total over the members' a_i
    assert 8 * (0.5 - 0.6) / np.sqrt(0.3) == pytest.approx(2 * (2 * a_pos + 2 * a_neg))


def test_theorem1_summary_of_a_recorded_run(tmp_path):
    path = record(tmp_path / "g.parquet", [[TREES["chain"][0]], [TREES["worked_example"][0]]])
    frame = theorem1_frame(path, max_groups=1)
    assert frame[["step", "group", "k", "tokens"]].values.tolist() == [[0, 0, 4, 12]]
    summary = theorem1_summary(theorem1_frame(path))
    assert (summary["theorem1_groups"], summary["theorem1_tokens"]) == (2, 12 + 19)
    assert summary["theorem1_max_loss_diff"] < 1e-12 and summary["theorem1_max_abs_diff"] < 1e-12
    assert summary["theorem1_max_abs_loss"] > 0.01


def test_cli_refuses_a_missing_recording_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out" / "overlap"
    result = subprocess.run(
        [sys.executable, "-m", "grpo_prm.overlap", str(tmp_path / "none.parquet"), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: no recording at {tmp_path / 'none.parquet'}"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o.update(model="gpt5"), "overlap.model: 'gpt5' is not a key of math.models"),
        (lambda o: o["runs"].append(dict(o["runs"][0])), "overlap.runs: group sizes [6, 36, 6] repeat; one run per k"),
        (lambda o: o["tree"].update(group_size=8), "overlap.tree.group_size: 8 is not the k of a run in [6, 36]"),
        (lambda o: o["runs"][0].update(group_size=1), "overlap.runs[0].group_size: 1 is less than the minimum of 2"),
        (lambda o: o.update(theorem1=3), "unknown config key 'overlap.theorem1'"),
    ],
)
def test_bad_overlap_config_is_named(change, message):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    change(config["overlap"])
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


def test_paper_profile_has_the_papers_overlap_runs():
    paper = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))["overlap"]
    assert paper["model"] == "qwen" and paper["beta"] == 0.0 and paper["method"] == "grpo"
    assert [(r["group_size"], r["steps"], r["learning_rate"]) for r in paper["runs"]] == [
        (6, 1675, 6e-6),
        (36, 275, 1e-6),
    ]
