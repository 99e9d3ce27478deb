"""The tiny offline model: a small Llama with a BPE tokenizer trained on the offline problems, warm-started by a
short TRL SFT on worked solutions ending in `\\boxed{answer}`, so that RL improves it in minutes on a CPU.

Its prompt is the authors' (`grpo_prm.data.build_prompt`, under the chat template `TINY_CHAT_TEMPLATE`). The recipe
(sizes, SFT settings, the teacher's slip rate, the seed) is one frozen dataclass, `TinyRecipe`: its defaults are the
library's, the command line (`python -m grpo_prm.checkpoints tiny`) has one flag per field, and the checkpoint's
marker records it. `build_tiny_sft_checkpoint` publishes the result in the folder format of
`grpo_prm.checkpoint_folder`, reused when the recipe and training rows are the same.
"""

import dataclasses
import random
import tempfile
import time
from pathlib import Path

import datasets
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, set_seed

from grpo_prm.checkpoint_folder import CheckpointError, publish, reusable
from grpo_prm.cli import check_fields
from grpo_prm.data import SYSTEM_PROMPT, build_prompt, fingerprint
from grpo_prm.generation import evaluate_greedy


@dataclasses.dataclass(frozen=True)
class TinyRecipe:
    """How the tiny checkpoint is made; the same recipe and training rows give identical tokenizer and weights.

    Args:
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
    """

    vocab_size: int = 1024
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    sft_steps: int = 300
    lr: float = 2e-3
    batch_size: int = 32
    max_length: int = 512
    answer_slip_rate: float = 0.0
    seed: int = 0

    def __post_init__(self):
        check_fields(
            self,
            positive=("vocab_size", "hidden_size", "layers", "heads", "sft_steps", "lr", "batch_size", "max_length"),
            nonnegative=("seed",),
        )
        if not 0 <= self.answer_slip_rate <= 1:
            raise CheckpointError(f"--answer_slip_rate: {self.answer_slip_rate} is not a share in [0, 1]")


# ---- SFT data, tokenizer, model, SFT ----

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
        f"{name}_token_id": tokenizer.convert_tokens_to_ids(t) for name, t in (("bos", BOS), ("eos", EOS), ("pad", PAD))
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


def _sft(
    model, tokenizer, rows: list[dict], completions: list[str], steps: int, lr: float, batch_size: int, seed: int
) -> float:
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


def _train(folder: Path, rows: list[dict], recipe: TinyRecipe, eval_rows: list[dict] | None) -> dict:
    """Tokenizer, model and SFT saved into `folder`; returns the marker's extra fields (loss, time, held-out score)."""
    start = time.monotonic()
    completions = sft_completions(rows, recipe.answer_slip_rate, recipe.seed)
    texts = [SYSTEM_PROMPT] + [t for r, c in zip(rows, completions) for t in (r["problem"], c)]
    tokenizer = train_tokenizer(texts, recipe.vocab_size, recipe.max_length)
    model = _tiny_model(tokenizer, recipe.hidden_size, recipe.layers, recipe.heads, recipe.max_length, recipe.seed)
    loss = _sft(model, tokenizer, rows, completions, recipe.sft_steps, recipe.lr, recipe.batch_size, recipe.seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    info = {"n_train": len(rows), "sft_final_loss": loss, "sft_wall_s": round(time.monotonic() - start, 1)}
    return info | ({"sft_eval": evaluate_greedy(model, tokenizer, eval_rows)} if eval_rows else {})


# ---- The checkpoint ----


def build_tiny_sft_checkpoint(
    out_dir: str | Path, train_rows: list[dict], *, eval_rows: list[dict] | None = None, **recipe
) -> Path:
    """A tiny Llama with a locally trained tokenizer, warm-started by SFT on worked solutions (offline RL start point).

    Deterministic: the same rows and recipe give identical tokenizer and weights.

    Args:
        out_dir (`str` or `Path`):
            Checkpoint folder; reused if its marker records the same recipe and training rows.
        train_rows (`list[dict]`):
            Rows with `problem` and `answer` and, optionally, `solution` (worked equations, as in
            `make_arithmetic_problems`); the SFT target is `sft_completion(row)`.
        eval_rows (`list[dict]` or `None`, *optional*):
            Held-out rows; greedy `evaluate_greedy` results are recorded in the marker under `sft_eval`.
        **recipe:
            Fields of `TinyRecipe` (e.g. `sft_steps=150`); the others keep its defaults.

    Returns:
        `Path`: `out_dir`.
    """
    _check_rows(train_rows)
    tiny = TinyRecipe(**recipe)
    rows = [{"id": str(r.get("id", i)), **r} for i, r in enumerate(train_rows)]
    identity = {"kind": "tiny", "recipe": dataclasses.asdict(tiny), "train_fingerprint": fingerprint(rows)}
    out_dir = Path(out_dir)
    if reusable(out_dir, identity):
        return out_dir
    return publish(out_dir, identity, lambda folder: _train(folder, rows, tiny, eval_rows))
