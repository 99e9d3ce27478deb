"""A corpus of bad inputs: configs, command lines and data files.

Each case must end with one line naming the culprit (no traceback), a non-zero exit status, and nothing written or
removed: a math_rl rerun that fails leaves the earlier finished run, its model and its data exactly as they were.
"""

import dataclasses
import errno
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grpo_prm import checkpoints, evaluate, math_rl, overlap, prepare_data, toy
from grpo_prm import config as config_cli
from tests.helpers import refusal, snapshot

ROOT = Path(__file__).resolve().parents[1]


# ---- config files (python -m grpo_prm.config; the workflow runs the same validation)
def _config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _with(path, value):
    def edit(c):
        *parents, leaf = path
        node = c
        for key in parents:
            node = node[key]
        node[leaf] = value
        return c

    return edit


CONFIG_CASES = {
    "profile_dotdot": (_with(["profile"], ".."), "profile: '..' does not match"),
    "profile_newline": (_with(["profile"], "run\n"), "profile: 'run\\n' does not match"),
    "profile_leading_dash": (_with(["profile"], "-rf"), "profile: '-rf'"),
    "profile_slash": (_with(["profile"], "a/b"), "profile: 'a/b'"),
    "profile_shell": (_with(["profile"], "x$(touch X)"), "profile: 'x$(touch X)'"),
    "model_named_dotdot": (
        lambda c: c["math"]["models"].update({"..": c["math"]["models"]["tiny"]}) or c,
        "math.models: '..' does not match",
    ),
    "run_model_dotdot": (_with(["math", "run_models"], [".."]), "math.run_models[0]: '..'"),
    "overlap_model_dotdot": (_with(["overlap", "model"], ".."), "overlap.model: '..'"),
    "hub_revision_shell": (
        _with(["math", "models", "tiny", "revision"], "main$(touch X)"),
        "math.models.tiny.revision: 'main$(touch X)'",
    ),
    "hub_id_quote": (_with(["math", "models", "tiny", "hub_id"], "org/'m"), "math.models.tiny.hub_id"),
    "token_env_space": (_with(["math", "models", "tiny", "token_env"], "HF TOKEN"), "math.models.tiny.token_env"),
    "eval_revision_shell": (_with(["eval", "revisions"], {"aime24": "a;touch X"}), "eval.revisions.aime24"),
    "eval_revision_unknown_task": (_with(["eval", "revisions"], {"gsm9k": "abc"}), "eval.revisions: 'gsm9k'"),
    "steps_float": (_with(["math", "train", "steps"], 2.0), "math.train.steps: 2.0 is not of type 'integer'"),
    "steps_zero": (_with(["math", "train", "steps"], 0), "math.train.steps: 0 is less than the minimum of 1"),
    "save_every_zero": (_with(["math", "train", "save_every"], 0), "math.train.save_every: 0"),
    "val_every_zero": (_with(["math", "train", "val_every"], 0), "math.train.val_every: 0"),
    "toy_steps_negative": (_with(["toy", "steps"], -3), "toy.steps: -3"),
    "lr_nan": (
        _with(["math", "models", "tiny", "learning_rates"], [{"beta": 0.0, "lr": math.nan}]),
        "math.models.tiny.learning_rates[0].lr: nan is not a finite number",
    ),
    "toy_lr_inf": (_with(["toy", "learning_rate"], math.inf), "toy.learning_rate: inf is not a finite number"),
    "temperature_inf": (_with(["math", "train", "temperature"], math.inf), "math.train.temperature: inf"),
    "reward_timeout_nan": (_with(["math", "train", "reward_timeout_s"], math.nan), "math.train.reward_timeout_s: nan"),
    "reward_timeout_negative": (
        _with(["math", "train", "reward_timeout_s"], -1.0),
        "math.train.reward_timeout_s: -1.0",
    ),
    "reward_workers_zero": (_with(["math", "train", "reward_workers"], 0), "math.train.reward_workers: 0"),
    "eval_limit_zero": (_with(["eval", "limit"], 0), "eval.limit: 0 is less than the minimum of 1"),
    "eval_batch_size_word": (_with(["eval", "batch_size"], "many"), "eval.batch_size: 'many'"),
    "tiny_model_unknown_key": (
        _with(["toy", "tiny_model"], {"layers": 2}),
        "unknown config key 'toy.tiny_model.layers'",
    ),
    "record_groups_typo": (_with(["math", "train", "record_groups"], "ture"), "math.train.record_groups: 'ture'"),
    "betas_nan": (_with(["math", "betas"], [math.nan]), "math.betas[0]: nan is not a finite number"),
    "math_method_unknown": (_with(["math", "methods"], ["grpo", "ppo"]), "math.methods[1]: 'ppo' is not one of"),
    "math_method_toy_only": (
        _with(["math", "methods"], ["lambda_explicit_prm_mc"]),
        "math.methods[0]: 'lambda_explicit_prm_mc' is toy-only",
    ),
    "overlap_method_toy_only": (
        _with(["overlap", "method"], "explicit_prm_exact"),
        "overlap.method: 'explicit_prm_exact' is toy-only",
    ),
    "model_named_on_yaml11": (
        lambda c: c["math"]["models"].update({True: c["math"]["models"]["tiny"]}) or c,
        "math.models: key True is not a name (YAML reads unquoted on/off/yes/no as booleans",
    ),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_config_is_refused(case, tmp_path, capsys, monkeypatch):
    edit, expected = CONFIG_CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(edit(_config())))
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    status, message = refusal(capsys, config_cli.main, [str(path)])
    assert status != 0 and message.startswith("error: ") and expected in message, message
    assert snapshot(tmp_path) == before


CONFIG_FILE_CASES = {
    "malformed_yaml": (b"profile: [default\ntoy: {", "line 2 column 4: malformed YAML"),
    "not_utf8": (b"profile: d\xe9faut\n", "not UTF-8 text (byte 10)"),
    "top_level_list": (b"- profile\n- toy\n", "not a mapping of config keys"),
    "tab_indented": (b"toy:\n\tsteps: 3\n", "malformed YAML"),
    "key_on_yaml11": (b"math:\n  models:\n    on: {source: tiny}\n", "math.models: key True is not a name"),
    "not_utf8_in_a_comment": (b"# r\xe9sum\xe9\nprofile: x\n", "not UTF-8 text (byte 3)"),
}


@pytest.mark.parametrize("case", CONFIG_FILE_CASES)
def test_unreadable_config_file_is_one_line(case, tmp_path, capsys):
    text, expected = CONFIG_FILE_CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(text)
    before = snapshot(tmp_path)
    status, message = refusal(capsys, config_cli.main, [str(path)])
    assert status != 0 and str(path) in message and expected in message, message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["missing.yaml"], "config file not found: missing.yaml"),
        ([str(ROOT / "config" / "config.yaml"), "--set", "toy.steps"], "--set 'toy.steps': use KEY.SUB=VALUE"),
        ([str(ROOT / "config" / "config.yaml"), "--set", "toy.steps=[1"], "--set toy.steps"),
        (
            [str(ROOT / "config" / "config.yaml"), "--set", "profile.x=1"],
            "--set 'profile.x=1': profile is not a section",
        ),
    ],
)
def test_bad_config_arguments(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, message = refusal(capsys, config_cli.main, argv)
    assert status != 0 and expected in message, message
    assert snapshot(tmp_path) == {str(tmp_path): None}


# ---- math_rl reruns over a finished run: every way to fail at start leaves it as it was
@pytest.fixture
def finished(tmp_path, checkpoint, data):
    """A finished run's folder (the files a run leaves), and private copies of the model and data folders."""
    model, rows = tmp_path / "model", tmp_path / "data"
    shutil.copytree(checkpoint, model)
    shutil.copytree(data, rows)
    run = tmp_path / "run"
    for name in ("best", "final"):
        shutil.copytree(checkpoint, run / name)
    (run / "metrics.jsonl").write_text('{"step": 0, "val/accuracy": 0.5}\n')
    (run / "groups.parquet").write_bytes(b"PAR1 stand-in")
    (run / "config.json").write_text('{"steps": 4}')
    return tmp_path


def _math_argv(root: Path, **flags) -> list[str]:
    base = {
        "model": root / "model",
        "train": root / "data" / "train.jsonl",
        "val": root / "data" / "val.jsonl",
        "out": root / "run",
        "steps": 4,
        "save_every": 2,
        "val_every": 2,
        "max_new_tokens": 8,
    }
    return [item for k, v in (base | flags).items() for item in (f"--{k}", str(v))]


def _corrupt_model(root):
    weights = root / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    return {}


def _weights_missing(root):
    (root / "model" / "model.safetensors").unlink()
    return {}


def _list_row(root):
    (root / "data" / "val.jsonl").write_text('["id", "problem", "answer"]\n')
    return {}


def _latin1_rows(root):
    (root / "data" / "train.jsonl").write_bytes(b'{"id": "1", "problem": "caf\xe9", "answer": "2"}\n')
    return {}


def _broken_json(root):
    (root / "data" / "train.jsonl").write_text('{"id": "1", "problem": "1+1", "answer": "2"\n')
    return {}


def _attempt(root, **settings) -> Path:
    """An attempt in the run folder started with the settings `_math_argv` asks for, changed by `settings`."""
    cfg = math_rl.MathRunConfig(
        model=str(root / "model"),
        train=str(root / "data" / "train.jsonl"),
        val=str(root / "data" / "val.jsonl"),
        out=str(root / "run"),
        steps=4,
        save_every=2,
        val_every=2,
        max_new_tokens=8,
    )
    attempt = root / "run" / "attempt"
    (attempt / "checkpoints").mkdir(parents=True)
    (attempt / "settings.json").write_text(json.dumps(dataclasses.asdict(cfg) | settings))
    return attempt


def _checkpoint_past_steps(root):
    past = _attempt(root) / "checkpoints" / "checkpoint-9"
    past.mkdir(parents=True)
    (past / "trainer_state.json").write_text("{}")
    return {}


def _attempt_other_settings(root):
    _attempt(root, learning_rate=0.5, method="grpo")
    return {}


def _finished_with_settings(root):
    (root / "run" / "finished.json").write_text((root / "run" / "config.json").read_text())
    return {"protect_finished": "true"}


HOLD_LOCK = """
import fcntl, sys, time
f = open(sys.argv[1], "w")
f.write('{"pid": 7, "host": "elsewhere"}')
f.flush()
fcntl.flock(f, fcntl.LOCK_EX)
print(1, flush=True)
time.sleep(60)
"""


def _locked(root):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(root / "run" / ".lock")], stdout=subprocess.PIPE, text=True
    )
    holder.stdout.readline()  # it holds the lock
    return {"_holder": holder}


MATH_CASES = {
    "model_missing": (lambda r: {"model": r / "nope"}, "--model: folder not found"),
    "model_truncated_weights": (_corrupt_model, "cannot load the checkpoint"),
    "model_without_weights": (_weights_missing, "cannot load the checkpoint"),
    "out_is_model": (lambda r: {"out": r / "model"}, "is the model folder or inside it"),
    "out_inside_model": (lambda r: {"out": r / "model" / "run"}, "is the model folder or inside it"),
    "model_inside_out": (lambda r: {"model": r / "run" / "final"}, "lies inside --out"),
    "unparseable_gold_bogus": (lambda r: {"unparseable_gold": "reward_half"}, "--unparseable_gold: 'reward_half'"),
    "train_missing": (lambda r: {"train": r / "nope.jsonl"}, "data file not found"),
    "val_row_is_list": (_list_row, "val.jsonl line 1: not a JSON object"),
    "train_not_utf8": (_latin1_rows, "train.jsonl: not UTF-8 text"),
    "train_broken_json": (_broken_json, "train.jsonl line 1: not JSON"),
    "steps_zero": (lambda r: {"steps": 0}, "--steps: must be positive, got 0"),
    "steps_float": (lambda r: {"steps": 2.5}, "argument --steps: '2.5' is not an integer"),
    "save_every_zero": (lambda r: {"save_every": 0}, "--save_every: must be positive"),
    "val_every_zero": (lambda r: {"val_every": 0}, "--val_every: must be positive"),
    "lr_nan": (lambda r: {"learning_rate": "nan"}, "--learning_rate/--learning-rate: 'nan' is not a finite number"),
    "temperature_inf": (lambda r: {"temperature": "inf"}, "argument --temperature: 'inf' is not a finite"),
    "reward_timeout_negative": (lambda r: {"reward_timeout_s": -1}, "--reward_timeout_s: must be positive"),
    "reward_workers_zero": (lambda r: {"reward_workers": 0}, "--reward_workers: must be positive"),
    "record_groups_typo": (lambda r: {"record_groups": "ture"}, "'ture' is neither true nor false"),
    "stop_at_boxed_yes": (lambda r: {"stop_at_boxed": "yes"}, "'yes' is neither true nor false"),
    "method_unknown": (lambda r: {"method": "ppo"}, "ppo"),
    "group_size_one": (lambda r: {"group_size": 1}, "group_size must be at least 2"),
    "checkpoint_past_steps": (_checkpoint_past_steps, "--steps 4: "),
    "resume_other_settings": (
        _attempt_other_settings,
        (
            "attempt was started with other settings (method 'grpo' -> "
            "'lambda_grpo', learning_rate 0.5 -> 1e-06); rerun with those"
        ),
    ),
    "protect_finished": (_finished_with_settings, "holds a finished run (protect_finished) and this run would replace"),
    "second_writer": (_locked, "run is being written by pid 7 on elsewhere"),
    "restart_typo": (lambda r: {"restart": "yes"}, "argument --restart: 'yes' is neither true nor false"),
}


@pytest.mark.parametrize("case", MATH_CASES)
def test_failed_math_rerun_keeps_the_finished_run(case, finished, capsys):
    prepare, expected = MATH_CASES[case]
    flags = prepare(finished) or {}
    holder = flags.pop("_holder", None)
    before = snapshot(finished)
    try:
        status, message = refusal(capsys, math_rl.main, _math_argv(finished, **flags))
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    assert status != 0 and expected in message, message
    assert snapshot(finished) == before


# ---- other CLIs and data files
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--tiny_model", '{"layers": 2}'], "--tiny_model: unknown key 'layers'"),
        (["--tiny_model", "[2]"], "--tiny_model/--tiny-model: not a JSON object"),
        (["--steps", "0"], "--steps: must be positive, got 0"),
        (["--temperature", "nan"], "'nan' is not a finite number"),
        (["--n", "4"], "n must be in [0, depth)"),
    ],
)
def test_bad_toy_arguments(argv, expected, tmp_path, capsys):
    status, message = refusal(capsys, toy.main, [*argv, "--model", "tiny", "--out", str(tmp_path / "run.csv")])
    assert status != 0 and expected in message, message
    assert snapshot(tmp_path) == {str(tmp_path): None}


def test_toy_out_under_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    status, message = refusal(capsys, toy.main, ["--model", "tiny", "--out", str(tmp_path / "file" / "run.csv")])
    assert status != 0 and f"--out {tmp_path / 'file' / 'run.csv'}: {tmp_path / 'file'} is not a folder" in message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--lr", "inf"], "--lr: 'inf' is not a finite number"),
        (["--lr", "0"], "--lr: must be positive, got 0.0"),
        (["--sft-steps", "0"], "--sft_steps: must be positive, got 0"),
        (["--answer-slip-rate", "2"], "--answer_slip_rate: 2.0 is not a share in [0, 1]"),
        (["--answer-slip-rate", "nan"], "--answer-slip-rate: 'nan' is not a finite number"),
        (["--n-train", "0"], "--n-train: '0' is not a positive integer"),
        (["--data-seed", "-1"], "--data-seed: '-1' is not a non-negative integer"),
    ],
)
def test_bad_tiny_checkpoint_arguments(flags, expected, tmp_path, capsys):
    status, message = refusal(capsys, checkpoints.main, ["tiny", *flags, "--out", str(tmp_path / "ckpt")])
    assert status != 0 and expected in message, message
    assert snapshot(tmp_path) == {str(tmp_path): None}


def test_full_disk_is_one_line_naming_the_output(tmp_path, capsys, monkeypatch):
    def full(self, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "data"
    argv = [
        "offline",
        "--n-train",
        "4",
        "--n-val",
        "1",
        "--n-test",
        "1",
        "--seed",
        "0",
        "--min-steps",
        "1",
        "--max-steps",
        "2",
        "--max-operand",
        "9",
        "--out-dir",
        str(out),
    ]
    status, message = refusal(capsys, prepare_data.main, argv)
    assert status == 1 and message == f"error: {out / 'train.jsonl'}: no space left on device; free some and rerun"
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


@pytest.mark.parametrize("interval", ["nan", "1.5", "0", "-0.5"])
def test_bad_curve_interval(interval, tmp_path):
    script = ROOT / "paper_figures" / "math_curves.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--runs",
            str(tmp_path),
            "--interval",
            interval,
            "--out-prefix",
            str(tmp_path / "fig"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"--interval: '{interval}' is not" in result.stderr
    assert snapshot(tmp_path) == {str(tmp_path): None}


def test_negative_theorem1_groups(tmp_path, capsys):
    status, message = refusal(
        capsys,
        overlap.main,
        [str(tmp_path / "groups.parquet"), "--out", str(tmp_path / "o"), "--theorem1-groups", "-1"],
    )
    assert status == 2 and "--theorem1-groups: '-1' is not a non-negative integer" in message, message
    assert snapshot(tmp_path) == {str(tmp_path): None}


def _parquet(path, **columns):
    import pandas as pd

    pd.DataFrame(columns).to_parquet(path)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: _parquet(p, a=[1]), "not a group recording (missing column 'step')"),
        (lambda p: p.write_bytes(b"not parquet at all"), "not a readable Parquet file"),
        (lambda p: None, "no recording at"),
    ],
)
def test_bad_recording_for_overlap(make, expected, tmp_path, capsys):
    path = tmp_path / "groups.parquet"
    make(path)
    before = snapshot(tmp_path)
    status, message = refusal(capsys, overlap.main, [str(path), "--out", str(tmp_path / "overlap")])
    assert status != 0 and expected in message, message
    assert snapshot(tmp_path) == before


def test_openrs_copy_without_expected_columns(tmp_path, capsys):
    (tmp_path / "copy").mkdir()
    _parquet(tmp_path / "copy" / "train.parquet", question_text=["1+1"], solution_text=["2"])
    before = snapshot(tmp_path)
    argv = ["openrs", "--local-dir", str(tmp_path / "copy"), "--n-val", "1", "--out-dir", str(tmp_path / "out")]
    status, message = refusal(capsys, prepare_data.main, argv)
    assert status != 0 and "train.parquet row 0: missing field 'problem'" in message, message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--limit", "0"], "--limit: '0' is not a positive integer"),
        (["--max-gen-toks", "-5"], "--max-gen-toks: '-5' is not a positive integer"),
        (["--batch-size", "0"], "--batch-size: '0' is not a positive integer"),
        (["--batch-size", "many"], "--batch-size: 'many' is not an integer"),
        (["--seed", "-1"], "--seed: '-1' is not a non-negative integer"),
        ([], "checkpoint folder not found"),
    ],
)
def test_bad_evaluate_arguments(flags, expected, tmp_path, capsys):
    argv = [
        "--model",
        str(tmp_path / "nope"),
        "--tasks",
        "offline",
        "--max-gen-toks",
        "8",
        *flags,
        "--out",
        str(tmp_path / "eval"),
    ]
    status, message = refusal(capsys, evaluate.main, argv)
    assert status != 0 and expected in message, message
    assert snapshot(tmp_path) == {str(tmp_path): None}


@pytest.mark.parametrize("keep", [0.9, 0.01])
def test_truncated_weights_for_evaluate(keep, checkpoint, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(checkpoint, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: int(weights.stat().st_size * keep)])
    before = snapshot(tmp_path)
    argv = ["--model", str(model), "--tasks", "offline", "--max-gen-toks", "8", "--out", str(tmp_path / "eval")]
    status, message = refusal(capsys, evaluate.main, argv)
    assert status != 0 and "model.safetensors: unreadable weights" in message, message
    assert snapshot(tmp_path) == before
