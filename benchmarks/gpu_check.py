"""One-command GPU check of the paper profile's costs on one NVIDIA GPU, without the Hub
(docs/operations.md, "GPU check").

    bash benchmarks/gpu_check.sh            # or: make gpu-check; writes benchmarks/results/gpu_check.json

A Llama of the tiny model's recipe at a larger width (`grpo_prm.tiny_model`, random weights, built here: no download)
stands in for the 1.5B policy. Measured side by side in one run, at the paper's rollout settings (App. C: 4 prompts
× k = 6 completions, T 0.75, top-p 1, 4,096 new tokens, the authors' boxed stop rule):

- rollout tokens/s of vLLM (the paper profile's engine) and of HF `generate` (the authors'), their ratio;
- tokens generated and kept under the stop rule (a random model seldom closes a box, so most run to the budget);
- one λ-GRPO optimiser step (loss forward + backward on those completions, Adam) under `precision: mixed` and
  `fp32`, their ratio (the GPU cost plan assumes BF16 / FP32 peak, about 15x; docs/operations.md, "GPU cost plan");
- the λ-specific share of a step: |λ|, weights and logged tree statistics on the batch, over the mixed step;
- peak GPU memory of each phase.

Without a CUDA GPU, or without vLLM, it stops at once with one line and exit status 1, writing nothing.
"""

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

NEEDS = "run it on a machine with one NVIDIA GPU and the GPU stack (envs/gpu.txt: torch with CUDA, vLLM)"


def refuse_without_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        sys.exit(f"gpu_check: no CUDA GPU visible (torch {torch.__version__}, cuda available: False); {NEEDS}")
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        sys.exit(f"gpu_check: vLLM is not importable ({type(e).__name__}: {e}); {NEEDS}")


def build_model(folder: Path, hidden: int, layers: int, heads: int, max_length: int) -> None:
    """The stand-in policy: the tiny model's tokenizer (trained on offline problems) and Llama, wider and deeper."""
    from grpo_prm.data import SYSTEM_PROMPT
    from grpo_prm.tiny_model import _tiny_model, sft_completion, train_tokenizer
    from grpo_prm.word_problems import offline_splits

    train, _, _ = offline_splits(500, 1, 0, seed=0)
    texts = [SYSTEM_PROMPT] + [r["problem"] + sft_completion(r) for r in train]
    tokenizer = train_tokenizer(texts, vocab_size=1024, max_length=max_length)
    model = _tiny_model(tokenizer, hidden_size=hidden, layers=layers, heads=heads, max_length=max_length, seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def prompts(tokenizer, n: int) -> list[list[int]]:
    from grpo_prm.data import build_prompt
    from grpo_prm.word_problems import offline_splits

    rows = offline_splits(n, 1, 0, seed=1)[0][:n]
    texts = [
        tokenizer.apply_chat_template(build_prompt(r["problem"]), add_generation_prompt=True, tokenize=False)
        for r in rows
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def kept_tokens(completions: list[list[int]], tokenizer) -> int:
    from grpo_prm.stop_rule import first_boxed_end

    ends = [first_boxed_end(c, tokenizer) for c in completions]
    return sum(len(c) if e is None else min(e + 1, len(c)) for c, e in zip(completions, ends))  # + the forced EOS


def vllm_rollout(folder: Path, prompt_ids, k: int, settings: dict, eos: int) -> tuple[dict, list[list[int]]]:
    import torch
    from vllm import LLM, SamplingParams

    from grpo_prm.vllm_stop import request_args

    llm = LLM(
        model=str(folder),
        dtype="bfloat16",
        gpu_memory_utilization=0.35,
        seed=0,
        max_model_len=settings["max_tokens"] + 1024,
        enforce_eager=False,
    )
    params = SamplingParams(
        n=k,
        temperature=settings["temperature"],
        top_p=settings["top_p"],
        max_tokens=settings["max_tokens"],
        seed=0,
        extra_args=request_args(eos),
    )
    prompt_list = [{"prompt_token_ids": p} for p in prompt_ids]
    llm.generate(prompt_list[:1], SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outputs = llm.generate(prompt_list, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    completions = [list(o.token_ids) for out in outputs for o in out.outputs]
    used = torch.cuda.mem_get_info()
    del llm
    gc.collect()
    torch.cuda.empty_cache()
    generated = sum(map(len, completions))
    return {
        "tokens_per_s": generated / seconds,
        "seconds": seconds,
        "generated_tokens": generated,
        "gpu_memory_used_gib": (used[1] - used[0]) / 2**30,
    }, completions


def hf_rollout(folder: Path, prompt_ids, k: int, settings: dict) -> tuple[dict, list[list[int]]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    from grpo_prm.stop_rule import BoxedStopLogitsProcessor

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).cuda().eval()
    torch.cuda.reset_peak_memory_stats()
    width = max(map(len, prompt_ids))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompt_ids]).cuda()
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompt_ids])[:, None]).long().cuda()
    torch.manual_seed(0)
    start = time.perf_counter()
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=True,
        temperature=settings["temperature"],
        top_p=settings["top_p"],
        max_new_tokens=settings["max_tokens"],
        num_return_sequences=k,
        logits_processor=LogitsProcessorList([BoxedStopLogitsProcessor(tokenizer)]),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    eos = tokenizer.eos_token_id
    completions = []
    for row in out[:, width:].tolist():
        completions.append(row[: row.index(eos) + 1] if eos in row else row)
    generated = sum(map(len, completions))
    peak = torch.cuda.max_memory_allocated() / 2**30
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return {
        "tokens_per_s": generated / seconds,
        "seconds": seconds,
        "generated_tokens": generated,
        "peak_gpu_memory_gib": peak,
    }, completions


def step_times(folder: Path, prompt_ids, completions, k: int, precision: str, steps: int) -> dict:
    """Seconds of λ-GRPO optimiser steps on fixed completions (no generation: a rollout function returns them)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from grpo_prm.trainer import LambdaGRPOTrainer, authors_grpo_config

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    batch = len(completions)

    def rollout(prompts, trainer):
        return {
            "prompt_ids": [prompt_ids[i // k] for i in range(batch)],
            "completion_ids": completions,
            "logprobs": [[0.0] * len(c) for c in completions],
        }

    def reward(completion_ids, **kw):  # any reward that varies within groups, so the advantages are not all zero
        return [float(sum(c) % 2) for c in completion_ids]

    class Clock(TrainerCallback):
        def __init__(self):
            self.seconds, self.start = [], None

        def on_step_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory() as out:
        args = authors_grpo_config(
            "token",
            precision,
            output_dir=out,
            method="lambda_grpo",
            beta=0.0,
            learning_rate=1e-6,
            num_generations=k,
            per_device_train_batch_size=batch,
            max_steps=steps,
            max_completion_length=max(map(len, completions)),
            temperature=0.75,
            save_strategy="no",
            disable_tqdm=True,
        )
        trainer = LambdaGRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=args,
            processing_class=tokenizer,
            rollout_func=rollout,
            train_dataset=Dataset.from_dict({"prompt": ["x"] * batch * steps}),
        )
        clock = Clock()
        trainer.add_callback(clock)
        torch.cuda.reset_peak_memory_stats()
        trainer.train()
        peak = torch.cuda.max_memory_allocated() / 2**30
    del trainer, model
    gc.collect()
    torch.cuda.empty_cache()
    later = clock.seconds[1:] or clock.seconds  # the first step pays for CUDA/kernel warm-up
    return {"step_s": statistics.median(later), "steps_timed": len(later), "peak_gpu_memory_gib": peak}


def lambda_seconds(completions, k: int, repeats: int = 5) -> float:
    """Best-of time of what λ-GRPO adds per batch on the GPU: |λ|, the weights and the logged tree statistics."""
    import torch

    from grpo_prm.process_sets import process_set_sizes_grouped
    from grpo_prm.recording import batch_metrics
    from grpo_prm.weights import token_weights

    width = max(map(len, completions))
    ids = torch.tensor([c + [0] * (width - len(c)) for c in completions]).cuda()
    mask = (torch.arange(width)[None, :] < torch.tensor(list(map(len, completions)))[:, None]).cuda()
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        n_shared = process_set_sizes_grouped(ids, mask, k)
        weights = token_weights(n_shared, k, "lambda")
        batch_metrics(ids, mask, n_shared, weights, k)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    parser.add_argument("--hidden", type=int, default=1024, help="width of the stand-in Llama")
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (paper 4)")
    parser.add_argument("--k", type=int, default=6, help="completions per prompt (paper 6)")
    parser.add_argument("--max-new-tokens", type=int, default=4096, help="paper 4096")
    parser.add_argument("--steps", type=int, default=3, help="optimiser steps timed per precision (first dropped)")
    args = parser.parse_args(argv)
    refuse_without_gpu()
    import torch
    import vllm

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    settings = {"temperature": 0.75, "top_p": 1.0, "max_tokens": args.max_new_tokens}  # paper App. C
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        build_model(folder, args.hidden, args.layers, args.heads, args.max_new_tokens + 1024)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        prompt_ids = prompts(tokenizer, args.prompts)
        v, v_completions = vllm_rollout(folder, prompt_ids, args.k, settings, tokenizer.eos_token_id)
        h, h_completions = hf_rollout(folder, prompt_ids, args.k, settings)
        v["kept_tokens"], h["kept_tokens"] = (
            kept_tokens(v_completions, tokenizer),
            kept_tokens(h_completions, tokenizer),
        )
        mixed = step_times(folder, prompt_ids, v_completions, args.k, "mixed", args.steps)
        fp32 = step_times(folder, prompt_ids, v_completions, args.k, "fp32", args.steps)
        lam = lambda_seconds(v_completions, args.k)
        params = sum(
            p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(folder).parameters()
        )
    result = {
        "gpu": torch.cuda.get_device_name(0),
        "versions": {"torch": torch.__version__, "vllm": vllm.__version__, "cuda": torch.version.cuda},
        "model": {
            "kind": "tiny-model recipe, random weights",
            "hidden": args.hidden,
            "layers": args.layers,
            "heads": args.heads,
            "parameters": params,
        },
        "settings": settings | {"prompts": args.prompts, "k": args.k, "stop_rule": "first closed \\boxed{}"},
        "rollout": {"vllm": v, "hf_generate": h, "vllm_over_hf_tokens_per_s": v["tokens_per_s"] / h["tokens_per_s"]},
        "step": {"mixed": mixed, "fp32": fp32, "fp32_over_mixed": fp32["step_s"] / mixed["step_s"]},
        "lambda_share_of_mixed_step": lam / mixed["step_s"],
        "lambda_seconds": lam,
        "peak_gpu_memory_gib": max(h["peak_gpu_memory_gib"], mixed["peak_gpu_memory_gib"], fp32["peak_gpu_memory_gib"]),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
