"""The one folder format of every SFT checkpoint (`grpo_prm.checkpoints`), built atomically and reused by its marker.

A checkpoint is a plain transformers folder (config, `*.safetensors`, tokenizer with its chat template) plus a marker
file `grpo_prm_checkpoint.json` recording where it came from (its identity). `publish` builds it in a temporary
sibling and renames it at the end, so an error or a kill leaves no half-written checkpoint. `reusable` says whether
a folder already holds the requested checkpoint; any other existing content is an error.

It sits below the checkpoint sources (`grpo_prm.checkpoints`, `grpo_prm.tiny_model`) so that each can use it.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from grpo_prm.cli import InputError

MARKER = "grpo_prm_checkpoint.json"


class CheckpointError(InputError):
    """A checkpoint cannot be made or reused; the one-line message names the model or folder at fault."""


def read_marker(folder: Path) -> dict | None:
    """The marker of `folder`, or `None` if it has none (or an unreadable one)."""
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _missing_files(folder: Path) -> list[str]:
    """Files a loadable checkpoint needs that `folder` lacks."""
    needed = {"config.json": (folder / "config.json").is_file()}
    needed["*.safetensors"] = any(folder.glob("*.safetensors"))
    needed["tokenizer_config.json"] = (folder / "tokenizer_config.json").is_file()
    return [name for name, present in needed.items() if not present]


def _flat(identity: dict, prefix: str = "") -> dict:
    """`{"recipe": {"seed": 0}}` -> `{"recipe.seed": 0}`."""
    out = {}
    for key, value in identity.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def _describe(identity: dict, keys=None) -> str:
    """`key=value, ...` of the (flattened) `keys` of `identity`, all by default; long hashes cut to 12 characters."""
    flat = _flat(identity)
    return ", ".join(f"{k}={str(flat.get(k))[:12]}" for k in (keys or flat))


def reusable(out_dir: Path, identity: dict) -> bool:
    """`True` if `out_dir` already holds the checkpoint `identity`; `False` if absent or empty; else an error."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return False
    marker = read_marker(out_dir) if out_dir.is_dir() else None
    if marker is None:
        raise CheckpointError(f"{out_dir} exists and is not a checkpoint (no {MARKER}); remove it or pick another")
    old = {k: marker.get(k) for k in identity}
    if old != identity:
        keys = [k for k, v in _flat(identity).items() if _flat(old).get(k) != v]
        raise CheckpointError(
            f"{out_dir} holds another checkpoint ({_describe(old, keys)}), not {_describe(identity, keys)}"
        )
    if _missing_files(out_dir):
        raise CheckpointError(f"{out_dir} is incomplete: missing {', '.join(_missing_files(out_dir))}")
    return True


def publish(out_dir: Path, identity: dict, fill: Callable[[Path], dict | None]) -> Path:
    """Build the checkpoint with `fill(tmp)` in a temporary sibling folder, add the marker, rename it to `out_dir`.

    `fill` may return extra marker fields (e.g. an evaluation); they are recorded but not part of the identity.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        extra = fill(tmp) or {}
        missing = _missing_files(tmp)
        if missing:
            raise CheckpointError(f"{_describe(identity, ['kind'])}: the result lacks {', '.join(missing)}")
        (tmp / MARKER).write_text(json.dumps(identity | extra, indent=2) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked by reusable)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
