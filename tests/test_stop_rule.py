"""Tests for `grpo_prm.stop_rule`: EOS forced right after the first closed box, step by step and inside `generate`."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerFast

from grpo_prm.boxed import first_boxed, truncate_after_first_boxed
from grpo_prm.stop_rule import BoxedStopLogitsProcessor, truncate_ids_after_first_boxed
from tests.helpers import ScriptedLogitsProcessor

PROMPT = r"Put the answer in \boxed{}: "  # the system prompt's empty box must not stop anything


@pytest.fixture(scope="module")
def char_tokenizer():
    """Byte-level BPE without merges: every character is a token, so "\\boxed{" spans seven."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)} | {"<eos>": len(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


PIECES = ["<eos>", "So", "a\\bo", "xed{", "\\frac", "{1}", "{2", "}}", "}$.", "x", "\\", "box", "ed", "{", "}", "y"]


@pytest.fixture(scope="module")
def piece_tokenizer():
    """Word-level vocabulary of awkward pieces, to put token boundaries inside "\\boxed{" and after braces."""
    tok = Tokenizer(models.WordLevel({p: i for i, p in enumerate(PIECES)}, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def run_steps(processor, prompt_ids, rows, vocab_size, eos):
    """Feed `prompt_ids` then one token per row per step, as `generate` does.

    Returns, per row, how many completion tokens came before EOS was first forced (None if never), and checks that
    a forced row stays forced and that an unforced row's scores are untouched.
    """
    input_ids = torch.tensor([prompt_ids] * len(rows))
    forced_at = [None] * len(rows)
    for step in range(len(rows[0]) + 1):
        scores = processor(input_ids, torch.zeros(len(rows), vocab_size))
        for row in range(len(rows)):
            forced = scores[row, eos] == 0 and torch.isinf(scores[row]).sum() == vocab_size - 1
            assert forced or forced_at[row] is None, "a stopped row must stay stopped"
            assert forced or torch.equal(scores[row], torch.zeros(vocab_size)), "an unstopped row must be untouched"
            if forced and forced_at[row] is None:
                forced_at[row] = step
        if step < len(rows[0]):
            input_ids = torch.cat([input_ids, torch.tensor([[ids[step]] for ids in rows])], dim=1)
    return forced_at


def test_eos_forced_right_after_closing_brace(char_tokenizer):
    texts = [
        r"So \boxed{\frac{1}{2}} is it. And \boxed{3}.",  # nested braces; the second box is ignored
        r"First \boxed{x^{2}} then more",
        "No box at all, just text here.............",  # untouched
        r"\boxed{\{1,2\}}, done",  # escaped braces count as braces
        r"An open \boxed{x^{2} that never closes ...",  # untouched
    ]
    width = max(len(t) for t in texts)
    texts = [t.ljust(width) for t in texts]
    rows = [encode(char_tokenizer, t) for t in texts]
    assert all(len(ids) == width for ids in rows)  # one token per character
    processor = BoxedStopLogitsProcessor(char_tokenizer)
    forced_at = run_steps(
        processor, encode(char_tokenizer, PROMPT), rows, len(char_tokenizer), char_tokenizer.eos_token_id
    )
    expected = [len(truncate_after_first_boxed(t)) if first_boxed(t) is not None else None for t in texts]
    assert forced_at == expected
    assert expected[0] == len(r"So \boxed{\frac{1}{2}}") and expected[2] is None and expected[4] is None


def test_token_boundaries_inside_boxed_and_braces(piece_tokenizer):
    # "\boxed{" split as "a\bo" + "xed{" or "\" + "box" + "ed" + "{"; the closing token may hold two braces or "}$.".
    rows = [
        ["So", "x", "a\\bo", "xed{", "\\frac", "{1}", "{2", "}}", "x", "x"],  # box closes in "}}" (index 7)
        ["\\", "box", "ed", "{", "y", "}$.", "x", "x", "x", "x"],  # closes in "}$." (index 5)
        ["\\", "box", "x", "ed", "{", "y", "}", "x", "x", "x"],  # "\box" + "x" + "ed{": no box
        ["x", "\\", "box", "ed", "{", "{1}", "}", "x", "x", "x"],  # nested: closes at index 6
    ]
    ids = [piece_tokenizer.convert_tokens_to_ids(r) for r in rows]
    processor = BoxedStopLogitsProcessor(piece_tokenizer)
    forced_at = run_steps(processor, ids[2][:3], ids, len(PIECES), piece_tokenizer.eos_token_id)
    assert forced_at == [8, 6, None, 7]


def test_reused_processor_starts_over_on_a_new_generation(char_tokenizer):
    processor = BoxedStopLogitsProcessor(char_tokenizer)
    eos, vocab = char_tokenizer.eos_token_id, len(char_tokenizer)
    rows = [encode(char_tokenizer, r"\boxed{1} and so on")]
    assert run_steps(processor, encode(char_tokenizer, "Q: "), rows, vocab, eos) == [len(r"\boxed{1}")]
    # Same instance, new prompt one token longer than the last sequence would have been: no stale stop.
    rows = [encode(char_tokenizer, "plain text only")]
    assert run_steps(processor, encode(char_tokenizer, "Q" * 23), rows, vocab, eos) == [None]


def test_composes_with_generate(char_tokenizer):
    torch.manual_seed(0)
    eos = char_tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(char_tokenizer),
        n_positions=128,
        n_embd=16,
        n_layer=1,
        n_head=1,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    model = GPT2LMHeadModel(config).eval()
    texts = [r"Thus \boxed{\frac{1}{2}}. Then \boxed{9}", "no box here, so keep going until the limit"]
    prompt = encode(char_tokenizer, PROMPT)
    script = ScriptedLogitsProcessor([encode(char_tokenizer, t) for t in texts], len(prompt), eos)
    out = model.generate(
        input_ids=torch.tensor([prompt] * 2),
        attention_mask=torch.ones(2, len(prompt), dtype=torch.long),
        logits_processor=LogitsProcessorList([script, BoxedStopLogitsProcessor(char_tokenizer)]),
        do_sample=False,
        max_new_tokens=30,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    completions = out[:, len(prompt) :].tolist()
    stopped = encode(char_tokenizer, r"Thus \boxed{\frac{1}{2}}")
    assert completions[0] == stopped + [eos] * (len(completions[0]) - len(stopped))
    assert completions[0][len(stopped)] == eos
    assert completions[1] == encode(char_tokenizer, texts[1])[:30]  # untouched: runs to max_new_tokens


def test_truncate_ids_after_first_boxed(piece_tokenizer, char_tokenizer):
    ids = piece_tokenizer.convert_tokens_to_ids(["\\", "box", "ed", "{", "y", "}$.", "x", "x"])
    eos = piece_tokenizer.eos_token_id
    assert truncate_ids_after_first_boxed(ids, piece_tokenizer) == ids[:6] + [eos]  # "}$." is kept whole
    assert truncate_ids_after_first_boxed(ids[:6], piece_tokenizer) == ids[:6]  # closes in the last token
    no_box = piece_tokenizer.convert_tokens_to_ids(["\\", "box", "x", "ed", "{", "y", "}"])
    assert truncate_ids_after_first_boxed(no_box, piece_tokenizer) == no_box
    # Matches what generate with the processor produces, and decodes to the text cut after the brace.
    text = r"We get \boxed{2^{10}} so the end"
    cut = truncate_ids_after_first_boxed(encode(char_tokenizer, text), char_tokenizer, eos_token_id=7)
    assert cut[-1] == 7 and char_tokenizer.decode(cut[:-1]) == truncate_after_first_boxed(text)


class CountingLogitsProcessor(LogitsProcessor):
    """Counts `generate` steps (one call per generated position)."""

    calls = 0

    def __call__(self, input_ids, scores):
        CountingLogitsProcessor.calls += 1
        return scores


def test_trainer_rollouts_stop_inside_generate(char_tokenizer, tmp_path):
    """BoxedStopTrainer's HF rollouts, through TRL's own generate path, keep exactly the tokens that
    generate-then-truncate keeps, and generation ends at the last row's forced EOS: no token past a box is made."""
    from datasets import Dataset

    from grpo_prm.math_rl import BoxedStopTrainer
    from grpo_prm.trainer import LambdaGRPOConfig

    torch.manual_seed(0)
    eos = char_tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(char_tokenizer),
        n_positions=128,
        n_embd=16,
        n_layer=1,
        n_head=1,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    model = GPT2LMHeadModel(config)
    texts = [r"Thus \boxed{\frac{1}{2}}. Then \boxed{9} and more text", r"so \boxed{7}, but then a long tail of text"]
    prompt = encode(char_tokenizer, PROMPT)
    script = ScriptedLogitsProcessor([encode(char_tokenizer, t) for t in texts], len(prompt), eos)

    class ScriptedTrainer(BoxedStopTrainer):
        def stop_processors(self):
            return [script, *super().stop_processors(), CountingLogitsProcessor()]

    max_new = 60
    args = LambdaGRPOConfig(
        output_dir=str(tmp_path),
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=max_new,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        temperature=1.0,
    )
    trainer = ScriptedTrainer(
        model=model,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["Q", "Q"]}),
        processing_class=char_tokenizer,
    )
    CountingLogitsProcessor.calls = 0
    kept, logprobs = trainer._generate_single_turn([prompt, prompt], None, {}, 2)

    # Reference: generate with the script alone to the length limit, then cut after the first box.
    out = model.generate(
        input_ids=torch.tensor([prompt] * 2),
        attention_mask=torch.ones(2, len(prompt), dtype=torch.long),
        logits_processor=LogitsProcessorList([script]),
        do_sample=False,
        max_new_tokens=max_new,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    full = [row[len(prompt) :].tolist() for row in out]
    reference = [truncate_ids_after_first_boxed(row, char_tokenizer) for row in full]
    assert kept == reference
    assert [char_tokenizer.decode(k[:-1]) for k in kept] == [truncate_after_first_boxed(t) for t in texts]
    assert logprobs is None
    # One generate step per position of the longest kept completion (its forced EOS included), not max_new.
    assert CountingLogitsProcessor.calls == max(len(k) for k in kept) < max_new
