"""A finished run is never lost (grpo_prm.run_folder): a rerun killed with SIGKILL leaves it byte-identical, a second
trainer on the folder is refused, a resume with other settings is refused (Snakemake's recovery after its own kill:
tests/test_workflow.py)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from grpo_prm import math_rl
from grpo_prm.math_rl import run_math
from grpo_prm.run_folder import RunFolderError, locked
from tests.helpers import background, records, refusal, run_killed_after_step_3, small_config, wait_for
from tests.helpers import run_files as files


def argv(checkpoint, data, out, **flags) -> list[str]:
    cfg = small_config(checkpoint, data, out, **flags)
    names = (
        "model",
        "train",
        "val",
        "out",
        "steps",
        "prompts_per_step",
        "group_size",
        "max_new_tokens",
        "learning_rate",
        "val_every",
        "save_every",
        "temperature",
    )
    return [item for k in names for item in (f"--{k}", str(getattr(cfg, k)))]


def trainer(log: Path, *args: str) -> subprocess.Popen:
    return background([sys.executable, "-m", "grpo_prm.math_rl", *args], log)


@pytest.mark.slow
def test_kill_9_of_a_rerun_keeps_the_finished_run(checkpoint, data, tmp_path, capsys):
    out = tmp_path / "run"
    run_math(small_config(checkpoint, data, out))
    finished = files(out)
    rerun = argv(checkpoint, data, out, learning_rate=5e-4, steps=40, save_every=1)  # other settings: a new attempt
    proc = trainer(tmp_path / "rerun.log", *rerun)
    saved = out / "attempt/checkpoints/checkpoint-2/trainer_state.json"
    wait_for(saved.exists, proc, tmp_path / "rerun.log")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert files(out) == finished
    assert json.loads((out / ".lock").read_text())["pid"] == proc.pid  # the dead writer's
    # The next invocation with the finished run's settings keeps it (and takes over the stale lock) ...
    run_math(small_config(checkpoint, data, out))
    assert files(out) == finished
    assert f"taking over the lock of pid {proc.pid}" in capsys.readouterr().err
    # ... and one with the attempt's settings resumes the attempt, which replaces the finished run once complete.
    math_rl.main(rerun)
    assert json.loads((out / "config.json").read_text())["learning_rate"] == 5e-4
    assert [r["step"] for r in records(out) if "val/accuracy" in r][-1] == 40
    assert not (out / "attempt").exists() and not (out / ".lock").exists()


@pytest.mark.slow
def test_second_trainer_on_a_folder_is_refused(checkpoint, data, tmp_path, capsys):
    out = tmp_path / "run"
    first = trainer(tmp_path / "first.log", *argv(checkpoint, data, out, steps=12, save_every=4))
    wait_for(lambda: (out / "attempt/metrics.jsonl").exists(), first, tmp_path / "first.log")  # it is training
    status, message = refusal(capsys, math_rl.main, argv(checkpoint, data, out, steps=12, save_every=4))
    assert status == 1 and f"{out} is being written by pid {first.pid}" in message, message
    assert first.wait() == 0, (tmp_path / "first.log").read_text()[-2000:]
    steps = [r["step"] for r in records(out) if "loss" in r]
    assert steps == list(range(1, 13))  # every step once, in order: no second writer
    groups = pq.read_table(out / "groups.parquet").to_pandas().groupby("step").size()
    assert len(groups) == 12 and groups.nunique() == 1  # each step recorded once


@pytest.mark.slow
def test_resume_with_another_learning_rate_is_refused(checkpoint, data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run_killed_after_step_3(small_config(checkpoint, data, out), monkeypatch)
    monkeypatch.undo()
    attempt = sorted(p.name for p in (out / "attempt").rglob("*"))
    with pytest.raises(
        RunFolderError,
        match=r"attempt was started with other settings \(learning_rate 0.001 -> "
        r"0.0005\); rerun with those, or with --restart true",
    ):
        run_math(small_config(checkpoint, data, out, learning_rate=5e-4))
    assert sorted(p.name for p in (out / "attempt").rglob("*")) == attempt
    run_math(small_config(checkpoint, data, out, learning_rate=5e-4), restart=True)  # starts afresh
    assert json.loads((out / "config.json").read_text())["learning_rate"] == 5e-4
    assert [r["step"] for r in records(out) if "loss" in r] == [1, 2, 3, 4]


def test_protect_finished_holds_without_file_permissions(tmp_path, capsys):
    """The check is the CLI's own, so it holds for root (for whom every file is writable)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "finished.json").write_text(json.dumps({"learning_rate": 1e-3}))
    (out / "config.json").write_text(json.dumps({"learning_rate": 1e-3}))
    (tmp_path / "model").mkdir()
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": "1", "problem": "1+1", "answer": "2"}\n')
    before = files(out)
    args = [
        "--model",
        str(tmp_path / "model"),
        "--train",
        str(rows),
        "--val",
        str(rows),
        "--out",
        str(out),
        "--protect-finished",
        "true",
    ]
    status, message = refusal(capsys, math_rl.main, args)
    assert status == 1 and "holds a finished run (protect_finished)" in message and "learning_rate" in message
    assert files(out) == before and not (out / ".lock").exists()


def test_stale_lock_is_taken_over(tmp_path, capsys):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    out = tmp_path / "run"
    out.mkdir()
    host = os.uname().nodename
    (out / ".lock").write_text(json.dumps({"host": host, "pid": int(dead.stdout), "started": "then"}))
    with locked(out):
        assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()
        # flock locks belong to the open file: a second open in this process is refused too
        with pytest.raises(RunFolderError, match=f"is being written by pid {os.getpid()} on {host}"), locked(out):
            pass
    assert f"taking over the lock of pid {int(dead.stdout)} on {host}" in capsys.readouterr().err
    assert not (out / ".lock").exists()
