"""What a training run records for the overlap analysis (§3 of arXiv 2509.21154): every training group, compactly,
and each batch's tree statistics as metrics (`BatchRecorder`, the trainer's `on_batch` hook).

One row per completion, in Parquet (zstd):

    step int64 | group int32 | index int16 | reward float64 | advantage float64 | length int32 | token_ids list<int32>

`group` numbers the step's groups from 0, `index` a completion's place in its group (0..k-1). Padding is stripped:
`token_ids` holds the `length` real tokens (up to and including EOS), so the mask is implied by `length`.

A Parquet file is only readable once its footer is written at close, so a writer left open by a killed run leaves
nothing readable. The recorder therefore writes every flush (one row group, every `flush_every` steps) as a
complete part file `<path>.parts/part-NNNNNN.parquet`, atomically; `close()` merges the parts into `<path>`, one row
group per part, and removes them. A killed run keeps everything up to its last flush; `read_groups` reads the merged
file if it exists, else the parts.

Size: about 4 bytes per token before compression; zstd exploits the prefixes a group's completions share.
"""

import json
import re
import shutil
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from grpo_prm.errors import InputError, SettingError
from grpo_prm.io import write_atomic
from grpo_prm.prefix_tree import size_statistics
from grpo_prm.process_sets import duplicate_counts


class RecordingError(InputError):
    """A file that is not a readable group recording; the message names it."""


SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("group", pa.int32()),
        ("index", pa.int16()),
        ("reward", pa.float64()),
        ("advantage", pa.float64()),
        ("length", pa.int32()),
        ("token_ids", pa.list_(pa.int32())),
    ],
    metadata={"grpo_prm.recording": json.dumps({"version": 1})},
)
PART = re.compile(r"part-\d{6}\.parquet")


def parts_dir(path: str | Path) -> Path:
    """Where a run's flushed parts live until `close()` merges them into `path`."""
    return Path(f"{path}.parts")


def completion_lengths(mask: torch.Tensor) -> np.ndarray:
    """Per row, the number of leading True values of `mask` (B, T); raises if a row has True after a False."""
    valid = mask.bool().cpu().numpy()
    lengths = valid.sum(1)
    if not np.array_equal(np.arange(valid.shape[1]) < lengths[:, None], valid):
        raise ValueError("completion_mask must be True on a prefix of each row (right padding only)")
    return lengths


class GroupRecorder:
    """Buffers the groups of each training step and writes them to Parquet every `flush_every` steps.

    Args:
        path (`str` or `Path`): the run's file, e.g. `results/.../groups.parquet`.
        flush_every (`int`, defaults to 50): steps (calls to `add`) per row group.
        max_buffer_tokens (`int`, defaults to 2**26): flush earlier once this many tokens are buffered.
        overwrite (`bool`, defaults to False): replace an existing recording instead of raising.
        compression (`str`, defaults to `"zstd"`): Parquet codec.

    Use as a context manager, or call `close()` at the end: a run that never closes keeps its flushed parts.
    """

    def __init__(
        self,
        path,
        flush_every: int = 50,
        max_buffer_tokens: int = 2**26,
        overwrite: bool = False,
        compression: str = "zstd",
    ):
        self.path, self.parts = Path(path), parts_dir(path)
        if self.path.exists() or self.parts.exists():
            if not overwrite:
                raise FileExistsError(f"{self.path} already holds a recording (pass overwrite=True to replace it)")
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.parts, ignore_errors=True)
        self.flush_every, self.max_buffer_tokens, self.compression = flush_every, max_buffer_tokens, compression
        self._buffer: list[dict[str, np.ndarray]] = []
        self._steps = self._tokens = self._n_parts = 0
        self._last_step, self._next_group = None, 0
        self.closed = False

    @classmethod
    def resume(cls, path, before_step: int, **kwargs) -> "GroupRecorder":
        """Continue a killed run's recording from its checkpoint at `before_step`.

        The flushed parts are kept without the rows of steps >= `before_step` (the resumed run generates those steps
        again), rewritten as one part; steps that were only buffered at the kill are lost with it and regenerated.
        """
        # The merged file if a kill came after close() merged it (during the final save), else the flushed parts.
        found = Path(path).is_file() or any(p for p in parts_dir(path).glob("part-*.parquet") if PART.fullmatch(p.name))
        kept = [t.filter(pc.less(t["step"], before_step)) for t in iter_tables(path)] if found else []
        kept = pa.concat_tables(kept) if kept else SCHEMA.empty_table()
        recorder = cls(path, overwrite=True, **kwargs)
        if kept.num_rows:
            recorder.parts.mkdir(parents=True)
            write_atomic(
                recorder.parts / "part-000000.parquet",
                {"": lambda tmp: pq.write_table(kept, tmp, compression=recorder.compression)},
            )
            recorder._n_parts = 1
        return recorder

    def add(self, step: int, completion_ids, completion_mask, rewards, advantages, group_size: int) -> None:
        """Record one generation batch.

        Args:
            step (`int`): training step (the trainer's `global_step`). A step added twice in a row continues its
                group numbering.
            completion_ids (`torch.LongTensor` of shape `(B, T)`): completions, rows in consecutive groups of k.
            completion_mask (`torch.BoolTensor` of shape `(B, T)`): True on real tokens, a prefix of each row.
            rewards (`torch.Tensor` of shape `(B,)`): outcome rewards r_i (NaN for an unscorable completion).
            advantages (`torch.Tensor` of shape `(B,)`): the advantages a_i the trainer used.
            group_size (`int`): k.
        """
        if self.closed:
            raise RuntimeError("recorder is closed")
        B = completion_ids.shape[0]
        if group_size < 1 or B % group_size:
            raise ValueError(f"batch of {B} rows is not a whole number of groups of {group_size}")
        lengths = completion_lengths(completion_mask)  # (B,)
        ids = completion_ids.cpu().numpy()[completion_mask.bool().cpu().numpy()]  # row-major: rows concatenated
        if ids.size and (ids.min() < np.iinfo(np.int32).min or ids.max() > np.iinfo(np.int32).max):
            raise ValueError("token ids do not fit in int32")
        if self._last_step != step:
            self._last_step, self._next_group = step, 0
        rows = np.arange(B)
        self._buffer.append(
            {
                "step": np.full(B, step, dtype=np.int64),
                "group": (self._next_group + rows // group_size).astype(np.int32),
                "index": (rows % group_size).astype(np.int16),
                "reward": torch.as_tensor(rewards).detach().cpu().double().reshape(B).numpy(),
                "advantage": torch.as_tensor(advantages).detach().cpu().double().reshape(B).numpy(),
                "length": lengths.astype(np.int32),
                "token_ids": ids.astype(np.int32),
            }
        )
        self._next_group += B // group_size
        self._steps += 1
        self._tokens += ids.size
        if self._steps >= self.flush_every or self._tokens >= self.max_buffer_tokens:
            self.flush()

    def flush(self) -> None:
        """Write the buffered steps as one complete, atomically renamed part file (one row group)."""
        if not self._buffer:
            return
        cols = {name: np.concatenate([b[name] for b in self._buffer]) for name in SCHEMA.names}
        offsets = np.zeros(len(cols["length"]) + 1, dtype=np.int64)
        np.cumsum(cols["length"], out=offsets[1:])
        if offsets[-1] > np.iinfo(np.int32).max:
            raise SettingError("too many tokens for one row group; lower max_buffer_tokens")
        arrays = [pa.array(cols[name], type=SCHEMA.field(name).type) for name in SCHEMA.names[:-1]]
        arrays.append(pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(cols["token_ids"])))
        table = pa.Table.from_arrays(arrays, schema=SCHEMA)
        self.parts.mkdir(parents=True, exist_ok=True)
        part = self.parts / f"part-{self._n_parts:06d}.parquet"
        write_atomic(part, {"": lambda tmp: pq.write_table(table, tmp, compression=self.compression)})
        self._n_parts += 1
        self._buffer, self._steps, self._tokens = [], 0, 0

    def close(self) -> None:
        """Flush, merge the parts into `path` (one row group per part, streamed) and remove them."""
        if self.closed:
            return
        self.flush()
        self.closed = True

        def merge(tmp):
            with pq.ParquetWriter(tmp, SCHEMA, compression=self.compression) as writer:
                for table in iter_tables(self.parts) if self._n_parts else [SCHEMA.empty_table()]:
                    writer.write_table(table)

        write_atomic(self.path, {"": merge})
        shutil.rmtree(self.parts, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BatchRecorder:
    """What a run records about each generated batch, beside training on it: the trainer's `on_batch` hook
    (`LambdaGRPOTrainer(on_batch=BatchRecorder(...))`), constructed by the toy and math runs.

    - Metrics, every batch (training and evaluation, every process): `lambda/weight_mean` and
      `lambda/shared_token_frac` (mean weight and share of tokens with |λ| > 1, over real tokens), and the batch's
      prefix-tree statistics (`grpo_prm.prefix_tree.size_statistics`, §3 overlap analysis): `tree/flat_frac`,
      `tree/path_depth`, `tree/intermediate_proportion`, `tree/duplicate_frac`. They are logged with the step's.
    - Groups, given a `GroupRecorder`: every training group with its rewards and TRL's advantages, on the main
      process (the rows are already gathered from all processes).
    """

    def __init__(self, groups: GroupRecorder | None = None):
        self.groups = groups

    def __call__(self, trainer, completion_ids, completion_mask, process_set_sizes, weights, group_size: int) -> None:
        if self.groups is not None and trainer.model.training and trainer.accelerator.is_main_process:
            rewards, advantages = trainer.logged_rewards(len(completion_ids))
            self.groups.add(trainer.state.global_step, completion_ids, completion_mask, rewards, advantages, group_size)
        mode = "train" if trainer.model.training else "eval"
        for name, value in batch_metrics(
            completion_ids, completion_mask, process_set_sizes, weights, group_size
        ).items():
            trainer._metrics[mode][name].append(value)


def batch_metrics(ids, mask, n_shared, weights, k: int) -> dict[str, float]:
    """The metrics `BatchRecorder` logs for one batch of (B, T) ids, mask, |λ| and weights in groups of `k`."""
    duplicates = duplicate_counts(ids, mask, k)
    stats = size_statistics(n_shared, k, duplicates)
    valid = mask.float()
    metrics = {
        "lambda/weight_mean": (weights * valid).sum() / valid.sum().clamp(min=1),
        "lambda/shared_token_frac": ((n_shared > 1) & mask).sum() / valid.sum().clamp(min=1),
        "tree/flat_frac": stats["flat"].float().mean(),
        "tree/path_depth": stats["path_depth"].float().mean(),
        "tree/intermediate_proportion": stats["intermediate_proportion"].mean(),
        "tree/duplicate_frac": (duplicates > 1).float().mean(),
    }
    return {name: value.item() for name, value in metrics.items()}


def iter_tables(path) -> Iterator[pa.Table]:
    """The recording one row group (one flush) at a time: from the merged file, else from the parts folder."""
    path = Path(path)
    if path.is_file():
        file = _checked(pq.ParquetFile, path)
        for i in range(file.num_row_groups):
            yield file.read_row_group(i)
        return
    folder = path if path.is_dir() else parts_dir(path)
    parts = sorted(p for p in folder.glob("part-*.parquet") if PART.fullmatch(p.name)) if folder.is_dir() else []
    if not parts:
        raise FileNotFoundError(f"no recording at {path}")
    for part in parts:
        yield _checked(pq.read_table, part)


def _checked(read, path):
    """`read(path)` (a ParquetFile or a table) that is a group recording; else one ValueError naming the file."""
    try:
        data = read(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise RecordingError(f"{path}: not a readable Parquet file ({' '.join(str(e).split())})") from e
    names = (data.schema_arrow if isinstance(data, pq.ParquetFile) else data.schema).names
    missing = [name for name in SCHEMA.names if name not in names]
    if missing:
        raise RecordingError(f"{path}: not a group recording (missing column {missing[0]!r})")
    return data


def read_groups(path) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every recorded group, in (step, group) order within each row group.

    Yields:
        `(step, group_id, token_ids, mask, rewards)`: `token_ids` LongTensor (k, T) right-padded with 0, `mask`
        BoolTensor (k, T), `rewards` float64 Tensor (k,), rows in index order; T is the group's longest length.
    """
    for table in iter_tables(path):
        if not table.num_rows:
            continue
        step, group, index = (table[c].to_numpy() for c in ("step", "group", "index"))
        reward, length = table["reward"].to_numpy(), table["length"].to_numpy()
        tokens = table["token_ids"].combine_chunks()
        offsets, values = tokens.offsets.to_numpy(), tokens.values.to_numpy()
        order = np.lexsort((index, group, step))
        key = np.stack([step[order], group[order]], 1)
        bounds = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]).any(1), True])
        for lo, hi in pairwise(bounds):
            rows = order[lo:hi]
            T = int(length[rows].max()) if len(rows) else 0
            mask = np.arange(T) < length[rows][:, None]  # (k, T)
            ids = np.zeros((len(rows), T), dtype=np.int64)
            ids[mask] = np.concatenate([values[offsets[r] : offsets[r + 1]] for r in rows])
            yield (
                int(step[rows[0]]),
                int(group[rows[0]]),
                torch.from_numpy(ids),
                torch.from_numpy(mask),
                torch.from_numpy(reward[rows].copy()),
            )
