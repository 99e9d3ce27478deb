#!/usr/bin/env bash
# One-command GPU check (docs/operations.md, "GPU check"): vLLM vs HF generate rollouts, stop-rule token counts, one λ-GRPO step
# in mixed vs fp32 precision, the λ share of a step and peak memory, on one NVIDIA GPU, no Hub access.
# Writes benchmarks/results/gpu_check.json (or the --out given); without a GPU: one line, exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"  # the activated GPU environment (envs/gpu.txt), as the GPU jobs use
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRL_EXPERIMENTAL_SILENCE=1
exec timeout 480 "$PYTHON" benchmarks/gpu_check.py "$@"
