"""Conformance with TRL's `GRPOTrainer` at `method="grpo"` (issue 27, item 2; started): for the `GRPOConfig` options
that TRL's own tests exercise and `LambdaGRPOTrainer` supports, both trainers train the same tiny local model (a
folder, so TRL builds its β-reference itself) on the same seed, and the logged losses and the updated weights agree;
at `method="lambda_grpo"` it trains and stays finite.
The options still refused are `REFUSED`, each with its reason; each is refused in one line naming it.

The options were read from TRL's `tests/test_grpo_trainer.py` (huggingface/trl); these tests are the project's own.
"""

import copy

import pytest
import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM
from trl import GRPOConfig, GRPOTrainer

from grpo_prm.trainer import LambdaGRPOConfig, LambdaGRPOTrainer
from tests.conftest import WORDS, make_tokenizer

# The one field that makes a λ-GRPO config TRL's GRPO: every other default is TRL's.
TRL_FIELDS = {"method": "grpo"}
PROMPTS = ["Q", "Q A", "Q B", "Q C"]

# Options exercised by TRL's tests, at values other than the default; each case trains both trainers.
CASES = {
    "defaults": {},
    "loss_type=grpo": {"loss_type": "grpo"},
    "loss_type=dr_grpo": {"loss_type": "dr_grpo"},
    "beta": {"beta": 0.1},
    "beta, no bias correction": {"beta": 0.1, "use_bias_correction_kl": False},
    "sync_ref_model": {"beta": 0.1, "sync_ref_model": True, "ref_model_sync_steps": 1, "ref_model_mixup_alpha": 0.5},
    "num_iterations": {"num_iterations": 2},
    "epsilon_high (clip-higher)": {"num_iterations": 2, "epsilon": 0.1, "epsilon_high": 0.28},
    "gradient_accumulation_steps": {"gradient_accumulation_steps": 2, "per_device_train_batch_size": 2},
    "steps_per_generation": {"steps_per_generation": 2, "per_device_train_batch_size": 2},
    "scale_rewards=batch": {"scale_rewards": "batch"},
    "scale_rewards=none": {"scale_rewards": "none"},
    "multi_objective_aggregation": {"multi_objective_aggregation": "normalize_then_sum", "reward_weights": [1.0, 0.5]},
    "reward_weights": {"reward_weights": [0.7, 0.3]},
    "mask_truncated_completions": {"mask_truncated_completions": True},
    "pad_to_multiple_of": {"pad_to_multiple_of": 8},
    "cast_lm_head_to_fp32": {"cast_lm_head_to_fp32": True},
    "temperature": {"temperature": 0.7},
    "top_p, top_k, min_p, repetition_penalty": {"top_p": 0.9, "top_k": 5, "min_p": 0.05, "repetition_penalty": 1.2},
    "generation_kwargs": {"generation_kwargs": {"do_sample": True, "top_k": 4}},
    "shuffle_dataset": {"shuffle_dataset": False},
    "gradient_checkpointing": {"gradient_checkpointing": True},
    # refused before the loss rode on TRL's (issue 27, item 1); λ's weight against the formula: tests/test_loss_seam.py
    "loss_type=bnpo": {"loss_type": "bnpo"},
    "loss_type=cispo": {"loss_type": "cispo"},
    "loss_type=sapo": {"loss_type": "sapo"},
    "loss_type=luspo": {"loss_type": "luspo"},
    "loss_type=vespo": {"loss_type": "vespo"},
    "importance_sampling_level=sequence (GSPO)": {"importance_sampling_level": "sequence"},
    "entropy_coef": {"entropy_coef": 0.01},
    "use_adaptive_entropy": {"use_adaptive_entropy": True, "entropy_target": 10.0},
    "top_entropy_quantile": {"top_entropy_quantile": 0.5},
    "off_policy_mask_threshold": {"off_policy_mask_threshold": 0.0, "num_iterations": 2},
    "delta": {"delta": 1.05, "num_iterations": 2},
}

# Options of TRL's tests that LambdaGRPOConfig refuses with a weighting (method="grpo" takes them), and why.
REFUSED = {
    "importance_sampling_level": (
        {"importance_sampling_level": "sequence"},
        "GSPO's sequence ratio couples a row's tokens; 1/|λ| is per token (LambdaGRPOTrainer's docstring)",
    ),
}
# Not exercised: `use_liger_kernel` (accepted; in TRL 1.16 it swaps layer kernels only and the loss stays TRL's), as
# the liger-kernel package is not in the pinned CPU stack.


def tiny_llama():
    """A tiny Llama with an untied head (TRL's fp32-head cast expects the `model.model` layout GPT-2 lacks)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The tiny policy and its tokenizer as a folder, so that each trainer loads its own copy (and its reference)."""
    path = tmp_path_factory.mktemp("tiny")
    tiny_llama().save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return str(path)


def reward_a(completions, **kwargs):
    return [float(c.count("A")) for c in completions]


def reward_short(completions, **kwargs):
    return [-float(len(c.split())) for c in completions]


def train(cls, config_cls, model_dir, tmp_path, options, **fields):
    """Two logged steps of `cls`; the losses and the weights after. Plain SGD: Adam's first step is lr·g/|g|, which
    would turn float rounding on near-zero gradient components into full-size, unequal steps."""
    args = config_cls(
        **{
            "output_dir": str(tmp_path / cls.__name__),
            "num_generations": 4,
            "per_device_train_batch_size": 4,
            "max_completion_length": 6,
            "optim": "sgd",
            "learning_rate": 0.5,
            "max_steps": 2,
            "logging_steps": 1,
            "seed": 3,
            "use_cpu": True,
            "bf16": False,
            "report_to": "none",
            "save_strategy": "no",
            "disable_dropout": True,
            **fields,
            **copy.deepcopy(options),
        }
    )
    funcs = [reward_a, reward_short] if args.reward_weights else reward_a
    trainer = cls(
        model=model_dir,
        reward_funcs=funcs,
        args=args,
        processing_class=make_tokenizer(),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS * 4}),
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    return losses, weights


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_grpo_method_trains_as_trl(model_dir, tmp_path, case):
    options = CASES[case]
    ours = train(LambdaGRPOTrainer, LambdaGRPOConfig, model_dir, tmp_path, options, **TRL_FIELDS)
    theirs = train(GRPOTrainer, GRPOConfig, model_dir, tmp_path, options)
    assert len(ours[0]) == len(theirs[0]) == 2
    assert ours[0] == pytest.approx(theirs[0], rel=1e-5, abs=1e-7)
    initial = dict(tiny_llama().named_parameters())
    moved = max((theirs[1][n] - initial[n]).abs().max().item() for n in theirs[1])
    assert moved > 1e-3  # the step did something to compare
    worst = max((ours[1][n] - theirs[1][n]).abs().max().item() for n in theirs[1])
    assert worst <= 1e-5 * moved, f"weights differ by {worst:.3g} (moved {moved:.3g})"
    # λ-GRPO under the same option trains and stays finite (its weights against the formula: tests/test_trainer.py;
    # where no sampled completions share a prefix, all are 1 and its step is GRPO's)
    lam_fields = TRL_FIELDS | {"method": "lambda_grpo"}
    if any(options == refused for refused, _ in REFUSED.values()):
        with pytest.raises(ValueError, match="does not support"):
            train(LambdaGRPOTrainer, LambdaGRPOConfig, model_dir, tmp_path, options, **lam_fields)
        return
    lam = train(LambdaGRPOTrainer, LambdaGRPOConfig, model_dir, tmp_path, options, **lam_fields)
    assert all(torch.isfinite(torch.tensor(lam[0]))) and all(w.isfinite().all() for w in lam[1].values())
    assert max((lam[1][n] - initial[n]).abs().max().item() for n in initial) > 1e-3


@pytest.mark.parametrize("case", REFUSED)
def test_refused_option_says_so(tmp_path, case):
    options, reason = REFUSED[case]
    field = next(iter(options))
    assert reason
    with pytest.raises(ValueError, match=f"does not support {field}="):
        LambdaGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, **options)
