"""One toy training step of every method beside GRPO's, side by side (paper §4.3 tree; grpo_prm.toy).

    python benchmarks/bench_toy_step.py [--methods grpo lambda_grpo ...] [--repeats 30]
                                        [--out benchmarks/results/toy_step.json]

A step is what `Trainer.training_step` does for one group: sampling the group (the `leaves` sampler, as the sweep
runs), rewards, advantages (for the explicit PRM, V of every prefix: the forward pass over the leaves and, for MC,
the K continuations per prefix), the method's weights, and the loss forward + backward + optimiser step. Each method's
trainer is built as the sweep builds it (same seed, so the same initial policy); rounds alternate the methods so
drift on a shared machine hits all of them alike. Reported: the median step time per method and its ratio to GRPO's,
plus GRPO with TRL's `generate` sampler (the sampler's speed-up). Ratios are the result; absolute times depend on
the machine and its load.
"""

import argparse
import json
import statistics
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from grpo_prm.toy import ToyConfig, build_trainer

warnings.filterwarnings("ignore")
hf_logging.set_verbosity_error()
METHODS = ["grpo", "lambda_grpo", "dr_grpo", "reinforce_rej", "explicit_prm_mc", "explicit_prm_exact"]


def step_seconds(trainer) -> float:
    start = time.perf_counter()
    inputs = trainer._prepare_inputs([{"prompt": trainer.processing_class.bos_token}] * trainer.num_generations)
    trainer.compute_loss(trainer.model, inputs).backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=METHODS, help="methods beside grpo (grpo is always timed)")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per method (median reported)")
    parser.add_argument("--mc-continuations", type=int, default=8, help="K of explicit_prm_mc")
    parser.add_argument("--out", default="benchmarks/results/toy_step.json", help="JSON file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    base = ToyConfig(model="tiny", learning_rate=1e-4, mc_continuations=args.mc_continuations, seed=0)
    variants = {m: replace(base, method=m) for m in dict.fromkeys(["grpo", *args.methods])}
    variants["grpo [generate]"] = replace(base, method="grpo", sampler="generate")
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for name, cfg in variants.items():
            trainer, _ = build_trainer(cfg, tmp)
            trainer.create_optimizer_and_scheduler(num_training_steps=cfg.steps)
            trainer.model.train()
            trainer.current_gradient_accumulation_steps = 1
            trainers[name] = trainer
        times = {name: [] for name in trainers}
        for i in range(args.repeats + 2):  # two warm-up rounds
            for name, trainer in trainers.items():
                t = step_seconds(trainer)
                if i >= 2:
                    times[name].append(t)
        extra = {
            name: statistics.mean(trainers[name]._metrics["train"].get("prm/extra_sampled_tokens", [0]))
            for name in trainers
        }
    med = {name: statistics.median(v) for name, v in times.items()}
    result = {
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "mc_continuations": args.mc_continuations,
        "median_s": med,
        "ratio_to_grpo": {n: med[n] / med["grpo"] for n in med},
        "extra_sampled_tokens_per_step": extra,
        "group_tokens_per_step": base.group_size * base.depth,
    }
    print(
        f"toy step, median of {args.repeats} (1 thread); the group itself samples "
        f"{result['group_tokens_per_step']} tokens per step"
    )
    for name, seconds in med.items():
        print(
            f"  {name:<20} {seconds * 1e3:7.2f} ms   × GRPO {result['ratio_to_grpo'][name]:.2f}   "
            f"extra sampled tokens/step {extra[name]:.0f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
