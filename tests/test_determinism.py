"""Determinism at the source: tokenizer training independent of threads, figures whose bytes and data are stable,
and the CLIs' fixed thread count (grpo_prm.cli.reproducible)."""

import hashlib
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from grpo_prm.cli import CPU_ENV, THREADS_ENV, reproducible
from grpo_prm.io import figure_data, save_figure

TOKENIZER_DIGEST = """
import hashlib, sys
from grpo_prm.tiny_model import train_tokenizer
from grpo_prm.word_problems import make_arithmetic_problems
rows = make_arithmetic_problems(200, seed=0)
texts = [t for r in rows for t in (r["problem"], r["solution"])]
print(hashlib.sha256(train_tokenizer(texts, 320, 64).backend_tokenizer.to_str().encode()).hexdigest())
"""


def test_tokenizer_training_does_not_depend_on_its_threads():
    """The BPE trainer counts pairs in parallel (Rayon); merges and ids must not depend on the pool size."""
    digests = set()
    for threads in ("1", "3"):
        env = os.environ | {
            "RAYON_NUM_THREADS": threads,
            "RAYON_RS_NUM_THREADS": threads,
            "TOKENIZERS_PARALLELISM": "true",
        }
        out = subprocess.run(
            [sys.executable, "-c", TOKENIZER_DIGEST], capture_output=True, text=True, env=env, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def _figure():
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1, 2], [0.1, 0.5, 0.25], label="GRPO")
    a.fill_between([0, 1, 2], [0, 0.4, 0.2], [0.2, 0.6, 0.3], alpha=0.2)
    a.set_title("curves")
    b.bar([0, 1], [3, 4])
    b.text(0.5, 1.0, "|λ| = 2")
    return fig


def test_saved_figures_have_stable_bytes_and_their_data(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    digests = []
    for name in ("a", "b"):
        fig = _figure()
        save_figure(fig, tmp_path / name)
        plt.close(fig)
        digests.append(
            [
                hashlib.sha256((tmp_path / f"{name}{ext}").read_bytes()).hexdigest()
                for ext in (".png", ".pdf", ".data.csv")
            ]
        )
    assert digests[0] == digests[1]
    pdf = (tmp_path / "a.pdf").read_bytes()
    assert b"CreationDate" not in pdf and b"Matplotlib" not in pdf
    assert b"Software" not in (tmp_path / "a.png").read_bytes()
    rows = figure_data(_figure())
    assert rows[0] == ["axes", "artist", "index", "label", "x", "y"]
    assert [0, "title", 0, "curves", "", ""] in rows
    assert [[r[4], r[5]] for r in rows if r[1] == "line"] == [["0", "0.1"], ["1", "0.5"], ["2", "0.25"]]
    assert [r[3:] for r in rows if r[1] == "text"] == [["|λ| = 2", "0.5", "1"]]
    bar_corners = {(r[4], r[5]) for r in rows if r[1] == "patch" and r[2] == 1}
    assert {("0.6", "0"), ("1.4", "4")} <= bar_corners  # the second bar: x 1 ± 0.4, height 4
    assert any(r[1] == "collection" and r[5] == "0.6" for r in rows)  # the band's upper edge


@pytest.mark.parametrize(
    "env, explicit, expected", [({}, None, 1), ({THREADS_ENV: "2"}, None, 2), ({THREADS_ENV: "2"}, 1, 1)]
)
def test_reproducible_fixes_threads_and_cpu_kernels(monkeypatch, env, explicit, expected):
    import torch

    before = torch.get_num_threads()
    for key in (THREADS_ENV, *CPU_ENV):  # restored afterwards, also what reproducible sets
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        assert reproducible(seed=5, threads=explicit) == expected == torch.get_num_threads()
        assert all(os.environ[k] for k in CPU_ENV)
        first = torch.rand(3)
        reproducible(seed=5, threads=explicit)
        assert torch.equal(first, torch.rand(3))
    finally:
        torch.set_num_threads(before)
