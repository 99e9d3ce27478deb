"""Benchmark: process-set sizes |λ(i, t)|, ours vs the authors' recursive prefix tree (§4.2).

Times `grpo_prm.process_sets.process_set_sizes` against `authors_prefix_tree.authors_process_set_sizes` (a
re-implementation of the authors' `InfPRMTree`, the baseline) on the same synthetic groups, checks that both give
exactly the same counts, and reports seconds per token (tokens = valid completion tokens) and the speed-up.

Groups are built to look like GRPO rollouts: k completions of up to `--tokens` tokens, each branching off a random
earlier completion after a random-length shared prefix, with exact duplicates, EOS-terminated shorter completions
(the pad id is the EOS id, so padding must not be compared), and a few completions that stop right after a prefix
of another one.

Each configuration is measured twice: with torch's default thread count and with `torch.set_num_threads(1)` (the
paper's figure is single-core: 1.19e-7 s/token at k = 6, 1.21e-7 at k = 36). Targets: ours ≥ 20× faster than the
baseline and ≤ 1e-8 s/token.

Usage:
    python benchmarks/bench_process_sets.py [--repeats N] [--out benchmarks/results/process_sets.json]
    python benchmarks/bench_process_sets.py --ks 6 36 --tokens 4096 --groups 4 --seed 0

Exit status 1 if the two implementations disagree anywhere, else 0 (missed targets are reported, not fatal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from authors_prefix_tree import authors_process_set_sizes

from grpo_prm.process_sets import process_set_sizes

VOCAB = 151_936  # Qwen2.5 / DeepSeek-R1-Distill-Qwen vocabulary size
EOS = 151_643  # also used as the pad id
PAPER_S_PER_TOKEN = {6: 1.19e-7, 36: 1.21e-7}  # §4.2, Intel i7, single core
TARGET_SPEEDUP, TARGET_S_PER_TOKEN = 20.0, 1e-8


def make_group(k: int, T: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """One synthetic group: (token_ids, mask), each `(k, T)`, right-padded with the EOS id."""
    rows: list[list[int]] = []
    for i in range(k):
        full = T if rng.random() < 0.7 else rng.randint(T // 8, T - 1)  # 70 % hit the length limit
        if i == 0:
            row = [rng.randrange(VOCAB - 1) for _ in range(full)]
        elif rng.random() < 0.15:  # exact duplicate of an earlier completion
            row = list(rows[rng.randrange(i)])
        else:
            parent = rows[rng.randrange(i)]
            shared = rng.randint(0, len(parent) - 1)  # random-length shared prefix
            if rng.random() < 0.1:  # stops (EOS) right after the shared prefix
                row = parent[:shared] + [EOS]
            else:
                nxt = rng.randrange(VOCAB - 1)
                while nxt == parent[shared]:  # branch exactly at `shared`
                    nxt = rng.randrange(VOCAB - 1)
                row = parent[:shared] + [nxt] + [rng.randrange(VOCAB - 1) for _ in range(max(0, full - shared - 1))]
            row = row[:T]
        if len(row) < T and row[-1] != EOS:
            row[-1] = EOS  # a completion that stopped early ends with EOS
        rows.append(row)
    ids = torch.full((k, T), EOS, dtype=torch.long)
    mask = torch.zeros((k, T), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    return ids, mask


def best_time(fn, groups, repeats: int) -> float:
    """Best wall time (s) over `repeats` runs of `fn` over all groups, after one untimed warm-up run."""
    for ids, mask in groups:
        fn(ids, mask)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for ids, mask in groups:
            fn(ids, mask)
        best = min(best, time.perf_counter() - start)
    return best


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else `platform.processor()`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per configuration; the best is kept (10)")
    parser.add_argument("--ks", type=int, nargs="+", default=[6, 36], help="group sizes k to measure (6 36)")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per completion T, before padding (4096)")
    parser.add_argument("--groups", type=int, default=4, help="groups per k; each timed run covers all of them (4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic groups (0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/process_sets.json"),
        help="JSON results file (%(default)s)",
    )
    args = parser.parse_args(argv)

    load_before = os.getloadavg()  # other processes on the machine inflate the timings, most with >1 thread
    rng = random.Random(args.seed)
    default_threads = torch.get_num_threads()
    results, all_agree = [], True
    for k in args.ks:
        groups = [make_group(k, args.tokens, rng) for _ in range(args.groups)]
        tokens = int(sum(mask.sum() for _, mask in groups))
        agree = all(torch.equal(process_set_sizes(i, m), authors_process_set_sizes(i, m)) for i, m in groups)
        all_agree &= agree
        for threads in dict.fromkeys([default_threads, 1]):
            torch.set_num_threads(threads)
            ours = best_time(process_set_sizes, groups, args.repeats)
            authors = best_time(authors_process_set_sizes, groups, args.repeats)
            row = {
                "k": k,
                "threads": threads,
                "groups": args.groups,
                "tokens": tokens,
                "ours_s": ours,
                "authors_s": authors,
                "ours_s_per_token": ours / tokens,
                "authors_s_per_token": authors / tokens,
                "speedup": authors / ours,
                "paper_s_per_token": PAPER_S_PER_TOKEN.get(k),
                "agree": agree,
            }
            row["meets_targets"] = row["speedup"] >= TARGET_SPEEDUP and row["ours_s_per_token"] <= TARGET_S_PER_TOKEN
            results.append(row)
        torch.set_num_threads(default_threads)

    header = (
        f"{'k':>3} {'thr':>3} {'tokens':>7} {'ours s/tok':>11} {'authors s/tok':>13} {'speedup':>8} "
        f"{'agree':>5} {'targets':>7}"
    )
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, load average {load_before[0]:.2f}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['k']:>3} {r['threads']:>3} {r['tokens']:>7} {r['ours_s_per_token']:>11.2e} "
            f"{r['authors_s_per_token']:>13.2e} {r['speedup']:>7.1f}x {r['agree']!s:>5} "
            f"{'met' if r['meets_targets'] else 'MISSED':>7}"
        )
    print(
        f"targets: speed-up >= {TARGET_SPEEDUP:g}x and ours <= {TARGET_S_PER_TOKEN:g} s/token; "
        f"paper (1 core): {', '.join(f'k={k}: {v:g}' for k, v in PAPER_S_PER_TOKEN.items())} s/token"
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "repeats": args.repeats,
        "tokens_per_completion": args.tokens,
        "groups_per_k": args.groups,
        "seed": args.seed,
        "timer": "time.perf_counter, best of repeats, one warm-up run",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "default_threads": default_threads,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "targets": {"speedup": TARGET_SPEEDUP, "ours_s_per_token": TARGET_S_PER_TOKEN},
    }
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not all_agree:
        print("ERROR: ours and the authors' baseline disagree", file=sys.stderr)
    return 0 if all_agree else 1


if __name__ == "__main__":
    sys.exit(main())
