"""The cut-down workflow (config/ci.yaml) built from scratch, and its golden tables under tests/golden/ci/.

    make golden        # = python -m tests.golden: rebuild in a temporary folder and replace the golden copies

Compared are the tables (CSV, Markdown, LaTeX) and the figures' data (`<figure>.data.csv`, grpo_prm.io.figure_data);
PNG and PDF bytes also depend on fonts and library versions, so they are not.
"""

import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "ci.yaml"
GOLDEN = ROOT / "tests" / "golden" / "ci"
TARGETS = ("toy", "math", "evaluation", "overlap")
REGENERATE = "make golden"
COMPARED = (".csv", ".md", ".tex")


def start(workdir: Path, cores: int = 2) -> subprocess.Popen:
    """Start the cut-down workflow in `workdir` (from scratch); its log goes to `workdir/snakemake.log`."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        "--configfile",
        str(CONFIG),
        "--forceall",
        *TARGETS,
    ]
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # rules call python
    log = (workdir / "snakemake.log").open("w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)


def finish(proc: subprocess.Popen, workdir: Path, timeout: float = 1800) -> dict[str, str]:
    """Wait for `start`'s run; its compared outputs (`outputs`), or an error with the end of its log."""
    if proc.wait(timeout=timeout) != 0:
        raise RuntimeError(f"snakemake failed in {workdir}:\n{(workdir / 'snakemake.log').read_text()[-4000:]}")
    return outputs(workdir / "paper_figures" / "ci")


def outputs(folder: Path) -> dict[str, str]:
    """Name → text of every compared file in `folder` (sorted by name)."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()) if p.name.endswith(COMPARED)}


def differences(got: dict[str, str], want: dict[str, str], got_name: str, want_name: str) -> str:
    """A unified diff of every file that differs, is missing or is extra; empty when all are byte-identical."""
    out = []
    for name in sorted(set(got) | set(want)):
        if got.get(name) != want.get(name):
            a = want.get(name, "").splitlines(keepends=True)
            b = got.get(name, "").splitlines(keepends=True)
            out += difflib.unified_diff(a, b, f"{want_name}/{name}", f"{got_name}/{name}")
            out += (
                []
                if name in got and name in want
                else [f"({name}: only in {got_name if name in got else want_name})\n"]
            )
    return "".join(out)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="golden-ci-") as tmp:
        files = finish(start(Path(tmp)), Path(tmp))
    shutil.rmtree(GOLDEN, ignore_errors=True)
    GOLDEN.mkdir(parents=True)
    for name, text in files.items():
        (GOLDEN / name).write_text(text, encoding="utf-8")
    print(f"{len(files)} golden files written to {GOLDEN.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
