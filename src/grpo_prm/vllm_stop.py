"""The authors' BoxedLP stop rule inside vLLM's V1 engine (github.com/coli-saar/grpo-prm): EOS right after the first
closed `\\boxed{}`.

vLLM's V1 engine takes logits processors only when it is built, and TRL's colocate set-up builds its `LLM` without
any; vLLM also loads every processor that an installed package declares in the entry-point group
`vllm.logits_processors`, which is how `BoxedStopVLLM` reaches TRL's engine (pyproject.toml), a `trl vllm-serve`
server and any `LLM` of ours. It is off unless a request asks for it: `SamplingParams(extra_args=request_args(eos))`,
so other engines in the environment (lm-eval's) are unchanged. Stop strings cannot count braces, hence a processor.

The rule and its tokens are those of `grpo_prm.stop_rule.BoxedStopLogitsProcessor` (HF `generate`): the text of the
generated ids (each id decoded alone) is fed to a `BoxedScanner`, and once the box has closed every later step puts
all mass on EOS. The forced EOS is not a sample of the policy: its engine log-prob (0 after processing) is replaced
by NaN in the trainer (`grpo_prm.math_rl.BoxedStopTrainer`), which TRL's importance-sampling correction ignores.
"""

import torch
from transformers import AutoTokenizer
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from grpo_prm.boxed import BoxedScanner
from grpo_prm.stop_rule import token_texts

EXTRA_ARG = "grpo_prm_boxed_stop_eos"  # SamplingParams.extra_args key: the EOS id to force


def request_args(eos_token_id: int) -> dict:
    """`SamplingParams.extra_args` that switch the stop rule on for a request, forcing `eos_token_id`."""
    return {EXTRA_ARG: int(eos_token_id)}


class BoxedStopVLLM(AdapterLogitsProcessor):
    """vLLM V1 logits processor: per request with `extra_args[EXTRA_ARG]`, EOS forced after the first closed box."""

    def __init__(self, vllm_config, device, is_pin_memory):
        super().__init__(vllm_config, device, is_pin_memory)
        self._tokenizer_name = vllm_config.model_config.tokenizer
        self._tokenizer = None  # loaded on the first request that asks for the rule
        self._texts: dict[int, str] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # forcing EOS changes the greedy choice

    def new_req_logits_processor(self, params):
        eos = (params.extra_args or {}).get(EXTRA_ARG)
        if eos is None:
            return None
        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_name)
        scanner, seen = BoxedScanner(), [0]

        def stop_after_box(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            if not scanner.closed and len(output_ids) > seen[0]:
                scanner.feed("".join(token_texts(self._tokenizer, list(output_ids[seen[0] :]), self._texts)))
                seen[0] = len(output_ids)
            if scanner.closed:
                logits = torch.full_like(logits, -float("inf"))
                logits[eos] = 0.0
            return logits

        return stop_after_box
