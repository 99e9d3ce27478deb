"""λ at one seam of TRL's own loss (issue 27, item 1): for every TRL loss type and option, the trainer's gradient
equals the paper's λ-GRPO objective (§4: each token's whole term divided by |λ(i,t)|, the loss type's normaliser
unchanged) written out here in float64 with no TRL code; and for the run configurations it equals the trainer's
previous loss (`grpo_prm.loss`, which re-implemented TRL's).
"""

import copy
import math

import pytest
import torch
from trl import GRPOTrainer

from grpo_prm.loss import aggregate, per_token_loss
from tests.conftest import EXAMPLE, EXAMPLE_REWARDS, make_trainer
from tests.helpers import brute_force_sizes, grads, perturb

LOSS_TYPES = ["grpo", "dapo", "dr_grpo", "bnpo", "luspo", "cispo", "sapo", "vespo"]
OPTIONS = {
    "plain": {},
    "beta": {"beta": 0.04},
    "beta, bias-corrected KL": {"beta": 0.04, "use_bias_correction_kl": True},
    "epsilon_high": {"epsilon": 0.05, "epsilon_high": 0.08},
    "delta": {"delta": 1.05},
    "entropy_coef": {"entropy_coef": 0.05},
    "top_entropy_quantile": {"top_entropy_quantile": 0.5},
    "entropy filter and bonus": {"top_entropy_quantile": 0.5, "entropy_coef": 0.05},
    "off_policy_mask_threshold": {"off_policy_mask_threshold": 0.0},
}
CASES = [(lt, "plain") for lt in LOSS_TYPES] + [(lt, "beta, bias-corrected KL") for lt in LOSS_TYPES]
CASES += [(lt, opt) for lt in ("dapo", "grpo") for opt in OPTIONS if opt not in ("plain", "beta, bias-corrected KL")]
CASES += [
    (lt, opt) for lt in ("cispo", "vespo", "luspo") for opt in ("entropy filter and bonus", "off_policy_mask_threshold")
]


def float64_trainer(tiny_model, tokenizer, tmp_path, method, loss_type, options):
    ref_model = copy.deepcopy(tiny_model)
    perturb(tiny_model)  # policy ≠ reference
    fields = copy.deepcopy(OPTIONS[options])
    beta = fields.pop("beta", 0.0)
    trainer = make_trainer(
        tiny_model, tokenizer, method, beta, "token", ref_model, tmp=str(tmp_path), loss_type=loss_type, **fields
    )
    trainer.model.double()  # after the float32 check: float64 makes the 1e-6 comparison meaningful
    if trainer.ref_model is not None:
        trainer.ref_model.double()
    return trainer


def formula_loss(trainer, inputs, method):
    """The λ-GRPO objective of every TRL loss type, token by token, from a plain forward pass (float64)."""
    args, model = trainer.args, trainer.model
    prompt = inputs["prompt_ids"][0][inputs["prompt_mask"][0].bool()].tolist()
    rows = [ids[m.bool()].tolist() for ids, m in zip(inputs["completion_ids"], inputs["completion_mask"])]
    by_text = {
        tuple(ids): r
        for ids, r in zip(
            [trainer.processing_class(t, add_special_tokens=False)["input_ids"] for t in EXAMPLE], EXAMPLE_REWARDS
        )
    }
    r = torch.tensor([by_text[tuple(row)] for row in rows], dtype=torch.float64)
    adv = (r - r.mean()) / (r.std() + 1e-4)
    sizes = brute_force_sizes(rows)
    logp, ent, ref, old = [], [], [], []
    for i, row in enumerate(rows):
        ids = torch.tensor([prompt + row])
        logits = model(ids).logits[0, len(prompt) - 1 : -1]
        lp = torch.log_softmax(logits, -1)
        logp.append(lp[torch.arange(len(row)), torch.tensor(row)])
        ent.append(-(lp.exp() * lp).sum(-1))
        old.append(inputs["old_per_token_logps"][i, : len(row)])
        if trainer.beta:
            with torch.no_grad():
                rl = torch.log_softmax(trainer.ref_model(ids).logits[0, len(prompt) - 1 : -1], -1)
            ref.append(rl[torch.arange(len(row)), torch.tensor(row)])
    all_ent = torch.cat(ent).detach()
    ent_threshold = torch.quantile(all_ent, 1 - args.top_entropy_quantile) if args.top_entropy_quantile < 1 else None
    eps_lo, eps_hi = trainer.epsilon_low, trainer.epsilon_high
    sums, lengths, bonus, n_bonus = [], [], 0.0, 0.0
    for i, row in enumerate(rows):
        a, lr = adv[i], logp[i] - old[i]
        ratio = torch.exp(lr)
        if args.loss_type == "cispo":
            pol = -torch.clamp(ratio, max=eps_hi).detach() * a * logp[i]
        elif args.loss_type == "sapo":
            tau = args.sapo_temperature_pos if a > 0 else args.sapo_temperature_neg
            pol = -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * a
        elif args.loss_type == "vespo":
            log_w = min(max(torch.clamp(lr.detach(), -20, 20).sum().item(), math.log(1e-8)), 20.0)
            k, lam = (args.vespo_k_pos, args.vespo_lambda_pos) if a >= 0 else (args.vespo_k_neg, args.vespo_lambda_neg)
            pol = -math.exp(lam + k * log_w - lam * math.exp(log_w)) * a * logp[i]
        else:
            capped = ratio if args.delta is None else torch.clamp(ratio, max=args.delta)
            pol = -torch.min(capped * a, torch.clamp(ratio, 1 - eps_lo, 1 + eps_hi) * a)
        if args.off_policy_mask_threshold is not None:
            sampled = inputs.get("sampling_per_token_logps", inputs["old_per_token_logps"])[i, : len(row)]
            keep = a >= 0 or (sampled - logp[i].detach()).mean() <= args.off_policy_mask_threshold
            pol = pol * float(keep)
        emask = torch.ones(len(row), dtype=torch.float64)
        if ent_threshold is not None:
            emask = (ent[i].detach() >= ent_threshold).double()
            pol = pol * emask
        term = pol
        if trainer.beta:
            d = ref[i] - logp[i]
            kl = torch.exp(d) - d - 1
            term = term + trainer.beta * (kl * ratio if args.use_bias_correction_kl else kl)
        w = torch.tensor([1.0 if method == "grpo" else 1.0 / s for s in sizes[i]], dtype=torch.float64)
        sums.append((w * term).sum())
        lengths.append(len(row))
        bonus = bonus + (w * ent[i] * emask).sum()
        n_bonus += emask.sum().item()
    B, total = len(rows), sum(sums)
    loss = {
        "grpo": sum(s / n for s, n in zip(sums, lengths)) / B,
        "sapo": sum(s / n for s, n in zip(sums, lengths)) / B,
        "bnpo": total / sum(lengths),
        "dr_grpo": total / (B * args.max_completion_length),
        "luspo": total / B,
    }.get(args.loss_type, total / sum(lengths))  # dapo, cispo, vespo: the batch's token count
    return loss - args.entropy_coef * bonus / max(n_bonus, 1.0)


@pytest.mark.parametrize("method", ["grpo", "lambda_grpo"])
@pytest.mark.parametrize(("loss_type", "options"), CASES)
def test_gradient_matches_float64_formula(tiny_model, tokenizer, tmp_path, method, loss_type, options):
    trainer = float64_trainer(tiny_model, tokenizer, tmp_path, method, loss_type, options)
    model = trainer.model
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * len(EXAMPLE))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # an older policy, so ratios, clipping, δ and the off-policy mask all act
        logps = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer,
            model,
            torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1),
            inputs["completion_ids"].size(1),
        )[0]
    inputs["old_per_token_logps"] = logps + 0.1 * torch.randn(logps.shape, generator=gen, dtype=logps.dtype)
    model.zero_grad()
    trainer.compute_loss(model, inputs).backward()
    ours = grads(model).clone()
    model.zero_grad()
    formula_loss(trainer, inputs, method).backward()
    expected = grads(model)
    assert expected.norm() > 0
    assert (ours - expected).norm() / expected.norm() < 1e-6


def previous_loss(trainer, model, inputs):
    """The trainer's `_compute_loss` before the seam (grpo_prm.loss), for the run configurations."""
    mask = (inputs["completion_mask"] * inputs.get("tool_mask", 1)).float()
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    logps = GRPOTrainer._get_per_token_logps_and_entropies(
        trainer, model, ids, att, ids.size(1) - inputs["prompt_ids"].size(1)
    )[0]
    terms = per_token_loss(
        logps,
        logps.detach(),
        inputs["advantages"],
        ref_logps=inputs.get("ref_per_token_logps"),
        beta=trainer.beta,
        kl_bias_correction=trainer.args.use_bias_correction_kl,
    )
    weights = inputs["lambda_weights"] * mask
    if trainer.loss_type == "dapo":
        return aggregate(terms, weights, mask, "token", inputs["num_items_in_batch"].clamp(min=1))
    if trainer.loss_type == "dr_grpo":
        return aggregate(terms, weights, mask, "token", torch.tensor(float(len(mask) * trainer.max_completion_length)))
    return aggregate(terms, weights, mask, "sequence")


@pytest.mark.parametrize(
    "method",
    ["grpo", "lambda_grpo", "lambda_grpo_scaled", "dr_grpo", "lambda_dr_grpo", "reinforce_rej", "lambda_reinforce_rej"],
)
@pytest.mark.parametrize("normalization", ["token", "sequence"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_run_configurations_match_previous_loss(tiny_model, tokenizer, tmp_path, method, normalization, beta):
    ref_model = copy.deepcopy(tiny_model)
    perturb(tiny_model)
    extra = {"loss_type": "dr_grpo", "scale_rewards": "none"} if "dr_grpo" in method else {}
    trainer = make_trainer(tiny_model, tokenizer, method, beta, normalization, ref_model, tmp=str(tmp_path), **extra)
    model = trainer.model
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * len(EXAMPLE))
    model.zero_grad()
    trainer.compute_loss(model, inputs).backward()
    ours = grads(model).clone()
    model.zero_grad()
    previous_loss(trainer, model, inputs).backward()
    assert (ours - grads(model)).norm() / grads(model).norm() < 1e-6
