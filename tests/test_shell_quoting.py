"""Config strings reach the rules' shell commands as single, intact arguments and are never executed.

The workflow's own command lines (snakemake --dry-run --printshellcmds) are run by bash with `python` replaced by a
function that records its arguments, so a `$(…)`, a backtick, a quote or a `;` in a config value would show up as an
executed command or as a split argument.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "d i r'\"$(touch PWNED1)`touch PWNED2`;touch PWNED3 && touch PWNED4 #"


def dry_run_commands(workdir: Path, config: dict, *targets: str) -> list[str]:
    cfg = workdir / "hostile.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            "1",
            "--dry-run",
            "--printshellcmds",
            *targets,
            "--configfile",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [
        line.removeprefix("Shell command: ")
        for line in result.stdout.splitlines()
        if line.startswith("Shell command: ") and line != "Shell command: None"
    ]  # None: no shell


def run_recording_args(command: str, cwd: Path) -> list[list[str]]:
    """Run `command` with `python` recording its argv (NUL-separated) instead of running; the log redirect kept."""
    record = cwd / "argv.bin"
    record.unlink(missing_ok=True)
    log = re.search(r" > (\S+) 2>&1$", command)
    if log:  # the log folder Snakemake would create
        (cwd / log.group(1).strip("'")).parent.mkdir(parents=True, exist_ok=True)
    script = f'python() {{ printf "%s\\0" "$@" >> {record}; printf "\\n" >> {record}; }}\n{command}\n'
    subprocess.run(["bash", "-c", script], cwd=cwd, check=True, timeout=60)
    return [chunk.split("\0")[:-1] for chunk in record.read_text().split("\0\n") if chunk]


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["eval"]["data_dir"] = HOSTILE
    config["math"]["data"] = {"source": "openrs", "openrs": {"local_dir": HOSTILE, "n_val": 5, "seed": 0}}
    return workdir, dry_run_commands(workdir, config, "math", "evaluation", "overlap")


def test_hostile_config_strings_are_not_executed(commands):
    workdir, lines = commands
    assert any("grpo_prm.prepare_data" in c for c in lines) and any("grpo_prm.evaluate" in c for c in lines)
    seen = {"--data-dir": 0, "--local-dir": 0}
    for line in lines:
        for argv in run_recording_args(line, workdir):
            for flag in seen:
                if flag in argv:
                    assert argv[argv.index(flag) + 1] == HOSTILE  # one intact argument
                    seen[flag] += 1
    assert seen["--data-dir"] > 0 and seen["--local-dir"] == 1
    assert not list(workdir.glob("PWNED*"))


def test_every_command_parses_to_the_flags_it_was_given(commands):
    """Every printed command still runs (recorded) and names a grpo_prm module or script: quoting kept it whole."""
    workdir, lines = commands
    for line in lines:
        [argv] = run_recording_args(line, workdir)
        assert argv[0] == "-m" and argv[1].startswith("grpo_prm.") or argv[0].endswith(".py")
        identity = argv[argv.index("--identity") + 1 : argv.index("--out")] if "--identity" in argv else []
        assert all(re.fullmatch(r"(model|beta|method|seed)=[\w.]+", word) for word in identity)
