"""paper_figures/table_toy_seeds.py and figure_toy_methods.py on synthetic run CSVs with known answers."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "paper_figures"))

import figure_toy_methods
import table_toy_seeds

from grpo_prm import toy_runs
from tests.helpers import write_run


def seeded_runs(root, steps=60):
    """n=1, r_neg=-1.0: λ-GRPO seed s ends at 0.5 + 0.01·s; explicit_prm_exact at 0.6 + 0.02·s (paired diff
    0.1 + 0.01·s); grpo at 0.1 for seeds 0..3 only (seed 4 missing). Cost columns on the PRM runs."""
    paths = []
    for s in range(5):
        paths.append(write_run(root, "lambda_grpo", 1, -1.0, s, [0.5 + 0.01 * s] * steps))
        p = write_run(root, "explicit_prm_exact", 1, -1.0, s, [0.6 + 0.02 * s] * steps)
        df = pd.read_csv(p).assign(**{"prm/extra_sampled_tokens": 100.0 + s, "wall_s": 2.0})
        df.to_csv(p, index=False)
        paths.append(p)
        if s < 4:
            paths.append(write_run(root, "grpo", 1, -1.0, s, [0.1] * steps))
    return paths


def test_table_intervals_and_paired_differences_are_exact(tmp_path):
    table = table_toy_seeds.build_table(toy_runs.read_runs(seeded_runs(tmp_path)), last=50)
    row = table.set_index("method").loc["explicit_prm_exact"]
    x = 0.6 + 0.02 * np.arange(5)
    half = stats.t.ppf(0.975, 4) * x.std(ddof=1) / np.sqrt(5)
    assert (row["mean"], row.ci_low, row.ci_high) == pytest.approx((x.mean(), x.mean() - half, x.mean() + half))
    d = 0.1 + 0.01 * np.arange(5)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert (row["diff"], row.diff_low, row.diff_high) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    assert (row.extra_tokens_per_step, row.paired_seeds) == (102.0, 5)
    assert "wall_s" not in table  # run-to-run timing stays out of committed tables (byte-identical rebuilds)
    grpo = table.set_index("method").loc["grpo"]
    assert grpo.paired_seeds == 4 and grpo["diff"] == pytest.approx(0.1 - np.mean(0.5 + 0.01 * np.arange(4)))
    assert grpo.ci_low == pytest.approx(0.1) and pd.isna(grpo.extra_tokens_per_step)  # older runs: no cost columns
    assert pd.isna(table.set_index("method").loc["lambda_grpo", "diff"])
    assert list(table.method) == ["grpo", "lambda_grpo", "explicit_prm_exact"]


def test_table_cli_writes_md_csv_tex_and_refuses_bad_input(tmp_path):
    paths = seeded_runs(tmp_path)
    prefix = tmp_path / "out" / "table_toy_seeds"
    table_toy_seeds.main(["--runs", *map(str, paths), "--out-prefix", str(prefix)])
    md = prefix.with_suffix(".md").read_text()
    assert "explicit PRM (exact)" in md and "+0.120 [" in md and prefix.with_suffix(".tex").exists()
    bad = tmp_path / "bad"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "paper_figures" / "table_toy_seeds.py"),
            "--runs",
            str(tmp_path / "missing.csv"),
            "--out-prefix",
            str(bad),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "no such file" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("bad*"))


def test_band_is_the_seed_mean_and_its_t_interval(tmp_path):
    runs = toy_runs.read_runs(seeded_runs(tmp_path))
    by_method = toy_runs.select_runs(runs, 1, -1.0)
    band = figure_toy_methods.smoothed_band(by_method["lambda_grpo"], smooth=10)
    x = 0.5 + 0.01 * np.arange(5)
    half = stats.t.ppf(0.975, 4) * x.std(ddof=1) / np.sqrt(5)
    assert band["mean"].iloc[-1] == pytest.approx(x.mean())
    assert band["high"].iloc[-1] - band["low"].iloc[-1] == pytest.approx(2 * half)
    written = figure_toy_methods.main(
        ["--runs", *map(str, seeded_runs(tmp_path)), "--out-prefix", str(tmp_path / "fig")]
    )
    assert [p.name for p in written] == ["fig.png", "fig.pdf", "fig.data.csv"] and all(
        p.stat().st_size > 0 for p in written
    )
