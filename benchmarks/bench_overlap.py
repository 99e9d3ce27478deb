"""Benchmark: the overlap analysis (§3) is linear in the recorded tokens.

Records synthetic GRPO groups with `GroupRecorder` (the generator of bench_process_sets.py: shared prefixes,
duplicates, early EOS), at 1×, 4× and 16× a base number of groups, and times `grpo_prm.overlap.analyse` on each
recording: reading the Parquet file, process sets, per-trajectory statistics, per-step / cumulative / sorted tables.
The scales are timed side by side (interleaved within every repeat, so drifting machine load hits all of them), and
the best of the repeats is kept. Linear cost shows as a flat time per token across scales (flatness = largest over
smallest s/token of each k) and as a straight line seconds = fixed + slope·tokens through the three points.

Usage:
    python benchmarks/bench_overlap.py [--ks 6 36] [--groups 96] [--tokens 512] [--scales 1 4 16] [--repeats 3]
        [--steps-per-flush 50] [--seed 0] [--out benchmarks/results/overlap.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_process_sets import cpu_model, make_group

from grpo_prm.overlap import analyse
from grpo_prm.recording import GroupRecorder

PROMPTS_PER_STEP = 4  # paper App. C


def record(path: Path, groups, k: int, flush_every: int) -> int:
    """Write `groups` as a run of PROMPTS_PER_STEP groups per step; returns the recorded tokens."""
    tokens = 0
    with GroupRecorder(path, flush_every=flush_every) as rec:
        for step in range(0, len(groups), PROMPTS_PER_STEP):
            batch = groups[step : step + PROMPTS_PER_STEP]
            ids, mask = torch.cat([g[0] for g in batch]), torch.cat([g[1] for g in batch])
            rewards = torch.randint(0, 2, (ids.shape[0],), generator=torch.Generator().manual_seed(step)).double()
            rec.add(step // PROMPTS_PER_STEP, ids, mask, rewards, torch.zeros(ids.shape[0]), k)
            tokens += int(mask.sum())
    return tokens


def time_scales(paths: dict[int, Path], repeats: int) -> dict[int, float]:
    """Best wall time of `analyse` per scale, the scales interleaved in every repeat (after one warm-up each)."""
    best = {scale: float("inf") for scale in paths}
    for path in paths.values():
        analyse(path)
    for _ in range(repeats):
        for scale, path in paths.items():
            start = time.perf_counter()
            analyse(path)
            best[scale] = min(best[scale], time.perf_counter() - start)
    return best


def linear_fit(rows) -> dict:
    """Least squares seconds = fixed + slope·tokens: a per-run fixed cost (tables, frames) explains why s/token
    falls a little with scale, while the slope is the marginal cost per token."""
    tokens, seconds = np.array([r["tokens"] for r in rows], float), np.array([r["seconds"] for r in rows])
    slope, fixed = np.polyfit(tokens, seconds, 1)
    residual = np.abs(fixed + slope * tokens - seconds) / seconds
    return {"fixed_s": float(fixed), "s_per_token": float(slope), "max_rel_residual": float(residual.max())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[6, 36], help="group sizes k (6 36)")
    parser.add_argument("--groups", type=int, default=96, help="groups at scale 1 (96, a multiple of 4)")
    parser.add_argument("--tokens", type=int, default=512, help="tokens per completion before early EOS (512)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16], help="multiples of --groups (1 4 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per scale; the best is kept (3)")
    parser.add_argument("--steps-per-flush", type=int, default=50, help="recorder row-group size in steps (50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic groups (0)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/overlap.json"), help="(%(default)s)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # single core, like the paper's overhead figure (§4.2)
    load_before = os.getloadavg()
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.ks:
            groups = [make_group(k, args.tokens, rng) for _ in range(args.groups * max(args.scales))]
            paths, tokens = {}, {}
            for scale in args.scales:
                paths[scale] = Path(tmp) / f"k{k}_x{scale}.parquet"
                tokens[scale] = record(paths[scale], groups[: args.groups * scale], k, args.steps_per_flush)
            best = time_scales(paths, args.repeats)
            for scale in args.scales:
                results.append(
                    {
                        "k": k,
                        "scale": scale,
                        "groups": args.groups * scale,
                        "tokens": tokens[scale],
                        "seconds": best[scale],
                        "s_per_token": best[scale] / tokens[scale],
                    }
                )
    flatness = {
        k: max(r["s_per_token"] for r in results if r["k"] == k) / min(r["s_per_token"] for r in results if r["k"] == k)
        for k in args.ks
    }
    fits = {k: linear_fit([r for r in results if r["k"] == k]) for k in args.ks}

    print(f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread, load {load_before[0]:.2f}")
    print(f"{'k':>3} {'scale':>5} {'groups':>6} {'tokens':>9} {'seconds':>8} {'s/token':>9}")
    for r in results:
        print(
            f"{r['k']:>3} {r['scale']:>5} {r['groups']:>6} {r['tokens']:>9} {r['seconds']:>8.3f} "
            f"{r['s_per_token']:>9.2e}"
        )
    print("largest / smallest s/token per k: " + ", ".join(f"k={k}: {v:.2f}" for k, v in flatness.items()))
    for k, fit in fits.items():
        print(
            f"k={k}: seconds = {fit['fixed_s']:.3f} + {fit['s_per_token']:.2e} * tokens "
            f"(largest residual {fit['max_rel_residual']:.1%})"
        )

    meta = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "repeats": args.repeats,
        "tokens_per_completion": args.tokens,
        "base_groups": args.groups,
        "prompts_per_step": PROMPTS_PER_STEP,
        "seed": args.seed,
        "timer": "time.perf_counter, best of repeats, scales interleaved, one warm-up each",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": 1,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"meta": meta, "results": results, "flatness": flatness, "fits": fits}, indent=2) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
