"""The batched toy engine against one trainer per run, side by side in one process (paper §4.3 tree).

    python benchmarks/bench_toy_batched.py [--method lambda_grpo] [--runs 120] [--repeats 10]
                                           [--agreement-seeds 6 --agreement-steps 250]
                                           [--out benchmarks/results/toy_batched.json]

Speed: one training step of `--runs` runs, by `grpo_prm.toy_batched.BatchedToy` (all runs in one step) and by
`LambdaGRPOTrainer` (one trainer's step, times the number of runs; the trainer trains one run at a time). Rounds
alternate the two; reported are the medians and their ratio (the result: absolute times depend on the machine).

Agreement (with `--agreement-seeds`): full runs of the figure cell (n = 1, r_neg = −1) by both engines on the same
seeds, and each engine's seed-mean final target frequency (Table 1's metric) with its 95 % t-interval, and the paired
difference's: the two engines draw different random numbers, so the runs agree in distribution, not path by path.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from grpo_prm.stats import mean_interval
from grpo_prm.toy import ToyConfig, build_trainer, run_toy
from grpo_prm.toy_batched import BatchedToy
from grpo_prm.toy_runs import final_frequency

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_toy_step import step_seconds as trainer_step  # one timed trainer step, shared with bench_toy_step

warnings.filterwarnings("ignore")
hf_logging.set_verbosity_error()


def batched_step(batched) -> float:
    start = time.perf_counter()
    batched.step()
    return time.perf_counter() - start


def interval(values) -> dict:
    mean, low, high = mean_interval(values)
    return {"mean": mean, "low": low, "high": high}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="lambda_grpo")
    parser.add_argument("--runs", type=int, default=120, help="runs trained together (the default's 6 cells × 20)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per engine (median reported)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--agreement-seeds", type=int, default=0, help="full runs per engine (0: speed only)")
    parser.add_argument("--agreement-steps", type=int, default=250)
    parser.add_argument("--out", default="benchmarks/results/toy_batched.json", help="JSON file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    cfgs = [
        ToyConfig(
            model="tiny",
            method=args.method,
            learning_rate=args.learning_rate,
            n=1 + i % 2,
            r_neg=(-0.5, -1.0, -1.5)[i % 3],
            seed=i,
        )
        for i in range(args.runs)
    ]
    batched = BatchedToy(cfgs)
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_trainer(cfgs[0], tmp)
        trainer.create_optimizer_and_scheduler(num_training_steps=cfgs[0].steps)
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1
        times = {"trainer_per_run": [], "batched_all_runs": []}
        for i in range(args.repeats + 2):  # two warm-up rounds
            t_trainer, t_batched = trainer_step(trainer), batched_step(batched)
            if i >= 2:
                times["trainer_per_run"].append(t_trainer)
                times["batched_all_runs"].append(t_batched)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["trainer_per_run"] * args.runs / med["batched_all_runs"]
    result = {
        "method": args.method,
        "runs": args.runs,
        "repeats": args.repeats,
        "threads": 1,
        "median_s": med,
        "speedup_batched_vs_one_trainer_per_run": ratio,
    }
    print(
        f"toy step of {args.runs} runs ({args.method}, 1 thread, median of {args.repeats}): one trainer per run "
        f"{med['trainer_per_run'] * args.runs:.2f} s, batched {med['batched_all_runs']:.3f} s: ×{ratio:.1f}"
    )

    if args.agreement_seeds:
        cell = {
            "model": "tiny",
            "method": args.method,
            "learning_rate": args.learning_rate,
            "n": 1,
            "r_neg": -1.0,
            "steps": args.agreement_steps,
        }
        seeds = range(args.agreement_seeds)
        last = min(50, args.agreement_steps)
        via_trainer = [final_frequency(run_toy(ToyConfig(seed=s, **cell)), last) for s in seeds]
        batched_runs = BatchedToy([ToyConfig(seed=s, **cell) for s in seeds]).train()
        via_batched = [final_frequency(run, last) for run in batched_runs]
        result["agreement"] = {
            "trainer": interval(via_trainer),
            "batched": interval(via_batched),
            "paired_difference": interval([b - a for a, b in zip(via_trainer, via_batched)]),
        }
        for name, iv in result["agreement"].items():
            print(f"  final target frequency, {name:<17} {iv['mean']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
