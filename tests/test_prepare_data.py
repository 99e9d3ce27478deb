"""The math runs' data files and the math section of the config."""

import json

import datasets
import pytest
import yaml

from grpo_prm.config import ConfigError, math_learning_rate, validate_config
from grpo_prm.data import read_problems
from grpo_prm.prepare_data import main, prepare_offline, prepare_openrs
from tests.helpers import ROOT


def test_offline_files_are_disjoint_and_recorded(tmp_path):
    out = prepare_offline(tmp_path / "d", 30, 10, 5, seed=3, min_steps=1, max_steps=2, max_operand=10)
    sets = {name: read_problems(str(out / f"{name}.jsonl")) for name in ("train", "val", "test")}
    assert [len(v) for v in sets.values()] == [30, 10, 5]
    problems = [{r["problem"] for r in rows} for rows in sets.values()]
    assert not (problems[0] & problems[1] or problems[0] & problems[2] or problems[1] & problems[2])
    record = json.loads((out / "split.json").read_text())
    assert record["val_ids"] == [r["id"] for r in sets["val"]] and record["seed"] == 3
    again = prepare_offline(tmp_path / "e", 30, 10, 5, seed=3, min_steps=1, max_steps=2, max_operand=10)
    assert (again / "train.jsonl").read_text() == (out / "train.jsonl").read_text()


def test_openrs_local_split(tmp_path):
    rows = [{"problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(20)]
    datasets.Dataset.from_list(rows).to_json(tmp_path / "open-rs" / "train.jsonl")
    out = prepare_openrs(tmp_path / "d", n_val=5, seed=0, local_dir=str(tmp_path / "open-rs"))
    record = json.loads((out / "split.json").read_text())
    assert (record["source"], record["n_train"], record["n_val"], record["n_test"]) == ("openrs", 15, 5, 0)
    assert sorted(record["train_ids"] + record["val_ids"]) == sorted(str(i) for i in range(20))


def test_cli_refuses_a_missing_local_copy(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["openrs", "--out-dir", str(tmp_path / "d"), "--local-dir", str(tmp_path / "nope")])
    assert "nope" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "d").exists()


def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(run_models=["gpt5"]), "math.run_models: 'gpt5' is not a key of math.models"),
        (lambda m: m.update(betas=[0.0, 0.1]), "math.models.tiny.learning_rates: no lr for beta 0.1"),
        (
            lambda m: m["models"].update(q={"source": "hub", "learning_rates": [{"beta": 0.0, "lr": 1e-6}]}),
            "math.models.q: source hub needs hub_id and a pinned revision",
        ),
        (lambda m: m["train"].update(stepz=3), "unknown config key 'math.train.stepz'"),
        (lambda m: m["models"]["tiny"].update(source="gguf"), "math.models.tiny.source: 'gguf' is not one of"),
    ],
)
def test_bad_math_config_is_named(change, message):
    config = default_config()
    change(config["math"])
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[")):
        validate_config(config)


def test_learning_rate_per_beta():
    paper = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    assert math_learning_rate(paper["math"], "qwen", 0.04) == 1e-6
    assert math_learning_rate(paper["math"], "llama", 0.0) == 5e-7
