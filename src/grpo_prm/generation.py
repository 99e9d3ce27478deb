"""Greedy generation with HF `generate` on the paper's prompt, and its score on rows with known answers.

The prompt is the authors' (`grpo_prm.data.build_prompt`: the system message asking for `\\boxed{}`, then the
problem) under the tokenizer's chat template. Used by math RL's validation (`grpo_prm.math_rl`, with the stop
rule), by the tiny SFT build's held-out score (`grpo_prm.tiny_model`) and by the stop-rule benchmark.
"""

import torch

from grpo_prm.boxed import last_boxed
from grpo_prm.data import build_prompt


def greedy_completions(
    model, tokenizer, rows: list[dict], max_new_tokens: int, batch_size: int, logits_processor=None
) -> list[str]:
    """Greedy completions of `rows` (prompt: the chat template with the paper's system message), in batches.

    Left padding for batched generation; the tokenizer's padding side is restored and the model left in eval mode.
    """
    side, tokenizer.padding_side, completions = tokenizer.padding_side, "left", []
    model.eval()
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        texts = [
            tokenizer.apply_chat_template(build_prompt(r["problem"]), add_generation_prompt=True, tokenize=False)
            for r in batch
        ]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            out = model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                logits_processor=logits_processor,
                pad_token_id=tokenizer.pad_token_id,
            )
        completions += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    tokenizer.padding_side = side
    return completions


def evaluate_greedy(model, tokenizer, rows: list[dict], max_new_tokens: int = 64, batch_size: int = 25) -> dict:
    """Greedy decoding of `rows`: share of completions with a `\\boxed{}` and of exactly right boxed answers.

    Returns:
        `dict`: `{"n", "boxed_rate", "accuracy"}` (exact string match of the last boxed content with `answer`).
    """
    answers = [last_boxed(t) for t in greedy_completions(model, tokenizer, rows, max_new_tokens, batch_size)]
    boxed = sum(a is not None for a in answers)
    correct = sum(a is not None and a.strip() == str(r["answer"]).strip() for a, r in zip(answers, rows))
    n = max(len(rows), 1)
    return {"n": len(rows), "boxed_rate": boxed / n, "accuracy": correct / n}
