"""Shared fixtures: a tiny GPT-2 policy, its tokenizer, and the paper's worked-example group (process sets, §3 of
arXiv 2509.21154)."""

import copy
import os
import warnings

import pytest
import torch
from accelerate import PartialState
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from grpo_prm.trainer import AUTHORS_LOSS_FIELDS, LOSS_TYPE, LambdaGRPOConfig, LambdaGRPOTrainer
from tests.helpers import checkpoint, data  # noqa: F401 (fixtures: the math runs' tiny Llama and JSONL splits)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run the tests marked slow (make test and CI do)")


def pytest_collection_modifyitems(config, items):
    """`slow` tests (end-to-end workflows, kill-and-resume runs, several processes) are skipped unless --runslow is
    given or CI=true is set: `make test` and CI run everything, a plain `pytest` the fast part."""
    if config.getoption("--runslow") or os.environ.get("CI", "").lower() in ("1", "true"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (make test) or CI=true")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


WORDS = ["<e>", "A", "B", "C", "D", "F", "G", "H", "Q"]
# Completions of the worked example: a duplicate pair, a branch, a strict prefix (leaves at EOS), a disjoint one.
EXAMPLE = ["A B C <e>", "A B C <e>", "A B D F <e>", "A B <e>", "G H <e>"]
EXAMPLE_REWARDS = [1.0, 1.0, 0.0, 0.0, 1.0]


def make_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<e>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<e>", pad_token="<e>", bos_token="<e>")


@pytest.fixture
def tokenizer():
    return make_tokenizer()


def make_tiny_model(seed=0):
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(WORDS), n_positions=16, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def tiny_model():
    return make_tiny_model()


def example_ids(tokenizer, texts=EXAMPLE):
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def make_trainer(
    model,
    tokenizer,
    method,
    beta,
    normalization,
    ref_model=None,
    texts=EXAMPLE,
    rewards=EXAMPLE_REWARDS,
    tmp="/tmp",
    per_device=None,
    prefix_values=None,
    on_batch=None,
    **args_overrides,
):
    """A trainer whose rollout returns the fixed `texts` for the single prompt "Q" (deterministic batch).

    With β ≠ 0 the reference is `ref_model` (default: a copy of `model` as passed). With several processes, each
    holds `per_device` rows (default: the whole group) and process p gets rows [p·per_device, (p+1)·per_device)."""
    k = len(texts)
    per_device = per_device or k
    completion_ids = example_ids(tokenizer, texts)
    prompt_ids = tokenizer("Q", add_special_tokens=False)["input_ids"]

    def local(rows):
        start = PartialState().process_index * per_device
        return rows[start : start + per_device]

    def rollout(prompts, trainer):
        assert len(prompts) == per_device
        ids = local(completion_ids)
        return {
            "prompt_ids": [prompt_ids] * per_device,
            "completion_ids": ids,
            "logprobs": [[0.0] * len(c) for c in ids],
        }

    def reward(completions, completion_ids, **kw):
        return local(list(rewards))

    args = LambdaGRPOConfig(
        **{
            "output_dir": tmp,
            "method": method,
            "beta": beta,
            "loss_type": LOSS_TYPE[normalization],
            "num_generations": k,
            "per_device_train_batch_size": per_device,
            "gradient_accumulation_steps": 1,
            "max_completion_length": 8,
            "bf16": False,
            "use_cpu": True,
            "report_to": "none",
            "save_strategy": "no",
            "learning_rate": 1e-3,
            **AUTHORS_LOSS_FIELDS,
            **args_overrides,
        }
    )
    ref = copy.deepcopy(ref_model or model) if beta else None
    trainer = LambdaGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["Q"] * k}),
        processing_class=tokenizer,
        rollout_func=rollout,
        prefix_values=prefix_values,
        on_batch=on_batch,
        ref_model=ref,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop; these tests call the loss directly
    return trainer
