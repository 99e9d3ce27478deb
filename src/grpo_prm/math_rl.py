"""Math RL runs (paper §5, App. C): GRPO / λ-GRPO from an SFT checkpoint, greedy validation, best checkpoint.

    python -m grpo_prm.math_rl --model ckpt/ --train train.jsonl --val val.jsonl --out runs/x --method lambda_grpo

Pieces:
- `BoxedStopTrainer`: `LambdaGRPOTrainer` whose rollouts end right after the first closed `\\boxed{}` (the authors'
  BoxedLP rule, paper.md §8). TRL's generate path takes no logits processor, so completions are cut after
  generation; the kept tokens are exactly those BoxedLP would have produced, the rest is wasted compute.
- `GreedyValidation`: every `val_every` steps, greedy decoding of the validation set with the stop rule, mean binary
  reward logged as `val/accuracy`; the best model is saved to `<out>/best` (paper: best validation checkpoint).
- Metrics: every step's TRL metrics (including `lambda/*` and `tree/*`) and validation go to `<out>/metrics.jsonl`.
- Groups: with `record_groups`, every training group goes to `<out>/groups.parquet` (grpo_prm.recording) for the
  overlap analyses (paper §3).
- Resuming: TRL checkpoints go to `<out>/checkpoints/` (not a declared output); a rerun continues from the last
  complete one (a checkpoint killed mid-save, without trainer_state.json, is removed) and never trains past `steps`.
  Without a checkpoint a rerun starts afresh: earlier metrics, recordings and models in `<out>` are removed, but only
  after the arguments, data and model have been checked, so a rerun that fails at start destroys nothing.
- `<out>/config.json` is written last: it marks a finished run (the workflow's declared output).
"""

import dataclasses
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from grpo_prm.checkpoints import greedy_completions
from grpo_prm.cli import check_choice, check_fields, dataclass_parser, exit_on_error
from grpo_prm.data import read_problems, to_trl_dataset
from grpo_prm.io import write_atomic
from grpo_prm.recording import GroupRecorder, parts_dir
from grpo_prm.reward import UNPARSEABLE_GOLD, MathReward
from grpo_prm.stop_rule import BoxedStopLogitsProcessor, truncate_ids_after_first_boxed
from grpo_prm.trainer import LambdaGRPOConfig, LambdaGRPOTrainer, authors_grpo_config, check_run_settings

POSITIVE_FIELDS = ("steps", "prompts_per_step", "temperature", "max_new_tokens", "learning_rate", "val_every",
                   "val_batch_size", "save_every", "reward_timeout_s", "reward_workers")


@dataclass
class MathRunConfig:
    """One cell of the training matrix. Defaults are the paper's (App. C) where it gives them."""

    model: str  # SFT checkpoint folder (grpo_prm.checkpoints)
    train: str  # JSONL rows {id, problem, answer}
    val: str
    out: str
    method: str = "lambda_grpo"
    beta: float = 0.0
    seed: int = 0
    steps: int = 1000
    prompts_per_step: int = 4
    group_size: int = 6
    temperature: float = 0.75
    max_new_tokens: int = 4096
    learning_rate: float = 1e-6
    loss_normalization: str = "token"
    val_every: int = 25
    val_batch_size: int = 32
    save_every: int = 25
    stop_at_boxed: bool = True
    unparseable_gold: str = "reward_one"
    reward_timeout_s: float = 5.0
    reward_workers: int = 8  # verification children scoring a batch in parallel (grpo_prm.reward)
    bf16: bool = False
    use_vllm: bool = False
    record_groups: bool = True

    def __post_init__(self):
        check_run_settings(self.method, self.group_size, self.loss_normalization)
        check_fields(self, positive=POSITIVE_FIELDS, nonnegative=("beta", "seed"))
        check_choice("--unparseable_gold", self.unparseable_gold, UNPARSEABLE_GOLD)


class BoxedStopTrainer(LambdaGRPOTrainer):
    """`LambdaGRPOTrainer` with the stop rule applied to every rollout (`stop_at_boxed`)."""

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        ids, logprobs = super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                      has_tool_images)
        cut = [truncate_ids_after_first_boxed(c, self.processing_class, self.eos_token_ids[0]) for c in ids]
        if logprobs is not None:  # vLLM: the appended EOS was not sampled; NaN is neutralised by TRL's IS correction
            logprobs = [lp[: len(c)] + [math.nan] * (len(c) - len(lp[: len(c)])) for lp, c in zip(logprobs, cut)]
        return cut, logprobs


def greedy_accuracy(model, tokenizer, rows, reward: MathReward, max_new_tokens: int, batch_size: int) -> float:
    """Mean binary reward of greedy completions with the stop rule (the paper's validation metric)."""
    completions = greedy_completions(model, tokenizer, rows, max_new_tokens, batch_size,
                                     logits_processor=[BoxedStopLogitsProcessor(tokenizer)])
    model.train()
    scores = reward(completions, [r["answer"] for r in rows])
    return sum(s or 0.0 for s in scores) / len(scores)


class GreedyValidation(TrainerCallback):
    """Validate every `every` steps (and at step 0); keep the best model in `<out>/best`; log to metrics.jsonl."""

    def __init__(self, cfg: MathRunConfig, rows, tokenizer, reward):
        self.cfg, self.rows, self.tokenizer, self.reward = cfg, rows, tokenizer, reward
        self.best = -1.0
        self.metrics = Path(cfg.out) / "metrics.jsonl"

    def _validate(self, state, model):
        acc = greedy_accuracy(model, self.tokenizer, self.rows, self.reward, self.cfg.max_new_tokens,
                              self.cfg.val_batch_size)
        self._append({"step": state.global_step, "val/accuracy": acc})
        if acc > self.best:
            self.best = acc
            model.save_pretrained(Path(self.cfg.out) / "best")
            self.tokenizer.save_pretrained(Path(self.cfg.out) / "best")

    def resume(self, step: int) -> None:
        """After a kill: drop records past the checkpoint `step` and recover the best accuracy so far."""
        records = []
        for line in self.metrics.read_text().splitlines() if self.metrics.exists() else []:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill mid-write: the last one, past the checkpoint
                break
        records = [r for r in records if r["step"] <= step]
        self.metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
        self.best = max((r["val/accuracy"] for r in records if "val/accuracy" in r), default=-1.0)

    def _append(self, record):
        with self.metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_begin(self, args, state, control, model=None, **kw):
        if state.global_step == 0 and self.best < 0:
            self._validate(state, model)

    def on_log(self, args, state, control, logs=None, model=None, **kw):
        if logs and "loss" in logs:
            self._append({"step": state.global_step, **logs})

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.cfg.val_every == 0 or state.global_step == state.max_steps:
            self._validate(state, model)


def grpo_args(cfg: MathRunConfig) -> LambdaGRPOConfig:
    """The paper's rollout settings (App. C) on the authors' optimiser set-up; checkpoints every `save_every` steps."""
    return authors_grpo_config(
        cfg.loss_normalization,
        output_dir=str(Path(cfg.out) / "checkpoints"),
        method=cfg.method,
        beta=cfg.beta,
        learning_rate=cfg.learning_rate,
        num_generations=cfg.group_size,
        per_device_train_batch_size=cfg.prompts_per_step * cfg.group_size,
        max_steps=cfg.steps,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=1.0,
        seed=cfg.seed,
        bf16=cfg.bf16,
        use_vllm=cfg.use_vllm,
        save_strategy="steps",
        save_steps=cfg.save_every,
        disable_tqdm=False,
    )


RUN_FILES = ("config.json", "metrics.jsonl", "groups.parquet", "best", "final")


def _start_afresh(out: Path) -> None:
    """No checkpoint to resume: remove what an earlier (finished or killed) run left, so nothing mixes."""
    for path in [out / name for name in RUN_FILES] + [parts_dir(out / "groups.parquet")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def check_paths(cfg: MathRunConfig) -> None:
    """The model is a folder, and neither it nor --out lies inside the other: a fresh start clears --out."""
    model, out = Path(cfg.model), Path(cfg.out)
    if not model.is_dir():
        raise ValueError(f"--model: folder not found: {cfg.model}")
    model, out = model.resolve(), out.resolve()
    if out == model or model in out.parents:
        raise ValueError(f"--out {cfg.out} is the model folder or inside it; choose a separate run folder")
    if out in model.parents:
        raise ValueError(f"--model {cfg.model} lies inside --out {cfg.out}, which a fresh start clears")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {cfg.out} exists and is not a folder")


def load_policy(path: str, bf16: bool):
    """Tokenizer and model of a checkpoint folder; any failure (missing or corrupt weights) names the folder."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    except Exception as e:  # transformers/safetensors raise many types (OSError, SafetensorError, ...) for one cause
        raise ValueError(f"--model {path}: cannot load the checkpoint ({type(e).__name__}: {e})") from e
    return tokenizer, model


def resume_point(checkpoints: Path, steps: int) -> tuple[str | None, int | None, list[Path]]:
    """The last complete TRL checkpoint (its trainer_state.json is written last), its step, and the incomplete ones
    (a kill during a save) to remove. A checkpoint past `steps` belongs to another run: refused."""
    found = sorted((int(m.group(1)), p) for p in checkpoints.glob("checkpoint-*")
                   if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name)))
    complete = [(n, p) for n, p in found if (p / "trainer_state.json").is_file()]
    if complete and complete[-1][0] > steps:
        raise ValueError(f"--steps {steps}: {complete[-1][1]} is past it (another run's); remove {checkpoints} to "
                         "start afresh")
    incomplete = [p for n, p in found if not (p / "trainer_state.json").is_file()]
    return (str(complete[-1][1]), complete[-1][0], incomplete) if complete else (None, None, incomplete)


def _recorder(cfg: MathRunConfig, resume_step: int | None) -> GroupRecorder | None:
    """The run's group recorder; flushed at every checkpoint so a resumed run keeps what its checkpoint covers."""
    if not cfg.record_groups:
        return None
    path = Path(cfg.out) / "groups.parquet"
    if resume_step is None:
        return GroupRecorder(path, flush_every=cfg.save_every)
    return GroupRecorder.resume(path, resume_step, flush_every=cfg.save_every)


def run_math(cfg: MathRunConfig) -> Path:
    """Train one cell; resumable. Returns the run folder (metrics.jsonl, best/, final/, groups.parquet, config.json).

    Everything that can fail at start (arguments, data, model, checkpoints) is checked before anything in `<out>` is
    removed, so a rerun that fails leaves an earlier finished run as it was. A run whose last checkpoint is already
    at `steps` (killed during the final save) is not trained further: its final model is that checkpoint.
    """
    out = Path(cfg.out)
    check_paths(cfg)
    train_rows, val_rows = read_problems(cfg.train), read_problems(cfg.val)
    tokenizer, model = load_policy(cfg.model, cfg.bf16)
    last, step, incomplete = resume_point(out / "checkpoints", cfg.steps)
    if last is not None and step == cfg.steps:
        _, model = load_policy(last, cfg.bf16)
    reward = MathReward(cfg.unparseable_gold, cfg.reward_timeout_s, workers=cfg.reward_workers)
    for path in incomplete:  # killed while being written: TRL would fail on its missing trainer_state.json
        shutil.rmtree(path, ignore_errors=True)  # every process of a multi-process run does this
    if last is None:
        _start_afresh(out)
    out.mkdir(parents=True, exist_ok=True)
    trainer_cls = BoxedStopTrainer if cfg.stop_at_boxed else LambdaGRPOTrainer
    trainer = trainer_cls(model=model, reward_funcs=reward, args=grpo_args(cfg), processing_class=tokenizer,
                          train_dataset=to_trl_dataset(train_rows))
    validation = GreedyValidation(cfg, val_rows, tokenizer, reward)
    trainer.add_callback(validation)
    validation.resume(step or 0)
    trainer.recorder = _recorder(cfg, step)
    if step != cfg.steps:  # resuming at `steps` would train one step more (Trainer checks max_steps after a step)
        trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(out / "final"))
    tokenizer.save_pretrained(out / "final")
    if trainer.recorder is not None:
        trainer.recorder.close()
    reward.close()
    write_atomic(out / "config.json", {"": lambda p: Path(p).write_text(json.dumps(dataclasses.asdict(cfg), indent=2))})
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)  # resumable state is no longer needed
    return out


def main(argv=None) -> None:
    args = dataclass_parser(MathRunConfig, __doc__).parse_args(argv)
    exit_on_error(lambda: run_math(MathRunConfig(**vars(args))))


if __name__ == "__main__":
    main()
