"""Each baseline's gradient against its own paper's formula written out by hand, with and without 1/|λ| weighting.

Dr. GRPO (arXiv 2503.20783), Reinforce-Rej (arXiv 2504.11343) and the explicit PRM of VinePPO (arXiv 2410.01679);
see grpo_prm.weights. The formulas below use no TRL or project code beyond the model's forward pass.
"""

import copy

import pytest
import torch

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


def hand_loss(model, ref_model, prompt_ids, rows, rewards, base, weighting, beta, normalization, max_len=8):
    """Σ_{i,t} w(i,t)·(−P·A(i,t) + D(i,t)) / normaliser, one token at a time (μ = 1: P = 1 with ∇ log π)."""
    r = torch.tensor(rewards)
    groups = [list(range(g, g + K)) for g in range(0, len(rows), K)]
    adv, kept = {}, set()
    for g in groups:
        rg = r[g]
        if base == "grpo":
            a = (rg - rg.mean()) / (rg.std() + 1e-4)
        elif base == "dr_grpo":  # Liu et al. 2025, Eq. (Dr. GRPO): no std
            a = rg - rg.mean()
        elif base == "reinforce_rej":  # Xiong et al. 2025: raw reward; all-equal groups dropped
            a = rg
        if base == "reinforce_rej" and bool((rg == rg[0]).all()):
            continue
        kept.update(g)
        for j, i in enumerate(g):
            if base.startswith("explicit_prm"):  # Kazemnejad et al. 2024: V(y_{:t+1}) − V(y_{:t}), V(y) = r
                v = [toy_value(rows[i][:t]) for t in range(len(rows[i]))] + [rewards[i]]
                adv[i] = [v[t + 1] - v[t] for t in range(len(rows[i]))]
            else:
                adv[i] = [float(a[j])] * len(rows[i])
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


# Dr. GRPO has one normaliser of its own; the others take either.
CASES = [("dr_grpo", "token")] + [(b, n) for b in ("reinforce_rej", "explicit_prm_mc", "explicit_prm_exact")
                                  for n in ("token", "sequence")]


@pytest.mark.parametrize("base, normalization", CASES)
@pytest.mark.parametrize("weighting", ["none", "lambda"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_gradient_matches_each_papers_formula(tiny_model, tokenizer, tmp_path, base, weighting, beta, normalization):
    ref_model = copy.deepcopy(tiny_model)
    perturb(tiny_model)
    overrides = {"loss_type": "dr_grpo", "scale_rewards": "none"} if base == "dr_grpo" else {}
    trainer = make_trainer(tiny_model, tokenizer, base, beta, normalization, ref_model, texts=TEXTS, rewards=REWARDS,
                           tmp=str(tmp_path), num_generations=K, weighting=weighting, **overrides,
                           **({"prefix_values": prefix_values} if base.startswith("explicit") else {}))
    model = trainer.model
    ours = trainer_gradient(trainer, len(TEXTS))
    prompt_ids = tokenizer("Q", add_special_tokens=False)["input_ids"]
    hand_loss(model, ref_model, prompt_ids, example_ids(tokenizer, TEXTS), REWARDS, base, weighting, beta,
              normalization).backward()
    expected = grads(model)
    assert expected.norm() > 0
    assert (ours - expected).norm() / expected.norm() < 1e-5


def test_reinforce_rej_drops_the_flat_group(tiny_model, tokenizer, tmp_path):
    trainer = make_trainer(tiny_model, tokenizer, "reinforce_rej", 0.0, "token", texts=TEXTS, rewards=REWARDS,
                           tmp=str(tmp_path), num_generations=K)
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * len(TEXTS))
    kept_tokens = sum(len(r) for r in example_ids(tokenizer, EXAMPLE))
    assert int(inputs["num_items_in_batch"]) == kept_tokens and int(inputs["kept_rows"].sum()) == K
    assert trainer._metrics["train"]["rej/kept_frac"] == [0.5]


@pytest.mark.parametrize("fields, message", [
    ({"method": "lambda_grpo", "weighting": "none"}, "method 'lambda_grpo' already sets weighting 'lambda'"),
    ({"method": "dr_grpo"}, "method dr_grpo needs loss_type='dr_grpo' and scale_rewards='none'"),
    ({"method": "grpo", "weighting": "sqrt"}, "unknown weighting 'sqrt'"),
    ({"method": "ppo"}, "unknown method 'ppo'"),
    ({"method": "reinforce_rej", "loss_type": "dr_grpo"}, "method reinforce_rej drops groups from the normaliser"),
])
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
