"""Numbers in prose come from files: README.md's number blocks equal what grpo_prm.readme writes from the committed
paper_figures/default/ tables, and the statistics behind its "higher" / "not distinguishable" are the textbook ones."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from grpo_prm import readme

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "paper_figures" / "default"


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "config" / "README.md"]


def test_document_numbers_match_the_committed_outputs(monkeypatch):
    monkeypatch.chdir(ROOT)  # config/README.md's key table reads config/*.yaml
    texts = {path.name: path.read_text(encoding="utf-8") for path in DOCUMENTS}
    names = [m["name"] for text in texts.values() for m in readme.BLOCK.finditer(text)]
    assert sorted(names) == sorted(readme.BLOCKS)  # every block is used, once each, across README.md and docs/
    for name, text in texts.items():
        stale = readme.stale_blocks(text, FIGURES)
        assert not stale, f"{name} number blocks {stale} differ from paper_figures/default/: run `make readme`"


def test_default_documents_are_the_readme_and_docs():
    import os

    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        assert [ROOT / d for d in readme.documents()] == DOCUMENTS
    finally:
        os.chdir(cwd)


def test_check_mode_names_stale_blocks_and_writing_touches_only_blocks(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("intro 0.5\n<!-- numbers:overlap_table -->\nold\n<!-- /numbers -->\noutro 0.7\n")
    cmd = [sys.executable, "-m", "grpo_prm.readme", "--readme", str(doc), "--figures", str(FIGURES)]
    check = subprocess.run([*cmd, "--check"], check=False, capture_output=True, text=True)
    assert check.returncode == 1 and "overlap_table" in check.stderr and "make readme" in check.stderr
    assert subprocess.run(cmd, check=False, capture_output=True, text=True).returncode == 0
    new = doc.read_text()
    assert new.startswith("intro 0.5\n<!-- numbers:overlap_table -->\n| k | steps |") and new.endswith("outro 0.7\n")
    assert subprocess.run([*cmd, "--check"], check=False, capture_output=True).returncode == 0
    doc.write_text("<!-- numbers:nope -->\n<!-- /numbers -->\n")
    bad = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "numbers:nope" in bad.stderr
    assert doc.read_text() == "<!-- numbers:nope -->\n<!-- /numbers -->\n"  # nothing half-written


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        (0.01, 0.2, "higher"),
        (-0.3, -0.01, "lower"),
        (-0.1, 0.2, "not distinguishable at 3 seeds"),
        (math.nan, math.nan, "not distinguishable at 3 seeds"),
    ],
)
def test_verdict_claims_only_what_the_interval_supports(lo, hi, expected):
    assert readme.verdict(lo, hi, "higher", "lower", "3 seeds") == expected


def test_math_claims_say_earlier_only_with_a_clear_interval(tmp_path):
    runs = [("grpo", s, 0.40, 50, 0.40) for s in range(3)] + [
        ("lambda_grpo", s, 0.45 + s / 100, 20 + s, 0.44) for s in range(3)
    ]
    pd.DataFrame(
        [
            {
                "model": "tiny",
                "beta": 0.0,
                "method": m,
                "seed": s,
                "peak": p,
                "peak_step": st,
                "final": f,
                "final_step": 60,
                "peak_step_vs_grpo": None if m == "grpo" else st / 50,
            }
            for m, s, p, st, f in runs
        ]
    ).to_csv(tmp_path / "math_peaks.csv", index=False)
    text = readme.math_claims(tmp_path)
    assert "peak accuracy 0.460 against 0.400, higher" in text and "step of the peak 21.0 against 50.0, earlier" in text
    assert "final accuracy 0.440 against 0.400, higher" in text
