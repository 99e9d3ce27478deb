"""Math RL data and evaluation benchmarks of the downstream experiments (arXiv 2509.21154 §5, App. C, Table 2).

Every loader returns plain rows normalised to `{"id", "problem", "answer"}` (strings), whatever the source schema:

- **Prompt** (the authors' code, github.com/coli-saar/grpo-prm): system `SYSTEM_PROMPT`, user = problem; TRL
  applies the model's chat template.
- **Training data** (§5, App. C): OpenRS, `knoveleng/open-rs` (train split, 7,000 problems), with a seeded
  125-problem validation split (the paper's split rule is unpublished).
- **Offline training data** of the embedded default, which runs without the Hub: `grpo_prm.word_problems`.
- **Benchmarks** (Table 2): AIME24, MATH-500, AMC23, Minerva-Math, OlympiadBench, plus GSM8K test.

Each Hub loader has a local-directory override (`local_dir`) read through the same `datasets.load_dataset` call
with the `json`/`parquet` builder; local copies may use other field names than the Hub, and both are mapped.
Bad input raises `DataError` with a one-line message naming the file, row and field.
"""

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets

from grpo_prm.boxed import last_boxed
from grpo_prm.cli import InputError

SYSTEM_PROMPT = "Let's think step by step and output the final answer within \\boxed{}."
OPENRS_HUB_ID = "knoveleng/open-rs"
# Local copies: `<dir>/<split>.jsonl|json|parquet`, or the Hub's own layout `<dir>/data/<split>-*.parquet`.
LOCAL_PATTERNS = ("{split}.jsonl", "{split}.json", "{split}.parquet", "data/{split}-*.parquet", "{split}-*.parquet")


class DataError(InputError):
    """Malformed or missing data; the message names the file (or Hub id), row and field at fault."""


def build_prompt(problem: str) -> list[dict]:
    """Conversational prompt of the authors' code (github.com/coli-saar/grpo-prm): system instruction, then the
    problem as user turn.

    Args:
        problem (`str`):
            Problem statement, used verbatim as the user message.

    Returns:
        `list[dict]`: `[{"role": "system", ...}, {"role": "user", ...}]`, to which TRL applies the chat template.
    """
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem}]


def to_trl_dataset(rows: list[dict]) -> datasets.Dataset:
    """Rows as a TRL GRPO dataset: a conversational `prompt` column plus `id` and `answer` (passed to rewards)."""
    records = [{"prompt": build_prompt(r["problem"]), "id": r["id"], "answer": r["answer"]} for r in rows]
    return datasets.Dataset.from_list(records)


# ---- Reading rows from the Hub or a local copy ----


def _local_files(directory: Path, splits: tuple[str, ...]) -> tuple[str, list[str]]:
    """The `datasets` builder name and data files of the first of `splits` found in a local copy."""
    if not directory.is_dir():
        raise DataError(f"local data folder not found: {directory}")
    patterns = [p.format(split=split) for split in dict.fromkeys(splits) for p in LOCAL_PATTERNS]
    for pattern in patterns:
        files = sorted(directory.glob(pattern))
        if files:
            return ("parquet" if files[0].suffix == ".parquet" else "json"), [str(f) for f in files]
    raise DataError(f"no data file in {directory} (looked for {', '.join(patterns)})")


def _read_rows(
    hub_id: str, split: str, config: str | None, revision: str | None, local: Path | None, local_split: tuple = ()
):
    """Rows of a Hub dataset split, or of its local copy (files named `local_split`, else `split`).

    Returns `(source, rows)`, `source` naming the Hub id or file for messages.
    """
    if local is None:
        ds = datasets.load_dataset(hub_id, config, split=split, revision=revision)
        return f"{hub_id}@{revision or 'main'}", ds.to_list()
    builder, files = _local_files(local, (*local_split, split))
    source = files[0] if len(files) == 1 else str(local)
    if all(Path(f).stat().st_size == 0 for f in files):
        raise DataError(f"{source}: no rows")
    try:
        rows = datasets.load_dataset(builder, data_files=files, split="train").to_list()
    except Exception as exc:  # json/arrow parse errors come in many types; report the file, keep the cause chained
        raise DataError(f"{source}: cannot be read as {builder} ({type(exc).__name__})") from exc
    if not rows:
        raise DataError(f"{source}: no rows")
    return source, rows


def _text(value) -> str:
    """A gold or problem value as text; integral floats (AMC23 stores `27.0`) lose their `.0`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


def _field(row: dict, name: str, where: str):
    if name not in row or row[name] is None:
        raise DataError(f"{where}: missing field '{name}'")
    return row[name]


def _problem(row: dict, where: str):
    """Problem text: `problem`, or `question` where a source has only that (OlympiadBench, GSM8K)."""
    return _field(row, "question" if "question" in row and "problem" not in row else "problem", where)


def _plain_answer(row: dict, where: str):
    return _field(row, "answer", where)


def _normalise(raw: list[dict], source: str, problem: Callable, answer: Callable, id_field: str | None) -> list[dict]:
    """Map source rows to `{"id", "problem", "answer"}`; ids are `id_field` or the row index, and must be unique."""
    rows = []
    for i, row in enumerate(raw):
        where = f"{source} row {i}"
        out = {"id": _text(row[id_field]) if id_field in row else str(i)}
        out["problem"], out["answer"] = _text(problem(row, where)), _text(answer(row, where))
        for name in ("id", "problem", "answer"):
            if not out[name]:
                raise DataError(f"{where}: empty {name}")
        rows.append(out)
    dup = [k for k, c in Counter(r["id"] for r in rows).items() if c > 1]
    if dup:
        raise DataError(f"{source}: duplicate id {dup[0]!r}")
    return rows


# ---- Paper training data: OpenRS and its validation split ----


def load_openrs(local_dir: str | None = None, revision: str | None = None) -> list[dict]:
    """OpenRS training problems (`knoveleng/open-rs`, train split; §5, App. C).

    The gold is the `answer` field. The authors' files hold `{problem, solution}` and it is unknown whether their
    `solution` was OpenRS's full solution or its `answer` (unpublished). Their reward parses the gold with
    math-verify and pays 1.0 when that fails, so the short final `answer` is the choice that keeps golds parseable.

    Args:
        local_dir (`str` or `None`, *optional*):
            Folder with a copy in the Hub's schema (`train.jsonl`, `train.parquet` or `data/train-*.parquet`).
            `None` loads from the Hub.
        revision (`str` or `None`, *optional*):
            Hub revision (commit or tag) to pin; ignored with `local_dir`.

    Returns:
        `list[dict]`: rows `{"id", "problem", "answer"}`; `id` is the row index in the source split.
    """
    local = None if local_dir is None else Path(local_dir)
    source, raw = _read_rows(OPENRS_HUB_ID, "train", None, revision, local)
    return _normalise(raw, source, _problem, _plain_answer, None)


def read_problems(path: str) -> list[dict]:
    """JSONL rows with non-empty `problem` and `answer`; a bad row is named by file and line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text (byte {e.start})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p} line {n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{p} line {n}: not a JSON object")
        for key in ("id", "problem", "answer"):
            if not str(row.get(key, "")).strip():
                raise DataError(f"{p} line {n}: missing or empty field {key!r}")
        rows.append(row)
    if not rows:
        raise DataError(f"{p}: no rows")
    return rows


def fingerprint(rows: list[dict]) -> str:
    """SHA-256 over the rows' ids and problems: tells whether a split record belongs to the data at hand."""
    digest = hashlib.sha256()
    for r in rows:
        digest.update(f"{r['id']}\x00{r['problem']}\x00".encode())
    return digest.hexdigest()


def split_train_val(rows: list[dict], n_val: int = 125, seed: int = 0) -> tuple[list[dict], list[dict], dict]:
    """Seeded train/validation split (App. C: 125 held-out problems; the paper's rule is unpublished).

    Validation draws, in seeded order, only problems whose text occurs once in `rows`, so no validation problem is
    also trained on; all other rows are training rows, in source order.

    Args:
        rows (`list[dict]`):
            Rows with unique `id` and a `problem`.
        n_val (`int`, *optional*, defaults to `125`):
            Validation size.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the permutation.

    Returns:
        `tuple[list[dict], list[dict], dict]`: train rows, validation rows, and a JSON-ready record of the split
        (seed, sizes, `train_ids`, `val_ids`, and a `fingerprint` of all ids and problems).
    """
    if n_val < 1:
        raise DataError(f"n_val={n_val}: the validation set would be empty")
    counts = Counter(r["problem"] for r in rows)
    order = random.Random(seed).sample(range(len(rows)), len(rows))
    val_idx = [i for i in order if counts[rows[i]["problem"]] == 1][:n_val]
    if len(val_idx) < n_val or len(val_idx) == len(rows):
        raise DataError(f"n_val={n_val}: too large for {len(rows)} rows ({len(counts)} distinct problems)")
    taken = set(val_idx)
    train = [r for i, r in enumerate(rows) if i not in taken]
    val = [rows[i] for i in val_idx]
    record = {"seed": seed, "n_train": len(train), "n_val": len(val), "fingerprint": fingerprint(rows)}
    return train, val, record | {"train_ids": [r["id"] for r in train], "val_ids": [r["id"] for r in val]}


# ---- Evaluation benchmarks (Table 2) ----


def _minerva_answer(row: dict, where: str) -> str:
    answer = last_boxed(_field(row, "solution", where))
    if answer is None:
        raise DataError(f"{where}: field 'solution' has no closed \\boxed{{}} answer")
    return answer


def _olympiad_answer(row: dict, where: str) -> str:
    """`final_answer[0]` (the original set's gold, local copy); `answer` where the Hub copy has only that."""
    finals = row.get("final_answer")
    return finals[0] if finals else _field(row, "answer", where)


def _gsm8k_answer(row: dict, where: str) -> str:
    """The number after `#### ` of the worked solution, thousands separators removed (`1,600` -> `1600`)."""
    solution = _field(row, "answer", where)
    if "####" not in solution:
        raise DataError(f"{where}: field 'answer' has no '#### <answer>' line")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


@dataclass(frozen=True)
class Benchmark:
    """One evaluation set: Hub location, expected size, local folder, and how to read its gold answer."""

    hub_id: str
    split: str  # Hub split; local copies are `<local_dir>/<folder>/test.jsonl`
    n: int  # rows, as in the paper's Table 2 (GSM8K: its test split)
    folder: str
    answer: Callable[[dict, str], object]
    config: str | None = None
    id_field: str | None = None  # source id if both schemas carry it, else the row index


BENCHMARKS = {
    "aime24": Benchmark("HuggingFaceH4/aime_2024", "train", 30, "aime24", _plain_answer, id_field="id"),
    "math500": Benchmark("HuggingFaceH4/MATH-500", "test", 500, "math500", _plain_answer),
    "amc23": Benchmark("knoveleng/AMC-23", "train", 40, "amc23", _plain_answer, id_field="id"),
    "minerva_math": Benchmark("knoveleng/Minerva-Math", "train", 272, "minerva_math", _minerva_answer, id_field="idx"),
    "olympiadbench": Benchmark(
        "knoveleng/OlympiadBench", "train", 675, "olympiadbench", _olympiad_answer, id_field="id"
    ),
    "gsm8k": Benchmark("openai/gsm8k", "test", 1319, "gsm8k", _gsm8k_answer, config="main"),
}
TABLE2 = ("aime24", "math500", "amc23", "minerva_math", "olympiadbench")  # column order of Table 2


def content_sha256(rows: list[dict]) -> str:
    """SHA-256 of rows as canonical JSON (sorted keys, no spaces, UTF-8): the identity of the data a result saw."""
    text = json.dumps(rows, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_benchmark(
    name: str, local_dir: str | None = None, revision: str | None = None, sha256: str | None = None
) -> list[dict]:
    """An evaluation benchmark as rows `{"id", "problem", "answer"}`, checked against its size in the paper.

    Args:
        name (`str`):
            One of `BENCHMARKS`: `aime24`, `math500`, `amc23`, `minerva_math`, `olympiadbench` (Table 2), `gsm8k`.
        local_dir (`str` or `None`, *optional*):
            Root of local copies, read from `<local_dir>/<name>/test.jsonl` (or a Hub snapshot of the split there,
            e.g. `data/train-*.parquet`); `None` loads from the Hub.
        revision (`str` or `None`, *optional*):
            Hub revision to pin; ignored with `local_dir`.
        sha256 (`str` or `None`, *optional*):
            Expected `content_sha256` of the normalised rows; a mismatch raises `DataError`.

    Returns:
        `list[dict]`: the benchmark's `n` rows, in source order.
    """
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    if local_dir is None:
        source, raw = _read_rows(spec.hub_id, spec.split, spec.config, revision, None)
    else:
        source, raw = _read_rows(spec.hub_id, spec.split, None, None, Path(local_dir) / spec.folder, ("test",))
    rows = _normalise(raw, source, _problem, spec.answer, spec.id_field)
    if len(rows) != spec.n:
        raise DataError(f"{source}: {len(rows)} rows, expected {spec.n} for {name} (wrong dataset or revision?)")
    if sha256 is not None and content_sha256(rows) != sha256:
        raise DataError(f"{source}: content sha256 {content_sha256(rows)} is not the expected {sha256} for {name}")
    return rows
