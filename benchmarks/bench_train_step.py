"""One training step of λ-GRPO (LambdaGRPOTrainer) vs TRL's stock GRPOTrainer on the same batch.

    python benchmarks/bench_train_step.py [--k 6] [--groups 4] [--length 256] [--repeats 7]
                                          [--out benchmarks/results/train_step.json]

A step here is what the trainer does per optimiser step after generation: scoring the batch (rewards, advantages,
and for λ-GRPO the process sets and weights) and the loss forward + backward. Generation is a fixed rollout
(identical for both, so it is excluded by construction). Target: λ-GRPO / GRPO ≤ 1.02. Median of --repeats,
alternating the two trainers so drift affects both. On a shared 2-core machine whole-step medians drift by a few
per cent, so the λ-specific work (process sets, weights, tree statistics) is also timed alone on the same batch
and reported as a fraction of the GRPO step: that figure is the overhead itself, free of the drift.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer

from grpo_prm.process_sets import process_set_sizes_grouped
from grpo_prm.recording import BatchRecorder, batch_metrics
from grpo_prm.trainer import LambdaGRPOConfig, LambdaGRPOTrainer
from grpo_prm.weights import token_weights

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore")


def make_batch(k, groups, length, vocab, seed=0):
    """Completions that share random prefixes within each group (as GRPO groups do), with duplicates."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(groups):
        base = torch.randint(1, vocab, (length,), generator=gen).tolist()
        for i in range(k):
            cut = int(torch.randint(0, length, (1,), generator=gen)) if i % 3 else length
            rows.append(base[:cut] + torch.randint(1, vocab, (length - cut,), generator=gen).tolist())
    return rows


def make_trainer(cls, config_cls, rows, k, vocab, tmp, hooks=None, **extra):
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(vocab)}, unk_token="w0"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="w0", pad_token="w0")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=vocab,
            n_positions=len(rows[0]) + 8,
            n_embd=256,
            n_layer=4,
            n_head=4,
            bos_token_id=0,
            eos_token_id=0,
        )
    )

    def rollout(prompts, trainer):
        return {"prompt_ids": [[1]] * len(rows), "completion_ids": rows, "logprobs": [[0.0] * len(r) for r in rows]}

    def reward(completion_ids, **kw):
        return [float(sum(r) % 2) for r in completion_ids]

    args = config_cls(
        output_dir=tmp,
        num_generations=k,
        per_device_train_batch_size=len(rows),
        bf16=False,
        use_cpu=True,
        report_to="none",
        max_completion_length=len(rows[0]),
        use_bias_correction_kl=False,
        disable_dropout=True,
        **extra,
    )  # same model work for both
    trainer = cls(
        model=model,
        reward_funcs=reward,
        args=args,
        processing_class=tokenizer,
        rollout_func=rollout,
        train_dataset=Dataset.from_dict({"prompt": ["w1"] * len(rows)}),
        **(hooks or {}),
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def step_seconds(trainer, n_rows):
    start = time.perf_counter()
    inputs = trainer._generate_and_score_completions([{"prompt": "w1"}] * n_rows)
    trainer.compute_loss(trainer.model, inputs).backward()
    trainer.model.zero_grad()
    return time.perf_counter() - start


def lambda_work_seconds(rows, k, repeats):
    """Best-of time of everything λ-GRPO adds per batch: |λ|, the weights and the metrics its runs log (the toy's and
    math runs' `BatchRecorder`, without a group recording)."""
    ids = torch.tensor(rows)
    mask = torch.ones_like(ids, dtype=torch.bool)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        n_shared = process_set_sizes_grouped(ids, mask, k)
        weights = token_weights(n_shared, k, "lambda")
        batch_metrics(ids, mask, n_shared, weights, k)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=6, help="completions per group")
    parser.add_argument("--groups", type=int, default=4, help="groups per batch")
    parser.add_argument("--length", type=int, default=256, help="tokens per completion")
    parser.add_argument("--vocab", type=int, default=512, help="vocabulary size of the stand-in model")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per trainer (median reported)")
    parser.add_argument("--out", default="benchmarks/results/train_step.json", help="JSON file to write")
    args = parser.parse_args(argv)

    rows = make_batch(args.k, args.groups, args.length, args.vocab)
    with tempfile.TemporaryDirectory() as tmp:
        grpo = make_trainer(GRPOTrainer, GRPOConfig, rows, args.k, args.vocab, tmp)
        lam = make_trainer(
            LambdaGRPOTrainer,
            LambdaGRPOConfig,
            rows,
            args.k,
            args.vocab,
            tmp,
            hooks={"on_batch": BatchRecorder()},
            method="lambda_grpo",
        )
        times = {"grpo": [], "lambda_grpo": []}
        for i in range(args.repeats + 1):  # first round is warm-up
            for name, trainer in (("grpo", grpo), ("lambda_grpo", lam)):
                t = step_seconds(trainer, len(rows))
                if i:
                    times[name].append(t)
    med = {name: statistics.median(v) for name, v in times.items()}
    extra = lambda_work_seconds(rows, args.k, args.repeats)
    result = {
        "k": args.k,
        "groups": args.groups,
        "length": args.length,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "median_s": med,
        "ratio_lambda_over_grpo": med["lambda_grpo"] / med["grpo"],
        "lambda_work_s": extra,
        "lambda_work_fraction_of_grpo_step": extra / med["grpo"],
    }
    print(
        f"step (median of {args.repeats}): TRL GRPO {med['grpo']:.4f} s, λ-GRPO {med['lambda_grpo']:.4f} s, "
        f"ratio {result['ratio_lambda_over_grpo']:.3f} (target ≤ 1.02); λ-specific work alone {extra * 1e3:.2f} ms "
        f"= {100 * result['lambda_work_fraction_of_grpo_step']:.3f}% of a GRPO step"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
