#!/usr/bin/env bash
# CI: pip's resolver accepts envs/gpu.txt (the paper profile's GPU stack) and envs/driver.txt for the GPU machines'
# target, Linux x86_64 + CPython 3.11, from PyPI alone. Metadata only: `--dry-run` downloads no CUDA wheel. A pin that
# stops resolving (a new release's metadata, a yanked file) fails here the day it happens.
# Usage: bash .ci/gpu_resolve.sh [WORKDIR]   (writes WORKDIR/gpu-report.json: pip's installation report)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work/wheels"
# PyPI only: no local indexes, find-links or constraints from this machine's pip configuration.
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT
[ -x "$work/venv/bin/pip" ] || { python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q --upgrade pip; }
pip=("$work/venv/bin/pip")

# Packages of the stack that publish only source archives: `--only-binary=:all:` (needed with --platform) cannot
# take them, so their pure-Python wheels are built here (no dependencies, no compiled ops) and offered by --find-links.
# The versions are the ones in envs/cpu.txt (deepspeed: envs/gpu.txt).
sdists=(deepspeed==0.19.8 sqlitedict==2.1.0 word2number==1.1 rouge-score==0.1.2 connection_pool==0.0.3)
"${pip[@]}" wheel -q --no-deps -w "$work/wheels" "${sdists[@]}"

# Some CUDA wheels are tagged only manylinux_2_27 or _2_31, others only with the legacy name manylinux2014 (pip
# does not derive it from manylinux_2_17 given by hand): every tag from 2_17 to 2_35 is offered, and the legacy one.
platforms=(--platform manylinux2014_x86_64)
for minor in $(seq 17 35); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
for req in gpu driver; do
  "${pip[@]}" install -q --dry-run --ignore-installed --report "$work/$req-report.json" "${platforms[@]}" \
    --python-version 3.11 --implementation cp --only-binary=:all: --find-links "$work/wheels" -r "envs/$req.txt"
  "$work/venv/bin/python" - "$work/$req-report.json" "$req" <<'PY'
import json, sys
picked = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
keys = ("vllm", "torch", "transformers", "trl", "deepspeed", "numpy", "snakemake", "snakemake-executor-plugin-slurm")
print(f"envs/{sys.argv[2]}.txt resolves ({len(picked)} packages):", ", ".join(f"{k} {picked[k]}" for k in keys if k in picked))
PY
done
