"""The overlap tables and figures (paper_figures/*overlap*.py, table_theorem1.py) on small recorded runs built with
GroupRecorder (no training), and their one-line refusal of a bad run folder; the tree figure's drawing and group
picker."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from grpo_prm import overlap
from grpo_prm.io import save_figure
from grpo_prm.recording import GroupRecorder
from paper_figures.figure_overlap_tree import distinct_step_rewards, pick_group, tree_figure
from tests.conftest import EXAMPLE, EXAMPLE_REWARDS, example_ids, make_tokenizer
from tests.helpers import TREES, encode, random_group, record

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "paper_figures" / "reference" / "overlap_paper.csv"
# conftest's word tokenizer: <e>=0 (EOS), A..H, Q
STEPS = {  # per step, the groups of one run (k = 4); rewards alternate 0, 1 within a group
    4: [[["A B C <e>", "A B D <e>", "G <e>", "H <e>"]], [["C <e>", "D <e>", "F <e>", "G <e>"]]],
    6: [[["A B <e>", "A B <e>", "A C <e>", "D <e>", "F <e>", "G <e>"]], [["A <e>"] * 3 + ["B <e>"] * 3]],
}


def make_run(root: Path, k: int, theorem1_groups: int = 10) -> Path:
    """A finished, analysed run folder: config.json, metrics.jsonl, groups.parquet, final/ and overlap.{csv,json}."""
    run = root / f"k{k}"
    tok = make_tokenizer()
    with GroupRecorder(run / "groups.parquet") as rec:
        for step, groups in enumerate(STEPS[k]):
            rows = [tok(t, add_special_tokens=False)["input_ids"] for g in groups for t in g]
            T = max(map(len, rows))
            ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows]).bool()
            rewards = torch.tensor([float(i % 2) for i in range(len(rows))])
            rec.add(step, ids, mask, rewards, torch.zeros(len(rows)), k)
    tok.save_pretrained(run / "final")
    cfg = {"model": "ckpt/tiny", "beta": 0.0, "method": "grpo", "seed": 0, "group_size": k}
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "val/accuracy": 0.1 * s}) + "\n" for s in (0, 1)))
    overlap.main(
        [str(run / "groups.parquet"), "--out", str(run / "overlap"), "--theorem1-groups", str(theorem1_groups)]
    )
    return run


@pytest.fixture
def runs(tmp_path):
    return [make_run(tmp_path, 4), make_run(tmp_path, 6)]


def script(name: str, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "paper_figures" / f"{name}.py"), *map(str, args)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)


def test_headline_table_against_hand_counts_and_the_paper(runs, tmp_path):
    result = script("table_overlap", "--runs", *runs, "--paper", PAPER, "--out-prefix", tmp_path / "t")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "t.csv")
    assert table.k.tolist() == [6, 4]  # larger k first, as in the paper's figure
    six, four = table.iloc[0], table.iloc[1]
    assert (four.groups, four.flat_groups, four.nontrivial_pct) == (2, 1, 50.0)  # step 1 of k = 4 is flat
    # step 1, "A" ×3 / "B" ×3: two leaves of identical copies, flat; step 0 shares "A" among 3 of 6, not flat
    assert (six.groups, six.flat_groups) == (2, 1)
    assert (four.duplicate_share, six.duplicate_share) == (0.0, pytest.approx(8 / 12))
    # k = 4, step 0: depths 2, 2, 1, 1 (node "AB", then leaves); step 1 all 1 → mean 10/8, last step 1
    assert (four.path_depth_mean, four.path_depth_mean_last) == (pytest.approx(10 / 8), 1.0)
    # proportions step 0: 2/4, 2/4, 0, 0 → mean over both steps 1/8
    assert four.intermediate_proportion_mean == pytest.approx(1 / 8)
    assert (six.paper_groups, six.paper_flat_groups, six.paper_nontrivial_pct) == (pytest.approx(6700), 12, 99.82)
    assert pd.isna(four.paper_groups)  # no paper row for k = 4
    md = (tmp_path / "t.md").read_text()
    assert "12 / 6,700" in md and "1 / 2" in md and "50.00 %" in md


def test_theorem1_table(runs, tmp_path):
    result = script("table_theorem1", "--runs", *runs, "--out-prefix", tmp_path / "t1")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "t1.csv")
    assert table.k.tolist() == [6, 4] and table.groups.tolist() == [2, 2]
    assert (table.max_loss_diff < 1e-12).all() and (table.max_abs_diff < 1e-12).all()
    assert "max |L_GRPO − L_PRM|" in (tmp_path / "t1.md").read_text()


def test_overlap_figure_and_tree_figure(runs, tmp_path):
    result = script("figure_overlap", "--runs", *runs, "--out-prefix", tmp_path / "f")
    assert result.returncode == 0, result.stderr
    result = script("figure_overlap_tree", "--run", runs[0], "--min-distinct", 3, "--out-prefix", tmp_path / "tree")
    assert result.returncode == 0, result.stderr
    for name in ("f", "tree"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / f"{name}.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("name", ["figure_overlap", "table_overlap", "table_theorem1", "figure_overlap_tree"])
def test_a_missing_recording_is_one_line_and_writes_nothing(runs, tmp_path, name):
    missing = tmp_path / "k9"
    missing.mkdir()
    (missing / "config.json").write_text(json.dumps({"group_size": 9}))
    args = ["--run", missing] if name == "figure_overlap_tree" else ["--runs", runs[0], missing]
    if name == "table_overlap":
        args += ["--paper", PAPER]
    (missing / "final").mkdir()
    result = script(name, *args, "--out-prefix", tmp_path / "out" / "x")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]
    assert not (tmp_path / "out").exists()


def test_theorem1_table_refuses_an_unchecked_run(tmp_path):
    run = make_run(tmp_path, 4, theorem1_groups=0)
    result = script("table_theorem1", "--runs", run, "--out-prefix", tmp_path / "out" / "x")
    assert result.returncode != 0 and "Theorem 1 was not checked" in result.stderr
    assert not (tmp_path / "out").exists()


def drawn(fig, prefix: Path) -> Path:
    """The figure saved as the script saves it (`save_figure`); the PNG's path."""
    save_figure(fig, prefix)
    return prefix.with_suffix(".png")


def test_tree_figure_writes_png(tmp_path, tokenizer):
    rows = example_ids(tokenizer, EXAMPLE)
    T = max(map(len, rows))
    ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows]).bool()
    out = drawn(tree_figure(ids, mask, EXAMPLE_REWARDS, tokenizer=tokenizer, eps=0.0), tmp_path / "tree")
    assert out.stat().st_size > 5_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # k = 8 with long spans and `$` / newlines in the text; token ids instead of a tokenizer
    gen = np.random.default_rng(5)
    ids, mask = random_group(gen, 8, vocab=40, max_len=120)
    out = drawn(tree_figure(ids, mask, gen.integers(0, 2, 8)), tmp_path / "tree8")
    assert out.stat().st_size > 5_000
    texts = ["$x$ = 1\nso " * 8 + "A", "$x$ = 1\nso " * 8 + "B", "other"]
    out = drawn(tree_figure(*encode(texts), [1, 0, 1], tokenizer=CharTokenizer()), tmp_path / "tree_text")
    assert out.stat().st_size > 5_000


class CharTokenizer:
    def decode(self, ids):
        return "".join(map(chr, ids))


def test_distinct_step_rewards_and_the_group_picker(tmp_path):
    # worked example: R̂ = 0.5 ("AB"), 1 ("C⟨e⟩", {5}), 0 ({3}, {4}): three values; a flat tree has the ORM's two
    assert distinct_step_rewards(*encode(TREES["worked_example"][0]), [1.0, 1, 0, 0, 1]) == 3
    assert distinct_step_rewards(*encode(TREES["flat"][0]), [1.0, 0, 1]) == 2
    assert distinct_step_rewards(*encode(["xa", "xa", "xb"]), [1.0, 1, 0]) == 2  # root span "x" (R̂ = 2/3) not a step
    # rewards alternate 0, 1 within a step: `same` shares "ab" between two 0-reward completions (R̂ ∈ {0, 1});
    # the chain's shared nodes have R̂ = 1/3 and 1/2; `dups` shares only a leaf of identical copies (flat: 0)
    flat, same, chain = ["wxyz", "abcd", "efgh", "ijkl"], ["abx", "xy", "aby", "zz"], TREES["chain"][0]
    dups = record(tmp_path / "d.parquet", [[["ab", "xy", "ab", "zz"]], [same]])
    assert pick_group(dups, min_distinct=3)[:2] == (1, 0) and pick_group(dups, min_distinct=3)[-1] == 2
    path = record(tmp_path / "g.parquet", [[flat], [same, flat], [chain]])
    assert pick_group(path, min_distinct=3)[:2] == (2, 0) and pick_group(path, min_distinct=3)[-1] == 4
    fallback = record(tmp_path / "f.parquet", [[flat], [flat, same]])
    assert pick_group(fallback, min_distinct=3)[:2] == (1, 1)  # none has 3: the first with the most
    assert pick_group(path, step=1, group=1)[:2] == (1, 1)
    with pytest.raises(ValueError, match="no recorded group at step 5, group 0"):
        pick_group(path, step=5)
