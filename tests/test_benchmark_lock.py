"""Resolve once and lock (grpo_prm.benchmark_lock) through grpo_prm.evaluate: the Hub is stood in for by the
huggingface_hub resolution call (mocked) and the local copies in ../shared/data (the loaders' local-folder reader)."""

# ruff: noqa: F811 (the pytest fixtures imported from test_evaluate are the tests' arguments)
import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import huggingface_hub
import pytest

from grpo_prm import data as data_module
from grpo_prm.data import BENCHMARKS, content_sha256, load_benchmark
from grpo_prm.evaluate import main
from tests.test_evaluate import DATA, shared_data, tiny_model  # noqa: F401 (fixtures)

COMMIT, LATER = "c" * 40, "d" * 40


@pytest.fixture
def hub(monkeypatch):
    """The Hub: `dataset_info(...).sha` answers `hub.commit` (counting calls); a dataset read at a revision returns
    the local copy of that benchmark and records the revision asked for."""
    state = SimpleNamespace(commit=COMMIT, resolved=[], reads=[])
    folders = {b.hub_id: b.folder for b in BENCHMARKS.values()}
    real = datasets.load_dataset

    def dataset_info(self, repo_id, revision=None, **kw):
        state.resolved.append((repo_id, revision))
        return SimpleNamespace(sha=state.commit)

    def load_dataset(path, name=None, split=None, revision=None, **kw):
        if path not in folders:
            return real(path, name, split=split, revision=revision, **kw)
        state.reads.append((path, revision))
        builder, files = data_module._local_files(DATA / folders[path], ("test",))
        return real(builder, data_files=files, split="train")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return state


def evaluate(model, out, *extra):
    argv = [
        "--model",
        str(model),
        "--tasks",
        "amc23",
        "--max-gen-toks",
        "4",
        "--batch-size",
        "2",
        "--limit",
        "2",
        "--require-revisions",
        "--out",
        str(out),
        *extra,
    ]
    main(argv)
    return json.loads(Path(f"{out}.json").read_text())


def test_first_read_resolves_and_locks_later_reads_use_the_lock(shared_data, tiny_model, tmp_path, hub):
    lock = tmp_path / "results" / "paper" / "eval" / "benchmarks.lock.json"
    first = evaluate(tiny_model, tmp_path / "a", "--lock", str(lock), "--resolve-and-lock")
    rows = load_benchmark("amc23", local_dir=str(DATA))
    assert hub.resolved == [("knoveleng/AMC-23", "main")] and hub.reads == [("knoveleng/AMC-23", COMMIT)]
    assert json.loads(lock.read_text()) == {
        "amc23": {"hub_id": "knoveleng/AMC-23", "revision": COMMIT, "sha256": content_sha256(rows), "rows": 40}
    }
    assert first["data"]["amc23"] | {"lock": None} == {
        "rows": 40,
        "sha256": content_sha256(rows),
        "source": "hub",
        "revision": COMMIT,
        "pin": "resolved",
        "lock": None,
    }

    hub.commit = LATER  # the branch moves: the lock keeps the first commit, without asking the Hub
    second = evaluate(tiny_model, tmp_path / "b", "--lock", str(lock), "--resolve-and-lock")
    assert len(hub.resolved) == 1 and hub.reads[-1] == ("knoveleng/AMC-23", COMMIT)
    assert second["data"]["amc23"]["revision"] == COMMIT and second["data"]["amc23"]["pin"] == "locked"
    third = evaluate(tiny_model, tmp_path / "c", "--lock", str(lock))  # the lock alone satisfies --require-revisions
    assert third["data"]["amc23"]["pin"] == "locked"


def test_unlocked_unpinned_read_is_refused_without_consent(tiny_model, tmp_path, hub):
    lock = tmp_path / "benchmarks.lock.json"
    with pytest.raises(SystemExit) as exc:
        evaluate(tiny_model, tmp_path / "a", "--lock", str(lock))
    assert "amc23 is read from the Hub without a pinned or locked revision" in str(exc.value.code)
    assert "resolve_and_lock" in str(exc.value.code)
    assert hub.resolved == [] and hub.reads == [] and not lock.exists() and not list(tmp_path.glob("a*"))


def test_locked_content_is_checked(shared_data, tiny_model, tmp_path, hub):
    """Data at the locked commit whose content differs from the locked sha256 is refused, nothing written."""
    lock = tmp_path / "benchmarks.lock.json"
    lock.write_text(
        json.dumps({"amc23": {"hub_id": "knoveleng/AMC-23", "revision": COMMIT, "sha256": "0" * 64, "rows": 40}})
    )
    with pytest.raises(SystemExit) as exc:
        evaluate(tiny_model, tmp_path / "a", "--lock", str(lock), "--resolve-and-lock")
    assert f"knoveleng/AMC-23@{COMMIT}: content sha256" in str(exc.value.code) and hub.resolved == []
    assert not list(tmp_path.glob("a*"))


def test_pinned_tasks_are_read_at_their_pin_and_not_locked(shared_data, tiny_model, tmp_path, hub):
    lock = tmp_path / "benchmarks.lock.json"
    result = evaluate(
        tiny_model, tmp_path / "a", "--revisions", f"amc23={LATER}", "--lock", str(lock), "--resolve-and-lock"
    )
    assert hub.resolved == [] and hub.reads == [("knoveleng/AMC-23", LATER)] and not lock.exists()
    assert result["data"]["amc23"]["pin"] == "pinned"


def test_bad_lock_file_is_one_line(tiny_model, tmp_path, hub):
    lock = tmp_path / "benchmarks.lock.json"
    lock.write_text("{not json")
    with pytest.raises(SystemExit) as exc:
        evaluate(tiny_model, tmp_path / "a", "--lock", str(lock), "--resolve-and-lock")
    assert "benchmarks.lock.json: not JSON" in str(exc.value.code) and "\n" not in str(exc.value.code)
