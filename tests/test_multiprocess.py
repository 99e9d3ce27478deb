"""Two CPU processes (torchrun, gloo) give the λ weights, loss and gradient of one process.

The group of 4 is split 2 + 2 over the processes, so |λ| is right only if the trainer gathers whole groups first.
torchrun, not `accelerate launch`: accelerate starts a single process for CPU-only runs unless mpirun is used; the
trainer's Accelerator reads torchrun's environment all the same.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ["-m", "tests.multiprocess_step"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    result = subprocess.run(
        [*cmd, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    one = run([sys.executable, *SCRIPT, "--per-device", "4"], tmp_path / "one.pt")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    two = run([*launch, *SCRIPT, "--per-device", "2"], tmp_path / "two.pt")
    assert (one.pop("num_processes"), two.pop("num_processes")) == (1, 2)
    for setting, ref in one.items():
        got = two[setting]
        assert [ids for ids, _ in got["rows"]] == [ids for ids, _ in ref["rows"]], setting
        for (_, w_got), (_, w_ref) in zip(got["rows"], ref["rows"]):
            assert w_got == pytest.approx(w_ref, abs=1e-7), setting
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5, abs=1e-7), setting
        assert (got["grad"] - ref["grad"]).norm() <= 1e-5 * ref["grad"].norm(), setting
    # The split group really shares prefixes across processes: "A B" is in all 4 rows, so its weight is 1/4.
    assert one["lambda_grpo/token"]["rows"][0][1][:2] == pytest.approx([0.25, 0.25])
