"""Dataset, prompt and scoring hooks of the repository's lm-eval tasks (Table 2 of arXiv 2509.21154).

lm-eval calls `load_docs` as the tasks' `custom_dataset` with the task's `dataset_kwargs` (`benchmark`) and the
TaskManager metadata that `grpo_prm.evaluate` sets (`data_dir`, `revisions`, `sha256`, `offline_file`, `prompt`),
so the field mapping stays in one place, `grpo_prm.data.load_benchmark`. Each doc carries its rendered user
message (`prompt`). `process_results` scores every sample of a problem with the evaluation scorer
(`grpo_prm.extractive_match`, lighteval's math-verify extractive match), not with the training reward.
"""

from functools import lru_cache

import datasets

from grpo_prm.boxed import first_boxed
from grpo_prm.data import BENCHMARKS, TABLE2, DataError, content_sha256, load_benchmark, read_problems
from grpo_prm.extractive_match import is_correct

TASKS = (*TABLE2, "offline")  # short names; each task here is `grpo_prm_<name>`
# The user message of Open-RS's lighteval tasks (open-r1's `MATH_QUERY_TEMPLATE`, adapted there from OpenAI's
# simple-evals math_eval.py); they send no system message. Kept verbatim: the prompt is part of the protocol.
OPEN_RS_QUERY = (
    "Solve the following math problem efficiently and clearly.  The last line of your response should be of the "
    "following format: 'Therefore, the final answer is: $\\boxed{{ANSWER}}$. I hope it is correct' (without "
    "quotes) where ANSWER is just the final number or expression that solves the problem. Think step by step "
    "before answering.\n\n{problem}"
)
PROMPTS = ("system", "open_rs_query")  # system: the paper's system message (grpo_prm.data.SYSTEM_PROMPT) + problem


def user_message(problem: str, prompt: str) -> str:
    """The user turn of one problem under a prompt style of `PROMPTS`."""
    if prompt not in PROMPTS:
        raise DataError(f"unknown prompt {prompt!r}; known: {', '.join(PROMPTS)}")
    return problem if prompt == "system" else OPEN_RS_QUERY.format(problem=problem)


def benchmark_rows(
    benchmark: str,
    data_dir: str | None = None,
    revisions: dict | None = None,
    sha256: dict | None = None,
    offline_file: str | None = None,
) -> list[dict]:
    """Rows `{"id", "problem", "answer"}` of one benchmark (or the offline test set), content-checked if asked."""
    if benchmark == "offline":
        if not offline_file:
            raise DataError("task offline needs offline_file (a JSONL of id, problem, answer)")
        rows = [{k: str(r[k]) for k in ("id", "problem", "answer")} for r in read_problems(offline_file)]
        expected = (sha256 or {}).get("offline")
        if expected is not None and content_sha256(rows) != expected:
            raise DataError(f"{offline_file}: content sha256 {content_sha256(rows)} is not the expected {expected}")
        return rows
    if benchmark not in BENCHMARKS:
        raise DataError(f"unknown benchmark {benchmark!r}; known: {', '.join(TASKS)}")
    return load_benchmark(
        benchmark,
        local_dir=data_dir or None,
        revision=(revisions or {}).get(benchmark),
        sha256=(sha256 or {}).get(benchmark),
    )


def load_docs(benchmark: str, prompt: str = "system", **metadata) -> datasets.DatasetDict:
    """lm-eval's `test` split of one benchmark: `benchmark_rows` plus the rendered user message `prompt`.

    Args:
        benchmark (`str`): a key of `grpo_prm.data.BENCHMARKS`, or `offline`.
        prompt (`str`, *optional*, defaults to `"system"`): a prompt style of `PROMPTS`.
        **metadata: `data_dir`, `revisions`, `sha256`, `offline_file` (see `benchmark_rows`); other lm-eval
            metadata (`version`, `config_source`, ...) is ignored.
    """
    keys = ("data_dir", "revisions", "sha256", "offline_file")
    rows = benchmark_rows(benchmark, **{k: metadata[k] for k in keys if k in metadata})
    docs = [r | {"prompt": user_message(r["problem"], prompt)} for r in rows]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def all_samples(resps, docs):
    """lm-eval filter: keep every sample of a problem (its default keeps the first of `repeats`)."""
    return resps


@lru_cache(maxsize=65536)  # evaluate.sample_records asks again for what process_results scored
def verdicts(completions: tuple[str, ...], gold: str) -> tuple[tuple[float, float], ...]:
    """Per sample: (correct, boxed) as 0.0/1.0; `boxed`: a `\\boxed{}` closes (tells truncation apart)."""
    return tuple((float(is_correct(c, gold)), float(first_boxed(c) is not None)) for c in completions)


def process_results(doc: dict, results: list) -> dict[str, float]:
    """lm-eval hook: `results[0]` holds the problem's n samples; per-problem accuracy is the share correct (avg@n)."""
    samples = results[0] if isinstance(results[0], list) else results
    scored = verdicts(tuple(samples), doc["answer"])
    return {
        "accuracy": sum(c for c, _ in scored) / len(scored),
        "boxed": sum(b for _, b in scored) / len(scored),
    }
