"""Helpers shared by several test modules (imported from here, never from another test module): the math runs' tiny
Llama checkpoint and data (fixtures, registered in conftest.py), the trainer's gradient, recorded overlap groups,
synthetic toy run CSVs, a scripted logits processor."""

import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessor, PreTrainedTokenizerFast, TrainerCallback

from grpo_prm import math_rl
from grpo_prm.math_rl import MathRunConfig, run_math
from grpo_prm.recording import GroupRecorder
from grpo_prm.word_problems import offline_splits

ROOT = Path(__file__).resolve().parents[1]


# ---- from test_math_rl and the modules that share it


CHARS = list("0123456789+-*/=()\\{}boxed ,.?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'")


TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random tiny Llama with a character tokenizer and a chat template, saved like an SFT checkpoint."""
    out = tmp_path_factory.mktemp("ckpt")
    specials = ["<pad>", "<eos>", "<system>", "<user>", "<assistant>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(CHARS)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", additional_special_tokens=specials[2:]
    )
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    train, val, _ = offline_splits(16, 4, 0, seed=0, max_steps=2)
    for name, rows in (("train", train), ("val", val)):
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def small_config(checkpoint, data, out, **kw):
    paths = {
        "model": str(checkpoint),
        "train": str(data / "train.jsonl"),
        "val": str(data / "val.jsonl"),
        "out": str(out),
    }
    small = {
        "steps": 4,
        "prompts_per_step": 2,
        "group_size": 3,
        "max_new_tokens": 12,
        "learning_rate": 1e-3,
        "val_every": 2,
        "save_every": 2,
        "temperature": 1.0,
    }
    return MathRunConfig(**(paths | small | kw))


def records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ---- from test_trainer and the modules that share it


def brute_force_sizes(rows):
    return [[sum(r[: t + 1] == row[: t + 1] for r in rows) for t in range(len(row))] for row in rows]


def grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def trainer_gradient(trainer, n_rows: int) -> torch.Tensor:
    """The trainer's own loss gradient on its fixed rollout of `n_rows` completions (grads left zeroed)."""
    model = trainer.model
    inputs = trainer._prepare_inputs([{"prompt": "Q"}] * n_rows)
    model.zero_grad()
    trainer.compute_loss(model, inputs).backward()
    ours = grads(model).clone()
    model.zero_grad()
    return ours


def perturb(model, scale=0.05):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


# ---- from test_overlap and the modules that share it


def encode(texts, T=None):
    """Each character is a token; right-padded with id 0."""
    T = T or max(map(len, texts))
    ids = torch.tensor([[ord(c) for c in t] + [0] * (T - len(t)) for t in texts])
    mask = torch.tensor([[1] * len(t) + [0] * (T - len(t)) for t in texts]).bool()
    return ids, mask


def record(path, steps):
    """steps: list of lists of groups (lists of strings, one k per step); rewards alternate 0/1."""
    with GroupRecorder(path, flush_every=2) as rec:
        for step, groups in enumerate(steps):
            texts = [t for g in groups for t in g]
            ids, mask = encode(texts)
            rewards = torch.tensor([float(i % 2) for i in range(len(texts))])
            rec.add(step, ids, mask, rewards, torch.zeros(len(texts)), len(groups[0]))
    return path


# The hand-built trees of test_prefix_tree (depth excludes the whole-group root span; ≥ 1).
TREES = {
    "flat": (["ab", "cd", "ef"], True, [1, 1, 1], [0, 0, 0]),
    "shared_root_then_flat": (["xab", "xcd", "xef"], True, [1, 1, 1], [0, 0, 0]),
    "identical": (["abc", "abc", "abc"], True, [1, 1, 1], [0, 0, 0]),
    "chain": (["abcd", "abce", "abf", "g"], False, [3, 3, 2, 1], [3 / 4, 3 / 4, 2 / 3, 0]),
    # identical completions share one leaf (the authors' tree): no step of their own, the tree stays flat
    "duplicates": (["ab", "ab", "cd"], True, [1, 1, 1], [0, 0, 0]),
    "duplicates_below_branch": (["abc", "abc", "abd", "e"], False, [2, 2, 2, 1], [2 / 3, 2 / 3, 2 / 3, 0]),
    "strict_prefix": (["ab", "abc", "d"], False, [1, 2, 1], [1, 2 / 3, 0]),
    # root span "x" (|λ| = k) is not a step but its tokens count in the proportion's denominator
    "root_span_then_branch": (["xab", "xac", "xd"], False, [2, 2, 1], [1 / 3, 1 / 3, 0]),
    "flat_with_eos_only_shared": (["ae", "be", "ce", "de"], True, [1, 1, 1, 1], [0, 0, 0, 0]),
    "worked_example": (
        ["ABCe", "ABCe", "ABDFe", "ABe", "GHe"],
        False,
        [2, 2, 2, 2, 1],
        [1 / 2, 1 / 2, 2 / 5, 2 / 3, 0],
    ),
}


def random_group(gen, k, vocab=5, max_len=9):
    """Completions built from shared random prefixes, so trees have duplicates, strict prefixes and chains."""
    rows = []
    for _ in range(k):
        base = rows[int(gen.integers(len(rows)))] if rows and gen.random() < 0.7 else []
        body = base[: int(gen.integers(len(base) + 1))]
        rows.append(body + gen.integers(1, vocab, int(gen.integers(0, max_len - len(body) + 1))).tolist())
    T = max(map(len, rows)) + 2
    ids = torch.tensor([r + [int(gen.integers(0, vocab))] * (T - len(r)) for r in rows])  # junk in the padding
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows]).bool()
    return ids, mask


# ---- from test_paper_figures and the modules that share it


def write_run(root: Path, method: str, n: int, r_neg: float, seed: int, freqs, drop: str | None = None) -> Path:
    """One run CSV in the results layout, one row per step (1-based), with an extra column to be ignored."""
    df = pd.DataFrame(
        {
            "method": method,
            "n": n,
            "r_neg": r_neg,
            "seed": seed,
            "step": range(1, len(freqs) + 1),
            "target_freq": freqs,
            "train/loss": 0.123,
        }
    )
    if drop:
        df = df.drop(columns=drop)
    path = root / "toy" / method / f"n{n}_r{r_neg}" / f"seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


# ---- from test_stop_rule and the modules that share it


class ScriptedLogitsProcessor(LogitsProcessor):
    """Makes greedy decoding emit `scripts[row]` token by token, then EOS."""

    def __init__(self, scripts, prompt_len, eos):
        self.scripts, self.prompt_len, self.eos = scripts, prompt_len, eos

    def __call__(self, input_ids, scores):
        position = input_ids.shape[1] - self.prompt_len
        scores = torch.full_like(scores, -float("inf"))
        for row, script in enumerate(self.scripts):
            scores[row, script[position] if position < len(script) else self.eos] = 0.0
        return scores


# ---- from test_bad_inputs and the modules that share it: refusals and what they leave


def snapshot(*folders: Path) -> dict:
    """Every file and folder below `folders`, with file contents: equal snapshots mean nothing written or removed."""
    return {str(p): (p.read_bytes() if p.is_file() else None) for f in folders for p in [f, *sorted(f.rglob("*"))]}


def refusal(capsys, main, argv) -> tuple[int, str]:
    """Run a CLI's `main(argv)`; return its exit status and its one-line message."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = code if isinstance(code, str) else err.strip().splitlines()[-1]
    status = 1 if isinstance(code, str) else code
    assert "\n" not in message.strip() and message.strip()
    return status, message


# ---- from test_math_rl and test_run_folder: kills


class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated kill after step 3")


def run_killed_after_step_3(cfg, monkeypatch) -> None:
    """`run_math(cfg)` killed after step 3 (a `Kill` callback on every trainer it builds)."""
    original_init = math_rl.BoxedStopTrainer.__init__

    def init_with_kill(self, *a, **kw):
        original_init(self, *a, **kw)
        self.add_callback(Kill())

    monkeypatch.setattr(math_rl.BoxedStopTrainer, "__init__", init_with_kill)
    with pytest.raises(KeyboardInterrupt):
        run_math(cfg)


def run_files(out: Path) -> dict:
    """A run folder's finished run: its files and their bytes (the attempt in progress and the lock left out)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).parts[0] not in ("attempt", ".lock")
    }


def background(cmd: list[str], log: Path, **kw) -> subprocess.Popen:
    """`cmd` started in the background, its output to `log` (a file, not a pipe: nobody reads it while it runs)."""
    with log.open("w") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, **kw)


def wait_for(condition, proc: subprocess.Popen | None = None, log: Path | None = None, timeout: float = 600) -> None:
    """Poll until `condition()`; fail if `proc` ends first (showing the end of `log`) or after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, log.read_text()[-2000:] if log else proc.returncode
        assert time.monotonic() < end
        time.sleep(0.05)
