"""The toy experiment of paper §4.3 (Table 1): a depth-4 binary L/R tree.

The policy emits L or R `depth` times (every other token is masked out of its logits). A target path T drawn per
seed earns +1.0; every other path that shares T's first n tokens earns r_neg < 0; all remaining paths earn 0.7.
GRPO pushes down T's prefix because its r_neg siblings share it (anti-exploitation, Eq. 8); λ-GRPO weakens that.

    python -m grpo_prm.toy --method lambda_grpo --n 1 --r_neg -1.0 --seed 0 --out run.csv
    python -m grpo_prm.toy --method lambda_grpo --cells 1,-1.0,0 1,-1.0,1 --out seed0.csv seed1.csv

`--cells` trains several (n, r_neg, seed) runs one after another in one process, one CSV each (the workflow's
train_toy rule: importing torch, transformers and TRL costs about as much as a run).

Policy: `model: gpt2` (the paper; any Hub id or local folder) or `model: tiny` (a small GPT-2-architecture model
built from `tiny_model`, with a three-word tokenizer, for the offline default).

The module holds the whole experiment (tree, policy, reward, sampler, prefix values, run and CLI), read top to bottom;
hence its length beyond 350 lines.
"""

import argparse
import copy
import dataclasses
import itertools
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import torch
from datasets import Dataset
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from grpo_prm.cli import check_fields, dataclass_parser, exit_on_error, finite_float, reproducible
from grpo_prm.config import schema_defaults
from grpo_prm.errors import SettingError
from grpo_prm.io import check_output_path, write_atomic
from grpo_prm.methods import DEFAULT_METHOD
from grpo_prm.recording import BatchRecorder
from grpo_prm.trainer import LambdaGRPOConfig, LambdaGRPOTrainer, authors_grpo_config, check_run_settings

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # TreeSampler uses TRL's (experimental) rollout_func
MOVES = ("L", "R")
SAMPLERS = ("leaves", "generate")
BOS = "<|endoftext|>"


TOY_DEFAULTS = schema_defaults("toy")  # the config schema holds the defaults; the grid axes have none there


@dataclass
class ToyConfig:
    """One toy run (§4.3, Table 1). Defaults come from the config schema (`toy` section), the paper's where it gives
    them."""

    method: str = DEFAULT_METHOD
    n: int = 1  # paths sharing T's first n moves get r_neg
    r_neg: float = -1.0
    seed: int = 0
    depth: int = TOY_DEFAULTS["depth"]
    r_target: float = TOY_DEFAULTS["r_target"]
    r_other: float = TOY_DEFAULTS["r_other"]
    group_size: int = TOY_DEFAULTS["group_size"]
    steps: int = 250
    learning_rate: float = 1e-5
    beta: float = TOY_DEFAULTS["beta"]  # not reported by the paper; the authors' code default
    loss_normalization: str = TOY_DEFAULTS["loss_normalization"]
    temperature: float = TOY_DEFAULTS["temperature"]
    model: str = "gpt2"  # Hub id or folder, or "tiny"
    # K of explicit_prm_mc (ours; the paper has no explicit PRM)
    mc_continuations: int = TOY_DEFAULTS["mc_continuations"]
    explicit_prm_normalization: str = TOY_DEFAULTS["explicit_prm_normalization"]  # VinePPO's batch whitening
    # "leaves": whole paths from the policy's exact leaf distribution; "generate": TRL's
    sampler: str = TOY_DEFAULTS["sampler"]
    revision: str | None = TOY_DEFAULTS["revision"]
    tiny_model: dict = field(default_factory=lambda: schema_defaults("toy")["tiny_model"])

    def __post_init__(self):
        check_run_settings(self.method, self.group_size, self.loss_normalization)
        check_fields(
            self,
            positive=("depth", "group_size", "steps", "learning_rate", "temperature"),
            nonnegative=("n", "seed", "beta"),
        )
        check_tiny_model(self.tiny_model)
        if not 0 <= self.n < self.depth:
            raise SettingError(f"n must be in [0, depth), got n={self.n} with depth={self.depth}")
        if self.sampler not in SAMPLERS:
            raise SettingError(f"unknown sampler {self.sampler!r}; choose {' or '.join(SAMPLERS)}")
        if self.mc_continuations < 1:
            raise SettingError(f"mc_continuations must be at least 1, got {self.mc_continuations}")


TINY_MODEL_KEYS = ("n_layer", "n_head", "n_embd")


def check_tiny_model(fields: dict) -> None:
    """GPT2Config takes unknown keys silently (a typo would build a 12-layer model): known positive ints only."""
    for key, value in fields.items():
        if key not in TINY_MODEL_KEYS:
            raise SettingError(f"--tiny_model: unknown key {key!r}; known: {', '.join(TINY_MODEL_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SettingError(f"--tiny_model: {key} must be a positive integer, got {value!r}")


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
        raise SettingError(f"tokenizer of {cfg.model!r} has no single tokens for {MOVES}")
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


# --- explicit process reward (VinePPO-style V(prefix)) -------------------------------------------------------------


class TreeLeaves:
    """The 2^depth leaves (paths) of the tree, their rewards, and the policy's log-probs of each of their moves."""

    def __init__(self, cfg: ToyConfig, move_ids: list[int], bos_id: int):
        self.cfg, self.bos_id = cfg, bos_id
        self.leaves = ["".join(p) for p in itertools.product(MOVES, repeat=cfg.depth)]
        self.leaf_ids = torch.tensor([[move_ids[MOVES.index(m)] for m in p] for p in self.leaves])
        target = target_path(cfg.seed, cfg.depth)
        self.leaf_rewards = torch.tensor(
            [path_reward(p, target, cfg.n, cfg.r_neg, cfg.r_target, cfg.r_other) for p in self.leaves]
        )

    def leaf_logps(self, model) -> torch.Tensor:
        """(2^depth, depth): log π(move s of the leaf | its first s moves) at the sampling temperature."""
        device = next(model.parameters()).device
        ids = torch.cat([torch.full((len(self.leaves), 1), self.bos_id), self.leaf_ids], 1).to(device)
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, :-1].float().cpu()
        logps = torch.log_softmax(logits / self.cfg.temperature, -1)
        return logps.gather(-1, self.leaf_ids[..., None])[..., 0]


class TreeSampler(TreeLeaves):
    """TRL `rollout_func` for `sampler="leaves"`: each completion is a whole path drawn from π(path) = Π_t π(move_t |
    moves before t) at the sampling temperature, computed in one forward pass over all 2^depth paths. This is the
    distribution `generate` samples move by move (the head allows only L and R), at a fraction of its per-call
    overhead, which dominates a 4-token toy step. The draw uses torch's global generator, which TRL seeds."""

    @torch.no_grad()
    def __call__(self, prompts, trainer):
        logps = self.leaf_logps(trainer.model)
        draws = torch.multinomial(logps.sum(1).exp(), len(prompts), replacement=True)
        return {
            "prompt_ids": [[self.bos_id]] * len(prompts),
            "completion_ids": self.leaf_ids[draws].tolist(),
            "logprobs": logps[draws].tolist(),
        }


class TreeValues(TreeLeaves):
    """V(y_{:t}) of every completion prefix for `explicit_prm_exact` / `explicit_prm_mc` (see grpo_prm.methods).

    One forward pass over all 2^depth leaves gives the policy's sampling distribution (logits / temperature, as TRL
    samples) of each leaf given each prefix. Exact: V(prefix) = Σ_leaf π(leaf | prefix)·r(leaf). MC: the mean reward
    of K leaves drawn from π(· | prefix), i.e. K fresh continuations; drawing a whole leaf from its exact conditional
    is the same distribution as sampling the moves one by one, without K·(depth − t) generate calls. The cost is
    counted as generate would pay it: K·(depth − t) sampled tokens per distinct prefix of a group (prefixes shared
    within a group are estimated once; V of a whole path is its reward).
    """

    def __init__(self, cfg: ToyConfig, move_ids: list[int], bos_id: int, exact: bool):
        super().__init__(cfg, move_ids, bos_id)
        self.exact = exact
        self.generator = torch.Generator().manual_seed(cfg.seed)  # MC draws apart from the rollouts' stream

    def prefix_value(self, logps: torch.Tensor, prefix_index: torch.Tensor, t: int) -> float:
        """V of the prefix shared by the leaves in `prefix_index` (a boolean mask), t moves long."""
        cond = logps[prefix_index, t:].sum(1).exp()  # π(leaf | prefix)
        if self.exact:
            return float((cond * self.leaf_rewards[prefix_index]).sum() / cond.sum())
        draws = torch.multinomial(
            cond / cond.sum(), self.cfg.mc_continuations, replacement=True, generator=self.generator
        )
        return float(self.leaf_rewards[prefix_index][draws].mean())

    def __call__(self, model, ids, mask, rewards):
        d, k = self.cfg.depth, self.cfg.group_size
        logps = self.leaf_logps(model)
        row_leaf = {tuple(row): i for i, row in enumerate(self.leaf_ids.tolist())}
        values = torch.zeros(ids.shape[0], ids.shape[1] + 1)
        n_sampled = 0
        for g in range(0, len(ids), k):
            cache = {}
            for i in range(g, g + k):
                path = self.leaves[row_leaf[tuple(ids[i, :d].tolist())]]
                for t in range(d):
                    if path[:t] not in cache:
                        index = torch.tensor([leaf.startswith(path[:t]) for leaf in self.leaves])
                        cache[path[:t]] = self.prefix_value(logps, index, t)
                        n_sampled += 0 if self.exact else self.cfg.mc_continuations * (d - t)
                    values[i, t] = cache[path[:t]]
                values[i, d] = rewards[i]
        return values.to(ids.device), n_sampled


# --- training -----------------------------------------------------------------------------------------------------


def grpo_args(cfg: ToyConfig, output_dir: str) -> LambdaGRPOConfig:
    """The authors' optimiser set-up; one group per step, no checkpoints (a run takes seconds)."""
    return authors_grpo_config(
        cfg.loss_normalization,
        output_dir=output_dir,
        method=cfg.method,
        mc_continuations=cfg.mc_continuations,
        explicit_prm_normalization=cfg.explicit_prm_normalization,
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
        gradient_checkpointing=False,  # TRL's default recomputes activations: pure overhead on 5-token sequences
    )


def build_trainer(cfg: ToyConfig, output_dir: str) -> tuple[LambdaGRPOTrainer, TreeReward]:
    """The run's trainer (policy, reward, sampler, tree metrics and, for the explicit PRM, its V(prefix)) and its
    reward. With β > 0 the reference is the initial policy, masked head included."""
    model, tokenizer, move_ids = load_policy(cfg)
    reward = TreeReward(cfg, move_ids)
    prompts = Dataset.from_dict({"prompt": [tokenizer.bos_token] * cfg.steps})
    args = grpo_args(cfg, output_dir)
    kind = args.base.prefix_values  # "exact", "mc" or None
    values = TreeValues(cfg, move_ids, tokenizer.bos_token_id, exact=kind == "exact") if kind else None
    trainer = LambdaGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=prompts,
        processing_class=tokenizer,
        prefix_values=values,
        on_batch=BatchRecorder(),
        ref_model=copy.deepcopy(model) if cfg.beta else None,
        rollout_func=TreeSampler(cfg, move_ids, tokenizer.bos_token_id) if cfg.sampler == "leaves" else None,
    )
    return trainer, reward


def run_toy(cfg: ToyConfig) -> pd.DataFrame:
    """Train one (method, n, r_neg, seed) run; one row per step with the target frequency and trainer metrics."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, reward = build_trainer(cfg, tmp)
        trainer.train()
    logs = pd.DataFrame([h for h in trainer.state.log_history if "step" in h and "loss" in h]).set_index("step")
    run = pd.DataFrame({"step": range(1, len(reward.target_freq) + 1), "target_freq": reward.target_freq})
    run = run.join(logs.drop(columns=["epoch"], errors="ignore"), on="step")
    if "prm/extra_sampled_tokens" not in run:
        run["prm/extra_sampled_tokens"] = 0  # every method reports its extra sampling (only the explicit PRM has any)
    run["wall_s"] = time.perf_counter() - start  # one value per run: the whole run's wall time
    ident = {"method": cfg.method, "n": cfg.n, "r_neg": cfg.r_neg, "seed": cfg.seed, "target": reward.target}
    return run.assign(**ident)[[*ident, *run.columns]]


def toy_cell(text: str) -> tuple[int, float, int]:
    """argparse type of one `--cells` entry, `n,r_neg,seed` (e.g. `1,-1.0,0`)."""
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not n,r_neg,seed")
    try:
        return int(parts[0]), finite_float(parts[1]), int(parts[2])
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not n,r_neg,seed (integer, number, integer)") from None


def main(argv=None) -> None:
    parser = dataclass_parser(ToyConfig, __doc__)
    parser.add_argument(
        "--cells",
        nargs="+",
        type=toy_cell,
        metavar="N,R_NEG,SEED",
        help="several runs in place of --n, --r_neg and --seed, one --out file each",
    )
    parser.add_argument("--out", required=True, nargs="+", help="CSV file to write (one per cell with --cells)")
    parser.add_argument(
        "--learning_rate_from",
        "--learning-rate-from",
        metavar="CSV",
        help="the method's rate selected by a learning-rate sweep (table_toy_lr.csv)",
    )
    parser.set_defaults(n=None, r_neg=None, seed=None)  # so that --cells can refuse them
    args = vars(parser.parse_args(argv))
    rate_from = args.pop("learning_rate_from")
    if rate_from:
        from grpo_prm.toy_runs import selected_learning_rate

        args["learning_rate"] = exit_on_error(lambda: selected_learning_rate(rate_from, args["method"]))
    outs, cells = [Path(p) for p in args.pop("out")], args.pop("cells")
    single = {key: args.pop(key) for key in ("n", "r_neg", "seed")}
    if cells is None:
        defaults = {f.name: f.default for f in dataclasses.fields(ToyConfig) if f.name in single}
        cells = [tuple(defaults[k] if v is None else v for k, v in single.items())]
    elif any(v is not None for v in single.values()):
        parser.error("--cells replaces --n, --r_neg and --seed; give either")
    if len(outs) != len(cells):
        parser.error(f"--out: {len(outs)} files for {len(cells)} runs")
    exit_on_error(lambda: [check_output_path(out) for out in outs])  # before any training
    for (n, r_neg, seed), out in zip(cells, outs):
        reproducible(seed)
        run = exit_on_error(lambda: run_toy(ToyConfig(n=n, r_neg=r_neg, seed=seed, **args)))  # noqa: B023 (called at once)
        run["learning_rate"] = args["learning_rate"]
        exit_on_error(lambda: write_atomic(out, {"": partial(run.to_csv, index=False)}))  # noqa: B023 (called at once)


if __name__ == "__main__":
    main()
