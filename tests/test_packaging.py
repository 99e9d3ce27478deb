"""The package as a TRL plugin: its core dependencies suffice for the trainer and the example, the trainer's import
pulls no workflow or evaluation package, and the example (the README's library section) runs as written."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lambda_grpo.py"
HEAVY = ("snakemake", "lm_eval", "math_verify", "matplotlib")  # the workflow and eval extras' packages
ENV = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def run_example(python, tmp_path, cwd=ROOT, env=ENV):
    """The example for one optimiser step, logging it; its stdout."""
    args = [
        str(python),
        str(EXAMPLE),
        "--max_steps",
        "1",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--output_dir",
        str(tmp_path / "out"),
    ]
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_example_runs_and_logs_lambda(tmp_path):
    out = run_example(sys.executable, tmp_path)
    logged = re.search(r"'lambda/weight_mean': '([0-9.e-]+)'", out)
    assert logged and 0 < float(logged.group(1)) <= 1, out[-2000:]
    assert len(EXAMPLE.read_text().splitlines()) <= 30


def test_readme_library_section_is_the_example():
    """The section "Using the library" (README, or the docs file it moved to) shows the example, verbatim."""
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts = [
        p.read_text()
        for p in sources
        if p.exists() and re.search(r"^#+ Using the library$", p.read_text(), re.MULTILINE)
    ]
    assert len(texts) == 1, "exactly one document has the section 'Using the library'"
    section = re.split(r"^#+ Using the library$", texts[0], maxsplit=1, flags=re.MULTILINE)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block and block.group(1) == EXAMPLE.read_text()


def test_trainer_import_pulls_no_workflow_or_eval_package():
    code = f"import sys, grpo_prm.trainer, grpo_prm.recording; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_extras_hold_what_left_the_core():
    extras = project()["optional-dependencies"]
    names = {group: {canonicalize_name(Requirement(r).name) for r in reqs} for group, reqs in extras.items()}
    core = {canonicalize_name(Requirement(r).name) for r in project()["dependencies"]}
    assert {"torch", "transformers", "trl", "accelerate", "datasets"} <= core
    assert not core & {"snakemake", "lm-eval", "math-verify", "matplotlib", "pandas", "vllm"}
    assert {"snakemake", "pandas", "matplotlib"} <= names["workflow"]
    assert names["eval"] == {"lm-eval", "math-verify"} and names["vllm"] == {"vllm"}


def closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that `requirements` need, transitively (markers and extras evaluated here)."""
    found, todo = {}, [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = metadata.distribution(name)  # PackageNotFoundError: this venv lacks a requirement
        assert req.specifier.contains(dist.version, prereleases=True), f"{req} but {dist.version} is installed"
        wanted = [(name, e) for e in ("", *sorted(req.extras))]
        if all(key in found for key in wanted):
            continue
        for key in wanted:
            found[key] = dist
            todo += [(Requirement(r), key[1]) for r in dist.requires or []]
    return {name: dist for (name, _), dist in found.items()}


@pytest.mark.slow
def test_core_install_in_a_fresh_venv(tmp_path):
    """A fresh venv gets only the core requirements' distributions (resolved from their metadata, linked from this
    environment's files, so no download), plus setuptools to build with; pip then installs this project into it
    with no index (it fails if a requirement is missing), `pip check` finds every requirement met, and the example
    runs there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    here = Path(sysconfig.get_paths()["purelib"])
    dists = closure([*project()["dependencies"], "pip", "setuptools>=77"])
    assert not {canonicalize_name(m) for m in ("snakemake", "lm-eval", "math-verify", "matplotlib")} & dists.keys()
    for dist in dists.values():
        for file in dist.files or []:
            source = Path(dist.locate_file(file)).resolve()
            if not source.is_relative_to(here) or not source.is_file():
                continue  # console scripts and the like live outside site-packages
            target = site / source.relative_to(here)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(source)
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    project_copy = tmp_path / "project"  # the build writes into its source tree: a copy of what it reads
    shutil.copytree(ROOT / "src", project_copy / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project_copy / name)
    done = subprocess.run(
        [*pip, "install", "--no-index", "--no-build-isolation", str(project_copy)],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([*pip, "check"], env=ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    code = (
        "from importlib.metadata import metadata; m = metadata('grpo-prm'); "
        "print(m['License-Expression'], m.get_all('License-File'))"
    )
    license_ = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert license_ == "MIT ['LICENSE']"
    out = run_example(python, tmp_path, cwd=tmp_path)
    assert "'lambda/weight_mean'" in out
