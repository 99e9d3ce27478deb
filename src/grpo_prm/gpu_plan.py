"""GPU cost plan of a profile: tokens and expected hours on one H100 per job (math cell, overlap run, evaluation).

    python -m grpo_prm.gpu_plan config/paper.yaml

Not a measurement (no GPU has been lent to this project): a roofline estimate from the H100 SXM5 datasheet
(NVIDIA H100 Tensor Core GPU datasheet: 3.35 TB/s HBM3, 989 TFLOP/s dense BF16, 67 TFLOP/s FP32) at assumed
efficiencies (`BANDWIDTH_EFFICIENCY`, `MFU`). Decoding is memory-bound: each step of a batch reads the weights once
and every sequence's KV cache. Training is compute-bound: 8 N FLOPs per token (forward + backward, plus the forward that
scores the old policy's log-probs), at BF16 peak under `precision: mixed` and FP32 peak under `fp32` (the
authors' float32; PyTorch does not use TF32 for float32 matmuls by default). Token counts are upper bounds (every
completion runs to the length limit); the stop rule ends most earlier. The Slurm profile's GPU requests are derived
from these hours (docs/operations.md, "GPU cost plan").
"""

import yaml

from grpo_prm.cli import InputError, OneLineParser, exit_on_error

HBM_BYTES_PER_S = 3.35e12
BF16_FLOPS = 989e12
FP32_FLOPS = 67e12
BANDWIDTH_EFFICIENCY = 0.5  # assumed share of peak bandwidth that vLLM's decode reaches
MFU = 0.4  # assumed share of peak FLOP/s in training
# Parameters and KV bytes per token (bf16: 2 layers-sides × KV heads × head size × 2 bytes × layers), from the
# models' config.json: Qwen2 1.5B (28 layers, 2 KV heads of 128), Llama 3.2 1B (16 layers, 8 KV heads of 64).
MODELS = {
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": {"params": 1.78e9, "kv_bytes": 2 * 2 * 128 * 2 * 28},
    "meta-llama/Llama-3.2-1B-Instruct": {"params": 1.24e9, "kv_bytes": 2 * 8 * 64 * 2 * 16},
}
PROMPT_TOKENS = 300  # a chat-templated OpenRS / Table-2 problem, on average
TABLE2_ROWS = {"aime24": 30, "math500": 500, "amc23": 40, "minerva_math": 272, "olympiadbench": 675}


def eval_sequences(evaluation: dict, protocol: dict) -> int:
    """Completions one checkpoint's evaluation under `protocol` draws: problems × samples (seeds) per task; a
    protocol's own `samples` (one number or one per task, e.g. sober's 10/3) before eval.samples, greedy one."""
    samples = protocol.get("samples", evaluation.get("samples", 1)) if protocol["temperature"] > 0 else 1
    tasks = [t for t in evaluation["tasks"] if t in TABLE2_ROWS]
    return sum(TABLE2_ROWS[t] * (samples[t] if isinstance(samples, dict) else samples) for t in tasks)


# KV-cache memory: colocated with training, vLLM gets a share of the GPU (TRL's vllm_gpu_memory_utilization);
# evaluation has the GPU to itself. Sequences beyond what fits wait for a later batch.
KV_BYTES_COLOCATED, KV_BYTES_ALONE = 20e9, 60e9


def decode_seconds(model: dict, sequences: int, new_tokens: int, kv_budget: float = KV_BYTES_COLOCATED) -> float:
    """`sequences` decoded to `new_tokens` each, in batches that fit `kv_budget` (KV cache at its mean length)."""
    batch = max(1, min(sequences, int(kv_budget // ((PROMPT_TOKENS + new_tokens) * model["kv_bytes"]))))
    kv = batch * (PROMPT_TOKENS + new_tokens / 2) * model["kv_bytes"]
    step = (2 * model["params"] + kv) / (HBM_BYTES_PER_S * BANDWIDTH_EFFICIENCY)
    return -(-sequences // batch) * new_tokens * step


def train_seconds(model: dict, tokens: float, precision: str = "mixed") -> float:
    return 8 * model["params"] * tokens / ((BF16_FLOPS if precision == "mixed" else FP32_FLOPS) * MFU)


def run_plan(
    model: dict, steps: int, prompts: int, k: int, new_tokens: int, val_every: int, n_val: int, precision: str = "mixed"
) -> dict:
    seqs = prompts * k
    validations = steps // val_every + 1
    rollout_tokens, val_tokens = steps * seqs * new_tokens, validations * n_val * new_tokens
    hours = (
        steps
        * (
            decode_seconds(model, seqs, new_tokens)
            + train_seconds(model, seqs * (PROMPT_TOKENS + new_tokens), precision)
        )
        + validations * decode_seconds(model, n_val, new_tokens)
    ) / 3600
    return {"rollout_tokens": rollout_tokens, "validation_tokens": val_tokens, "h100_hours": hours}


def plan(config: dict) -> list[dict]:
    math, train = config["math"], config["math"]["train"]
    n_val = math["data"].get("openrs", {}).get("n_val", 125)
    rows = []
    for name in math["run_models"]:
        model = MODELS[math["models"][name]["hub_id"]]
        cell = run_plan(
            model,
            train["steps"],
            train["prompts_per_step"],
            train["group_size"],
            train["max_new_tokens"],
            train["val_every"],
            n_val,
            train.get("precision", "fp32"),
        )
        rows.append({"job": f"train_math ({name}, one cell)"} | cell)
        evaluation = config["eval"]
        for p in evaluation["protocol"]:
            protocol = evaluation["protocols"][p]
            sequences, gen = eval_sequences(evaluation, protocol), protocol["max_gen_toks"]
            rows.append(
                {
                    "job": f"evaluate {p} ({name}, one checkpoint)",
                    "rollout_tokens": 0,
                    "validation_tokens": sequences * gen,
                    "h100_hours": decode_seconds(model, sequences, gen, KV_BYTES_ALONE) / 3600,
                }
            )
    overlap = config["overlap"]
    model = MODELS[math["models"][overlap["model"]]["hub_id"]]
    for run in overlap["runs"]:
        r = run_plan(
            model,
            run["steps"],
            train["prompts_per_step"],
            run["group_size"],
            train["max_new_tokens"],
            train["val_every"],
            n_val,
            train.get("precision", "fp32"),
        )
        rows.append({"job": f"train_overlap (k = {run['group_size']})"} | r)
    return rows


def read_plan(path: str) -> list[dict]:
    """`plan` of a profile file; an unreadable file or a missing key is an `InputError` naming it."""
    try:
        with open(path) as f:
            return plan(yaml.safe_load(f))
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not YAML ({type(e).__name__})") from None
    except (KeyError, TypeError) as e:
        raise InputError(f"{path}: not a GPU profile (missing {e})") from None


def main(argv=None) -> None:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default="config/paper.yaml", help="the profile (default: the paper's)")
    rows = exit_on_error(lambda: read_plan(parser.parse_args(argv).config))
    print("| job | rollout tokens (≤) | validation / evaluation tokens (≤) | H100 hours (estimate) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['job']} | {r['rollout_tokens'] / 1e6:.1f} M | {r['validation_tokens'] / 1e6:.1f} M "
            f"| {r['h100_hours']:.1f} |"
        )


if __name__ == "__main__":
    main()
