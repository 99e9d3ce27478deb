"""The paper profile trains as the authors trained (paper App. C; authors' code in float32, eval-mode sampling)."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel

from grpo_prm.cli import CPU_ENV
from grpo_prm.config import ConfigError, validate_config
from grpo_prm.toy import ToyConfig, grpo_args, load_policy
from grpo_prm.trainer import PRECISIONS, LambdaGRPOTrainer, authors_grpo_config, cpu_attention
from tests.conftest import make_tiny_model, make_trainer


def moved_fraction(tokenizer, tmp_path, precision, model=None, lr=1e-6):
    """Share of the policy's weights that one optimiser step at `lr` changes."""
    model = model or make_tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = make_trainer(
        model,
        tokenizer,
        "lambda_grpo",
        0.04,
        "token",
        tmp=str(tmp_path),
        max_steps=1,
        learning_rate=lr,
        bf16=precision == "mixed",
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
    )
    trainer.train()
    changed = sum((p.detach() != b).sum().item() for p, b in zip(trainer.model.parameters(), before))
    return changed / sum(b.numel() for b in before)


def test_every_precision_moves_as_many_weights_as_float32(tokenizer, tmp_path):
    """Float32 master weights under every allowed precision: one step at the paper's lr 1e-6 moves ≥ 99 % as many
    weights as float32 (AdamW on bf16 weights moves ~2 %)."""
    fp32 = moved_fraction(tokenizer, tmp_path / "fp32", "fp32")
    assert fp32 > 0.9
    for precision in PRECISIONS:
        assert moved_fraction(tokenizer, tmp_path / precision, precision) >= 0.99 * fp32, precision


def test_bf16_weights_are_refused(tokenizer, tmp_path):
    model = make_tiny_model().to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"trainable weights are torch.bfloat16.*float32"):
        make_trainer(model, tokenizer, "grpo", 0.0, "token", tmp=str(tmp_path))


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="unknown precision 'bf16'"):
        authors_grpo_config(precision="bf16", output_dir="/tmp/x")


def test_importance_correction_needs_sampling_logprobs():
    with pytest.raises(ValueError, match="vllm_importance_sampling_correction needs logprob_temperature"):
        authors_grpo_config(
            output_dir="/tmp/x", use_vllm=True, temperature=0.75, vllm_importance_sampling_correction=True
        )


def dropout_active(model) -> bool:
    """Two train-mode forward passes that differ mean dropout is on."""
    model.train()
    ids = torch.tensor([[0, 1, 2, 1]])
    with torch.no_grad():
        return not torch.equal(model(ids).logits, model(ids).logits)


def test_toy_policy_samples_and_learns_without_dropout(tmp_path):
    """GPT-2's dropout (0.1) is on in train mode, where TRL samples; the trainer switches it off (eval-mode sampling,
    as the authors), for the policy and the reference alike."""
    cfg = ToyConfig(model="tiny", steps=1, beta=0.04, learning_rate=1e-3)
    model, tokenizer, _ = load_policy(cfg)
    assert dropout_active(copy.deepcopy(model))
    ref = copy.deepcopy(model)
    trainer = LambdaGRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=grpo_args(cfg, str(tmp_path)),
        processing_class=tokenizer,
        ref_model=ref,
        train_dataset=Dataset.from_dict({"prompt": [tokenizer.bos_token]}),
    )
    assert not dropout_active(trainer.model)
    assert not dropout_active(trainer.accelerator.unwrap_model(trainer.ref_model))


def test_gpt2_default_has_dropout():
    """The premise of the test above: a default GPT-2 config samples with dropout in train mode."""
    assert dropout_active(GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=8)))


PAPER = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"


def test_paper_profile_trains_as_the_authors():
    train = validate_config(yaml.safe_load(PAPER.read_text()))["math"]["train"]
    assert train["precision"] in PRECISIONS and train["logprob_temperature"] == "raw"
    assert train["vllm_importance_sampling_correction"] is False


def test_config_refuses_importance_correction_with_raw_logprobs():
    config = yaml.safe_load(PAPER.read_text())
    config["math"]["train"]["vllm_importance_sampling_correction"] = True
    with pytest.raises(ConfigError, match="math.train.vllm_importance_sampling_correction: needs logprob_temperature"):
        validate_config(config)
    config["math"]["train"]["logprob_temperature"] = "sampling"
    validate_config(config)


def tiny_llama(attention_dropout: float):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=9,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=16,
        attention_dropout=attention_dropout,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config)


def test_numeric_attention_dropout_is_switched_off(tokenizer, tmp_path):
    """Llama/Qwen keep attention dropout as a number (config.attention_dropout), not an nn.Dropout TRL could zero:
    with 0.1 two train-mode passes differ, and the trainer (disable_dropout) makes them equal, policy and reference."""
    model = tiny_llama(0.1)
    assert dropout_active(copy.deepcopy(model))
    trainer = make_trainer(model, tokenizer, "lambda_grpo", 0.04, "token", tmp=str(tmp_path))
    assert not dropout_active(trainer.model)
    assert trainer.model.config.attention_dropout == 0.0
    assert not dropout_active(trainer.accelerator.unwrap_model(trainer.ref_model))


# math_rl's command line as a run starts it (its main() calls cli.reproducible, which pins ATEN_CPU_CAPABILITY=avx2),
# on a CPU whose flash attention refuses as PyTorch's does on AMX machines under that pin.
ON_AMX_UNDER_AVX2 = """
import sys, torch

def refuse(*args, **kwargs):
    raise RuntimeError("pack_vnni2 is only supported when avx512 is supported")

library = torch.library.Library("aten", "IMPL")
library.impl("_scaled_dot_product_flash_attention_for_cpu", refuse, "CPU")
from grpo_prm import math_rl
math_rl.main(sys.argv[1:])
"""


def test_mixed_precision_runs_through_the_command_line(checkpoint, data, tmp_path):
    """`--precision mixed` on a CPU through the entry point of every run (and of the workflow's train_math rule):
    the run finishes, attention on the math backend, with the capability pin the command sets itself."""
    out = tmp_path / "run"
    argv = [
        "--model",
        str(checkpoint),
        "--train",
        str(data / "train.jsonl"),
        "--val",
        str(data / "val.jsonl"),
        "--out",
        str(out),
        "--steps",
        "2",
        "--prompts-per-step",
        "2",
        "--group-size",
        "3",
        "--max-new-tokens",
        "12",
        "--val-every",
        "2",
        "--save-every",
        "2",
        "--temperature",
        "1.0",
        "--reward-workers",
        "1",
        "--record-groups",
        "false",
        "--beta",
        "0.04",
        "--precision",
        "mixed",
    ]
    env = {k: v for k, v in os.environ.items() if k not in CPU_ENV}  # set by cli.reproducible, as for a user
    run = subprocess.run(
        [sys.executable, "-c", ON_AMX_UNDER_AVX2, *argv],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["precision"] == "mixed"
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 2


def test_cpu_attention_is_math_in_bf16_only():
    """bf16 on a CPU: SDPA's math backend (no flash kernel); float32 keeps the flash kernel, so fp32 numbers stay."""
    q = torch.randn(1, 2, 8, 16, requires_grad=True)
    with cpu_attention(bf16=True):
        mixed = torch.nn.functional.scaled_dot_product_attention(q.bfloat16(), q.bfloat16(), q.bfloat16())
    with cpu_attention(bf16=False):
        fp32 = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert "Flash" not in type(mixed.grad_fn).__name__
    assert "Flash" in type(fp32.grad_fn).__name__
