"""The trainer's gradient against the paper's formula written out by hand (Eq. 2a, the λ-GRPO objective of §4), and
Theorem 1."""

import copy

import pytest
import torch

from grpo_prm.loss import aggregate, per_token_loss
from grpo_prm.prefix_tree import step_advantages
from grpo_prm.recording import BatchRecorder
from tests.conftest import EXAMPLE, EXAMPLE_REWARDS, example_ids, make_trainer
from tests.helpers import brute_force_sizes, grads, perturb, trainer_gradient


def paper_loss(model, ref_model, prompt_ids, rows, rewards, method, beta, normalization, logit_scale=1.0):
    """The paper's loss, one token at a time, with logps from a plain forward pass (no TRL code).

    The authors' log-probs are those of the raw logits (`logit_scale` 1); TRL's are of logits / temperature."""
    r = torch.tensor(rewards)
    a = (r - r.mean()) / (r.std() + 1e-4)  # authors' code: unbiased std + 1e-4
    sizes = brute_force_sizes(rows)
    n_tokens = sum(len(row) for row in rows)
    inv = [[1.0 / s for s in row] for row in sizes]
    scale = n_tokens / sum(map(sum, inv)) if method == "lambda_grpo_scaled" else 1.0
    total, per_seq = 0.0, []
    for i, row in enumerate(rows):
        ids = torch.tensor([prompt_ids + row])
        logp = torch.log_softmax(model(ids).logits[0, len(prompt_ids) - 1 : -1] * logit_scale, -1)
        logp = logp[torch.arange(len(row)), torch.tensor(row)]
        with torch.no_grad():
            ref = torch.log_softmax(ref_model(ids).logits[0, len(prompt_ids) - 1 : -1] * logit_scale, -1)
            ref = ref[torch.arange(len(row)), torch.tensor(row)]
        seq = 0.0
        for t in range(len(row)):
            w = 1.0 if method == "grpo" else scale / sizes[i][t]
            P = torch.exp(logp[t] - logp[t].detach())
            D = beta * (torch.exp(ref[t] - logp[t]) - (ref[t] - logp[t]) - 1)
            seq = seq + w * (-(P * a[i]) + D)
        total = total + seq
        per_seq.append(seq / len(row))
    return total / n_tokens if normalization == "token" else sum(per_seq) / len(rows)


@pytest.mark.parametrize("method", ["grpo", "lambda_grpo", "lambda_grpo_scaled"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("normalization", ["token", "sequence"])
@pytest.mark.parametrize("temperature", [1.0, 0.75])
def test_trainer_gradient_matches_paper_formula(
    tiny_model, tokenizer, tmp_path, method, beta, normalization, temperature
):
    """At T = 0.75 (the paper's math runs) the authors' loss still takes log-probs of the raw logits."""
    ref_model = copy.deepcopy(tiny_model)
    perturb(tiny_model)  # policy ≠ reference, so the KL term has a gradient
    trainer = make_trainer(
        tiny_model, tokenizer, method, beta, normalization, ref_model, tmp=str(tmp_path), temperature=temperature
    )
    model = trainer.model
    ours = trainer_gradient(trainer, len(EXAMPLE))
    prompt_ids = tokenizer("Q", add_special_tokens=False)["input_ids"]
    rows = example_ids(tokenizer)
    paper_loss(model, ref_model, prompt_ids, rows, EXAMPLE_REWARDS, method, beta, normalization).backward()
    expected = grads(model)
    assert expected.norm() > 0
    assert (ours - expected).norm() / expected.norm() < 1e-5


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_sampling_logprob_temperature_matches_tempered_formula(tiny_model, tokenizer, tmp_path, beta):
    """`logprob_temperature="sampling"` is TRL's choice: the same formula on logits / T, policy and reference alike;
    it differs from the raw-logit gradient by far more than the tolerance."""
    ref_model = copy.deepcopy(tiny_model)
    perturb(tiny_model)
    trainer = make_trainer(
        tiny_model,
        tokenizer,
        "lambda_grpo",
        beta,
        "token",
        ref_model,
        tmp=str(tmp_path),
        temperature=0.75,
        logprob_temperature="sampling",
    )
    model = trainer.model
    ours = trainer_gradient(trainer, len(EXAMPLE))
    prompt_ids = tokenizer("Q", add_special_tokens=False)["input_ids"]
    rows = example_ids(tokenizer)
    expected = {}
    for name, scale in (("tempered", 1 / 0.75), ("raw", 1.0)):
        model.zero_grad()
        paper_loss(model, ref_model, prompt_ids, rows, EXAMPLE_REWARDS, "lambda_grpo", beta, "token", scale).backward()
        expected[name] = grads(model).clone()
    assert (ours - expected["tempered"]).norm() / expected["tempered"].norm() < 1e-5
    assert (ours - expected["raw"]).norm() / expected["raw"].norm() > 1e-2


def test_lambda_weights_in_batch(tiny_model, tokenizer, tmp_path):
    trainer = make_trainer(
        tiny_model, tokenizer, "lambda_grpo", 0.0, "token", tmp=str(tmp_path), on_batch=BatchRecorder()
    )
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * len(EXAMPLE))
    rows = {
        tuple(r[m.bool()].tolist()): w[m.bool()].tolist()
        for r, m, w in zip(inputs["completion_ids"], inputs["completion_mask"], inputs["lambda_weights"])
    }
    expected = {
        tuple(r): [1 / s for s in sz]
        for r, sz in zip(example_ids(tokenizer), brute_force_sizes(example_ids(tokenizer)))
    }
    assert rows.keys() == expected.keys()
    for key, weights in rows.items():
        assert weights == pytest.approx(expected[key])
    assert trainer._metrics["train"]["tree/flat_frac"] == [0.0]


@pytest.mark.parametrize("normalization", ["token", "sequence"])
@pytest.mark.parametrize("kl_bias_correction", [False, True])
def test_grpo_method_reproduces_trl_loss(tiny_model, tokenizer, tmp_path, normalization, kl_bias_correction):
    """Regression guard for the pinned TRL: weight ≡ 1 must give TRL's own loss and gradient, KL included."""
    ref_model = copy.deepcopy(tiny_model)
    perturb(tiny_model)
    trainer = make_trainer(tiny_model, tokenizer, "grpo", 0.04, normalization, ref_model, tmp=str(tmp_path))
    trainer.args.use_bias_correction_kl = kl_bias_correction
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * len(EXAMPLE))
    model = trainer.model
    model.zero_grad()
    ours = trainer.compute_loss(model, inputs)
    ours.backward()
    g_ours = grads(model).clone()
    model.zero_grad()
    theirs = super(type(trainer), trainer)._compute_loss(model, inputs)
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert (g_ours - grads(model)).norm() / grads(model).norm() < 1e-6


def random_group(gen, k, vocab=6, max_len=7):
    """k completions that share random prefixes, with duplicates and strict prefixes; EOS id 0 ends each."""
    rows = [torch.randint(1, vocab, (3,), generator=gen).tolist() + [0]]
    for _ in range(k - 1):
        if rows and torch.rand(1, generator=gen) < 0.6:
            base = rows[int(torch.randint(len(rows), (1,), generator=gen))][:-1]
            cut = int(torch.randint(len(base) + 1, (1,), generator=gen))
            body = base[:cut]
        else:
            body = []
        extra = int(torch.randint(0, max_len - len(body), (1,), generator=gen))
        body = body + torch.randint(1, vocab, (extra,), generator=gen).tolist()
        rows.append(body + [0])
    rows[1] = rows[0][:1] + [vocab] + rows[1]  # rows 0 and 1 always share a first token, then diverge
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_theorem1_grpo_loss_equals_prm_loss(tiny_model, seed):
    """Theorem 1 (μ = 1, token-level normalisation): GRPO's loss and gradient equal the PRM-aware loss's."""
    gen = torch.Generator().manual_seed(seed)
    k = int(torch.randint(3, 9, (1,), generator=gen))
    rows = random_group(gen, k, vocab=7)
    rewards = torch.randint(0, 2, (k,), generator=gen).float()
    rewards[0], rewards[1] = 0.0, 1.0  # non-zero variance
    T = max(map(len, rows))
    ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows]).bool()
    prompt = torch.full((k, 1), 8)
    logits = tiny_model(torch.cat([prompt, ids], 1)).logits[:, :-1]
    logps = torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    a = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
    A = step_advantages(ids, mask, rewards).float()
    w = mask.float()

    def loss_and_grad(adv):
        tiny_model.zero_grad()
        loss = aggregate(per_token_loss(logps, logps.detach(), adv), w, mask, "token")
        loss.backward(retain_graph=True)
        return loss.item(), grads(tiny_model).clone()

    l_grpo, g_grpo = loss_and_grad(a)
    l_prm, g_prm = loss_and_grad(A)
    assert l_grpo == pytest.approx(l_prm, abs=1e-6)
    assert (g_grpo - g_prm).norm() <= 1e-5 * g_grpo.norm()
    assert not torch.allclose(A, a[:, None].expand_as(A) * w), "the group should induce a non-trivial PRM"
