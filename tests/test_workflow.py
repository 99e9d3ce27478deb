"""The Snakemake workflow end to end on a cut-down toy config, and its refusal of bad configs."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import background, records, run_files, wait_for

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--cores", "2"]


def run_snakemake(workdir: Path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    cfg = workdir / "test.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = [*SNAKEMAKE, "--directory", str(workdir), *extra, "--configfile", str(cfg)]  # --configfile takes several
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # rules call `python`
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1200, env=env)


def small_config() -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["profile"] = "test"
    config["toy"].update(
        methods=["grpo", "lambda_grpo"],
        n=[1],
        r_neg=[-1.0],
        seeds=[0, 1],
        steps=12,
        last_steps=5,
        engine="trainer",
        sweep={"learning_rates": [], "seeds": []},
    )  # the trainer path (CI: batched)
    return config


@pytest.mark.slow
def test_toy_workflow_end_to_end(tmp_path):
    config = small_config()
    config["toy"]["methods"].append("explicit_prm_mc")
    result = run_snakemake(tmp_path, config, "toy")
    assert result.returncode == 0, result.stderr[-3000:]
    run = pd.read_csv(tmp_path / "results/test/toy/lambda_grpo/n1_r-1.0/seed1.csv")
    assert list(run.step) == list(range(1, 13))
    assert run.target_freq.between(0, 1).all()
    assert {"tree/path_depth", "lambda/weight_mean", "loss"} <= set(run.columns)
    assert run["lambda/weight_mean"].lt(1).all()  # 16 completions of 4 L/R moves always share prefixes
    grpo = pd.read_csv(tmp_path / "results/test/toy/grpo/n1_r-1.0/seed1.csv")
    assert grpo["lambda/weight_mean"].eq(1).all()
    table = pd.read_csv(tmp_path / "paper_figures/test/table1_toy.csv")
    row = table[(table.n == 1) & (table.r_neg == -1.0)].iloc[0]
    expected = pd.concat([run, pd.read_csv(tmp_path / "results/test/toy/lambda_grpo/n1_r-1.0/seed0.csv")])
    expected = expected.groupby("seed").target_freq.apply(lambda s: s.tail(5).mean()).mean()
    assert row["lambda_grpo_mean"] == pytest.approx(expected)
    assert row["paper_lambda_grpo"] == pytest.approx(0.7535)
    for ext in ("md", "tex"):
        assert (tmp_path / f"paper_figures/test/table1_toy.{ext}").stat().st_size > 0
    for ext in ("png", "pdf"):
        assert (tmp_path / f"paper_figures/test/figure_toy_curves.{ext}").stat().st_size > 1000
        assert (tmp_path / f"paper_figures/test/figure_toy_methods.{ext}").stat().st_size > 1000
    seeds = pd.read_csv(tmp_path / "paper_figures/test/table_toy_seeds.csv").set_index("method")
    prm = pd.read_csv(tmp_path / "results/test/toy/explicit_prm_mc/n1_r-1.0/seed0.csv")
    assert prm["prm/extra_sampled_tokens"].gt(0).all() and seeds.loc["grpo", "extra_tokens_per_step"] == 0
    assert seeds.loc["explicit_prm_mc", "paired_seeds"] == 2 and seeds.loc["grpo", "seeds"] == 2


def overlap_config() -> dict:
    """The overlap target on a tiny recipe: 5 SFT steps on 40 problems, GRPO at k = 3 and 4 for a few steps."""
    config = small_config()
    math = config["math"]
    math["data"]["offline"].update(n_train=40, n_val=4, n_test=2)
    math["models"]["tiny"]["recipe"] = {
        "sft_steps": 5,
        "vocab_size": 300,
        "hidden_size": 32,
        "layers": 1,
        "heads": 2,
        "batch_size": 8,
    }
    math["train"].update(prompts_per_step=2, max_new_tokens=16, val_every=2, val_batch_size=4, save_every=2)
    config["overlap"].update(
        runs=[
            {"group_size": 3, "steps": 3, "learning_rate": 1.0e-3},
            {"group_size": 4, "steps": 2, "learning_rate": 1.0e-3},
        ],
        theorem1_groups=4,
    )
    config["overlap"]["tree"].update(group_size=3)
    return config


@pytest.mark.slow
def test_overlap_workflow_end_to_end(tmp_path):
    result = run_snakemake(tmp_path, overlap_config(), "overlap")
    assert result.returncode == 0, result.stderr[-3000:]
    for k, steps in ((3, 3), (4, 2)):
        run = tmp_path / f"results/test/overlap/tiny/k{k}"
        assert json.loads((run / "config.json").read_text())["group_size"] == k
        per_step = pd.read_csv(run / "overlap.csv")
        assert per_step.step.tolist() == list(range(steps)) and per_step.groups.eq(2).all()
    table = pd.read_csv(tmp_path / "paper_figures/test/table_overlap.csv")
    assert table.k.tolist() == [4, 3] and table.groups.tolist() == [4, 6]
    theorem1 = pd.read_csv(tmp_path / "paper_figures/test/table_theorem1.csv")
    assert theorem1.groups.tolist() == [4, 4] and (theorem1.max_loss_diff < 1e-12).all()
    for name in ("figure_overlap", "figure_overlap_tree"):
        for ext in ("png", "pdf"):
            assert (tmp_path / f"paper_figures/test/{name}.{ext}").stat().st_size > 1000


@pytest.mark.parametrize(
    "change, message",
    [
        ({"toy": {"methods": ["ppo"]}}, "toy.methods[0]: 'ppo' is not one of"),
        ({"toy": {"group_size": 1}}, "toy.group_size: 1 is less than the minimum of 2"),
        ({"toy": {"typo_key": 3}}, "unknown config key 'toy.typo_key'"),
        ({"toy": {"steps": "many"}}, "toy.steps: 'many' is not of type 'integer'"),
        (
            {"toy": {"sweep": {"learning_rates": [1.0e-4], "seeds": [1, 7]}}},
            "toy.sweep.seeds: 1 is also a reporting seed",
        ),
        ({"toy": {"engine": "fast"}}, "toy.engine: 'fast' is not one of"),
    ],
)
def test_bad_config_is_refused_with_one_line(tmp_path, change, message):
    config = small_config()
    for section, values in change.items():
        config[section].update(values)
    result = run_snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [f"config error: {errors[0].removeprefix('config error: ')}"] and message in errors[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "paper_figures").exists()


def test_every_math_method_is_evaluated(tmp_path):
    """Each cell of math.methods (here Dr. GRPO and Reinforce-Rej too) gets its evaluation, with the identity built
    from the matrix: the evaluate rule's cell pattern takes grpo_prm.methods.METHODS, not a list of its own."""
    config = small_math_config()
    config["math"].update(methods=["grpo", "dr_grpo", "lambda_reinforce_rej"], seeds=[0])
    result = run_snakemake(tmp_path, config, "--dry-run", "--printshellcmds", "evaluation")
    assert result.returncode == 0, result.stderr
    for method in config["math"]["methods"]:
        assert (
            f"--identity model=tiny beta=0.0 method={method} seed=0 --out results/test/eval/greedy/tiny/beta0.0/"
            f"{method}/seed0 " in result.stdout
        ), method
    assert "--identity model=tiny method=base --out results/test/eval/greedy/tiny/base " in result.stdout


def test_rules_hold_no_lambda():
    """Rules call named functions of common.smk (the style guide: no lambda in a rule)."""
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        assert "lambda " not in smk.read_text().replace("lambda_", ""), smk.name


def small_math_config() -> dict:
    """The math matrix and its evaluation cut to seconds: a 5-step SFT tiny model, 2 RL steps, 2 methods, 2 seeds."""
    config = small_config()
    math = config["math"]
    math["data"]["offline"].update(n_train=40, n_val=6, n_test=6)
    math["models"]["tiny"]["recipe"] = {
        "sft_steps": 5,
        "hidden_size": 32,
        "layers": 1,
        "heads": 2,
        "vocab_size": 300,
        "batch_size": 8,
        "answer_slip_rate": 0.5,
    }
    math.update(methods=["grpo", "lambda_grpo"], seeds=[0, 1])
    math["train"].update(steps=2, val_every=1, save_every=1, max_new_tokens=16, val_batch_size=6)
    for protocol in config["eval"]["protocols"].values():
        protocol["max_gen_toks"] = 16
    config["eval"].update(batch_size=6, samples=2)
    return config


@pytest.mark.slow
def test_math_and_evaluation_workflow_end_to_end(tmp_path):
    result = run_snakemake(tmp_path, small_math_config(), "math", "evaluation")
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results/test"
    split = json.loads((results / "math/data/split.json").read_text())
    assert (split["n_train"], split["n_val"], split["n_test"]) == (40, 6, 6)
    marker = json.loads((results / "checkpoints/tiny/grpo_prm_checkpoint.json").read_text())
    assert marker["kind"] == "tiny" and marker["n_train"] == 40  # SFT on the workflow's training split only
    run = results / "math/tiny/beta0.0/lambda_grpo/seed1"
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["method"], cfg["seed"], cfg["learning_rate"]) == ("lambda_grpo", 1, 1e-4)
    assert {"best", "final", "groups.parquet", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    assert not (run / "checkpoints").exists()
    peaks = pd.read_csv(tmp_path / "paper_figures/test/math_peaks.csv")
    assert len(peaks) == 4 and set(peaks.method) == {"grpo", "lambda_grpo"}
    assert peaks.peak.between(0, 1).all() and (peaks.final_step == 2).all()
    assert (tmp_path / "paper_figures/test/math_curves_tiny_beta0.0.png").stat().st_size > 1000
    ev = json.loads((results / "eval/greedy/tiny/beta0.0/grpo/seed0.json").read_text())
    assert ev["tasks"]["offline"]["n"] == 6 and ev["identity"]["method"] == "grpo"
    assert ev["model"].endswith("math/tiny/beta0.0/grpo/seed0/best")
    assert ev["protocol"]["name"] == "greedy" and ev["protocol"]["samples"] == 1
    sampled = json.loads((results / "eval/sampled/tiny/beta0.0/grpo/seed0.json").read_text())
    assert sampled["protocol"]["samples"] == 2 and sampled["protocol"]["temperature"] == 0.6
    assert set(sampled["tasks"]["offline"]["pass_at_k"]) == {"1", "2"}
    base = json.loads((results / "eval/greedy/tiny/base.json").read_text())
    assert base["identity"]["method"] == "base"
    table = pd.read_csv(tmp_path / "paper_figures/test/table2.csv")
    assert {"ours:greedy", "ours:sampled", "paper"} == set(table.source)
    for ext in ("md", "tex", "png", "pdf"):
        assert (tmp_path / f"paper_figures/test/table2.{ext}").stat().st_size > 0


def test_paper_profile_plans_open_rs_and_sober_evaluations(tmp_path):
    """`snakemake -n --configfile config/paper.yaml`: every base model and run is evaluated under both protocols,
    sober with its seeds per task, unpinned benchmarks resolved once into the profile's lock file."""
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    result = run_snakemake(tmp_path, config, "--dry-run", "--printshellcmds", "evaluation")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "grpo_prm.evaluate" in line]
    for protocol in ("open_rs", "sober"):
        planned = [c for c in commands if f"--protocol {protocol} " in c]
        assert len(planned) == 2 * (1 + 2 * 2), protocol  # (qwen, llama) × (base + β × method), one seed
        assert all(
            "--lock results/paper/eval/benchmarks.lock.json --require-revisions --resolve-and-lock" in c
            and "aime24=2fe88a2f1091d5048c0f36abc874fb997b3dd99a" in c
            for c in planned
        )
    sober = next(c for c in commands if "--protocol sober " in c)
    for flag in (
        """--samples '{"aime24": 10, "amc23": 10, "math500": 3, "minerva_math": 3, "olympiadbench": 3}'""",
        "--temperature 0.8 ",
        "--top-p 0.9 ",
        "--max-gen-toks 32768 ",
        "--seed-spread True ",
    ):
        assert flag in sober, flag


@pytest.mark.slow
def test_snakemake_killed_then_documented_recovery_keeps_the_completed_run(tmp_path):
    """kill -9 of snakemake orphans its training job; `--unlock` then `--rerun-incomplete` while the job runs is
    refused (one writer), and once the job has finished, the same recovery keeps its run instead of retraining."""
    config = small_math_config()
    config["math"].update(methods=["grpo"], seeds=[0])
    config["math"]["train"].update(steps=100, save_every=50, val_every=50)  # outlasts a rerun's start
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(config))
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    target = "results/test/math/tiny/beta0.0/grpo/seed0/config.json"

    def cmd(*extra):  # --configfile takes several values: last
        return [*SNAKEMAKE, "--directory", str(tmp_path), *extra, "--configfile", str(tmp_path / "test.yaml")]

    run = tmp_path / "results/test/math/tiny/beta0.0/grpo/seed0"
    smk = background(cmd(target), tmp_path / "snakemake.log", env=env)
    wait_for(lambda: (run / "attempt/metrics.jsonl").exists(), smk, tmp_path / "snakemake.log")
    os.kill(smk.pid, signal.SIGKILL)
    smk.wait()
    holder = json.loads((run / ".lock").read_text())["pid"]

    def recover():
        subprocess.run(cmd("--unlock"), check=True, capture_output=True, env=env)
        return subprocess.run(cmd("--rerun-incomplete", target), check=False, capture_output=True, text=True, env=env)

    refused = recover()
    log = (tmp_path / "results/test/logs/math/tiny/beta0.0/grpo/seed0.log").read_text()
    assert refused.returncode != 0 and f"is being written by pid {holder}" in log, log[-2000:]
    wait_for(lambda: not (run / ".lock").exists())  # the orphaned job completes on its own
    completed = run_files(run)
    assert "config.json" in completed and len([r for r in records(run) if "loss" in r]) == 100
    assert recover().returncode == 0
    assert run_files(run) == completed
