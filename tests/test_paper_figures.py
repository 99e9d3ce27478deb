"""Tests for paper_figures/table1_toy.py and paper_figures/figure_toy_curves.py on synthetic run CSVs."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "paper_figures"))

import figure_toy_curves
import table1_toy

from grpo_prm import toy_runs
from tests.helpers import write_run

PAPER_CSV = ROOT / "paper_figures" / "reference" / "table1_paper.csv"
# Table 1 of arXiv 2509.21154: (n, r_neg) -> (GRPO, λ-GRPO)
PAPER_TABLE1 = {
    (1, -0.5): (0.3995, 0.5663),
    (1, -1.0): (0.0000, 0.7535),
    (1, -1.5): (0.2000, 0.4463),
    (2, -0.5): (0.1980, 0.4292),
    (2, -1.0): (0.0488, 0.3612),
    (2, -1.5): (0.0000, 0.3820),
}


def constant_grid(root: Path, methods=("grpo", "lambda_grpo"), seeds=(0, 1), steps=60) -> list[Path]:
    """All 6 (n, r_neg) cells; run value = 0.1*n + 0.01*seed (+0.5 for λ-GRPO) so every mean is known."""
    paths = []
    for n, r in PAPER_TABLE1:
        for m in methods:
            for s in seeds:
                v = 0.1 * n + 0.01 * s + (0.5 if m != "grpo" else 0.0)
                paths.append(write_run(root, m, n, r, s, [v] * steps))
    return paths


# ---------------------------------------------------------------- metric


def test_paper_reference_csv_matches_the_paper():
    paper = table1_toy.read_paper(PAPER_CSV)
    assert len(paper) == 6
    got = {(int(r.n), float(r.r_neg)): (r.grpo, r.lambda_grpo) for r in paper.itertuples()}
    assert got == PAPER_TABLE1


def test_final_frequency_is_mean_of_last_steps_exactly(tmp_path):
    # steps 1..60 with target_freq = step/100, rows shuffled: last 50 = steps 11..60 -> mean 35.5/100
    df = pd.DataFrame({"step": range(1, 61), "target_freq": [s / 100 for s in range(1, 61)]})
    df = df.sample(frac=1.0, random_state=0)
    assert toy_runs.final_frequency(df, 50) == pytest.approx(0.355, abs=1e-12)
    assert toy_runs.final_frequency(df, 10) == pytest.approx(0.555, abs=1e-12)  # steps 51..60
    assert toy_runs.final_frequency(df, 60) == pytest.approx(0.305, abs=1e-12)  # all steps


def test_final_frequency_ignores_early_steps(tmp_path):
    # first 10 steps at 1.0, last 50 at 0.25: the early steps must not leak into the last-50 mean
    path = write_run(tmp_path, "grpo", 1, -1.0, 0, [1.0] * 10 + [0.25] * 50)
    assert toy_runs.final_frequency(toy_runs.read_run(path), 50) == pytest.approx(0.25, abs=1e-12)


def test_seeds_are_averaged_with_sample_std(tmp_path):
    paths = [write_run(tmp_path, "grpo", 1, -1.0, s, [v] * 50) for s, v in [(0, 0.2), (1, 0.6), (2, 0.4)]]
    paper = table1_toy.read_paper(PAPER_CSV)
    table = table1_toy.build_table1(toy_runs.read_runs(paths), paper, last=50)
    row = table[(table.n == 1) & (table.r_neg == -1.0)].iloc[0]
    assert row.grpo_mean == pytest.approx(0.4, abs=1e-12)
    assert row.grpo_std == pytest.approx(0.2, abs=1e-12)  # ddof=1: sqrt((0.04 + 0.04 + 0) / 2)
    assert row.grpo_seeds == 3


def test_paper_columns_merged_for_all_six_rows(tmp_path):
    paths = constant_grid(tmp_path)
    table = table1_toy.build_table1(toy_runs.read_runs(paths), table1_toy.read_paper(PAPER_CSV), last=50)
    assert len(table) == 6
    assert [(int(n), float(r)) for n, r in zip(table.n, table.r_neg)] == list(PAPER_TABLE1)  # paper's row order
    for row in table.itertuples():
        key = (int(row.n), float(row.r_neg))
        assert (row.paper_grpo, row.paper_lambda_grpo) == PAPER_TABLE1[key]
        assert row.grpo_mean == pytest.approx(0.1 * row.n + 0.005, abs=1e-12)  # seeds 0, 1
        assert row.lambda_grpo_mean == pytest.approx(0.1 * row.n + 0.505, abs=1e-12)
        assert row.grpo_seeds == row.lambda_grpo_seeds == 2
    assert not any(c.startswith("lambda_grpo_scaled") for c in table.columns)


def test_duplicate_run_is_rejected(tmp_path):
    a = write_run(tmp_path / "a", "grpo", 1, -1.0, 0, [0.1] * 50)
    b = write_run(tmp_path / "b", "grpo", 1, -1.0, 0, [0.2] * 50)
    with pytest.raises(toy_runs.ToyRunError, match="same"):
        toy_runs.read_runs([a, b])


# ---------------------------------------------------------------- CLI outputs


def test_cli_writes_md_csv_tex_with_expected_numbers(tmp_path):
    paths = constant_grid(tmp_path, methods=("grpo", "lambda_grpo", "lambda_grpo_scaled"))
    prefix = tmp_path / "out" / "table1_toy"
    argv = ["--runs", *map(str, paths), "--last", "50", "--paper", str(PAPER_CSV), "--out-prefix", str(prefix)]
    table1_toy.main(argv)

    md = Path(f"{prefix}.md").read_text()
    assert md.splitlines()[0].startswith("Table 1") and "last 50 of 60" in md.splitlines()[0]
    assert "seeds {0, 1}" in md
    assert "λ-GRPO (scale-matched) (ours)" in md
    assert "0.105 ± 0.007" in md  # n=1 GRPO: mean(0.10, 0.11), std 0.00707
    assert "0.705 ± 0.007" in md  # n=2 λ-GRPO: mean(0.70, 0.71)
    for grpo, lam in PAPER_TABLE1.values():
        assert f"{grpo:.4f}" in md and f"{lam:.4f}" in md

    csv = pd.read_csv(f"{prefix}.csv")
    assert len(csv) == 6
    assert csv["lambda_grpo_scaled_mean"].tolist() == pytest.approx([0.605] * 3 + [0.705] * 3)
    assert csv["paper_lambda_grpo"].tolist() == [v[1] for v in PAPER_TABLE1.values()]

    tex = Path(f"{prefix}.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"0.105 $\pm$ 0.007" in tex and "0.7535" in tex and r"\caption{" in tex
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["table1_toy.csv", "table1_toy.md", "table1_toy.tex"]


def test_cli_with_only_grpo(tmp_path):
    paths = constant_grid(tmp_path, methods=("grpo",), seeds=(3,))
    prefix = tmp_path / "out" / "t"
    table1_toy.main(["--runs", *map(str, paths), "--paper", str(PAPER_CSV), "--out-prefix", str(prefix)])
    md = Path(f"{prefix}.md").read_text()
    assert "GRPO (ours)" in md and "λ-GRPO (ours)" not in md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert "0.130" in rows[2] and not any("±" in line for line in rows)  # single seed: mean only, no std


@pytest.mark.parametrize(
    "case, needle",
    [("missing_column", "target_freq"), ("too_short", "fewer than --last"), ("missing_file", "no such file")],
)
def test_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys, case, needle):
    paths = constant_grid(tmp_path / "runs")
    if case == "missing_column":
        paths.append(write_run(tmp_path / "bad", "lambda_grpo_scaled", 1, -1.0, 0, [0.5] * 60, drop="target_freq"))
    elif case == "too_short":
        paths.append(write_run(tmp_path / "bad", "lambda_grpo_scaled", 1, -1.0, 0, [0.5] * 49))
    else:
        paths.append(tmp_path / "bad" / "nope.csv")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        table1_toy.main(["--runs", *map(str, paths), "--paper", str(PAPER_CSV), "--out-prefix", str(out / "t")])
    assert exc.value.code not in (0, None)
    assert needle in str(exc.value.code) and "\n" not in str(exc.value.code)
    assert str(tmp_path / "bad") in str(exc.value.code)  # names the culprit file
    assert not out.exists()


def test_bad_input_subprocess_exit_code_and_one_line(tmp_path):
    bad = write_run(tmp_path, "grpo", 1, -1.0, 0, [0.5] * 60, drop="seed")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "paper_figures" / "table1_toy.py"), "--runs", str(bad), "--paper", str(PAPER_CSV)]
        + ["--out-prefix", str(out / "t")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and str(bad) in proc.stderr and "seed" in proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------- figure


def test_figure_writes_png_pdf_and_its_data(tmp_path):
    paths = constant_grid(tmp_path, methods=("grpo", "lambda_grpo", "lambda_grpo_scaled"), seeds=(0, 1, 2))
    prefix = tmp_path / "fig" / "curves"
    figure_toy_curves.main(["--runs", *map(str, paths), "--n", "1", "--r-neg", "-1.0", "--out-prefix", str(prefix)])
    png, pdf = Path(f"{prefix}.png"), Path(f"{prefix}.pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1_000
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["curves.data.csv", "curves.pdf", "curves.png"]  # no temp
    data = pd.read_csv(f"{prefix}.data.csv", keep_default_na=False)
    assert {"seed 0", "seed 1", "seed 2"} <= set(data[data.artist == "line"].label)  # one line per seed, as plotted


def test_figure_panels_per_method_present(tmp_path):
    paths = constant_grid(tmp_path, methods=("grpo", "lambda_grpo"), seeds=(0, 1, 2))
    by_method = toy_runs.select_runs(toy_runs.read_runs(paths), n=2, r_neg=-1.5)
    assert list(by_method) == ["grpo", "lambda_grpo"]
    assert [int(df["seed"].iloc[0]) for df in by_method["grpo"]] == [0, 1, 2]
    fig = figure_toy_curves.plot_curves(by_method, 2, -1.5, smooth=10)
    assert len(fig.axes) == 2 and all(ax.get_ylim() == (0.0, 1.0) for ax in fig.axes)
    assert all(len(ax.lines) == 3 for ax in fig.axes)


@pytest.mark.parametrize("case", ["missing_column", "no_match"])
def test_figure_bad_input_exits_nonzero_and_writes_nothing(tmp_path, case):
    paths = constant_grid(tmp_path / "runs", seeds=(0,))
    if case == "missing_column":
        paths.append(write_run(tmp_path / "bad", "grpo", 1, -1.0, 7, [0.5] * 60, drop="step"))
        r_neg = "-1.0"
    else:
        r_neg = "-2.0"
    out = tmp_path / "fig"
    with pytest.raises(SystemExit) as exc:
        figure_toy_curves.main(
            ["--runs", *map(str, paths), "--n", "1", "--r-neg", r_neg, "--out-prefix", str(out / "c")]
        )
    assert exc.value.code not in (0, None) and "\n" not in str(exc.value.code)
    assert not out.exists()
