"""The batched toy engine (grpo_prm.toy_batched) is the trainer's algorithm: on the same sampled group, each run's
gradient equals LambdaGRPOTrainer's (grpo_prm.toy.build_trainer), for every method and weighting."""

import itertools
import tempfile

import pandas as pd
import pytest
import torch

from grpo_prm.methods import METHODS
from grpo_prm.toy import MOVES, ToyConfig, TreeLeaves, build_trainer, load_policy
from grpo_prm.toy_batched import BatchedToy, main, prefix_values

SMALL = {"n_layer": 2, "n_head": 2, "n_embd": 16}


def trainer_and_batched_gradients(cfg: ToyConfig):
    """(trainer's gradient, batched engine's gradient for the same group), by parameter name, and the PRM values."""
    seen = {}
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_trainer(cfg, tmp)
        if trainer.prefix_values is not None:  # record V of the trainer's group (generation order) for the engine
            values_of = trainer.prefix_values

            def recorded(model, ids, mask, rewards):
                seen["values"], n = values_of(model, ids, mask, rewards)
                seen["ids"] = ids
                return seen["values"], n

            trainer.prefix_values = recorded
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1
        inputs = trainer._prepare_inputs([{"prompt": trainer.processing_class.bos_token}] * cfg.group_size)
        trainer.model.zero_grad()
        trainer.compute_loss(trainer.model, inputs).backward()
        ours = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    ids = seen.get("ids", inputs["completion_ids"])  # a group's loss does not depend on its rows' order
    _, _, move_ids = load_policy(cfg)
    leaf_ids = TreeLeaves(cfg, move_ids, 0).leaf_ids.tolist()
    draws = torch.tensor([[leaf_ids.index(row[: cfg.depth]) for row in ids.tolist()]])
    batched = BatchedToy([cfg])
    values = seen["values"][None].float() if "values" in seen else None
    batched.loss(draws, values).sum().backward()
    theirs = {n: p.grad[0] for n, p in batched.policy.params.items()}
    return ours, theirs, batched, draws, seen.get("values")


def relative_error(a: dict, b: dict) -> float:
    x, y = torch.cat([a[n].flatten() for n in a]), torch.cat([b[n].flatten() for n in a])
    assert x.norm() > 0
    return float((x - y).norm() / x.norm())


@pytest.mark.parametrize("method", METHODS)
def test_batched_gradient_equals_the_trainers(method):
    cfg = ToyConfig(
        model="tiny", tiny_model=SMALL, method=method, n=1, r_neg=-1.0, seed=3, steps=1, beta=0.04, mc_continuations=2
    )
    ours, theirs, *_ = trainer_and_batched_gradients(cfg)
    assert set(ours) == set(theirs)
    assert relative_error(ours, theirs) <= 1e-6


@pytest.mark.parametrize("method", ["grpo", "lambda_grpo", "reinforce_rej"])
def test_batched_gradient_equals_the_trainers_per_sequence(method):
    cfg = ToyConfig(
        model="tiny", tiny_model=SMALL, method=method, n=2, r_neg=-0.5, seed=4, steps=1, loss_normalization="sequence"
    )
    ours, theirs, *_ = trainer_and_batched_gradients(cfg)
    assert relative_error(ours, theirs) <= 1e-6


def test_batched_exact_values_equal_the_trainers():
    cfg = ToyConfig(model="tiny", tiny_model=SMALL, method="explicit_prm_exact", seed=5, steps=1, temperature=0.8)
    _, _, batched, draws, values = trainer_and_batched_gradients(cfg)
    with torch.no_grad():
        logps = batched.tree.leaf_logps(batched.tree.leaf_logits(batched.policy, batched.bos_id), cfg.temperature)
        cond = [logps[:, :, t:].sum(-1).exp().reshape(1, 2**t, -1) for t in range(cfg.depth)]
        ours, _ = prefix_values(cond, batched.leaf_rewards, draws, cfg.depth, None, batched.mc)
    assert torch.allclose(ours[0], values.float(), atol=1e-6)


def test_runs_do_not_depend_on_their_batch(tmp_path):
    """A run's samples come from its own generator: alone or beside others, its first steps are the same."""
    args = ["--model", "tiny", "--method", "lambda_grpo", "--steps", "3", "--learning_rate", "1e-3"]
    main([*args, "--cells", "1,-1.0,7", "--out", str(tmp_path / "alone.csv")])
    main([*args, "--cells", "2,-0.5,3", "1,-1.0,7", "--out", str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    alone, beside = pd.read_csv(tmp_path / "alone.csv"), pd.read_csv(tmp_path / "b.csv")
    assert alone.target_freq.tolist() == beside.target_freq.tolist()
    assert alone.mass_target.tolist() == pytest.approx(beside.mass_target.tolist(), rel=1e-5)
    assert ((alone.mass_target + alone.mass_penalised + alone.mass_other) - 1).abs().max() < 1e-5
    assert set(alone.target.unique()) <= {"".join(p) for p in itertools.product(MOVES, repeat=4)}
