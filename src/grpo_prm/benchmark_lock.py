"""Resolve once and lock: the Hub commit of a Table-2 benchmark that no public source pins (arXiv 2509.21154, Table 2).

AIME24 and MATH-500 are pinned in the paper profile (eval.revisions). For AMC-23, Minerva-Math and OlympiadBench no
public commit exists, so the first evaluation that reads one from the Hub, when asked to (`--resolve-and-lock`,
eval.resolve_and_lock), resolves the default branch to its commit and writes the commit, the content sha256 of the
normalised rows and their count to a lock file (results/<profile>/eval/benchmarks.lock.json). Every later read uses
the locked commit and checks the content against the locked sha256, so all checkpoints of a profile see the same data
even if the dataset's branch moves. The file is a plain JSON object `{task: {hub_id, revision, sha256, rows}}`.
"""

import fcntl
import json
import os
from pathlib import Path

from grpo_prm.cli import InputError
from grpo_prm.data import BENCHMARKS


class LockError(InputError):
    """An unreadable or contradictory lock file."""


def resolve_commit(hub_id: str) -> str:
    """The commit the Hub dataset's default branch points at now (huggingface_hub; the only network call here)."""
    from huggingface_hub import HfApi

    return HfApi().dataset_info(hub_id, revision="main").sha


def read_lock(path: str | Path) -> dict:
    """The lock file's entries; `{}` when it does not exist yet."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        lock = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LockError(f"{path}: not JSON ({type(e).__name__}); remove it to resolve again") from None
    if not isinstance(lock, dict):
        raise LockError(f"{path}: not a JSON object; remove it to resolve again")
    bad = [
        t
        for t, e in lock.items()
        if t not in BENCHMARKS or not isinstance(e, dict) or not {"revision", "sha256", "rows"} <= set(e)
    ]
    if bad:
        raise LockError(f"{path}: bad entry {bad[0] if bad else ''!r} (want task: {{hub_id, revision, sha256, rows}})")
    return lock


def locked_revisions(tasks: list[str], pins: dict, lock: dict, resolve: bool) -> dict[str, dict]:
    """Per Hub task without a pin: `{"revision", "sha256", "how"}`, from the lock (`locked`) or, with `resolve`,
    from the Hub now (`resolved`, sha256 None: the read records it). Tasks neither pinned nor locked are left out
    without `resolve`, for the caller's `--require-revisions` to refuse."""
    out = {}
    for t in tasks:
        if t in pins or t not in BENCHMARKS:
            continue
        if t in lock:
            out[t] = {"revision": lock[t]["revision"], "sha256": lock[t]["sha256"], "how": "locked"}
        elif resolve:
            out[t] = {"revision": resolve_commit(BENCHMARKS[t].hub_id), "sha256": None, "how": "resolved"}
    return out


def write_lock(path: str | Path, entries: dict[str, dict]) -> None:
    """Add `entries` ({task: {revision, sha256, rows}}) to the lock file, atomically and under an exclusive lock (the
    profile's evaluations may run side by side). An entry another evaluation locked meanwhile at another commit or
    content is refused, not overwritten."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.flock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        lock = read_lock(path)
        for t, entry in entries.items():
            entry = {"hub_id": BENCHMARKS[t].hub_id} | entry
            old = lock.get(t)
            if old is not None and (old["revision"], old["sha256"]) != (entry["revision"], entry["sha256"]):
                raise LockError(
                    f"{path}: {t} was locked at {old['revision']} meanwhile, this read saw "
                    f"{entry['revision']}; evaluate again (it reads the lock)"
                )
            lock[t] = entry
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(dict(sorted(lock.items())), indent=2) + "\n")
        os.replace(tmp, path)
