"""A training run's folder: one writer at a time, and reruns as transactions (`grpo_prm.math_rl`, rules train_math and
train_overlap).

Layout of `<out>/`:
- The finished run: `metrics.jsonl`, `best/`, `final/`, `groups.parquet` (with record_groups), `finished.json` (its
  settings) and `config.json`, a copy of `finished.json` written last. `config.json` is the workflow's declared
  output, which Snakemake deletes before it reruns a job; `finished.json` is not declared, so a finished run stays
  recognisable and its marker can be put back (`restore_marker`).
- `attempt/`: the attempt in progress: the same files, `checkpoints/` (TRL's, to resume from) and `settings.json`
  (what it was started with, compared on resume). It replaces the finished run only once complete: writing
  `attempt/finished.json` is the commit point, after which `publish` moves the files over (and, if killed, is
  finished by the next invocation). An attempt that fails or is killed before it leaves the finished run's files
  byte-identical.
- `.lock`: `fcntl.flock`ed by the one process writing the folder, holding its host, pid and start time; removed on
  release. flock is released by the kernel when its holder dies, so a lock left by a killed process is "stale": the
  next writer takes it over and says so.

A command whose outputs are a few files (`grpo_prm.evaluate`) keeps hard links of its finished outputs in `.kept/`
beside them, with its settings (`keep`): its outputs are written atomically, so a killed rerun leaves them as they
were, and a rerun with the same settings after Snakemake deleted them puts them back instead of recomputing
(`restore_kept`).
"""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from grpo_prm.errors import InputError
from grpo_prm.io import write_atomic

LOCK, FINISHED, SETTINGS, MARKER, ATTEMPT = ".lock", "finished.json", "settings.json", "config.json", "attempt"
RESULT_FILES = ("metrics.jsonl", "groups.parquet", "groups.parquet.parts", "best", "final")
# Settings that say where and how often, not what is computed: a resume may change them.
NOT_FINGERPRINTED = ("out", "save_every", "reward_workers")


class RunFolderError(InputError):
    """The folder is busy, protected, or holds an attempt with other settings."""


def _holder(text: str) -> dict:
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # another user's process, or unknown: not ours to call dead
    return True


@contextlib.contextmanager
def locked(out: Path):
    """Hold `<out>/.lock` exclusively while the block runs; a second writer is refused at once, naming the holder."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
            os.close(fd)
            raise RunFolderError(
                f"{out} is being written by {_describe(holder)}; wait for it to end or stop it "
                "first (one writer per run folder)"
            ) from None
        # The holder before us may have removed the file after we opened it: then lock the new one.
        if path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)
    stale = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
    if stale:  # a released lock is removed, so a file with content was left by a process that died holding it
        dead = stale.get("host") == socket.gethostname() and not _alive(stale.get("pid"))
        print(
            f"{out}: taking over the lock of {_describe(stale)}"
            + (", which is no longer running" if dead else ", whose lock the kernel has released"),
            file=sys.stderr,
        )
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding it: a waiting opener re-checks the inode (above)
        os.close(fd)
        if created and not any(out.iterdir()):
            out.rmdir()  # a run refused at start leaves no folder behind


def differing(old: dict, new: dict) -> list[str]:
    """The fingerprinted settings (all but `NOT_FINGERPRINTED`) whose values differ between `old` and `new`."""
    return [k for k in dict.fromkeys([*new, *old]) if k not in NOT_FINGERPRINTED and old.get(k) != new.get(k)]


def describe_change(old: dict, new: dict, keys: list[str]) -> str:
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


def _read(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or cut by a kill mid-write
        return None
    return value if isinstance(value, dict) else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_json(path: Path, value: dict) -> None:
    write_atomic(path, {"": lambda p: Path(p).write_text(json.dumps(value, indent=2))})


class RunFolder:
    def __init__(self, out: Path):
        self.out, self.attempt = Path(out), Path(out) / ATTEMPT

    def finished(self) -> dict | None:
        """The settings of the finished run the folder holds (its `finished.json`, or the `config.json` of a run
        written before `finished.json` existed), or `None`."""
        return _read(self.out / FINISHED) or _read(self.out / MARKER)

    def restore_marker(self) -> None:
        """Put `config.json` back as the copy of `finished.json` (Snakemake removed it before rerunning the job)."""
        if (self.out / FINISHED).is_file() and not (self.out / MARKER).is_file():
            text = (self.out / FINISHED).read_text()
            write_atomic(self.out / MARKER, {"": lambda p: Path(p).write_text(text)})

    def attempt_settings(self) -> dict | None:
        return _read(self.attempt / SETTINGS)

    def start_attempt(self, settings: dict) -> None:
        """A new attempt: an empty `attempt/` holding the settings it runs with."""
        if self.attempt.exists():
            shutil.rmtree(self.attempt)
        self.attempt.mkdir(parents=True)
        _write_json(self.attempt / SETTINGS, settings)

    def commit(self, settings: dict) -> None:
        """The attempt is complete: mark it (the commit point) and publish it over the finished run."""
        _write_json(self.attempt / FINISHED, settings)
        self.publish()

    def publish(self) -> None:
        """Move a committed attempt's files over the finished run's, `config.json` last. Idempotent, so an invocation
        that finds a committed attempt (a kill during this) calls it again and completes it."""
        (self.out / MARKER).unlink(missing_ok=True)  # from here on the folder holds no finished run
        (self.out / FINISHED).unlink(missing_ok=True)
        for name in RESULT_FILES:
            source, target, moved = self.attempt / name, self.out / name, self.attempt / f".moved-{name}"
            if source.exists():
                moved.touch()  # before the move: once moved, `target` is the new run's and must stay
                _remove(target)
                source.rename(target)
            elif not moved.exists():
                _remove(target)  # the old run's file the new one lacks (groups.parquet without record_groups)
                moved.touch()
        shutil.rmtree(self.attempt / "checkpoints", ignore_errors=True)
        (self.attempt / FINISHED).rename(self.out / FINISHED)
        shutil.rmtree(self.attempt)
        self.restore_marker()

    def recover(self) -> None:
        """An attempt committed but killed while being published: complete the publishing."""
        if (self.attempt / FINISHED).is_file():
            self.publish()


# ---- Outputs of one command (grpo_prm.evaluate): kept through Snakemake's deletion before a rerun

KEPT = ".kept"


def _kept(prefix: Path, suffix: str) -> Path:
    return prefix.parent / KEPT / f"{prefix.name}{suffix}"


def _link(source: Path, target: Path) -> None:
    """`target` becomes a hard link to `source` (a copy where the file system has none), atomically."""
    tmp = target.with_name(f".{target.name}.link-tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


def restore_kept(prefix: str | Path, suffixes: list[str], settings: dict) -> list[Path] | None:
    """The outputs `<prefix><suffix>` of an earlier finished run with the same `settings`, put back where Snakemake
    deleted them before rerunning the job (so a rerun keeps them instead of recomputing); `None` if there are none."""
    prefix = Path(prefix)
    kept = [_kept(prefix, s) for s in suffixes]
    if _read(_kept(prefix, SETTINGS)) != json.loads(json.dumps(settings)) or not all(k.is_file() for k in kept):
        return None
    finals = [Path(f"{prefix}{s}") for s in suffixes]
    for source, target in zip(kept, finals):
        if not (target.is_file() and os.path.samefile(source, target)):
            _link(source, target)
    return finals


def keep(prefix: str | Path, suffixes: list[str], settings: dict) -> None:
    """Hard-link the finished outputs `<prefix><suffix>` into `.kept/` beside them, with the settings that made them."""
    prefix = Path(prefix)
    _kept(prefix, "").parent.mkdir(exist_ok=True)
    _kept(prefix, SETTINGS).unlink(missing_ok=True)  # first: a kill below leaves no match with other outputs
    for suffix in suffixes:
        _link(Path(f"{prefix}{suffix}"), _kept(prefix, suffix))
    _write_json(_kept(prefix, SETTINGS), settings)
