"""Downstream evaluation of a checkpoint on the Table-2 benchmarks with lm-evaluation-harness (arXiv 2509.21154).

    python -m grpo_prm.evaluate --model ckpt/ --tasks aime24,math500,amc23,minerva_math,olympiadbench \
        --data-dir ../shared/data --protocol open_rs --prompt open_rs_query --temperature 0.6 --top-p 0.95 \
        --max-gen-toks 32768 --samples 1 --seed 0 --batch-size auto --backend vllm --out results/eval/qwen_base

Protocol (the paper omits it; its benchmarks are those of Open-RS's lighteval suite): zero-shot, the model's chat
template, the user message `--prompt` (`system`: the system message `SYSTEM_PROMPT` of the authors' code and the
problem; `open_rs_query`: Open-RS's query template around the problem, no system message), decoding greedy
(`--temperature 0`) or sampled at `--temperature`/`--top-p`, up to `--max-gen-toks` new tokens (EOS ends earlier),
`--samples` n seeded samples per problem (`--seed` seeds Python, NumPy, torch and vLLM). Every sample is scored by
`grpo_prm.extractive_match` (lighteval's math-verify extractive match, as Open-RS ran it), not the training reward.
The config's `eval.protocols` names these settings (docs/evaluation.md: "Evaluation protocols").

Statistics (`grpo_prm.stats`): accuracy is avg@n, the mean over problems of each problem's share of correct
samples; its stderr is clustered by problem, std(ddof=1)/sqrt(N) of those shares (with n = 1 the paper's
sqrt(p(1-p)/(N-1))), with a normal 95 % interval; pass@k for k in 1, 2, 4, …, n (unbiased, Chen et al. 2021).

Data: each benchmark's row count is checked (the paper's n) and the sha256 of its normalised rows (canonical JSON)
is recorded, and checked against `--sha256` where given. `--require-revisions` refuses to read a Table-2 benchmark
from the Hub without a pinned 40-hex `--revisions` commit or an entry in the `--lock` file (the paper profile);
`--resolve-and-lock` resolves such a benchmark once to its current commit and locks it there with its sha256 and
rows (`grpo_prm.benchmark_lock`); later reads use and check the lock.

`--samples` is one number, or one per task as JSON (the sober protocol: 10 on AIME24/AMC23, 3 on the others);
sample j of every problem counts as seed j's run (`seed_accuracy`, shown by Table 2 with `--seed-spread`).

Tasks are `grpo_prm.lm_eval_tasks` (short names `aime24`, `math500`, `amc23`, `minerva_math`, `olympiadbench`,
`offline`); lm-eval's built-in tasks are not loaded. Writes, all or nothing:

- `<out>.json`: `{"tasks": {name: {"accuracy", "accuracy_stderr", "accuracy_ci95", "pass_at_k", "boxed",
  "boxed_stderr", "n", "samples", "n_correct", "correct", "scores", "seed_accuracy"}}, "protocol": {"name",
  "prompt", "chat_template", "system_prompt", "temperature", "top_p", "max_gen_toks", "samples", "seed",
  "seed_spread", "scorer", "interval"}, "data": {name: {"rows", "sha256", "source", "revision"} (+ "pin",
  "lock" for a Hub read)}, "identity", "model", "backend",
  "max_gen_toks", "batch_size", "limit", "data_dir", "revisions", "offline_file", "system_prompt",
  "lm_eval_version", "wall_s"}`. `correct` holds each problem's number of correct samples, `scores` its share.
- `<out>.samples.jsonl`: one line per problem: `task`, `doc_id`, `id`, `prompt` (the rendered chat template),
  `gen_kwargs`, `responses` (n), `preds` (first boxed answer of each, or null), `correct` and `boxed` (per sample,
  0/1), `answer`, `accuracy` (share correct).

Bad input (missing or non-model checkpoint folder, unknown task, unreadable data, a protocol setting out of range)
ends with one line naming the culprit, a non-zero exit, and nothing written. Both outputs are written atomically and
hard-linked into `.kept/` beside them (`grpo_prm.run_folder.keep`): a rerun with the same settings and checkpoint
files puts them back instead of evaluating again (Snakemake deletes a job's outputs before rerunning it).

Why one module of ~390 lines: it is the whole path of one evaluation, read top to bottom (checks, the lm-eval call,
the result record, the command line), as a CleanRL file holds one variant. What can be reused elsewhere lives
apart: the scorer (`extractive_match`), the statistics (`stats`), the tasks (`lm_eval_tasks`), the data
(`data`).
"""

import argparse
import importlib.metadata
import json
import math
import os
import re
import time
from pathlib import Path

from grpo_prm.benchmark_lock import locked_revisions, read_lock, write_lock
from grpo_prm.boxed import first_boxed
from grpo_prm.cli import (
    InputError,
    OneLineParser,
    _parse_object,
    exit_on_error,
    finite_float,
    nonnegative_int,
    parse_bool,
    positive_int,
    reproducible,
)
from grpo_prm.data import SYSTEM_PROMPT, TABLE2, content_sha256
from grpo_prm.extractive_match import SCORER
from grpo_prm.io import write_atomic
from grpo_prm.lm_eval_tasks import TASK_DIR
from grpo_prm.lm_eval_tasks.utils import PROMPTS, TASKS, verdicts
from grpo_prm.run_folder import keep, restore_kept
from grpo_prm.stats import Z95, avg_at_n, pass_at_k, pass_ks

BACKENDS = ("hf", "vllm")
IDENTITY_KEYS = ("model", "beta", "method", "seed")  # what paper_figures/table2.py groups by
FILTER = "all_samples"  # the tasks' filter (every sample kept); lm-eval keys its metrics "<metric>,<filter>"
COMMIT = re.compile(r"[0-9a-f]{40}")


class EvalError(InputError):
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
    for file in sorted(
        folder.glob("*.safetensors")
    ):  # header only (cheap): a truncated file fails here, not in lm-eval
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


def gen_kwargs(protocol: dict) -> dict:
    """lm-eval generation arguments of a protocol: greedy at temperature 0, else sampled at temperature and top-p."""
    if protocol["temperature"] == 0:
        return {"do_sample": False, "temperature": 0.0, "max_gen_toks": protocol["max_gen_toks"]}
    return {"do_sample": True, "temperature": protocol["temperature"], "top_p": protocol["top_p"],
            "max_gen_toks": protocol["max_gen_toks"]}  # fmt: skip


def run_lm_eval(
    model: Path,
    tasks: list[str],
    protocol: dict,
    batch_size: int | str,
    backend: str = "hf",
    limit: int | None = None,
    metadata: dict | None = None,
) -> tuple[dict, dict]:
    """`lm_eval.simple_evaluate` on the repository's tasks (short names) under `protocol`.

    Returns lm-eval's result dict and, per task, the data it read (`rows`, `sha256`). The tasks (and so their data)
    are built before the model is loaded, so a data error costs no model load.
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    metadata = (metadata or {}) | {"prompt": protocol["prompt"]}
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)
    loaded = manager.load([f"grpo_prm_{t}" for t in tasks])["tasks"]
    data = {}
    for t in tasks:
        task = loaded[f"grpo_prm_{t}"]
        task.set_config(key="repeats", value=task_samples(protocol["samples"], t))  # n samples per problem (avg@n)
        rows = [{k: d[k] for k in ("id", "problem", "answer")} for d in task.eval_docs]
        data[t] = {"rows": len(rows), "sha256": content_sha256(rows)}
    seed = protocol["seed"]
    results = lm_eval.simple_evaluate(
        model=backend,
        model_args=model_args(backend, model, protocol["max_gen_toks"], seed),
        tasks=list(loaded.values()),
        batch_size=batch_size,
        device="cpu" if backend == "hf" else None,
        limit=limit,
        log_samples=True,
        system_instruction=SYSTEM_PROMPT if protocol["prompt"] == "system" else None,
        apply_chat_template=True,
        gen_kwargs=gen_kwargs(protocol),
        task_manager=manager,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
    )
    return results, data


def _number(value) -> float | None:
    """lm-eval writes "N/A" for a stderr it cannot compute (n = 1)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _by_problem(results: dict, task: str) -> list[dict]:
    return sorted(results["samples"][f"grpo_prm_{task}"], key=lambda s: s["doc_id"])


def _responses(sample: dict) -> list[str]:
    """The n samples of one logged problem (the task's filter keeps them all)."""
    kept = sample["filtered_resps"][0]
    return list(kept) if isinstance(kept, list) else [kept]


def task_samples(samples: int | dict, task: str) -> int:
    """A protocol's samples for `task`: one number for every task, or one per task."""
    return samples[task] if isinstance(samples, dict) else samples


def seed_accuracy(logged: list[dict], samples: int) -> list[float]:
    """Accuracy of each seed: sample j of every problem is seed j's draw (independent seeded samples, so the j-th
    samples over problems form one seed's run, as in Hochlehnert et al. 2025's per-seed accuracies)."""
    verdict = [[c for c, _ in verdicts(tuple(_responses(s)), s["doc"]["answer"])] for s in logged]
    return [sum(v[j] for v in verdict) / len(verdict) for j in range(samples)]


def summarise(results: dict, tasks: list[str], samples: int | dict) -> dict:
    """Per short task name: avg@n accuracy with its clustered stderr and 95 % interval, pass@k, boxed rate, n, the
    number correct, each problem's correct count (`correct`) and share (`scores`), in problem order, and each seed's
    accuracy (`seed_accuracy`).

    The per-problem shares let paper_figures/table2.py average seeds per problem and keep the clustered stderr.
    """
    out = {}
    for t in tasks:
        r = results["results"][f"grpo_prm_{t}"]
        logged = _by_problem(results, t)
        samples_t = task_samples(samples, t)
        correct = [round(s["accuracy"] * len(_responses(s))) for s in logged]
        mean, stderr = avg_at_n(correct, samples_t)
        stderr = None if math.isnan(stderr) else stderr
        out[t] = {
            "accuracy": mean,
            "accuracy_stderr": stderr,
            "accuracy_ci95": None if stderr is None else [mean - Z95 * stderr, mean + Z95 * stderr],
            "pass_at_k": {str(k): pass_at_k(correct, samples_t, k) for k in pass_ks(samples_t)},
            "boxed": _number(r.get(f"boxed,{FILTER}")),
            "boxed_stderr": _number(r.get(f"boxed_stderr,{FILTER}")),
            "n": len(correct),
            "samples": samples_t,
            "n_correct": sum(correct),
            "correct": correct,
            "scores": [c / samples_t for c in correct],
            "seed_accuracy": seed_accuracy(logged, samples_t),
        }
    return out


def sample_records(results: dict, tasks: list[str]) -> list[dict]:
    """One flat record per problem, from lm-eval's logged samples; per-sample verdicts from the scorer's memo."""
    records = []
    for t in tasks:
        for s in _by_problem(results, t):
            prompt, gen = s["arguments"][0]
            responses = _responses(s)
            scored = verdicts(tuple(responses), s["doc"]["answer"])
            records.append(
                {
                    "task": t,
                    "doc_id": s["doc_id"],
                    "id": s["doc"]["id"],
                    "prompt": prompt,
                    "gen_kwargs": gen,
                    "responses": responses,
                    "preds": [first_boxed(x) for x in responses],
                    "correct": [int(c) for c, _ in scored],
                    "boxed": [int(b) for _, b in scored],
                    "answer": s["target"],
                    "accuracy": s["accuracy"],
                }
            )
    return records


# ---- Command line ----


def _pairs(text: str, flag: str) -> dict:
    """`a=x,b=y` -> `{"a": "x", "b": "y"}`; a pair without `=` is refused."""
    pairs = [p for p in text.split(",") if p] if text else []
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise EvalError(f"bad {flag} entry {bad[0]!r}: use TASK=VALUE")
    return dict(p.split("=", 1) for p in pairs)


def check_protocol(args: argparse.Namespace, tasks: list[str], revisions: dict) -> dict:
    """The protocol settings of `args`, refusing values out of range and (with --require-revisions) unpinned data."""
    if args.max_gen_toks < 1 or (args.limit is not None and args.limit < 1):
        raise EvalError(f"--max-gen-toks {args.max_gen_toks} and --limit {args.limit} must be positive")
    counts = list(args.samples.values()) if isinstance(args.samples, dict) else [args.samples]
    if args.temperature < 0 or not 0 < args.top_p <= 1 or min(counts) < 1:
        raise EvalError(
            f"--temperature {args.temperature} (>= 0), --top-p {args.top_p} (in (0, 1]) or --samples {args.samples}"
            " (>= 1) out of range"
        )
    missing = [t for t in tasks if isinstance(args.samples, dict) and t not in args.samples]
    if missing:
        raise EvalError(f"--samples {json.dumps(args.samples)} names no count for task {missing[0]}")
    if args.temperature == 0 and max(counts) > 1:
        raise EvalError(f"--samples {args.samples} at --temperature 0: greedy decoding draws the same answer n times")
    bad = [f"{t}={v}" for t, v in revisions.items() if t not in TASKS or not COMMIT.fullmatch(v)]
    if bad:
        raise EvalError(f"bad --revisions entry {bad[0]!r}: a Table-2 task and a 40-hex commit")
    if args.require_revisions and not args.data_dir:
        unpinned = [t for t in tasks if t in TABLE2 and t not in revisions]
        if unpinned:
            raise EvalError(
                f"{unpinned[0]} is read from the Hub without a pinned or locked revision; set "
                f"eval.revisions.{unpinned[0]} to the dataset's 40-hex commit, or eval.resolve_and_lock (--lock FILE "
                "--resolve-and-lock) to lock its current one (docs/evaluation.md, 'Pinned benchmark data')"
            )
    return {
        "name": args.protocol,
        "prompt": args.prompt,
        "chat_template": True,
        "system_prompt": SYSTEM_PROMPT if args.prompt == "system" else None,
        "temperature": args.temperature,
        "top_p": args.top_p if args.temperature > 0 else None,  # greedy decoding ignores top-p
        "max_gen_toks": args.max_gen_toks,
        "samples": args.samples,
        "seed": args.seed,
        "seed_spread": args.seed_spread,
        "scorer": SCORER,
        "interval": "avg@n ± 1.96 × stderr clustered by problem: std(per-problem share correct, ddof=1)/sqrt(N)",
    }


def evaluate(args: argparse.Namespace) -> list[Path]:
    """Check the input, run lm-eval, write `<out>.json` and `<out>.samples.jsonl` atomically."""
    tasks = check_tasks([t.strip() for t in args.tasks.split(",") if t.strip()])
    model = check_checkpoint(args.model)
    identity = parse_identity(args.identity)
    if "offline" in tasks and not args.offline_file:
        raise EvalError("task offline needs --offline-file (a JSONL of id, problem, answer)")
    pins = _pairs(args.revisions, "--revisions")
    sha256 = _pairs(args.sha256, "--sha256")
    if args.resolve_and_lock and not args.lock:
        raise EvalError("--resolve-and-lock needs --lock FILE (where the resolved commits are kept)")
    hub = [t for t in tasks if t in TABLE2] if not args.data_dir else []
    locks = locked_revisions(hub, pins, read_lock(args.lock) if args.lock else {}, args.resolve_and_lock)
    revisions = pins | {t: lock["revision"] for t, lock in locks.items()}
    sha256 |= {t: lock["sha256"] for t, lock in locks.items() if lock["sha256"] and t not in sha256}
    protocol = check_protocol(args, tasks, revisions)
    metadata = {"data_dir": args.data_dir or None, "revisions": revisions, "offline_file": args.offline_file,
                "sha256": sha256}  # fmt: skip

    suffixes = [".json", ".samples.jsonl"]
    settings = {k: v for k, v in vars(args).items() if k != "out"} | {"model_files": _files(model)}
    kept = restore_kept(args.out, suffixes, settings)
    if kept is not None:  # a rerun of a finished evaluation (Snakemake removed its outputs first): keep it
        print(f"{args.out}: evaluated before with these settings and this checkpoint; kept")
        return kept
    start = time.monotonic()
    results, data = run_lm_eval(model, tasks, protocol, args.batch_size, args.backend, args.limit, metadata)
    for t in tasks:
        data[t] |= {"source": args.data_dir or "hub", "revision": None if args.data_dir else revisions.get(t)}
        if t in hub:
            data[t] |= {"pin": locks[t]["how"] if t in locks else "pinned" if t in pins else None, "lock": args.lock}
    summary = {"tasks": summarise(results, tasks, args.samples), "protocol": protocol, "data": data}
    summary |= {"identity": identity, "model": str(model), "backend": args.backend}
    summary |= {k: getattr(args, k) for k in ("max_gen_toks", "batch_size", "limit")} | metadata
    summary |= {
        "system_prompt": protocol["system_prompt"],
        "lm_eval_version": importlib.metadata.version("lm_eval"),
        "wall_s": round(time.monotonic() - start, 1),
    }
    records = sample_records(results, tasks)

    resolved = {
        t: {"revision": revisions[t], "sha256": data[t]["sha256"], "rows": data[t]["rows"]}
        for t, lock in locks.items()
        if lock["how"] == "resolved"
    }
    if resolved:
        write_lock(args.lock, resolved)

    def write_json(path: str) -> None:
        Path(path).write_text(json.dumps(summary, indent=2) + "\n")

    def write_samples(path: str) -> None:
        Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))

    paths = write_atomic(args.out, {".json": write_json, ".samples.jsonl": write_samples})
    keep(args.out, suffixes, settings)
    return paths


def _files(folder: Path) -> list:
    """Name, size and modification time of each file of a checkpoint: a retrained one differs."""
    return [
        [str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def _samples(text: str) -> int | dict:
    """`4`, or per task `{"aime24": 10, "math500": 3}` (the workflow passes a protocol's dict as JSON)."""
    if text.lstrip().startswith("{"):
        value = _parse_object(text)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value.values()):
            raise argparse.ArgumentTypeError(f"{text!r}: every count must be a positive integer")
        return value
    return positive_int(text)


def _batch_size(text: str) -> int | str:
    return text if text.startswith("auto") else positive_int(text)


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m grpo_prm.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="checkpoint folder (transformers format)")
    p.add_argument("--tasks", required=True, help=f"comma-separated, from {', '.join(TASKS)}")
    p.add_argument("--data-dir", default="", help="root of local benchmark copies; empty: the Hub")
    p.add_argument("--revisions", default="", help="Hub commit per benchmark: aime24=<40-hex sha>,math500=<sha>,...")
    p.add_argument("--require-revisions", action="store_true", help="refuse Table-2 data from the Hub unpinned")
    p.add_argument("--lock", default=None, help="lock file of resolved Hub commits (results/<profile>/eval/...)")
    p.add_argument(
        "--resolve-and-lock",
        action="store_true",
        help="resolve an unpinned, unlocked Hub benchmark to its current commit and lock it (--lock)",
    )
    p.add_argument("--sha256", default="", help="expected content sha256 per task: aime24=<hex>,... (checked)")
    p.add_argument("--offline-file", default=None, help="JSONL {id, problem, answer} for the task offline")
    p.add_argument("--protocol", default="greedy", help="the protocol's name, recorded in the result (eval.protocols)")
    p.add_argument("--prompt", choices=PROMPTS, default="system", help="user message style (see above)")
    p.add_argument("--temperature", type=finite_float, default=0.0, help="0: greedy; > 0: sampling temperature")
    p.add_argument("--top-p", type=finite_float, default=1.0, help="nucleus mass when sampling")
    p.add_argument("--max-gen-toks", type=positive_int, required=True, help="new-token budget per problem")
    p.add_argument(
        "--samples",
        type=_samples,
        default=1,
        help='n seeded samples per problem (avg@n, pass@k), or per task as JSON: {"aime24": 10, ...}',
    )
    p.add_argument(
        "--seed-spread",
        type=parse_bool,
        default=False,
        help="Table 2 shows mean ± std over seeds beside the clustered interval (recorded in protocol)",
    )
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the sampling (Python, NumPy, torch, vLLM)")
    p.add_argument("--batch-size", type=_batch_size, default=1, help="int, or auto (vLLM)")
    p.add_argument("--limit", type=positive_int, default=None, help="first L problems per task (smoke tests only)")
    p.add_argument("--backend", choices=BACKENDS, default="hf", help="hf (CPU) or vllm (GPU, paper profile)")
    p.add_argument("--identity", nargs="*", default=[], help="model=.. beta=.. method=.. seed=.. for Table 2")
    p.add_argument("--out", required=True, help="writes <out>.json and <out>.samples.jsonl")
    return p


def main(argv: list[str] | None = None) -> list[Path]:
    args = _parser().parse_args(argv)
    reproducible(args.seed)  # threads and RNGs; lm-eval reseeds with the same seed (simple_evaluate)
    return exit_on_error(lambda: evaluate(args))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for path in main():
        print(path)
