"""Downstream evaluation of a checkpoint on the Table-2 benchmarks with lm-evaluation-harness (paper.md §12).

    python -m grpo_prm.evaluate --model ckpt/ --tasks aime24,math500,amc23,minerva_math,olympiadbench \
        --data-dir ../shared/data --max-gen-toks 4096 --batch-size 8 --out results/eval/qwen_base

Protocol (the paper omits it; paper.md §12 points to Open-RS's suite): zero-shot, the model's chat template with the
system message `SYSTEM_PROMPT` (paper.md §8), greedy decoding up to `--max-gen-toks` new tokens (EOS ends earlier),
one sample per problem, scored by math-verify on the first closed `\\boxed{}` (`grpo_prm.lm_eval_tasks.utils`).
The stderr is lm-eval's `sqrt(p(1-p)/(n-1))`, the paper's error bar. The training stop rule (EOS after the first
box) is not applied: scoring reads only the first box, so it would change cost, not accuracy.

Tasks are `grpo_prm.lm_eval_tasks` (short names `aime24`, `math500`, `amc23`, `minerva_math`, `olympiadbench`,
`offline`); lm-eval's built-in tasks are not loaded. Writes, all or nothing:

- `<out>.json`: `{"tasks": {name: {"accuracy", "accuracy_stderr", "boxed", "boxed_stderr", "n", "n_correct",
  "scores"}},
  "identity", "model", "backend", "max_gen_toks", "batch_size", "limit", "data_dir", "revisions", "offline_file",
  "system_prompt", "lm_eval_version", "wall_s"}`.
- `<out>.samples.jsonl`: one line per problem: `task`, `doc_id`, `id`, `prompt` (the rendered chat template),
  `gen_kwargs`, `response`, `pred` (first boxed answer or null), `answer`, `accuracy`, `boxed`.

Bad input (missing or non-model checkpoint folder, unknown task, unreadable data) ends with one line naming the
culprit, a non-zero exit, and nothing written.
"""

import argparse
import importlib.metadata
import json
import math
import os
import sys
import time
from pathlib import Path

from grpo_prm.cli import OneLineParser, positive_int
from grpo_prm.data import SYSTEM_PROMPT, DataError
from grpo_prm.io import write_atomic
from grpo_prm.lm_eval_tasks import TASK_DIR
from grpo_prm.lm_eval_tasks.utils import TASKS
from grpo_prm.reward import extract_boxed

BACKENDS = ("hf", "vllm")
IDENTITY_KEYS = ("model", "beta", "method", "seed")  # what paper_figures/table2.py groups by


class EvalError(ValueError):
    """Bad evaluation input; the one-line message names the culprit."""


# ---- Checking the input before anything runs ----


def check_tasks(tasks: list[str]) -> list[str]:
    """`tasks` as given, refusing unknown names and an empty list."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        culprit = f"unknown task {unknown[0]!r}" if unknown else "no task given"
        raise EvalError(f"{culprit}; known: {', '.join(TASKS)}")
    return tasks


def check_checkpoint(folder: str | Path) -> Path:
    """A folder that transformers can load as a causal LM: config, weights and tokenizer present."""
    from safetensors import SafetensorError, safe_open
    from transformers import AutoConfig

    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(f"checkpoint folder not found: {folder}")
    weights = any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))
    missing = [
        name for name, ok in (("config.json", (folder / "config.json").is_file()), ("weights", weights)) if not ok
    ]
    if not (folder / "tokenizer_config.json").is_file():
        missing.append("tokenizer_config.json")
    if missing:
        raise EvalError(f"{folder} is not a model checkpoint: missing {', '.join(missing)}")
    try:
        AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise EvalError(f"{folder} is not a model checkpoint: config.json unreadable ({type(e).__name__})") from None
    for file in sorted(folder.glob("*.safetensors")):  # header only (cheap): a truncated file fails here, not in lm-eval
        try:
            with safe_open(str(file), framework="pt") as weights:
                weights.keys()
        except (SafetensorError, OSError) as e:
            raise EvalError(f"{file}: unreadable weights ({' '.join(str(e).split())})") from None
    return folder


def parse_identity(pairs: list[str]) -> dict:
    """`["model=qwen", "beta=0.04", ...]` -> `{"model": "qwen", "beta": 0.04, ...}` (numbers as numbers)."""
    identity = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in IDENTITY_KEYS:
            raise EvalError(f"bad --identity {pair!r}: use KEY=VALUE with KEY in {', '.join(IDENTITY_KEYS)}")
        try:
            identity[key] = json.loads(value)
        except json.JSONDecodeError:
            identity[key] = value
    return identity


# ---- lm-eval ----


def model_args(backend: str, model: Path, max_gen_toks: int, seed: int = 0) -> dict:
    """lm-eval model arguments: HF on CPU in float32 here; vLLM (paper profile) with a context that fits the budget."""
    if backend == "hf":
        return {"pretrained": str(model), "dtype": "float32"}  # device: simple_evaluate(device="cpu")
    # max_model_len: prompt (the longest Table-2 problem with template is < 1k tokens) plus the generation budget
    return {
        "pretrained": str(model),
        "dtype": "auto",
        "max_model_len": max_gen_toks + 2048,
        "gpu_memory_utilization": 0.9,
        "seed": seed,
    }


def run_lm_eval(
    model: Path,
    tasks: list[str],
    max_gen_toks: int,
    batch_size: int | str,
    backend: str = "hf",
    limit: int | None = None,
    metadata: dict | None = None,
) -> dict:
    """`lm_eval.simple_evaluate` on the repository's tasks (short names); returns lm-eval's result dict.

    The tasks (and so their data) are built before the model is loaded, so a data error costs no model load.
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata or {})
    loaded = manager.load([f"grpo_prm_{t}" for t in tasks])
    return lm_eval.simple_evaluate(
        model=backend,
        model_args=model_args(backend, model, max_gen_toks),
        tasks=list(loaded["tasks"].values()),
        batch_size=batch_size,
        device="cpu" if backend == "hf" else None,
        limit=limit,
        log_samples=True,
        system_instruction=SYSTEM_PROMPT,
        apply_chat_template=True,
        gen_kwargs={"max_gen_toks": max_gen_toks},
        task_manager=manager,
    )


def _number(value) -> float | None:
    """lm-eval writes "N/A" for a stderr it cannot compute (n = 1)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def summarise(results: dict, tasks: list[str]) -> dict:
    """Per short task name: accuracy, boxed rate, their stderrs, n, the number correct and the per-problem scores.

    The scores (in problem order) let paper_figures/table2.py average seeds per problem and keep the paper's stderr.
    """
    out = {}
    for t in tasks:
        r, samples = results["results"][f"grpo_prm_{t}"], results["samples"][f"grpo_prm_{t}"]
        out[t] = {
            key: _number(r.get(f"{key},none")) for key in ("accuracy", "accuracy_stderr", "boxed", "boxed_stderr")
        }
        scores = [s["accuracy"] for s in sorted(samples, key=lambda s: s["doc_id"])]
        out[t] |= {"n": len(scores), "n_correct": int(sum(scores)), "scores": scores}
    return out


def sample_records(results: dict, tasks: list[str]) -> list[dict]:
    """One flat record per problem, from lm-eval's logged samples."""
    records = []
    for t in tasks:
        for s in results["samples"][f"grpo_prm_{t}"]:
            prompt, gen_kwargs = s["arguments"][0]
            response = s["filtered_resps"][0]
            records.append(
                {
                    "task": t,
                    "doc_id": s["doc_id"],
                    "id": s["doc"]["id"],
                    "prompt": prompt,
                    "gen_kwargs": gen_kwargs,
                    "response": response,
                    "pred": extract_boxed(response),
                    "answer": s["target"],
                    "accuracy": s["accuracy"],
                    "boxed": s["boxed"],
                }
            )
    return records


# ---- Command line ----


def evaluate(args: argparse.Namespace) -> list[Path]:
    """Check the input, run lm-eval, write `<out>.json` and `<out>.samples.jsonl` atomically."""
    tasks = check_tasks([t.strip() for t in args.tasks.split(",") if t.strip()])
    model = check_checkpoint(args.model)
    identity = parse_identity(args.identity)
    if args.max_gen_toks < 1 or (args.limit is not None and args.limit < 1):
        raise EvalError(f"--max-gen-toks {args.max_gen_toks} and --limit {args.limit} must be positive")
    if "offline" in tasks and not args.offline_file:
        raise EvalError("task offline needs --offline-file (a JSONL of id, problem, answer)")
    revisions = dict(pair.split("=", 1) for pair in args.revisions.split(",") if pair) if args.revisions else {}
    metadata = {"data_dir": args.data_dir or None, "revisions": revisions, "offline_file": args.offline_file}

    start = time.monotonic()
    results = run_lm_eval(model, tasks, args.max_gen_toks, args.batch_size, args.backend, args.limit, metadata)
    summary = {"tasks": summarise(results, tasks), "identity": identity, "model": str(model), "backend": args.backend}
    summary |= {k: getattr(args, k) for k in ("max_gen_toks", "batch_size", "limit")} | metadata
    summary |= {
        "system_prompt": SYSTEM_PROMPT,
        "lm_eval_version": importlib.metadata.version("lm_eval"),
        "wall_s": round(time.monotonic() - start, 1),
    }
    records = sample_records(results, tasks)

    def write_json(path: str) -> None:
        Path(path).write_text(json.dumps(summary, indent=2) + "\n")

    def write_samples(path: str) -> None:
        Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))

    return write_atomic(args.out, {".json": write_json, ".samples.jsonl": write_samples})


def _batch_size(text: str) -> int | str:
    return text if text.startswith("auto") else int(text)


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m grpo_prm.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="checkpoint folder (transformers format)")
    p.add_argument("--tasks", required=True, help=f"comma-separated, from {', '.join(TASKS)}")
    p.add_argument("--data-dir", default="", help="root of local benchmark copies; empty: the Hub")
    p.add_argument("--revisions", default="", help="Hub revision per benchmark: aime24=<sha>,math500=<sha>,...")
    p.add_argument("--offline-file", default=None, help="JSONL {id, problem, answer} for the task offline")
    p.add_argument("--max-gen-toks", type=positive_int, required=True, help="new-token budget per problem")
    p.add_argument("--batch-size", type=_batch_size, default=1, help="int, or auto (vLLM)")
    p.add_argument("--limit", type=positive_int, default=None, help="first L problems per task (smoke tests only)")
    p.add_argument("--backend", choices=BACKENDS, default="hf", help="hf (CPU) or vllm (GPU, paper profile)")
    p.add_argument("--identity", nargs="*", default=[], help="model=.. beta=.. method=.. seed=.. for Table 2")
    p.add_argument("--out", required=True, help="writes <out>.json and <out>.samples.jsonl")
    return p


def main(argv: list[str] | None = None) -> list[Path]:
    args = _parser().parse_args(argv)
    try:
        return evaluate(args)
    except (EvalError, DataError, OSError) as e:
        sys.exit(f"error: {e}".splitlines()[0])


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for path in main():
        print(path)
