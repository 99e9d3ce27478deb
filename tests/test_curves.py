"""Validation curves and the peak table of the math runs, against hand-computed values."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from grpo_prm.curves import MathRunError, load_validation, peak_summary, peak_table, seed_band

ROOT = Path(__file__).resolve().parents[1]
T_975_DF2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom


def make_run(root: Path, method: str, seed: int, accs: list[float], beta: float = 0.0, every: int = 10) -> Path:
    """A finished run folder as grpo_prm.math_rl leaves it (validation every `every` steps, from step 0)."""
    run = root / f"tiny/beta{beta}/{method}/seed{seed}"
    run.mkdir(parents=True)
    recs = [{"step": i * every, "val/accuracy": a} for i, a in enumerate(accs)]
    recs.insert(1, {"step": 1, "loss": 0.5, "reward": 0.1})  # training records are ignored
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run / "config.json").write_text(
        json.dumps({"model": "results/x/checkpoints/tiny", "beta": beta, "method": method, "seed": seed})
    )
    return run / "config.json"


@pytest.fixture
def runs(tmp_path):
    accs = {
        ("grpo", 0): [0.1, 0.2, 0.4, 0.3],
        ("grpo", 1): [0.1, 0.3, 0.3, 0.5],
        ("grpo", 2): [0.1, 0.2, 0.2, 0.2],
        ("lambda_grpo", 0): [0.1, 0.5, 0.5, 0.4],
        ("lambda_grpo", 1): [0.1, 0.2, 0.6, 0.6],
        ("lambda_grpo", 2): [0.1, 0.4, 0.3, 0.3],
    }
    return [make_run(tmp_path, m, s, a) for (m, s), a in accs.items()]


def test_seed_band_is_mean_and_t_interval(runs):
    band = seed_band(load_validation(runs), 0.95).set_index(["method", "step"])
    row = band.loc[("grpo", 10)]  # seeds 0.2, 0.3, 0.2
    mean, sd = 0.7 / 3, pd.Series([0.2, 0.3, 0.2]).std()
    assert row["mean"] == pytest.approx(mean)
    assert row.hi - row["mean"] == pytest.approx(T_975_DF2 * sd / 3**0.5)
    assert row["mean"] - row.lo == pytest.approx(T_975_DF2 * sd / 3**0.5)
    assert band.loc[("grpo", 0)].lo == pytest.approx(0.1) and band.loc[("grpo", 0)].n == 3


def test_peak_table_first_peak_final_and_ratio(runs):
    peaks = peak_table(load_validation(runs)).set_index(["method", "seed"])
    assert peaks.loc[("grpo", 1)].peak == 0.5 and peaks.loc[("grpo", 1)].peak_step == 30
    assert peaks.loc[("lambda_grpo", 0)].peak_step == 10  # the first of two steps at the peak
    assert peaks.loc[("lambda_grpo", 0)].final == 0.4 and peaks.loc[("lambda_grpo", 0)].final_step == 30
    assert peaks.loc[("lambda_grpo", 0)].peak_step_vs_grpo == pytest.approx(10 / 20)
    assert peaks.loc[("lambda_grpo", 1)].peak_step_vs_grpo == pytest.approx(20 / 30)
    assert pd.isna(peaks.loc[("grpo", 0)].peak_step_vs_grpo)
    summary = peak_summary(peak_table(load_validation(runs))).set_index("method")
    assert summary.loc["lambda_grpo"].peak == pytest.approx((0.5 + 0.6 + 0.4) / 3)
    assert summary.loc["lambda_grpo"].seeds == 3


def test_bad_runs_are_named(runs, tmp_path):
    broken = runs[0].parent
    (broken / "metrics.jsonl").unlink()
    with pytest.raises(MathRunError, match=str(broken)):
        load_validation(runs)
    with pytest.raises(MathRunError, match="two runs of model=tiny beta=0.0 method=grpo seed=1"):
        load_validation([runs[1], runs[1]])


def test_scripts_write_figure_and_table(runs, tmp_path):
    out = tmp_path / "fig" / "math_curves"
    cmd = [
        sys.executable,
        str(ROOT / "paper_figures/math_curves.py"),
        "--runs",
        *map(str, runs),
        "--out-prefix",
        str(out),
    ]
    subprocess.run(cmd, check=True)
    assert all((out.parent / f"math_curves.{e}").stat().st_size > 1000 for e in ("png", "pdf"))
    table = tmp_path / "fig" / "math_peaks"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "paper_figures/math_peaks.py"),
            "--runs",
            *map(str, runs),
            "--out-prefix",
            str(table),
        ],
        check=True,
    )
    csv = pd.read_csv(f"{table}.csv")
    assert len(csv) == 6 and "λ-GRPO" in Path(f"{table}.md").read_text()
    bad = subprocess.run(
        [
            sys.executable,
            str(ROOT / "paper_figures/math_peaks.py"),
            "--runs",
            str(tmp_path / "nope"),
            "--out-prefix",
            str(tmp_path / "bad"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "nope" in bad.stderr
    assert not list(tmp_path.glob("bad*"))
