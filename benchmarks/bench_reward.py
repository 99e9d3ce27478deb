"""Benchmark: a batch whose completions overrun the verification time limit costs about one limit, not one per item.

One training step scores prompts_per_step × k completions (paper: 4 × 6 = 24). Here 6 of the 24 are pathological
(a power tower sympy cannot finish comparing), so each is killed at the time limit. Scored one at a time through a
single child (the previous `MathReward`, i.e. `workers=1`) the step waits 6 limits; the pooled `MathReward` scores
the batch with `workers` children at once. Both are timed side by side on the same batch (warm children, best of
the repeats), and their rewards must be identical and in order.

Usage:
    python benchmarks/bench_reward.py [--timeout 2.0] [--batch 24] [--slow 6] [--workers 8] [--repeats 2]
        [--out benchmarks/results/reward.json]
"""

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

from grpo_prm.reward import MathReward

PATHOLOGICAL = r"\boxed{9^{9^{9^{9}}}}"  # as in tests/test_reward.py


def make_batch(n: int, slow: int) -> tuple[list[str], list[str]]:
    """`n` completions against golds, `slow` of them pathological, spread over the batch; the rest right or wrong."""
    every = n // slow if slow else n + 1
    completions, golds = [], []
    for i in range(n):
        gold = str(i % 7 + 1)
        if slow and i % every == every - 1 and completions.count(PATHOLOGICAL) < slow:
            completions.append(PATHOLOGICAL)
        else:
            completions.append(rf"so the answer is \boxed{{{gold if i % 3 else int(gold) + 1}}}")
        golds.append(gold)
    return completions, golds


def timed(reward: MathReward, completions, golds) -> tuple[float, list]:
    start = time.perf_counter()
    out = reward(completions, golds)
    return time.perf_counter() - start, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timeout", type=float, default=2.0, help="per-item time limit in seconds")
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--slow", type=int, default=6, help="pathological completions in the batch")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/reward.json")
    args = p.parse_args()
    completions, golds = make_batch(args.batch, args.slow)
    assert completions.count(PATHOLOGICAL) == args.slow
    easy = [r"\boxed{1}"] * args.batch
    times = {"sequential": [], "pooled": []}
    rewards = {}
    with (
        MathReward(timeout_s=args.timeout, workers=1) as sequential,
        MathReward(timeout_s=args.timeout, workers=args.workers) as pooled,
    ):
        for reward in (sequential, pooled):
            reward(easy, ["1"] * args.batch)  # start the children outside the timed calls
        for _ in range(args.repeats):  # interleaved, so drifting machine load hits both
            for name, reward in (("sequential", sequential), ("pooled", pooled)):
                seconds, rewards[name] = timed(reward, completions, golds)
                times[name].append(seconds)
        timeouts = {"sequential": sequential.n_timeouts, "pooled": pooled.n_timeouts}
    assert rewards["pooled"] == rewards["sequential"], "pooled rewards differ from one-at-a-time rewards"
    assert timeouts["pooled"] == timeouts["sequential"] == args.slow * args.repeats
    best = {name: min(t) for name, t in times.items()}
    result = {
        "batch": args.batch,
        "slow": args.slow,
        "timeout_s": args.timeout,
        "workers": args.workers,
        "sequential_s": round(best["sequential"], 3),
        "pooled_s": round(best["pooled"], 3),
        "pooled_in_time_limits": round(best["pooled"] / args.timeout, 2),
        "expected_in_time_limits": math.ceil(args.slow / args.workers),
        "speedup": round(best["sequential"] / best["pooled"], 2),
        "rewards_identical": True,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
