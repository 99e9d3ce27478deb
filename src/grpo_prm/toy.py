"""The toy experiment of paper §4.3 (Table 1): a depth-4 binary L/R tree.

The policy emits L or R `depth` times (every other token is masked out of its logits). A target path T drawn per
seed earns +1.0; every other path that shares T's first n tokens earns r_neg < 0; all remaining paths earn 0.7.
GRPO pushes down T's prefix because its r_neg siblings share it (anti-exploitation, §6); λ-GRPO weakens that.

    python -m grpo_prm.toy --method lambda_grpo --n 1 --r_neg -1.0 --seed 0 --out run.csv

Policy: `model: gpt2` (the paper; any Hub id or local folder) or `model: tiny` (a small GPT-2-architecture model
built from `tiny_model`, with a three-word tokenizer, for the offline default).
"""

import random
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import torch
from datasets import Dataset
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from grpo_prm.cli import check_fields, dataclass_parser, exit_on_error, reproducible
from grpo_prm.io import write_atomic
from grpo_prm.trainer import LambdaGRPOConfig, LambdaGRPOTrainer, authors_grpo_config, check_run_settings

MOVES = ("L", "R")
BOS = "<|endoftext|>"


@dataclass
class ToyConfig:
    """One toy run. Defaults are the paper's (§10) where it gives them."""

    method: str = "lambda_grpo"
    n: int = 1  # paths sharing T's first n moves get r_neg
    r_neg: float = -1.0
    seed: int = 0
    depth: int = 4
    r_target: float = 1.0
    r_other: float = 0.7
    group_size: int = 16
    steps: int = 250
    learning_rate: float = 1e-5
    beta: float = 0.0  # not reported by the paper; the authors' code default
    loss_normalization: str = "token"
    temperature: float = 1.0
    model: str = "gpt2"  # Hub id or folder, or "tiny"
    revision: str | None = None
    tiny_model: dict = field(default_factory=lambda: {"n_layer": 2, "n_head": 2, "n_embd": 64})

    def __post_init__(self):
        check_run_settings(self.method, self.group_size, self.loss_normalization)
        check_fields(self, positive=("depth", "group_size", "steps", "learning_rate", "temperature"),
                     nonnegative=("n", "seed", "beta"))
        check_tiny_model(self.tiny_model)
        if not 0 <= self.n < self.depth:
            raise ValueError(f"n must be in [0, depth), got n={self.n} with depth={self.depth}")


TINY_MODEL_KEYS = ("n_layer", "n_head", "n_embd")


def check_tiny_model(fields: dict) -> None:
    """GPT2Config takes unknown keys silently (a typo would build a 12-layer model): known positive ints only."""
    for key, value in fields.items():
        if key not in TINY_MODEL_KEYS:
            raise ValueError(f"--tiny_model: unknown key {key!r}; known: {', '.join(TINY_MODEL_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--tiny_model: {key} must be a positive integer, got {value!r}")


def target_path(seed: int, depth: int) -> str:
    """The seed's target path T, e.g. 'LRRL'."""
    rng = random.Random(seed)
    return "".join(rng.choice(MOVES) for _ in range(depth))


def path_reward(path: str, target: str, n: int, r_neg: float, r_target: float = 1.0, r_other: float = 0.7) -> float:
    if path == target:
        return r_target
    if path[:n] == target[:n]:
        return r_neg
    return r_other


# --- policy -------------------------------------------------------------------------------------------------------


def restrict_to_tokens(model: nn.Module, allowed_ids: list[int]) -> None:
    """Mask every other token out of the logits, in generation and in the loss alike.

    The LM head gets a frozen bias of -1e4 off the allowed tokens (exp underflows to exactly 0 in float32/bf16 while
    log-probs stay finite), sharing the tied weight. TRL's fused log-prob head reads `weight` and `bias` too.
    """
    old = model.get_output_embeddings()
    head = nn.Linear(old.in_features, old.out_features, bias=True)
    head.weight = old.weight
    bias = torch.full((old.out_features,), -1e4)
    bias[allowed_ids] = 0.0
    head.bias = nn.Parameter(bias.to(old.weight.device, old.weight.dtype), requires_grad=False)
    model.set_output_embeddings(head)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {BOS: 0, **{m: i + 1 for i, m in enumerate(MOVES)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=BOS))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=BOS)


def load_policy(cfg: ToyConfig):
    """(model, tokenizer, ids of L and R), with the logits restricted to L and R."""
    if cfg.model == "tiny":
        tokenizer = tiny_tokenizer()
        torch.manual_seed(cfg.seed)  # the initial policy is part of the seed
        config = GPT2Config(
            vocab_size=len(tokenizer), n_positions=cfg.depth + 4, bos_token_id=0, eos_token_id=0, **cfg.tiny_model
        )
        model = GPT2LMHeadModel(config)
    else:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model, revision=cfg.revision)
        model = AutoModelForCausalLM.from_pretrained(cfg.model, revision=cfg.revision, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    move_ids = tokenizer.convert_tokens_to_ids(list(MOVES))
    if tokenizer.unk_token_id in move_ids or len(set(move_ids)) != len(MOVES):
        raise ValueError(f"tokenizer of {cfg.model!r} has no single tokens for {MOVES}")
    restrict_to_tokens(model, move_ids)
    return model, tokenizer, move_ids


# --- reward -------------------------------------------------------------------------------------------------------


class TreeReward:
    """TRL reward function for the tree; records the target's frequency in every training group."""

    __name__ = "tree_reward"

    def __init__(self, cfg: ToyConfig, move_ids: list[int]):
        self.cfg, self.target = cfg, target_path(cfg.seed, cfg.depth)
        self.move_of = {i: m for i, m in zip(move_ids, MOVES)}
        self.target_freq: list[float] = []

    def __call__(self, completions, completion_ids, **kwargs) -> list[float]:
        paths = ["".join(self.move_of[i] for i in ids[: self.cfg.depth]) for ids in completion_ids]
        c = self.cfg
        self.target_freq.append(sum(p == self.target for p in paths) / len(paths))
        return [path_reward(p, self.target, c.n, c.r_neg, c.r_target, c.r_other) for p in paths]


# --- training -----------------------------------------------------------------------------------------------------


def grpo_args(cfg: ToyConfig, output_dir: str) -> LambdaGRPOConfig:
    """The authors' optimiser set-up; one group per step, no checkpoints (a run takes seconds)."""
    return authors_grpo_config(
        cfg.loss_normalization,
        output_dir=output_dir,
        method=cfg.method,
        beta=cfg.beta,
        learning_rate=cfg.learning_rate,
        num_generations=cfg.group_size,
        per_device_train_batch_size=cfg.group_size,
        max_steps=cfg.steps,
        max_completion_length=cfg.depth,
        temperature=cfg.temperature,
        seed=cfg.seed,
        bf16=False,
        save_strategy="no",
        disable_tqdm=True,
    )


def run_toy(cfg: ToyConfig) -> pd.DataFrame:
    """Train one (method, n, r_neg, seed) run; one row per step with the target frequency and trainer metrics."""
    model, tokenizer, move_ids = load_policy(cfg)
    reward = TreeReward(cfg, move_ids)
    prompts = Dataset.from_dict({"prompt": [tokenizer.bos_token] * cfg.steps})
    with tempfile.TemporaryDirectory() as tmp:
        trainer = LambdaGRPOTrainer(
            model=model, reward_funcs=reward, args=grpo_args(cfg, tmp), train_dataset=prompts,
            processing_class=tokenizer,
        )
        trainer.train()
    logs = pd.DataFrame([h for h in trainer.state.log_history if "step" in h and "loss" in h]).set_index("step")
    run = pd.DataFrame({"step": range(1, len(reward.target_freq) + 1), "target_freq": reward.target_freq})
    run = run.join(logs.drop(columns=["epoch"], errors="ignore"), on="step")
    ident = {"method": cfg.method, "n": cfg.n, "r_neg": cfg.r_neg, "seed": cfg.seed, "target": reward.target}
    return run.assign(**ident)[[*ident, *run.columns]]


def main(argv=None) -> None:
    parser = dataclass_parser(ToyConfig, __doc__)
    parser.add_argument("--out", required=True, help="CSV file to write")
    args = vars(parser.parse_args(argv))
    out = Path(args.pop("out"))
    reproducible(args["seed"])
    run = exit_on_error(lambda: run_toy(ToyConfig(**args)))
    write_atomic(out, {"": partial(run.to_csv, index=False)})


if __name__ == "__main__":
    main()
