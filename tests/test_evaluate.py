"""Tests of the lm-eval tasks (`grpo_prm.lm_eval_tasks`) and `grpo_prm.evaluate`, offline against ../shared/data."""

import json
from pathlib import Path

import datasets
import pytest
import torch
from lm_eval.tasks import TaskManager
from transformers import AutoTokenizer

from grpo_prm.data import SYSTEM_PROMPT, DataError, content_sha256, load_benchmark
from grpo_prm.evaluate import main
from grpo_prm.lm_eval_tasks import TASK_DIR
from grpo_prm.lm_eval_tasks.utils import OPEN_RS_QUERY, process_results
from grpo_prm.tiny_model import BOS, EOS, _tiny_model, train_tokenizer
from grpo_prm.word_problems import offline_splits

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
        assert set(docs.column_names) == {"id", "problem", "answer", "prompt"}
        assert task.doc_to_text(docs[0]) == docs[0]["problem"] and task.doc_to_target(docs[0]) == docs[0]["answer"]
        kwargs = task.config.generation_kwargs
        assert kwargs["until"] == [] and kwargs["do_sample"] is False and "max_gen_toks" not in kwargs
        assert task.config.num_fewshot == 0
    assert tasks["grpo_prm_minerva_math"].eval_docs[0]["answer"]  # taken from the solution's \boxed{}


def test_open_rs_prompt_wraps_the_problem_in_open_rs_query_template(shared_data):
    task = load_tasks(["amc23"], data_dir=str(DATA), prompt="open_rs_query")["grpo_prm_amc23"]
    doc = task.eval_docs[0]
    assert task.doc_to_text(doc) == OPEN_RS_QUERY.format(problem=doc["problem"])
    assert task.doc_to_text(doc).startswith("Solve the following math problem") and "$\\boxed{ANSWER}$" in doc["prompt"]


def test_content_hash_is_checked(shared_data):
    rows = load_benchmark("aime24", local_dir=str(DATA))
    good = content_sha256(rows)
    assert load_tasks(["aime24"], data_dir=str(DATA), sha256={"aime24": good})["grpo_prm_aime24"].eval_docs
    with pytest.raises(DataError, match="content sha256"):
        load_tasks(["aime24"], data_dir=str(DATA), sha256={"aime24": "0" * 64})


def test_offline_task_reads_the_offline_test_set(tmp_path):
    _, _, test = offline_splits(5, 2, 3, seed=1)
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in test))
    docs = load_tasks(["offline"], offline_file=str(path))["grpo_prm_offline"].eval_docs
    assert docs.to_list() == [{k: r[k] for k in ("id", "problem", "answer")} | {"prompt": r["problem"]} for r in test]


def test_offline_task_without_file_is_refused():
    with pytest.raises(DataError, match="offline_file"):
        load_tasks(["offline"])


# ---- Metric: every sample of a problem, scored by the evaluation scorer ----


def test_process_results_scores_each_sample_and_averages_them():
    doc = {"answer": r"\frac43"}
    samples = [r"\boxed{\frac43}", r"so \boxed{4/3}", "no answer", r"\boxed{1.3}"]
    assert process_results(doc, [samples]) == {"accuracy": 0.5, "boxed": 0.75}
    assert process_results(doc, [samples[:1]]) == {"accuracy": 1.0, "boxed": 1.0}


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
    """Greedy unless `extra` sets a sampling protocol."""
    argv = ["--model", str(model), "--tasks", tasks, "--data-dir", str(DATA), "--max-gen-toks", str(max_gen_toks)]
    return main([*argv, "--batch-size", "2", "--limit", "2", "--out", str(out), *extra])


def test_end_to_end_writes_results_and_samples(shared_data, tiny_model, tmp_path):
    out = tmp_path / "eval" / "tiny_amc23"
    paths = run_cli(tiny_model, out, "--identity", "model=tiny", "beta=0.04", "method=lambda_grpo", "seed=1")
    assert [p.name for p in paths] == ["tiny_amc23.json", "tiny_amc23.samples.jsonl"]
    assert sorted(p.name for p in out.parent.iterdir()) == [".kept", "tiny_amc23.json", "tiny_amc23.samples.jsonl"]

    result = json.loads(Path(f"{out}.json").read_text())
    amc = result["tasks"]["amc23"]
    assert amc["n"] == 2 and amc["n_correct"] == round(2 * amc["accuracy"]) == sum(amc["scores"])
    assert 0.0 <= amc["accuracy"] <= 1.0 and amc["accuracy_stderr"] is not None
    assert result["identity"] == {"model": "tiny", "beta": 0.04, "method": "lambda_grpo", "seed": 1}
    assert result["max_gen_toks"] == 6 and result["system_prompt"] == SYSTEM_PROMPT
    assert result["protocol"] | {"scorer": None, "interval": None} == {
        "name": "greedy", "prompt": "system", "chat_template": True, "system_prompt": SYSTEM_PROMPT,
        "temperature": 0.0, "top_p": None, "max_gen_toks": 6, "samples": 1, "seed": 0, "seed_spread": False,
        "scorer": None,
        "interval": None}  # fmt: skip
    rows = load_benchmark("amc23", local_dir=str(DATA))
    assert result["data"]["amc23"] == {"rows": 40, "sha256": content_sha256(rows), "source": str(DATA),
                                       "revision": None}  # fmt: skip
    assert amc["samples"] == 1 and amc["correct"] == amc["scores"] and amc["pass_at_k"] == {"1": amc["accuracy"]}

    samples = [json.loads(line) for line in Path(f"{out}.samples.jsonl").read_text().splitlines()]
    assert [s["doc_id"] for s in samples] == [0, 1] and samples[0]["answer"] == "27"
    assert [len(s["responses"]) for s in samples] == [1, 1]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for s in samples:
        # the rendered chat template: BOS, the paper's system message, the problem, the assistant turn opened
        assert s["prompt"].startswith(f"{BOS}<|system|>\n{SYSTEM_PROMPT}{EOS}\n<|user|>\n")
        assert s["prompt"].endswith("<|assistant|>\n") and "Cities $A$ and $B$" in samples[0]["prompt"]
        assert s["gen_kwargs"]["max_gen_toks"] == 6 and s["gen_kwargs"]["do_sample"] is False
        assert 0 < len(tokenizer(s["responses"][0], add_special_tokens=False)["input_ids"]) <= 6


def test_rerun_keeps_a_finished_evaluation(shared_data, tiny_model, tmp_path, monkeypatch):
    """Snakemake removes the outputs before it reruns the job: a rerun with the same settings and checkpoint puts
    them back byte-identical without evaluating; one with other settings that is killed leaves them as they were."""
    out = tmp_path / "eval" / "tiny_amc23"
    paths = run_cli(tiny_model, out)
    before = {p: p.read_bytes() for p in paths}

    def killed(*a, **kw):
        raise KeyboardInterrupt("simulated kill during the evaluation")

    monkeypatch.setattr("grpo_prm.evaluate.run_lm_eval", killed)
    with pytest.raises(KeyboardInterrupt):
        run_cli(tiny_model, out, max_gen_toks=5)  # other settings: evaluated anew, killed
    assert {p: p.read_bytes() for p in paths} == before
    for p in paths:
        p.unlink()  # as Snakemake does
    assert run_cli(tiny_model, out) == paths  # no evaluation (it would be killed)
    assert {p: p.read_bytes() for p in paths} == before
    (tiny_model / "model.safetensors").touch()  # a retrained checkpoint: evaluated again
    with pytest.raises(KeyboardInterrupt):
        run_cli(tiny_model, out)


SAMPLED = ["--protocol", "sampled", "--temperature", "0.6", "--top-p", "0.95", "--samples", "4"]


def test_n_seeded_samples_per_problem(shared_data, tiny_model, tmp_path):
    """avg@4: four different samples per problem, the same four again with the same seed, others with another."""
    runs = {name: run_cli(tiny_model, tmp_path / name, *SAMPLED, "--seed", seed)[0] for name, seed in
            (("a", "1"), ("b", "1"), ("c", "2"))}  # fmt: skip

    def responses(name):
        lines = Path(str(runs[name]).replace(".json", ".samples.jsonl")).read_text().splitlines()
        return [json.loads(line)["responses"] for line in lines]

    a = responses("a")
    assert [len(r) for r in a] == [4, 4] and all(len(set(r)) > 1 for r in a)  # sampled, not greedy
    assert a == responses("b") and a != responses("c")
    result = json.loads(runs["a"].read_text())
    amc = result["tasks"]["amc23"]
    assert result["protocol"]["samples"] == 4 and result["protocol"]["top_p"] == 0.95
    assert amc["samples"] == 4 and set(amc["pass_at_k"]) == {"1", "2", "4"} and len(amc["correct"]) == 2
    samples = [json.loads(x) for x in Path(str(runs["a"]).replace(".json", ".samples.jsonl")).read_text().splitlines()]
    assert [sum(s["correct"]) for s in samples] == amc["correct"]
    assert all(s["gen_kwargs"]["do_sample"] is True and s["gen_kwargs"]["temperature"] == 0.6 for s in samples)


def test_generation_budget_is_the_callers(shared_data, tiny_model, tmp_path):
    run_cli(tiny_model, tmp_path / "short", max_gen_toks=2)
    run_cli(tiny_model, tmp_path / "long", max_gen_toks=12)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def lengths(prefix):
        lines = Path(f"{prefix}.samples.jsonl").read_text().splitlines()
        return [len(tokenizer(json.loads(x)["responses"][0], add_special_tokens=False)["input_ids"]) for x in lines]

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


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--samples", "4"], "greedy decoding"),
        (["--temperature", "0.6", "--top-p", "1.5"], "--top-p 1.5"),
        (["--temperature", "-1"], "--temperature -1"),
        (["--revisions", "aime24=main"], "aime24=main"),
        (["--require-revisions", "--revisions", f"aime24={'a' * 40}"], "math500 is read from the Hub"),
        (["--resolve-and-lock"], "--resolve-and-lock needs --lock"),
        (["--temperature", "0.8", "--samples", '{"aime24": 10}'], "names no count for task math500"),
    ],
)
def test_bad_protocol_or_unpinned_data_is_refused(tiny_model, tmp_path, extra, needle):
    out = tmp_path / "out" / "r"
    argv = ["--model", str(tiny_model), "--tasks", "aime24,math500", "--max-gen-toks", "4", "--out", str(out)]
    _refused([*argv, *extra], needle, out)


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


# ---- Protocols in the config ----


def _config(name: str) -> dict:
    import yaml

    from grpo_prm.config import validate_config

    return validate_config(yaml.safe_load((Path(__file__).parents[1] / "config" / name).read_text()))


def test_paper_profile_evaluates_open_rs_and_sober_and_refuses_unpinned_hub_data():
    ev = _config("paper.yaml")["eval"]
    assert ev["protocol"] == ["open_rs", "sober"] and ev["samples"] == 1 and ev["require_revisions"] is True
    assert ev["revisions"] == {
        "aime24": "2fe88a2f1091d5048c0f36abc874fb997b3dd99a",
        "math500": "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be",
    }
    assert ev["protocols"]["sober"] == {
        "prompt": "open_rs_query",
        "temperature": 0.8,
        "top_p": 0.9,
        "max_gen_toks": 32768,
        "seed_spread": True,
        "samples": {"aime24": 10, "amc23": 10, "math500": 3, "minerva_math": 3, "olympiadbench": 3},
    }
    assert ev["protocols"]["open_rs"] == {"prompt": "open_rs_query", "temperature": 0.6, "top_p": 0.95,
                                          "max_gen_toks": 32768}  # fmt: skip


def test_default_profile_exercises_greedy_and_four_samples():
    ev = _config("config.yaml")["eval"]
    assert ev["protocol"] == ["greedy", "sampled"] and ev["samples"] == 4
    assert ev["protocols"]["greedy"]["temperature"] == 0 and ev["protocols"]["sampled"]["temperature"] > 0


@pytest.mark.parametrize(
    "protocols, needle",
    [
        ({"open_rs": {"prompt": "open_rs_query", "temperature": 1.0, "top_p": 0.95, "max_gen_toks": 8}},
         "eval.protocols.open_rs.temperature: 0.6 was expected"),
        ({"greedy": {"prompt": "system", "temperature": 0.0, "top_p": 1.0}}, "'max_gen_toks' is a required property"),
        ({"x": {"prompt": "system", "temperature": 0.5, "top_p": 0.0, "max_gen_toks": 8}}, "eval.protocols.x.top_p"),
    ],
)  # fmt: skip
def test_protocol_settings_are_validated(protocols, needle):
    import yaml

    from grpo_prm.config import ConfigError, validate_config

    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    config["eval"].update(protocols=protocols, protocol=list(protocols))
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        validate_config(config)
