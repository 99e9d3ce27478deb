"""Each baseline's gradient against its own paper's formula written out by hand, with and without 1/|λ| weighting.

Dr. GRPO (arXiv 2503.20783), Reinforce-Rej (arXiv 2504.11343), RLOO (arXiv 2402.14740) and the explicit PRM of
VinePPO (arXiv 2410.01679); see grpo_prm.methods. The formulas below use no TRL or project code beyond the model's
forward pass, and run in float64 on a float64 copy of the trainer's (float32) model.
"""

import copy

import pytest
import torch

from grpo_prm.methods import METHODS, resolve, rloo_advantage
from grpo_prm.trainer import LambdaGRPOConfig, authors_grpo_config
from tests.conftest import EXAMPLE, EXAMPLE_REWARDS, example_ids, make_trainer
from tests.helpers import brute_force_sizes, grads, perturb, trainer_gradient

# A second group whose rewards are all equal: Reinforce-Rej drops it, the others keep it.
FLAT = ["A B <e>", "G H <e>", "A <e>", "B C <e>", "D <e>"]
TEXTS, REWARDS = EXAMPLE + FLAT, EXAMPLE_REWARDS + [1.0] * len(FLAT)
K = len(EXAMPLE)


def toy_value(prefix):
    """An arbitrary deterministic V(prefix) for the explicit-PRM tests (V of a whole completion is its reward)."""
    return 0.1 * len(prefix) - 0.03 * sum(prefix)


def hand_loss(
    model,
    ref_model,
    prompt_ids,
    rows,
    rewards,
    base,
    weighting,
    beta,
    normalization,
    max_len=8,
    prm_normalization="vineppo",
):
    """Σ_{i,t} w(i,t)·(−P·A(i,t) + D(i,t)) / normaliser, one token at a time (μ = 1: P = 1 with ∇ log π)."""
    r = torch.tensor(rewards, dtype=torch.float64)
    groups = [list(range(g, g + K)) for g in range(0, len(rows), K)]
    adv, kept = {}, set()
    for g in groups:
        rg = r[g]
        if base == "grpo":
            a = (rg - rg.mean()) / (rg.std() + 1e-4)
        elif base == "dr_grpo":  # Liu et al. 2025, Eq. (Dr. GRPO): no std
            a = rg - rg.mean()
        elif base == "reinforce_rej":  # Xiong et al. 2025: raw reward, 0 in all-equal groups (released code)
            a = rg * 0 if bool((rg == rg[0]).all()) else rg
        elif base == "rloo":  # Ahmadian et al. 2024 (RLOO): r_i minus the mean of the k − 1 others
            a = [rg[j] - sum(rg[o] for o in range(K) if o != j) / (K - 1) for j in range(K)]
        kept.update(g)
        for j, i in enumerate(g):
            if base.startswith("explicit_prm"):  # Kazemnejad et al. 2024: V(y_{:t+1}) − V(y_{:t}), V(y) = r
                v = [toy_value(rows[i][:t]) for t in range(len(rows[i]))] + [rewards[i]]
                adv[i] = [v[t + 1] - v[t] for t in range(len(rows[i]))]
            else:
                adv[i] = [float(a[j])] * len(rows[i])
    if base.startswith("explicit_prm") and prm_normalization == "vineppo":  # VinePPO: whitened over the batch
        flat = torch.tensor([x for i in sorted(adv) for x in adv[i]], dtype=torch.float64)
        mean, var = flat.mean(), flat.var()
        adv = {i: [float((x - mean) / torch.sqrt(var + 1e-8)) for x in a_i] for i, a_i in adv.items()}
    sizes = {}
    for g in groups:
        for i, s in zip(g, brute_force_sizes([rows[i] for i in g])):
            sizes[i] = s
    total, per_seq = 0.0, []
    for i in sorted(kept):
        row = rows[i]
        ids = torch.tensor([prompt_ids + row])
        logp = torch.log_softmax(model(ids).logits[0, len(prompt_ids) - 1 : -1], -1)[torch.arange(len(row)), row]
        with torch.no_grad():
            ref = torch.log_softmax(ref_model(ids).logits[0, len(prompt_ids) - 1 : -1], -1)[torch.arange(len(row)), row]
        seq = 0.0
        for t in range(len(row)):
            w = 1.0 if weighting == "none" else 1.0 / sizes[i][t]
            P = torch.exp(logp[t] - logp[t].detach())
            D = beta * (torch.exp(ref[t] - logp[t]) - (ref[t] - logp[t]) - 1)
            seq = seq + w * (-(P * adv[i][t]) + D)
        total = total + seq
        per_seq.append(seq / len(row))
    if base == "dr_grpo":
        return total / (len(rows) * max_len)
    if normalization == "token":
        return total / sum(len(rows[i]) for i in kept)
    return sum(per_seq) / len(kept)


def prefix_values(model, ids, mask, rewards):
    values = torch.zeros(ids.shape[0], ids.shape[1] + 1)
    for i, (row, m) in enumerate(zip(ids.tolist(), mask.tolist())):
        n = sum(m)
        values[i, :n] = torch.tensor([toy_value(row[:t]) for t in range(n)])
        values[i, n] = rewards[i]
    return values, 0


# Dr. GRPO has one normaliser of its own; the others take either. The explicit PRM with and without VinePPO's whitening.
CASES = (
    [("dr_grpo", "token", None)]
    + [(b, n, None) for b in ("reinforce_rej", "rloo") for n in ("token", "sequence")]
    + [
        (b, n, p)
        for b in ("explicit_prm_mc", "explicit_prm_exact")
        for n in ("token", "sequence")
        for p in ("vineppo", "none")
    ]
)


@pytest.mark.parametrize("base, normalization, prm_normalization", CASES)
@pytest.mark.parametrize("weighting", ["none", "lambda"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_gradient_matches_each_papers_formula(
    tiny_model, tokenizer, tmp_path, base, weighting, beta, normalization, prm_normalization
):
    ref_model = copy.deepcopy(tiny_model)
    perturb(tiny_model)
    model, ref64 = (copy.deepcopy(m).double() for m in (tiny_model, ref_model))  # the formula's, in float64
    overrides = {"loss_type": "dr_grpo", "scale_rewards": "none"} if base == "dr_grpo" else {}
    if prm_normalization:
        overrides["explicit_prm_normalization"] = prm_normalization
    trainer = make_trainer(
        tiny_model,
        tokenizer,
        base,
        beta,
        normalization,
        ref_model,
        texts=TEXTS,
        rewards=REWARDS,
        tmp=str(tmp_path),
        num_generations=K,
        weighting=weighting,
        **overrides,
        **({"prefix_values": prefix_values} if base.startswith("explicit") else {}),
    )
    ours = trainer_gradient(trainer, len(TEXTS)).double()
    prompt_ids = tokenizer("Q", add_special_tokens=False)["input_ids"]
    hand_loss(
        model,
        ref64,
        prompt_ids,
        example_ids(tokenizer, TEXTS),
        REWARDS,
        base,
        weighting,
        beta,
        normalization,
        prm_normalization=prm_normalization,
    ).backward()
    expected = grads(model)
    assert expected.norm() > 0
    assert (ours - expected).norm() / expected.norm() < 1e-6


def test_rloo_advantage_is_the_leave_one_out_baseline_in_float64():
    """Ahmadian et al. 2024 (RLOO), row by row with its own loop: r_i − mean of the group's other scored rewards. An
    unscored completion (NaN, as TRL marks it) gets 0 and leaves its neighbours' baselines; so does a row alone."""
    k, nan = 5, float("nan")
    r = torch.rand(4 * k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r[7] = nan  # group 1 has 4 scored rewards
    r[15:19] = nan  # group 3 has one, with no neighbour to compare to
    got = rloo_advantage(r, k, None, None).advantages
    expected = []
    for i in range(len(r)):
        others = [float(r[j]) for j in range(i // k * k, i // k * k + k) if j != i and not r[j].isnan()]
        expected.append(0.0 if r[i].isnan() or not others else float(r[i]) - sum(others) / len(others))
    expected = torch.tensor(expected, dtype=torch.float64)
    assert got.dtype == torch.float64 and expected[0] != 0 and expected[19] == 0
    assert (got - expected).norm() / expected.norm() < 1e-12


def test_reinforce_rej_zeroes_the_flat_group_but_keeps_it_in_the_normaliser(tiny_model, tokenizer, tmp_path):
    """Reinforce-Rej's released code: a rejected group's advantage is 0, its tokens stay in the normaliser."""
    trainer = make_trainer(
        tiny_model,
        tokenizer,
        "reinforce_rej",
        0.0,
        "token",
        texts=TEXTS,
        rewards=REWARDS,
        tmp=str(tmp_path),
        num_generations=K,
    )
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * len(TEXTS))
    all_tokens = sum(len(r) for r in example_ids(tokenizer, TEXTS))
    assert int(inputs["num_items_in_batch"]) == all_tokens
    assert sorted(inputs["advantages"].tolist()) == sorted([0.0] * len(FLAT) + EXAMPLE_REWARDS)
    assert trainer._metrics["train"]["rej/kept_frac"] == [0.5]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"method": "lambda_grpo", "weighting": "none"}, "method 'lambda_grpo' already sets weighting 'lambda'"),
        ({"method": "dr_grpo"}, "method dr_grpo needs loss_type='dr_grpo' and scale_rewards='none'"),
        ({"method": "grpo", "weighting": "sqrt"}, "unknown weighting 'sqrt'"),
        ({"method": "ppo"}, "unknown method 'ppo'"),
        ({"method": "explicit_prm_exact", "explicit_prm_normalization": "batch"}, "unknown explicit_prm_normalization"),
    ],
)
def test_nonsensical_combinations_are_refused_with_one_line(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        LambdaGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **fields)


def test_dr_grpo_brings_trls_pieces_and_weighting_composes(tmp_path):
    args = authors_grpo_config("token", output_dir=str(tmp_path), method="dr_grpo", weighting="lambda")
    assert (args.loss_type, args.scale_rewards, args.weighting) == ("dr_grpo", "none", "lambda")
    assert authors_grpo_config("token", output_dir=str(tmp_path), method="lambda_dr_grpo").weighting == "lambda"


def test_explicit_prm_without_values_is_refused(tiny_model, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="needs prefix_values"):
        make_trainer(tiny_model, tokenizer, "explicit_prm_exact", 0.0, "token", tmp=str(tmp_path))


@pytest.mark.parametrize("method", METHODS)
def test_missing_reward_gives_advantage_zero_and_finite_weights(tiny_model, tokenizer, tmp_path, method):
    """A completion no reward function scored (None) gets advantage 0 (TRL's rule); nothing turns NaN."""
    rewards = REWARDS[:2] + [None] + REWARDS[3:]  # "A B D F <e>", the one row that starts "A B D"
    base = resolve(method)[0].name
    overrides = {"loss_type": "dr_grpo", "scale_rewards": "none"} if base == "dr_grpo" else {}
    trainer = make_trainer(
        tiny_model,
        tokenizer,
        method,
        0.04,
        "token",
        texts=TEXTS,
        rewards=rewards,
        tmp=str(tmp_path),
        num_generations=K,
        **overrides,
        **({"prefix_values": prefix_values} if base.startswith("explicit") else {}),
    )
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * len(TEXTS))
    assert torch.isfinite(inputs["advantages"]).all()
    row = [r[:3] for r in inputs["completion_ids"].tolist()].index(example_ids(tokenizer, TEXTS)[2][:3])
    assert (inputs["advantages"][row] == 0).all()
    trainer.compute_loss(trainer.model, inputs).backward()
    trainer.create_optimizer()
    trainer.optimizer.step()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@pytest.mark.parametrize("normalization", ["token", "sequence"])
def test_reinforce_rej_normaliser_is_global_at_accumulation_3(tiny_model, tokenizer, tmp_path, normalization):
    """Three micro-batches of 4 rows accumulate the gradient of the whole 12-row batch (a rejected group included)."""
    texts = EXAMPLE + ["A <e>"] + FLAT + ["C <e>"]
    rewards = EXAMPLE_REWARDS + [0.0] + [1.0] * (len(FLAT) + 1)
    got = []
    for per_device, accumulation in ((12, 1), (4, 3)):
        model = copy.deepcopy(tiny_model)
        trainer = make_trainer(
            model,
            tokenizer,
            "reinforce_rej",
            0.04,
            normalization,
            texts=texts,
            rewards=rewards,
            tmp=str(tmp_path),
            num_generations=6,
            per_device=12,
            per_device_train_batch_size=per_device,
            gradient_accumulation_steps=accumulation,
        )
        trainer.current_gradient_accumulation_steps = accumulation
        model.zero_grad()
        for step in range(accumulation):
            trainer._step = step
            trainer.compute_loss(model, trainer._prepare_inputs([{"prompt": "Q"}] * 12)).backward()
        got.append(grads(model))
    assert got[0].norm() > 0
    assert (got[1] - got[0]).norm() / got[0].norm() < 1e-5
