"""Math RL runs end to end on CPU with a tiny model: metrics, validation, best/final checkpoints, kill and resume."""

import json

import pyarrow.parquet as pq
import pytest
import torch

from grpo_prm import math_rl
from grpo_prm.data import DataError, read_problems
from grpo_prm.math_rl import run_math
from tests.helpers import records, run_killed_after_step_3, small_config


def comparable(recs, keys=("step", "loss", "reward", "val/accuracy", "completions/mean_length")):
    """The seed-determined part of the metrics (timings differ between runs)."""
    return [{k: r.get(k) for k in keys} for r in recs]


@pytest.mark.slow
def test_run_writes_metrics_validation_and_checkpoints(checkpoint, data, tmp_path):
    out = run_math(small_config(checkpoint, data, tmp_path / "run"))
    recs = records(out)
    assert [r["step"] for r in recs if "loss" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in recs if "val/accuracy" in r] == [0, 2, 4]
    assert all("tree/path_depth" in r and "lambda/weight_mean" in r for r in recs if "loss" in r)
    assert (out / "best" / "config.json").exists() and (out / "final" / "config.json").exists()
    assert not (out / "attempt").exists() and not (out / ".lock").exists()
    groups = pq.read_table(out / "groups.parquet")
    assert sorted(set(zip(groups["step"].to_pylist(), groups["group"].to_pylist()))) == [
        (s, g) for s in range(4) for g in range(2)
    ]  # 4 steps × 2 prompts, k = 3 rows each
    assert groups.num_rows == 4 * 2 * 3
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["steps"] == 4
    assert {
        k: recorded[k]
        for k in ("precision", "logprob_temperature", "disable_dropout", "vllm_importance_sampling_correction")
    } == {
        "precision": "fp32",
        "logprob_temperature": "raw",
        "disable_dropout": True,
        "vllm_importance_sampling_correction": False,
    }  # how the run was made, the authors' way by default


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dr_grpo", "lambda_reinforce_rej", "rloo"])
def test_baseline_methods_run_in_the_math_matrix(checkpoint, data, tmp_path, method):
    """Dr. GRPO, Reinforce-Rej and RLOO (grpo_prm.methods) go through the math run as λ-GRPO does."""
    out = run_math(small_config(checkpoint, data, tmp_path / "run", method=method, steps=2, val_every=2))
    recs = [r for r in records(out) if "loss" in r]
    assert [r["step"] for r in recs] == [1, 2]
    assert json.loads((out / "config.json").read_text())["method"] == method
    if method == "lambda_reinforce_rej":
        assert all(0 <= r["rej/kept_frac"] <= 1 for r in recs)  # a random model: every group may be dropped


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(checkpoint, data, tmp_path, monkeypatch):
    reference = records(run_math(small_config(checkpoint, data, tmp_path / "ref")))
    run_killed_after_step_3(small_config(checkpoint, data, tmp_path / "run"), monkeypatch)
    assert (tmp_path / "run" / "attempt" / "checkpoints" / "checkpoint-2").is_dir()
    monkeypatch.undo()
    resumed = records(run_math(small_config(checkpoint, data, tmp_path / "run")))
    assert comparable(resumed) == comparable(reference)
    assert pq.read_table(tmp_path / "run" / "groups.parquet").equals(pq.read_table(tmp_path / "ref" / "groups.parquet"))


@pytest.mark.slow
def test_rerun_keeps_a_finished_run_or_restarts_it(checkpoint, data, tmp_path):
    first = records(run_math(small_config(checkpoint, data, tmp_path / "run", steps=2)))
    (tmp_path / "run" / "config.json").unlink()  # as Snakemake does before it reruns the job
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != "config.json"}
    run_math(small_config(checkpoint, data, tmp_path / "run", steps=2))  # the same settings: kept, not retrained
    assert {p: p.read_bytes() for p in before} == before
    assert (tmp_path / "run" / "config.json").read_bytes() == (tmp_path / "run" / "finished.json").read_bytes()
    second = records(run_math(small_config(checkpoint, data, tmp_path / "run", steps=2), restart=True))
    assert comparable(second) == comparable(first)  # retrained afresh, not appended to the first run's metrics


def test_bad_rows_are_named(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text('{"id": "a", "problem": "1+1", "answer": "2"}\n{"id": "b", "problem": "", "answer": "3"}\n')
    with pytest.raises(DataError, match="rows.jsonl line 2: missing or empty field 'problem'"):
        read_problems(str(f))
    with pytest.raises(DataError, match="data file not found"):
        read_problems(str(tmp_path / "nope.jsonl"))


# ---- kills at each phase of a run, simulated deterministically, against one uninterrupted run
@pytest.fixture(scope="module")
def reference(checkpoint, data, tmp_path_factory):
    return run_math(small_config(checkpoint, data, tmp_path_factory.mktemp("ref") / "run"))


def weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def assert_same_run(out, reference):
    assert comparable(records(out)) == comparable(records(reference))
    assert pq.read_table(out / "groups.parquet").equals(pq.read_table(reference / "groups.parquet"))
    got, want = weights(out / "final"), weights(reference / "final")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    config, expected = (json.loads((run / "config.json").read_text()) for run in (out, reference))
    assert config | {"out": None} == expected | {"out": None}  # the recorded settings, steps included
    assert not (out / "attempt").exists() and not (out / ".lock").exists()


@pytest.mark.slow
def test_kill_during_checkpoint_save_resumes_from_the_previous_one(checkpoint, data, reference, tmp_path, monkeypatch):
    """Killed while checkpoint-4 was written (weights there, trainer_state.json not yet): the rerun removes it and
    resumes from checkpoint-2 instead of failing on the missing file."""
    from transformers import TrainerState

    save_to_json = TrainerState.save_to_json

    def killed_at_4(self, path):
        if "checkpoint-4" in str(path):
            raise KeyboardInterrupt("simulated kill while checkpoint-4 is saved")
        save_to_json(self, path)

    monkeypatch.setattr(TrainerState, "save_to_json", killed_at_4)
    with pytest.raises(KeyboardInterrupt):
        run_math(small_config(checkpoint, data, tmp_path / "run"))
    partial = tmp_path / "run" / "attempt" / "checkpoints" / "checkpoint-4"
    assert (partial / "model.safetensors").exists() and not (partial / "trainer_state.json").exists()
    monkeypatch.setattr(TrainerState, "save_to_json", save_to_json)
    assert_same_run(run_math(small_config(checkpoint, data, tmp_path / "run")), reference)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["final_model", "after_recording_merged"])
def test_kill_during_final_save_does_not_train_past_steps(checkpoint, data, reference, tmp_path, monkeypatch, phase):
    """Killed after the last checkpoint, while final/ is written or after groups.parquet is merged: the rerun trains
    no extra step; metrics, recorded groups, final weights and config.json equal the uninterrupted run's."""
    if phase == "final_model":
        save_model = math_rl.BoxedStopTrainer.save_model

        def killed(self, output_dir=None, *a, **kw):
            save_model(self, output_dir, *a, **kw)
            if str(output_dir).endswith("final"):
                weights_file = tmp_path / "run" / "attempt" / "final" / "model.safetensors"
                weights_file.write_bytes(weights_file.read_bytes()[:100])  # half-written weights
                raise KeyboardInterrupt("simulated kill while final/ is saved")

        monkeypatch.setattr(math_rl.BoxedStopTrainer, "save_model", killed)
    else:
        from grpo_prm.recording import GroupRecorder

        close = GroupRecorder.close

        def killed(self):
            close(self)
            raise KeyboardInterrupt("simulated kill after the recording is merged")

        monkeypatch.setattr(GroupRecorder, "close", killed)
    with pytest.raises(KeyboardInterrupt):
        run_math(small_config(checkpoint, data, tmp_path / "run"))
    assert (tmp_path / "run" / "attempt" / "checkpoints" / "checkpoint-4" / "trainer_state.json").exists()
    assert not (tmp_path / "run" / "config.json").exists()
    monkeypatch.undo()
    assert_same_run(run_math(small_config(checkpoint, data, tmp_path / "run")), reference)


@pytest.mark.slow
def test_mid_step_kill_matches_the_uninterrupted_run(checkpoint, data, reference, tmp_path, monkeypatch):
    run_killed_after_step_3(small_config(checkpoint, data, tmp_path / "run"), monkeypatch)
    monkeypatch.undo()
    with (tmp_path / "run" / "attempt" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "lo')  # a metrics line cut by the kill
    assert_same_run(run_math(small_config(checkpoint, data, tmp_path / "run")), reference)


def test_checkpoint_past_steps_is_refused(tmp_path):
    (tmp_path / "checkpoint-6").mkdir()
    (tmp_path / "checkpoint-6" / "trainer_state.json").write_text("{}")
    with pytest.raises(ValueError, match="--steps 4: .*checkpoint-6 is past it"):
        math_rl.resume_point(tmp_path, 4)
    assert math_rl.resume_point(tmp_path, 6)[:2] == (str(tmp_path / "checkpoint-6"), 6)
