"""The one-command GPU check (benchmarks/gpu_check.sh) refuses on a machine without a CUDA GPU: one line, exit 1,
nothing written (its measurements need a GPU; this machine has none)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_refuses_without_a_gpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert run.returncode == 1
    assert run.stderr.startswith("gpu_check: no CUDA GPU visible") and run.stderr.count("\n") == 1, run.stderr
    assert run.stdout == "" and not out.exists()
