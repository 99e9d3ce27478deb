"""`LambdaGRPOTrainer` used the way TRL's `GRPOTrainer` is (issue 27's defects): TRL's constructor signature, a
mixture-of-experts policy's router loss, `num_generations_eval=1`, tool masks and vision-language inputs. Where TRL
defines the result, it is TRL's own `GRPOTrainer` on the same model and batch, at `method="grpo"`."""

import pytest
import torch
from datasets import Dataset
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
from trl import GRPOConfig, GRPOTrainer

from grpo_prm.recording import BatchRecorder
from grpo_prm.trainer import (
    AUTHORS_LOSS_FIELDS,
    MULTIMODAL_INPUTS,
    LambdaGRPOConfig,
    LambdaGRPOTrainer,
    authors_grpo_config,
)
from tests.conftest import EXAMPLE, EXAMPLE_REWARDS, WORDS, example_ids, make_tiny_model, make_tokenizer
from tests.helpers import grads, perturb

K = len(EXAMPLE)
# The one field a λ-GRPO config needs to be TRL's GRPO (every other default is TRL's); dropout off in both trainers,
# so that two forward passes agree.
TRL_FIELDS = {"method": "grpo"}


def common_fields(tmp_path, **overrides) -> dict:
    return {
        "output_dir": str(tmp_path),
        "num_generations": K,
        "per_device_train_batch_size": K,
        "max_completion_length": 8,
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "save_strategy": "no",
        "learning_rate": 1e-2,
        "max_steps": 1,
        "logging_steps": 1,
        "disable_dropout": True,
        **overrides,
    }


def tool_mask_of(row: list[int]) -> list[int]:
    """Tokens 1 and 2 of a row (when it has 4 or more) are a tool's output: 0."""
    return [0 if 1 <= t <= 2 and len(row) >= 4 else 1 for t in range(len(row))]


def build(cls, model, args, tokenizer, ref_model=None, tool_mask=False, eval_prompts=0, **extra):
    """`cls` whose rollout returns the worked example's completions in order (cycling, for any number of prompts)
    and whose reward is the example's, keyed by completion; `tool_mask`: the rollout marks tool tokens (TRL's
    `env_mask`). With β ≠ 0 the reference is `ref_model`."""
    rows = example_ids(tokenizer)
    reward_of = {tuple(r): x for r, x in zip(rows, EXAMPLE_REWARDS)}
    prompt = tokenizer("Q", add_special_tokens=False)["input_ids"]

    def rollout(prompts, trainer):
        ids = [rows[i % K] for i in range(len(prompts))]
        out = {"prompt_ids": [prompt] * len(ids), "completion_ids": ids, "logprobs": [[0.0] * len(r) for r in ids]}
        if tool_mask:
            out["env_mask"] = [tool_mask_of(r) for r in ids]
        return out

    def reward(completions, completion_ids, **kw):
        return [reward_of[tuple(ids)] for ids in completion_ids]

    kwargs = {
        "model": model,
        "reward_funcs": reward,
        "args": args,
        "processing_class": tokenizer,
        "train_dataset": Dataset.from_dict({"prompt": ["Q"] * K}),
        "rollout_func": rollout,
        **extra,
    }
    if eval_prompts:
        kwargs["eval_dataset"] = Dataset.from_dict({"prompt": ["Q"] * eval_prompts})
    trainer = cls(**kwargs, ref_model=ref_model) if args.beta else cls(**kwargs)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop; these tests call the loss directly
    return trainer


def loss_and_grad(loss_fn, model, inputs):
    model.zero_grad()
    loss = loss_fn(model, inputs)
    loss.backward()
    g = grads(model).clone()
    model.zero_grad()
    return loss.item(), g


def trl_loss(trainer, model, inputs):
    """TRL's own loss, run on this trainer's state and batch."""
    return GRPOTrainer._compute_loss(trainer, model, inputs)


# ---- TRL's constructor signature ----


def test_constructs_without_args_as_trl_does(tmp_path, monkeypatch):
    """TRL's minimal form `GRPOTrainer(model=..., reward_funcs=..., train_dataset=...)`: the default config is a
    `LambdaGRPOConfig` named as TRL names its own, with TRL's field values (bar the λ fields)."""
    monkeypatch.chdir(tmp_path)
    tokenizer, dataset = make_tokenizer(), Dataset.from_dict({"prompt": ["Q"] * 8})

    def reward(completions, **kw):
        return [float(len(c)) for c in completions]

    trainer = LambdaGRPOTrainer(
        model=make_tiny_model(), reward_funcs=reward, train_dataset=dataset, processing_class=tokenizer
    )
    assert type(trainer.args) is LambdaGRPOConfig and trainer.args.method == "lambda_grpo"
    trl_default = GRPOConfig(trainer.args.output_dir, use_cpu=trainer.args.use_cpu)
    own = set(LambdaGRPOConfig.__dataclass_fields__) - set(GRPOConfig.__dataclass_fields__)
    differing = {f for f in GRPOConfig.__dataclass_fields__ if getattr(trainer.args, f) != getattr(trl_default, f)}
    assert not differing and own == {
        "method",
        "weighting",
        "mc_continuations",
        "logprob_temperature",
        "explicit_prm_normalization",
    }
    assert trainer.args.output_dir.endswith("-GRPO") and trainer.args.logprob_temperature == "sampling"


def test_default_config_is_trls_on_every_field(tmp_path):
    """`LambdaGRPOConfig()` equals `GRPOConfig()` on every `GRPOConfig` field, with no exceptions: `method="grpo"`
    is TRL's GRPO, and `logprob_temperature`'s default is TRL's ("sampling": logits / T)."""
    ours, trl = LambdaGRPOConfig(str(tmp_path), use_cpu=True), GRPOConfig(str(tmp_path), use_cpu=True)
    differing = {
        f: (getattr(ours, f), getattr(trl, f))
        for f in GRPOConfig.__dataclass_fields__
        if getattr(ours, f) != getattr(trl, f)
    }
    assert not differing
    assert ours.method == "lambda_grpo" and ours.logprob_temperature == "sampling"
    assert LambdaGRPOConfig(str(tmp_path), use_cpu=True, method="grpo").weighting == "none"


def test_authors_preset_gives_the_authors_settings(tmp_path):
    """`authors_grpo_config` (what every run of this project uses): plain k3 KL, raw-logit log-probs, dropout off, no
    vLLM IS correction (each unlike TRL's default), and the authors' optimiser."""
    args, trl = authors_grpo_config(output_dir=str(tmp_path)), GRPOConfig(str(tmp_path), use_cpu=True)
    authors = {
        "use_bias_correction_kl": False,
        "logprob_temperature": "raw",
        "disable_dropout": True,
        "vllm_importance_sampling_correction": False,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "max_grad_norm": 0.0,
        "weight_decay": 0.0,
        "optim": "adamw_torch",
        "loss_type": "dapo",
        "gradient_accumulation_steps": 1,
        "logging_steps": 1,
        "report_to": [],
        "bf16": False,
    }
    got = {k: getattr(args, k) for k in authors}
    got["lr_scheduler_type"], got["optim"] = str(args.lr_scheduler_type.value), str(args.optim.value)
    assert got == authors
    # the loss settings are where the preset departs from TRL's defaults
    assert LambdaGRPOConfig(str(tmp_path), use_cpu=True).logprob_temperature == "sampling"
    assert all(getattr(trl, k) != authors[k] for k in AUTHORS_LOSS_FIELDS if k != "logprob_temperature")


def test_constructs_with_positional_arguments(tmp_path):
    """`(model, reward_funcs, args, train_dataset, eval_dataset, processing_class)` in TRL's order."""
    tokenizer = make_tokenizer()
    args = LambdaGRPOConfig(**common_fields(tmp_path), method="lambda_grpo")

    def reward(completions, **kw):
        return [0.0] * len(completions)

    train, evaluation = Dataset.from_dict({"prompt": ["Q"] * K}), Dataset.from_dict({"prompt": ["Q"] * 2})
    trainer = LambdaGRPOTrainer(make_tiny_model(), reward, args, train, evaluation, tokenizer)
    assert trainer.args is args and trainer.train_dataset is train and trainer.eval_dataset is evaluation
    assert trainer.processing_class is tokenizer and trainer.args.base.name == "grpo"


# ---- Mixture-of-experts router loss ----


def tiny_moe(seed=0, coef=0.5):
    torch.manual_seed(seed)
    config = Qwen3MoeConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        intermediate_size=32,
        moe_intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        num_experts=4,
        num_experts_per_tok=2,
        router_aux_loss_coef=coef,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return Qwen3MoeForCausalLM(config).eval()


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_moe_router_loss_is_trls(tmp_path, loss_type):
    """A Qwen3-MoE policy: the router's load-balancing loss is added as TRL adds it (loss and gradient equal TRL's),
    and it matters (the loss without it differs by coef · aux ≠ 0)."""
    tokenizer = make_tokenizer()
    ref = tiny_moe()
    model = tiny_moe()
    perturb(model)
    args = LambdaGRPOConfig(**common_fields(tmp_path, loss_type=loss_type, beta=0.04), **TRL_FIELDS)
    trainer = build(LambdaGRPOTrainer, model, args, tokenizer, ref_model=ref)
    assert trainer.aux_loss_enabled and trainer.router_aux_loss_coef == 0.5
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * K)
    model = trainer.model
    ours, g_ours = loss_and_grad(trainer.compute_loss, model, inputs)
    theirs, g_theirs = loss_and_grad(lambda m, x: trl_loss(trainer, m, x), model, inputs)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert (g_ours - g_theirs).norm() <= 1e-6 * g_theirs.norm()
    aux = trainer._metrics["train"]["aux_loss"]
    assert len(aux) == 2 and aux[0] == pytest.approx(aux[1]) and aux[0] > 0
    trainer.aux_loss_enabled = False
    without, _ = loss_and_grad(trainer.compute_loss, model, inputs)
    assert ours - without == pytest.approx(0.5 * aux[0], rel=1e-5)


def test_moe_policy_trains_with_router_loss_logged(tmp_path):
    """λ-GRPO on a Qwen3-MoE policy: a training step logs `aux_loss` as TRL's trainer does, and moves the router."""
    args = LambdaGRPOConfig(**common_fields(tmp_path), method="lambda_grpo")
    trainer = build(LambdaGRPOTrainer, tiny_moe(), args, make_tokenizer())
    router = trainer.model.model.layers[0].mlp.gate.weight
    before = router.detach().clone()
    trainer.train()
    logged = trainer.state.log_history[0]
    assert logged["aux_loss"] > 0 and torch.isfinite(torch.tensor(logged["loss"]))
    assert not torch.equal(before, router.detach())


# ---- Evaluation with one generation per prompt ----


def test_num_generations_eval_one(tmp_path):
    """`num_generations_eval=1`: evaluation after a training step runs, every token of a lone completion has weight
    1 (|λ| = 1), and its loss and entropy are TRL's."""
    fields = common_fields(
        tmp_path, num_generations_eval=1, per_device_eval_batch_size=2, eval_strategy="steps", eval_steps=1
    )
    logs = {}
    for name, cls, args in (
        ("lambda", LambdaGRPOTrainer, LambdaGRPOConfig(**fields, method="lambda_grpo")),
        ("grpo", LambdaGRPOTrainer, LambdaGRPOConfig(**fields, **TRL_FIELDS)),
        ("trl", GRPOTrainer, GRPOConfig(**fields)),
    ):
        trainer = build(cls, make_tiny_model(), args, make_tokenizer(), eval_prompts=4)
        trainer.train()
        logs[name] = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    assert logs["lambda"]["eval_loss"] == 0.0  # one completion per prompt: advantage 0, and β = 0
    for key in ("loss", "eval_loss", "eval_entropy"):
        assert logs["grpo"][key] == pytest.approx(logs["trl"][key], rel=1e-5, abs=1e-8)


def test_lone_completion_weights_are_one(tmp_path):
    args = LambdaGRPOConfig(
        **common_fields(tmp_path, num_generations_eval=1, per_device_eval_batch_size=2), method="lambda_grpo"
    )
    trainer = build(
        LambdaGRPOTrainer, make_tiny_model(), args, make_tokenizer(), eval_prompts=2, on_batch=BatchRecorder()
    )
    trainer.model.eval()
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * 2)
    assert torch.equal(inputs["lambda_weights"], inputs["completion_mask"].float())
    assert trainer._metrics["eval"]["lambda/shared_token_frac"] == [0.0]


# ---- Tool masks, vision-language inputs, entropy options ----


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo"])
def test_tool_mask_gives_trls_loss(tmp_path, loss_type):
    """A rollout that marks tool-output tokens (TRL's `env_mask`): at `method="grpo"` the loss and gradient are
    TRL's (tool tokens out of the loss and the normaliser), and differ from the loss that ignores the mask."""
    tokenizer = make_tokenizer()
    ref = make_tiny_model()
    model = make_tiny_model()
    perturb(model)
    args = LambdaGRPOConfig(**common_fields(tmp_path, loss_type=loss_type, beta=0.04), **TRL_FIELDS)
    trainer = build(LambdaGRPOTrainer, model, args, tokenizer, ref_model=ref, tool_mask=True)
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * K)
    assert (inputs["tool_mask"] * inputs["completion_mask"]).sum() < inputs["completion_mask"].sum()
    model = trainer.model
    ours, g_ours = loss_and_grad(trainer.compute_loss, model, inputs)
    theirs, g_theirs = loss_and_grad(lambda m, x: trl_loss(trainer, m, x), model, inputs)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert (g_ours - g_theirs).norm() <= 1e-6 * g_theirs.norm()
    unmasked = {k: v for k, v in inputs.items() if k != "tool_mask"}
    _, g_unmasked = loss_and_grad(trainer.compute_loss, model, unmasked)
    assert (g_unmasked - g_ours).norm() > 1e-2 * g_ours.norm()


def test_tool_tokens_leave_the_lambda_loss(tmp_path):
    """At `lambda_grpo`, a tool token's log-prob gets no gradient (its weight is 0), a model token's does."""
    args = LambdaGRPOConfig(**common_fields(tmp_path), method="lambda_grpo")
    trainer = build(LambdaGRPOTrainer, make_tiny_model(), args, make_tokenizer(), tool_mask=True)
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * K)
    captured = {}
    real = trainer._get_per_token_logps_and_entropies

    def keep_logps(*a, **kw):
        logps, entropies, aux = real(*a, **kw)
        logps.retain_grad()
        captured["logps"] = logps
        return logps, entropies, aux

    trainer._get_per_token_logps_and_entropies = keep_logps
    trainer.compute_loss(trainer.model, inputs).backward()
    g = captured["logps"].grad
    tool = (inputs["tool_mask"] == 0) & inputs["completion_mask"].bool()
    assert tool.any() and torch.all(g[tool] == 0)
    assert torch.all(g[(inputs["tool_mask"] * inputs["completion_mask"]).bool()] != 0)


def test_vision_inputs_reach_the_logprob_call(tmp_path):
    """The batch's vision-language fields are passed to the log-prob call exactly as TRL's loss passes them (a spy
    records the call and drops them, as the text-only stand-in model has no vision tower)."""
    args = LambdaGRPOConfig(**common_fields(tmp_path), **TRL_FIELDS)
    trainer = build(LambdaGRPOTrainer, make_tiny_model(), args, make_tokenizer())
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * K)
    vision = {
        "pixel_values": torch.randn(K * 4, 6),
        "image_grid_thw": torch.tensor([[1, 2, 2]] * K),
        "num_images": [1] * K,
        "token_type_ids": torch.zeros_like(inputs["prompt_ids"]),
    }
    calls = []
    real = trainer._get_per_token_logps_and_entropies

    def spy(*a, **kw):
        calls.append({k: kw.get(k) for k in MULTIMODAL_INPUTS})
        return real(*a, **{k: v for k, v in kw.items() if k not in MULTIMODAL_INPUTS})

    trainer._get_per_token_logps_and_entropies = spy
    trainer.compute_loss(trainer.model, inputs | vision)
    trl_loss(trainer, trainer.model, inputs | vision)
    ours, theirs = calls
    assert ours.keys() == theirs.keys() and all(ours[k] is theirs[k] for k in ours)
    assert all(ours[k] is vision[k] for k in vision)
