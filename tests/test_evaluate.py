"""Tests of the lm-eval tasks (`grpo_prm.lm_eval_tasks`) and `grpo_prm.evaluate`, offline against ../shared/data."""

import json
from pathlib import Path

import datasets
import pytest
import torch
from lm_eval.tasks import TaskManager
from transformers import AutoTokenizer

from grpo_prm.checkpoints import BOS, EOS, _tiny_model, train_tokenizer
from grpo_prm.data import SYSTEM_PROMPT, DataError, offline_splits
from grpo_prm.evaluate import main
from grpo_prm.lm_eval_tasks import TASK_DIR
from grpo_prm.lm_eval_tasks.utils import score

DATA = Path(__file__).parents[1].parent / "shared" / "data"  # ../shared/data from the project root, as in CI


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No Hub, a private `datasets` cache, one thread."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"local benchmark copies not found at {DATA} (expected ../shared/data from the project root)")
    return DATA


def load_tasks(names, **metadata):
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)
    return manager.load([f"grpo_prm_{n}" for n in names])["tasks"]


# ---- Task definitions ----


def test_table2_tasks_load_offline_with_paper_sizes(shared_data):
    sizes = {"aime24": 30, "math500": 500, "amc23": 40, "minerva_math": 272, "olympiadbench": 675}
    tasks = load_tasks(sizes, data_dir=str(DATA))
    for name, n in sizes.items():
        task = tasks[f"grpo_prm_{name}"]
        docs = task.eval_docs
        assert len(docs) == n
        assert set(docs.column_names) == {"id", "problem", "answer"}
        assert task.doc_to_text(docs[0]) == docs[0]["problem"] and task.doc_to_target(docs[0]) == docs[0]["answer"]
        kwargs = task.config.generation_kwargs
        assert kwargs["until"] == [] and kwargs["do_sample"] is False and "max_gen_toks" not in kwargs
        assert task.config.num_fewshot == 0
    assert tasks["grpo_prm_minerva_math"].eval_docs[0]["answer"]  # taken from the solution's \boxed{}


def test_offline_task_reads_the_offline_test_set(tmp_path):
    _, _, test = offline_splits(5, 2, 3, seed=1)
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in test))
    docs = load_tasks(["offline"], offline_file=str(path))["grpo_prm_offline"].eval_docs
    assert docs.to_list() == [{k: r[k] for k in ("id", "problem", "answer")} for r in test]


def test_offline_task_without_file_is_refused():
    with pytest.raises(DataError, match="offline_file"):
        load_tasks(["offline"])


# ---- Metric ----


@pytest.mark.parametrize(
    "boxed, gold, correct",
    [
        (r"\frac{1}{2}", "0.5", True),
        ("0.5", r"\frac{1}{2}", True),
        ("1/2", r"\frac{1}{2}", True),
        (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", True),
        (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
        ("3", "4", False),
        (r"\frac{1}{3}", "0.33", False),
        (r"\{1, 2, 3\}", r"\{3, 2, 1\}", True),
        (r"\{1, 2\}", r"\{1, 2, 3\}", False),
        (r"(1, 2]", r"(1, 2]", True),
        (r"(1, 2]", r"[1, 2]", False),
        (r"x^2 + 2x + 1", r"(x+1)^2", True),
        ("204", "204", True),
    ],
)
def test_metric_scores_equivalent_latex(boxed, gold, correct):
    got = score(f"Some reasoning. The answer is \\boxed{{{boxed}}}.", gold)
    assert got == {"accuracy": float(correct), "boxed": 1.0}


def test_metric_reads_the_first_box_and_needs_one():
    assert score(r"\boxed{3} no, \boxed{4}", "4")["accuracy"] == 0.0
    assert score("the answer is 4", "4") == {"accuracy": 0.0, "boxed": 0.0}
    assert score(r"cut off at \boxed{4", "4") == {"accuracy": 0.0, "boxed": 0.0}


# ---- End to end: a tiny random Llama through lm-eval's HF backend ----


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """Random 2-layer Llama with a byte-level BPE tokenizer and the repository's tiny chat template."""
    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = train_tokenizer([SYSTEM_PROMPT, r"Find $x^2$: \boxed{42}"] * 3, vocab_size=300, max_length=2048)
    _tiny_model(tokenizer, hidden_size=32, layers=2, heads=2, max_length=2048, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_cli(model, out, *extra, tasks="amc23", max_gen_toks=6):
    argv = ["--model", str(model), "--tasks", tasks, "--data-dir", str(DATA), "--max-gen-toks", str(max_gen_toks)]
    return main([*argv, "--batch-size", "2", "--limit", "2", "--out", str(out), *extra])


def test_end_to_end_writes_results_and_samples(shared_data, tiny_model, tmp_path):
    out = tmp_path / "eval" / "tiny_amc23"
    paths = run_cli(tiny_model, out, "--identity", "model=tiny", "beta=0.04", "method=lambda_grpo", "seed=1")
    assert [p.name for p in paths] == ["tiny_amc23.json", "tiny_amc23.samples.jsonl"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny_amc23.json", "tiny_amc23.samples.jsonl"]

    result = json.loads(Path(f"{out}.json").read_text())
    amc = result["tasks"]["amc23"]
    assert amc["n"] == 2 and amc["n_correct"] == round(2 * amc["accuracy"]) == sum(amc["scores"])
    assert 0.0 <= amc["accuracy"] <= 1.0 and amc["accuracy_stderr"] is not None
    assert result["identity"] == {"model": "tiny", "beta": 0.04, "method": "lambda_grpo", "seed": 1}
    assert result["max_gen_toks"] == 6 and result["system_prompt"] == SYSTEM_PROMPT

    samples = [json.loads(line) for line in Path(f"{out}.samples.jsonl").read_text().splitlines()]
    assert [s["doc_id"] for s in samples] == [0, 1] and samples[0]["answer"] == "27"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for s in samples:
        # the rendered chat template: BOS, the paper's system message, the problem, the assistant turn opened
        assert s["prompt"].startswith(f"{BOS}<|system|>\n{SYSTEM_PROMPT}{EOS}\n<|user|>\n")
        assert s["prompt"].endswith("<|assistant|>\n") and "Cities $A$ and $B$" in samples[0]["prompt"]
        assert s["gen_kwargs"]["max_gen_toks"] == 6 and s["gen_kwargs"]["do_sample"] is False
        assert 0 < len(tokenizer(s["response"], add_special_tokens=False)["input_ids"]) <= 6


def test_generation_budget_is_the_callers(shared_data, tiny_model, tmp_path):
    run_cli(tiny_model, tmp_path / "short", max_gen_toks=2)
    run_cli(tiny_model, tmp_path / "long", max_gen_toks=12)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def lengths(prefix):
        lines = Path(f"{prefix}.samples.jsonl").read_text().splitlines()
        return [len(tokenizer(json.loads(x)["response"], add_special_tokens=False)["input_ids"]) for x in lines]

    short, long = lengths(tmp_path / "short"), lengths(tmp_path / "long")
    assert max(short) <= 2 and max(long) <= 12 and max(long) > 2  # a random model rarely stops at EOS


# ---- Bad input: one line naming the culprit, non-zero exit, nothing written ----


def _refused(argv, needle, out: Path):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    message = str(exc.value.code)
    assert exc.value.code not in (0, None) and needle in message and "\n" not in message
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_missing_checkpoint_is_refused(tmp_path):
    out = tmp_path / "out" / "r"
    argv = ["--model", str(tmp_path / "nope"), "--tasks", "aime24", "--max-gen-toks", "4", "--out", str(out)]
    _refused(argv, str(tmp_path / "nope"), out)


def test_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notmodel").mkdir()
    (tmp_path / "notmodel" / "config.json").write_text("{}")
    out = tmp_path / "out" / "r"
    argv = ["--model", str(tmp_path / "notmodel"), "--tasks", "aime24", "--max-gen-toks", "4", "--out", str(out)]
    _refused(argv, "not a model checkpoint", out)


def test_unknown_task_is_refused(tiny_model, tmp_path):
    out = tmp_path / "out" / "r"
    argv = ["--model", str(tiny_model), "--tasks", "aime24,gpqa", "--max-gen-toks", "4", "--out", str(out)]
    _refused(argv, "'gpqa'", out)


def test_missing_data_is_refused_before_the_model_loads(tiny_model, tmp_path):
    out = tmp_path / "out" / "r"
    argv = ["--model", str(tiny_model), "--tasks", "aime24", "--data-dir", str(tmp_path / "nodata")]
    _refused([*argv, "--max-gen-toks", "4", "--out", str(out)], str(tmp_path / "nodata"), out)


def test_vllm_model_args_are_known_to_lm_eval(tmp_path):
    """vLLM cannot run here; at least every argument must be one that lm-eval's VLLM wrapper or vLLM's engine takes.

    The wrapper module imports vllm at the top, so its `__init__` signature is read from the source.
    """
    import ast
    import importlib.util

    from grpo_prm.evaluate import model_args

    source = Path(importlib.util.find_spec("lm_eval").origin).parent / "models" / "vllm_causallms.py"
    vllm_class = next(n for n in ast.walk(ast.parse(source.read_text())) if getattr(n, "name", "") == "VLLM")
    init = next(n for n in vllm_class.body if getattr(n, "name", "") == "__init__")
    accepted = {a.arg for a in init.args.args + init.args.kwonlyargs} | {"gpu_memory_utilization"}  # engine kwarg
    args = model_args("vllm", tmp_path, max_gen_toks=4096)
    assert set(args) <= accepted and args["max_model_len"] > 4096 and args["pretrained"] == str(tmp_path)
