"""Same command, same numbers: the cut-down workflow (config/ci.yaml), built from scratch twice in two folders,
gives byte-identical tables and figure data, equal to the committed goldens in tests/golden/ci/.

The two builds run side by side, one with --cores 2 and one with --cores 1, so the check also covers a different
number of jobs running at once (each rule's torch threads are fixed in workflow/rules/common.smk)."""

import pytest

from tests.golden import GOLDEN, REGENERATE, differences, finish, outputs, start


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    dirs = [tmp_path_factory.mktemp("ci_a"), tmp_path_factory.mktemp("ci_b")]
    procs = [start(dirs[0], cores=2), start(dirs[1], cores=1)]
    try:
        return [finish(proc, d) for proc, d in zip(procs, dirs)]
    finally:
        for proc in procs:
            proc.kill() if proc.poll() is None else None


@pytest.mark.slow
def test_ci_workflow_matches_goldens(two_builds):
    built, _ = two_builds
    diff = differences(built, outputs(GOLDEN), "built", "tests/golden/ci")
    assert not diff, (
        f"the cut-down workflow's outputs differ from the goldens:\n{diff}\n"
        f"If the change is intended, regenerate them with `{REGENERATE}` and commit tests/golden/ci/."
    )


@pytest.mark.slow
def test_ci_workflow_is_deterministic(two_builds):
    first, second = two_builds
    expected = {
        "table1_toy.csv",
        "table1_toy.md",
        "table1_toy.tex",
        "math_peaks.csv",
        "table2.csv",
        "table2.tex",
        "table_overlap.csv",
        "table_theorem1.csv",
        "figure_toy_curves.data.csv",
        "math_curves_tiny_beta0.0.data.csv",
        "figure_overlap.data.csv",
        "figure_overlap_tree.data.csv",
    }
    assert expected <= set(first)
    assert not differences(second, first, "second run (--cores 1)", "first run (--cores 2)")


def test_a_difference_is_shown_as_a_diff_naming_the_file():
    golden = {"t.csv": "a,b\n1,2\n", "gone.md": "x\n"}
    built = {"t.csv": "a,b\n1,3\n", "new.csv": "y\n"}
    diff = differences(built, golden, "built", "tests/golden/ci")
    assert "--- tests/golden/ci/t.csv\n+++ built/t.csv\n" in diff and "-1,2\n+1,3\n" in diff
    assert "(gone.md: only in tests/golden/ci)" in diff and "(new.csv: only in built)" in diff
    assert differences(golden, dict(golden), "built", "tests/golden/ci") == ""
