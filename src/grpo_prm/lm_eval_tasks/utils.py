"""Dataset and scoring hooks of the repository's lm-eval tasks (Table 2 of arXiv 2509.21154; paper.md §12).

lm-eval calls `load_docs` as the tasks' `custom_dataset` with the task's `dataset_kwargs` (`benchmark`) and the
TaskManager metadata that `grpo_prm.evaluate` sets (`data_dir`, `revisions`, `offline_file`), so the field mapping
stays in one place, `grpo_prm.data.load_benchmark`. `process_results` scores a completion with `MathReward`: the
first closed `\\boxed{}` against the gold by math-verify, the reward of training and validation.
"""

import datasets

from grpo_prm.data import BENCHMARKS, TABLE2, DataError, load_benchmark, read_problems
from grpo_prm.reward import MathReward, extract_boxed

TASKS = (*TABLE2, "offline")  # short names; each task here is `grpo_prm_<name>`
_reward: MathReward | None = None  # one verification child per process, started on first use


def load_docs(
    benchmark: str,
    data_dir: str | None = None,
    revisions: dict | None = None,
    offline_file: str | None = None,
    **_,
) -> datasets.DatasetDict:
    """Rows `{"id", "problem", "answer"}` of one benchmark as lm-eval's `test` split.

    Args:
        benchmark (`str`): a key of `grpo_prm.data.BENCHMARKS`, or `offline`.
        data_dir (`str` or `None`, *optional*): root of local copies (`<data_dir>/<benchmark>/test.jsonl`);
            `None` or empty loads from the Hub.
        revisions (`dict` or `None`, *optional*): Hub revision per benchmark; ignored with `data_dir`.
        offline_file (`str` or `None`, *optional*): JSONL of `{id, problem, answer}` for `offline` (the held-out
            test set of `grpo_prm.data.offline_splits`).
        **_: other lm-eval metadata (`version`, `config_source`), unused.
    """
    if benchmark == "offline":
        if not offline_file:
            raise DataError("task offline needs offline_file (a JSONL of id, problem, answer)")
        rows = [{k: str(r[k]) for k in ("id", "problem", "answer")} for r in read_problems(offline_file)]
    elif benchmark in BENCHMARKS:
        rows = load_benchmark(benchmark, local_dir=data_dir or None, revision=(revisions or {}).get(benchmark))
    else:
        raise DataError(f"unknown benchmark {benchmark!r}; known: {', '.join(TASKS)}")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def score(completion: str, gold: str) -> dict[str, float]:
    """`accuracy` (1.0 if the first closed box is equivalent to `gold`) and `boxed` (1.0 if a box closes).

    A gold that math-verify cannot parse scores 0 here (`reward_zero`): at evaluation nothing is free.
    """
    global _reward
    if _reward is None:
        _reward = MathReward(unparseable_gold="reward_zero")
    return {"accuracy": _reward.score(completion, gold), "boxed": float(extract_boxed(completion) is not None)}


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """lm-eval hook: `results` holds the one (filtered) completion of `doc`."""
    return score(results[0], doc["answer"])
