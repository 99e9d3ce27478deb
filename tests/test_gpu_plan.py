"""The GPU cost plan (docs/operations.md, "GPU cost plan"): the roofline arithmetic and its precision dependence."""

from pathlib import Path

import pytest
import yaml

from grpo_prm import gpu_plan
from grpo_prm.config import validate_config

PAPER = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"


def test_training_time_follows_the_precision_peak():
    model = gpu_plan.MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]
    mixed, fp32 = gpu_plan.train_seconds(model, 1e6, "mixed"), gpu_plan.train_seconds(model, 1e6, "fp32")
    assert mixed == pytest.approx(8 * 1.78e9 * 1e6 / (989e12 * 0.4))
    assert fp32 / mixed == pytest.approx(989 / 67)


def test_paper_profile_plan_has_every_job_and_its_precision():
    config = validate_config(yaml.safe_load(PAPER.read_text()))
    jobs = {row["job"]: row for row in gpu_plan.plan(config)}
    assert set(jobs) == {
        "train_math (qwen, one cell)",
        "evaluate open_rs (qwen, one checkpoint)",
        "evaluate sober (qwen, one checkpoint)",
        "train_math (llama, one cell)",
        "evaluate open_rs (llama, one checkpoint)",
        "evaluate sober (llama, one checkpoint)",
        "train_overlap (k = 6)",
        "train_overlap (k = 36)",
    }
    cell = jobs["train_math (qwen, one cell)"]
    assert cell["rollout_tokens"] == 1000 * 24 * 4096
    # one sample per problem (open_rs); sober: 10 seeds on AIME24/AMC23, 3 on the others (Hochlehnert et al. 2025)
    assert jobs["evaluate open_rs (qwen, one checkpoint)"]["validation_tokens"] == 1517 * 32768
    sober = (10 * (30 + 40) + 3 * (500 + 272 + 675)) * 32768
    assert jobs["evaluate sober (qwen, one checkpoint)"]["validation_tokens"] == sober
    config["math"]["train"]["precision"] = "fp32"
    assert gpu_plan.plan(config)[0]["h100_hours"] > 2 * cell["h100_hours"]


@pytest.mark.parametrize(
    "text, expected", [(None, "No such file"), ("a: [", "not YAML"), ("math: {}", "not a GPU profile")]
)
def test_bad_profile_is_one_line(tmp_path, text, expected):
    path = tmp_path / "profile.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        gpu_plan.main([str(path)])
    assert expected in str(exc.value.code) and "\n" not in str(exc.value.code)
