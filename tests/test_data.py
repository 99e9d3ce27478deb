"""Tests of `grpo_prm.data`: prompts, OpenRS and its split, offline problems, benchmarks (arXiv 2509.21154 §5,
App. C, Table 2).

Benchmark mappings are checked on the real local copies in `../shared/data` (from the project root). The Hub code
path runs against stand-ins: `datasets.load_dataset` is patched to check the Hub id, config, split and revision,
and to return a local copy rewritten in the Hub's schema.
"""

import json
import re
from pathlib import Path

import datasets
import pytest

from grpo_prm.data import (
    BENCHMARKS,
    SYSTEM_PROMPT,
    TABLE2,
    DataError,
    build_prompt,
    content_sha256,
    load_benchmark,
    load_openrs,
    split_train_val,
    to_trl_dataset,
)
from grpo_prm.word_problems import make_arithmetic_problems, offline_splits

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"
# n of each benchmark in Table 2, and GSM8K's test split.
PAPER_N = {"aime24": 30, "math500": 500, "amc23": 40, "minerva_math": 272, "olympiadbench": 675, "gsm8k": 1319}
REAL_LOAD_DATASET = datasets.load_dataset


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Keep the `datasets` cache of these tests out of the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"local benchmark copies not found at {SHARED_DATA} (expected ../shared/data from the project root)"
        )
    return SHARED_DATA


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fake_hub(monkeypatch, hub_id: str, config, split: str, revision, standin: Path) -> list:
    """Patch `datasets.load_dataset`: the Hub call must name `hub_id`, `config`, `split`, `revision`."""
    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kwargs):
        if path in ("json", "parquet"):
            return REAL_LOAD_DATASET(path, name, split=split, **kwargs)
        calls.append((path, name, split, revision))
        assert (path, name, split, revision) == (hub_id, config, expected_split, expected_revision)
        return REAL_LOAD_DATASET("json", data_files=str(standin), split="train")

    expected_split, expected_revision = split, revision
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


# ---- Prompt ----


def test_build_prompt_is_system_then_user():
    assert SYSTEM_PROMPT == "Let's think step by step and output the final answer within \\boxed{}."
    assert build_prompt("What is 1+1?") == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "What is 1+1?"},
    ]


def test_to_trl_dataset_has_conversational_prompt_and_answer():
    ds = to_trl_dataset([{"id": "7", "problem": "2+2?", "answer": "4"}])
    assert ds.column_names == ["prompt", "id", "answer"]
    assert ds[0]["prompt"] == build_prompt("2+2?") and ds[0]["answer"] == "4"


# ---- Benchmarks on the real local copies ----


def test_benchmark_table_matches_paper():
    assert TABLE2 == ("aime24", "math500", "amc23", "minerva_math", "olympiadbench")
    assert {name: spec.n for name, spec in BENCHMARKS.items()} == PAPER_N
    assert BENCHMARKS["minerva_math"].hub_id == "knoveleng/Minerva-Math"
    assert (BENCHMARKS["gsm8k"].hub_id, BENCHMARKS["gsm8k"].config) == ("openai/gsm8k", "main")


@pytest.mark.parametrize("name", list(PAPER_N))
def test_local_benchmark_rows(shared_data, name):
    rows = load_benchmark(name, local_dir=str(shared_data))
    assert len(rows) == PAPER_N[name]
    assert all(set(r) == {"id", "problem", "answer"} and all(r.values()) for r in rows)
    assert all(isinstance(v, str) for r in rows for v in r.values())
    assert len({r["id"] for r in rows}) == len(rows)


def test_local_mapping_of_each_schema(shared_data):
    """Field mapping on the local schema: one known row per benchmark, then a rule over all rows."""
    first = {name: load_benchmark(name, local_dir=str(shared_data))[0] for name in PAPER_N}
    assert (first["aime24"]["id"], first["aime24"]["answer"]) == ("60", "204")
    assert first["amc23"]["answer"] == "27"  # stored as 27.0
    assert first["minerva_math"]["answer"] == "1.6"  # \boxed{} of the solution
    assert (first["olympiadbench"]["id"], first["olympiadbench"]["answer"]) == ("1606", "2")  # final_answer[0]
    assert first["olympiadbench"]["problem"].startswith("Xenia and Sergey")  # from `question`
    assert first["gsm8k"]["answer"] == "18" and first["gsm8k"]["problem"].startswith("Janet")
    assert first["math500"]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"

    raw = read_jsonl(shared_data / "gsm8k" / "test.jsonl")
    answers = [r["answer"] for r in load_benchmark("gsm8k", local_dir=str(shared_data))]
    assert answers == [r["answer"].split("#### ")[-1].replace(",", "") for r in raw]
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", a) for a in answers)
    raw = read_jsonl(shared_data / "minerva_math" / "test.jsonl")
    rows = load_benchmark("minerva_math", local_dir=str(shared_data))
    assert all("\\boxed{" + r["answer"] in s["solution"] for r, s in zip(rows, raw))  # answers are stripped
    raw = read_jsonl(shared_data / "olympiadbench" / "test.jsonl")
    rows = load_benchmark("olympiadbench", local_dir=str(shared_data))
    assert [r["answer"] for r in rows] == [s["final_answer"][0].strip() for s in raw]


def to_hub_schema(name: str, rows: list[dict]) -> list[dict]:
    """A local copy rewritten into the Hub's schema where the two differ."""
    if name == "olympiadbench":  # Hub (per open-rs's eval code): `answer` holds the gold
        return [{k: v for k, v in r.items() if k != "final_answer"} | {"answer": r["final_answer"][0]} for r in rows]
    if name == "math500":
        return [r | {"unique_id": f"test/x/{i}.json"} for i, r in enumerate(rows)]
    if name == "aime24":
        return [{k: v for k, v in r.items() if k != "question"} | {"year": 2024} for r in rows]
    return rows


@pytest.mark.parametrize("name", list(PAPER_N))
def test_benchmark_hub_path_matches_local(shared_data, tmp_path, monkeypatch, name):
    local = load_benchmark(name, local_dir=str(shared_data))
    spec = BENCHMARKS[name]
    standin = write_jsonl(tmp_path / "hub.jsonl", to_hub_schema(name, read_jsonl(shared_data / name / "test.jsonl")))
    calls = fake_hub(monkeypatch, spec.hub_id, spec.config, spec.split, "abc123", standin)
    assert load_benchmark(name, revision="abc123") == local
    assert calls == [(spec.hub_id, spec.config, spec.split, "abc123")]


def test_benchmark_hub_path_checks_size(tmp_path, monkeypatch):
    spec = BENCHMARKS["amc23"]
    standin = write_jsonl(tmp_path / "hub.jsonl", [{"id": 0, "problem": "p", "answer": 1.0}])
    fake_hub(monkeypatch, spec.hub_id, None, "train", None, standin)
    with pytest.raises(DataError, match=r"knoveleng/AMC-23@main: 1 rows, expected 40"):
        load_benchmark("amc23")


OPENRS = [
    {"problem": "Find $x$ if $x+1=3$.", "solution": "Then $x=\\boxed{2}$.", "answer": "2", "level": "1"},
    {"problem": "Compute $3^2$.", "solution": "$3^2=\\boxed{9}$.", "answer": "9", "level": "1"},
]


def test_openrs_hub_path(tmp_path, monkeypatch):
    standin = write_jsonl(tmp_path / "hub.jsonl", OPENRS)
    calls = fake_hub(monkeypatch, "knoveleng/open-rs", None, "train", "v1", standin)
    rows = load_openrs(revision="v1")
    assert calls == [("knoveleng/open-rs", None, "train", "v1")]
    assert rows == [{"id": str(i), "problem": r["problem"], "answer": r["answer"]} for i, r in enumerate(OPENRS)]


@pytest.mark.parametrize("layout", ["train.jsonl", "train.parquet", "data/train-00000-of-00001.parquet"])
def test_openrs_local_copy_layouts(tmp_path, layout):
    path = tmp_path / "open-rs" / layout
    path.parent.mkdir(parents=True)
    ds = datasets.Dataset.from_list(OPENRS)
    ds.to_json(path) if path.suffix == ".jsonl" else ds.to_parquet(path)
    rows = load_openrs(local_dir=str(tmp_path / "open-rs"))
    assert [r["answer"] for r in rows] == ["2", "9"] and [r["id"] for r in rows] == ["0", "1"]


# ---- Validation split ----


def make_rows(n: int) -> list[dict]:
    return [{"id": str(i), "problem": f"problem {i}", "answer": str(i)} for i in range(n)]


def test_split_train_val_is_seeded_disjoint_and_recorded():
    rows = make_rows(300)
    train, val, record = split_train_val(rows, n_val=125, seed=0)
    assert (len(train), len(val)) == (175, 125)
    assert sorted(r["id"] for r in train + val) == sorted(r["id"] for r in rows)
    assert record["val_ids"] == [r["id"] for r in val] and record["train_ids"] == [r["id"] for r in train]
    assert json.loads(json.dumps(record)) == record
    assert split_train_val(rows, 125, seed=0)[2] == record
    assert split_train_val(rows, 125, seed=1)[2]["val_ids"] != record["val_ids"]
    assert record["fingerprint"] != split_train_val(make_rows(299), 125)[2]["fingerprint"]


def test_split_keeps_duplicated_problems_out_of_validation():
    rows = make_rows(20) + [{"id": f"d{i}", "problem": "problem 3", "answer": "3"} for i in range(2)]
    train, val, _ = split_train_val(rows, n_val=15, seed=0)
    assert "problem 3" not in {r["problem"] for r in val}
    assert not {r["problem"] for r in train} & {r["problem"] for r in val}


@pytest.mark.parametrize("n_val", [0, 10, 11])
def test_split_rejects_empty_sets(n_val):
    with pytest.raises(DataError, match=f"n_val={n_val}"):
        split_train_val(make_rows(10), n_val=n_val)


# ---- Offline problems ----


def check_worked_solution(row: dict):
    """Each equation holds, starts from the previous result, and the last result is the answer."""
    previous = None
    for line in row["solution"].splitlines():
        lhs, rhs = line.split(" = ")
        assert eval(lhs.replace("/", "//")) == int(rhs)  # our own generated arithmetic
        assert previous is None or lhs.startswith(previous + " ")
        previous = rhs
    assert previous is None or previous == row["answer"]


def test_arithmetic_problems_are_seeded_distinct_and_correct():
    rows = make_arithmetic_problems(300, seed=0)
    assert rows == make_arithmetic_problems(300, seed=0)
    assert rows != make_arithmetic_problems(300, seed=1)
    assert len({r["problem"] for r in rows}) == 300 and len({r["id"] for r in rows}) == 300
    for row in rows:
        assert int(row["answer"]) > 0 and row["problem"].endswith("have now?")
        check_worked_solution(row)


def test_arithmetic_difficulty_sets_step_count():
    easy = make_arithmetic_problems(50, seed=0, min_steps=1, max_steps=1, max_operand=5)
    hard = make_arithmetic_problems(50, seed=0, min_steps=5, max_steps=5)
    assert all(len(r["problem"].split(". ")) == 3 for r in easy)  # opening, one step, question
    assert all(len(r["problem"].split(". ")) == 7 for r in hard)
    with pytest.raises(DataError, match="bad difficulty"):
        make_arithmetic_problems(5, min_steps=3, max_steps=2)


def test_offline_splits_are_disjoint_and_seeded():
    train, val, test = offline_splits(500, 50, 100, seed=3)
    assert (len(train), len(val), len(test)) == (500, 50, 100)
    texts = [{r["problem"] for r in part} for part in (train, val, test)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    assert offline_splits(500, 50, 100, seed=3) == (train, val, test)
    assert offline_splits(10, 5, 5, seed=0, max_steps=2)[0] != offline_splits(10, 5, 5, seed=0)[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_val": 0}, "n_val=0"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_offline_splits_bad_arguments(kwargs, message):
    with pytest.raises(DataError, match=re.escape(message)):
        offline_splits(**({"n_train": 5, "n_val": 5, "n_test": 5} | kwargs))


# ---- Bad input: one-line DataError naming the culprit ----


def raises_one_line(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_unknown_benchmark_names_the_known_ones():
    message = raises_one_line("unknown benchmark 'aime25'", load_benchmark, "aime25", local_dir="/nonexistent")
    assert all(name in message for name in BENCHMARKS)


def test_missing_local_folder_and_file(tmp_path):
    raises_one_line(f"local data folder not found: {tmp_path / 'aime24'}", load_benchmark, "aime24", str(tmp_path))
    (tmp_path / "aime24").mkdir()
    raises_one_line(
        r"no data file in .*aime24 \(looked for test.jsonl, .*train.jsonl", load_benchmark, "aime24", str(tmp_path)
    )
    raises_one_line("local data folder not found", load_openrs, str(tmp_path / "nope"))


@pytest.mark.parametrize(
    "name, rows, message",
    [
        (
            "amc23",
            [{"id": 0, "problem": "p", "answer": 1.0}, {"id": 1, "problem": "q"}],
            r"row 1: missing field 'answer'",
        ),
        ("amc23", [{"id": 0, "problem": " ", "answer": 1.0}], r"row 0: empty problem"),
        ("math500", [{"problem": "p", "answer": ""}], r"row 0: empty answer"),
        ("amc23", [{"id": 0, "answer": 1.0}], r"row 0: missing field 'problem'"),
        (
            "amc23",
            [{"id": 0, "problem": "p", "answer": 1}, {"id": 0, "problem": "q", "answer": 2}],
            "duplicate id '0'",
        ),
        (
            "minerva_math",
            [{"problem": "p", "solution": "it is 3", "idx": 0}],
            r"row 0: field 'solution' has no closed",
        ),
        ("gsm8k", [{"question": "q", "answer": "so 3"}], r"row 0: field 'answer' has no '#### <answer>'"),
        ("olympiadbench", [{"id": 1, "question": "q", "final_answer": []}], r"row 0: missing field 'answer'"),
        ("aime24", [{"id": 60, "problem": "p", "answer": "204"}], r"1 rows, expected 30"),
    ],
)
def test_bad_rows_name_file_row_and_field(tmp_path, name, rows, message):
    path = write_jsonl(tmp_path / name / "test.jsonl", rows)
    text = raises_one_line(message, load_benchmark, name, local_dir=str(tmp_path))
    assert text.startswith(str(path))


def test_unreadable_and_empty_local_files(tmp_path):
    (tmp_path / "amc23").mkdir()
    (tmp_path / "amc23" / "test.jsonl").write_text('{"id": 0, "problem": "p"\nnot json\n')
    raises_one_line(r"amc23/test.jsonl: cannot be read as json", load_benchmark, "amc23", str(tmp_path))
    write_jsonl(tmp_path / "rs" / "train.jsonl", [])
    raises_one_line(r"rs/train.jsonl: no rows", load_openrs, str(tmp_path / "rs"))


def test_openrs_row_without_answer(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [OPENRS[0], {"problem": "p", "solution": "s"}])
    raises_one_line(r"train.jsonl row 1: missing field 'answer'", load_openrs, str(tmp_path))


def test_local_benchmark_accepts_a_hub_snapshot_layout(shared_data, tmp_path):
    """A downloaded Hub snapshot (`data/<hub split>-*.parquet`) works as the local override too."""
    path = tmp_path / "amc23" / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    datasets.Dataset.from_list(read_jsonl(shared_data / "amc23" / "test.jsonl")).to_parquet(path)
    assert load_benchmark("amc23", local_dir=str(tmp_path)) == load_benchmark("amc23", local_dir=str(shared_data))


# ---- Content hash: what a result saw ----


def test_content_sha256_is_canonical_and_checked(shared_data):
    rows = load_benchmark("amc23", local_dir=str(shared_data))
    digest = content_sha256(rows)
    assert digest == content_sha256([dict(reversed(list(r.items()))) for r in rows])  # key order does not count
    assert digest != content_sha256([rows[0] | {"answer": "28"}, *rows[1:]])  # one gold changed
    assert load_benchmark("amc23", local_dir=str(shared_data), sha256=digest) == rows
    with pytest.raises(DataError, match=r"content sha256 .* for amc23"):
        load_benchmark("amc23", local_dir=str(shared_data), sha256="0" * 64)
