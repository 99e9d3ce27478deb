"""The authors' stop rule: generation ends right after the first closed `\\boxed{…}` (the authors' code,
github.com/coli-saar/grpo-prm, its `BoxedLP` logits processor).

The rule fires in training rollouts and in validation, also inside a `<think>` block, and so shapes completion
lengths and the overlap statistics of §3. It runs inside the engine, so no token past the box is generated:

- **HF `generate`:** `BoxedStopLogitsProcessor` forces EOS in every row whose generated text holds a closed box.
  Unlike the authors' `BoxedLP`, which re-decodes each whole sequence at every step, it decodes only the new
  tokens (each vocabulary id once) and keeps a brace counter per row.
- **vLLM:** stop strings cannot count braces, so `grpo_prm.vllm_stop` holds the same rule as a vLLM V1 logits
  processor, switched on per request.
- **After the fact** (guards, analyses): the ids with `truncate_ids_after_first_boxed` (which appends EOS, as
  `generate` would have); `first_boxed_end` says where. The text: `grpo_prm.boxed.truncate_after_first_boxed`.

Brace counting (shared with the reward) is `grpo_prm.boxed.BoxedScanner`.
"""

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase

from grpo_prm.boxed import BoxedScanner


def token_texts(tokenizer: PreTrainedTokenizerBase, ids: list[int], cache: dict[int, str]) -> list[str]:
    """Text of each id decoded alone (special tokens as ""), memoised in `cache`.

    Decoding alone keeps every ASCII character of a token, which is all brace counting needs (a byte-level token
    holding part of a multi-byte character decodes to U+FFFD, never to a brace).
    """
    missing = [i for i in set(ids) if i not in cache]
    if missing:
        cache.update(zip(missing, tokenizer.batch_decode([[i] for i in missing], skip_special_tokens=True)))
    return [cache[i] for i in ids]


class BoxedStopLogitsProcessor(LogitsProcessor):
    """Force EOS in each row once its generated text contains a closed `\\boxed{…}` (the authors' `BoxedLP`).

    The prompt is whatever `input_ids` hold at the first call of a generation (as in `generate`, where prompts are
    left-padded to one length), so a `\\boxed{}` in the system prompt does not count. A later call starts a new
    generation unless its `input_ids` extend the previous ones, so one instance can serve many `generate` calls.
    Rows are independent; beam search, which reorders rows, is not supported.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            Decodes the generated ids.
        eos_token_id (`int`, *optional*):
            The token to force; defaults to `tokenizer.eos_token_id` (the authors' choice).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, eos_token_id: int | None = None):
        self.tokenizer = tokenizer
        self.eos_token_id = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
        self._texts: dict[int, str] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the current generation; the next call treats its `input_ids` as the prompt."""
        self._seen = None  # (B, T_seen) input_ids of the previous call
        self._scanners: list[BoxedScanner] = []
        self._stopped: list[int] = []  # rows whose box has closed

    def _continues(self, input_ids: torch.LongTensor) -> bool:
        # Comparing the whole previous sequence (one device op per step) rather than its length alone keeps a
        # reused instance from carrying a stopped row into a new generation whose prompt happens to be one longer.
        seen = self._seen
        return (
            seen is not None
            and input_ids.shape[0] == seen.shape[0]
            and input_ids.shape[1] > seen.shape[1]
            and torch.equal(input_ids[:, : seen.shape[1]], seen)
        )

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self._continues(input_ids):
            self.reset()
            self._scanners = [BoxedScanner() for _ in range(input_ids.shape[0])]
        else:
            new_ids = input_ids[:, self._seen.shape[1] :].tolist()  # (B, n_new), usually n_new = 1
            for row, ids in enumerate(new_ids):
                scanner = self._scanners[row]
                if scanner.closed:
                    continue
                if scanner.feed("".join(token_texts(self.tokenizer, ids, self._texts))) is not None:
                    self._stopped.append(row)
        self._seen = input_ids
        if self._stopped:
            scores[self._stopped] = -float("inf")
            scores[self._stopped, self.eos_token_id] = 0.0
        return scores


def first_boxed_end(token_ids: list[int], tokenizer: PreTrainedTokenizerBase) -> int | None:
    """Number of completion tokens up to and including the one that closes the first `\\boxed{…}`; None if none."""
    scanner = BoxedScanner()
    for position, text in enumerate(token_texts(tokenizer, list(token_ids), {})):
        if scanner.feed(text) is not None:
            return position + 1
    return None


def truncate_ids_after_first_boxed(
    token_ids: list[int], tokenizer: PreTrainedTokenizerBase, eos_token_id: int | None = None
) -> list[int]:
    """Completion ids cut after the token that closes the first `\\boxed{…}`, then EOS.

    This is what `generate` with `BoxedStopLogitsProcessor` returns: the closing token is kept whole (it may carry
    characters after the brace) and EOS replaces the next token. Ids without a closed box, or whose box closes in
    their last token (the length limit came first), are returned unchanged; so are ids the engine already stopped.

    Args:
        token_ids (`list[int]`): One completion's ids, without the prompt.
        tokenizer (`PreTrainedTokenizerBase`): Decodes the ids.
        eos_token_id (`int`, *optional*): Defaults to `tokenizer.eos_token_id`.

    Returns:
        `list[int]`: the cut ids.
    """
    eos_token_id = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
    cut = first_boxed_end(token_ids, tokenizer)
    if cut is None or cut >= len(token_ids):
        return list(token_ids)
    return list(token_ids[:cut]) + [eos_token_id]
