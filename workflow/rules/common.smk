# Validate the config (one-line error naming the key), and name the paths every rule shares.
import json
import os
import shlex
import sys

from grpo_prm.cli import CPU_ENV, THREADS_ENV
from grpo_prm.config import ConfigError, math_learning_rate, validate_config
from grpo_prm.methods import METHODS

try:
    config.update(validate_config(config))
except ConfigError as e:
    sys.exit(f"config error: {e}")

RESULTS = f"results/{config['profile']}"
FIGURES = f"paper_figures/{config['profile']}"
TOY = config["toy"]
SWEEP = TOY["sweep"]  # learning-rate sweep on tuning seeds (empty: every method at toy.learning_rate)
TOY_PROGRAM = {"trainer": "grpo_prm.toy", "batched": "grpo_prm.toy_batched"}[TOY["engine"]]
MATH = config["math"]
MATH_DATA = f"{RESULTS}/math/data"

# Torch threads of each rule's jobs, fixed here and passed explicitly (torch_env): Snakemake lowers a job's {threads}
# to --cores, and CPU kernels split their sums by thread, so {threads} would tie the numbers to the core count.
THREADS = {"train_toy": 1, "build_checkpoint": 2, "train_math": 1, "train_overlap": 1, "evaluate": 1}


def torch_env(rule):
    """The shell prefix giving a rule's job its fixed thread count and CPU kernels (grpo_prm.cli.reproducible)."""
    return " ".join(f"{k}={v}" for k, v in {THREADS_ENV: THREADS[rule], **CPU_ENV}.items())


# grpo_prm.methods.METHODS, longest first (a regex alternation tries its branches in order).
METHOD_PATTERN = "|".join(sorted(METHODS, key=len, reverse=True))


wildcard_constraints:
    method=METHOD_PATTERN,
    n=r"\d+",
    r_neg=r"-?\d+(\.\d+)?",
    seed=r"\d+",
    beta=r"\d+(\.\d+)?",
    model=r"[A-Za-z0-9_][A-Za-z0-9_.-]*",


def toy_cells():
    """(n, r_neg, seed) of every run of one method, in the grid's order."""
    return [(n, float(r_neg), seed) for n in TOY["n"] for r_neg in TOY["r_neg"] for seed in TOY["seeds"]]


def toy_cell_args():
    """`--cells` words of grpo_prm.toy, `n,r_neg,seed`, in the order of `toy_method_runs`."""
    return [f"{n},{r_neg},{seed}" for n, r_neg, seed in toy_cells()]


def toy_method_runs(method):
    """One CSV per run of a method: <RESULTS>/toy/<method>/n<n>_r<r_neg>/seed<seed>.csv."""
    return [f"{RESULTS}/toy/{method}/n{n}_r{r_neg}/seed{seed}.csv" for n, r_neg, seed in toy_cells()]


def toy_runs():
    """Every toy run of the grid (method × n × r_neg × seed)."""
    return [run for method in TOY["methods"] for run in toy_method_runs(method)]


def toy_settings():
    """ToyConfig fields shared by every cell (the grid axes, engine, sweep and table options removed; with a sweep
    the learning rate too: each method's comes from it)."""
    grid = {"methods", "n", "r_neg", "seeds", "last_steps", "figure", "engine", "sweep"}
    return {k: v for k, v in TOY.items() if k not in grid and not (k == "learning_rate" and SWEEP["learning_rates"])}


def toy_sweep_cells():
    """(n, r_neg, seed) of one method's tuning runs at one rate."""
    return [(n, float(r_neg), seed) for n in TOY["n"] for r_neg in TOY["r_neg"] for seed in SWEEP["seeds"]]


def toy_sweep_runs(method):
    """One CSV per tuning run of a method, rate by rate: <RESULTS>/toy_sweep/<method>/lr<lr>/n<n>_r<r_neg>/seed<seed>.csv."""
    return [
        f"{RESULTS}/toy_sweep/{method}/lr{lr:g}/n{n}_r{r_neg}/seed{seed}.csv"
        for lr in SWEEP["learning_rates"]
        for n, r_neg, seed in toy_sweep_cells()
    ]


def toy_learning_rate_args():
    """The train_toy flag that sets each method's rate: the sweep's selection, or none (toy.learning_rate)."""
    return f"--learning-rate-from {shlex.quote(toy_lr_selection())}" if SWEEP["learning_rates"] else ""


def toy_lr_selection():
    return f"{FIGURES}/table_toy_lr.csv"


def output_prefix(wildcards, output):
    """A multiext output's common prefix (scripts that write <prefix>.<ext> themselves)."""
    return os.path.splitext(output[0])[0]


def last_output_prefix(wildcards, output):
    """The prefix of a rule's last multiext output (a script's second <prefix>.<ext> family, e.g. its table)."""
    return os.path.splitext(output[-1])[0]


def output_folder(wildcards, output):
    """The folder of a rule's first output: the run or data folder its program fills."""
    return os.path.dirname(output[0])


def toy_outputs():
    sweep = (
        [
            *expand(f"{FIGURES}/figure_toy_lr.{{ext}}", ext=["png", "pdf", "data.csv"]),
            *expand(f"{FIGURES}/table_toy_lr.{{ext}}", ext=["csv", "md"]),
        ]
        if SWEEP["learning_rates"]
        else []
    )
    return [
        *sweep,
        *expand(f"{FIGURES}/table1_toy.{{ext}}", ext=["md", "csv", "tex"]),
        *expand(f"{FIGURES}/figure_toy_curves.{{ext}}", ext=["png", "pdf", "data.csv"]),
        *expand(f"{FIGURES}/table_toy_seeds.{{ext}}", ext=["md", "csv", "tex"]),
        *expand(f"{FIGURES}/figure_toy_methods.{{ext}}", ext=["png", "pdf", "data.csv"]),
    ]


def cli_args(settings):
    """`--key value` flags of a grpo_prm CLI from a dict (snake_case keys; None values left out; a dict value as JSON,
    which the CLIs parse), each value quoted for the shell: config strings (paths, revisions) must reach the program
    as they are, never run."""
    text = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in settings.items() if v is not None}
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(v)}" for k, v in text.items())


def finished(path):
    """A finished run's marker, protected when the config asks for it (math.protect_finished). Snakemake's protection
    is file permissions, which root ignores: `protect_flag()` gives math_rl its own check as well."""
    return protected(path) if MATH["protect_finished"] else path


def protect_flag():
    """math_rl's --protect-finished, when math.protect_finished is on (it refuses to replace a finished run)."""
    return {"protect_finished": True} if MATH["protect_finished"] else {}


def math_cells():
    """Every (model, β, method, seed) of the training matrix."""
    return [
        (model, beta, method, seed)
        for model in MATH["run_models"]
        for beta in MATH["betas"]
        for method in MATH["methods"]
        for seed in MATH["seeds"]
    ]


def cell_path(beta, method, seed):
    """A cell's place below its model's folder, shared by its run and its evaluation."""
    return f"beta{float(beta)}/{method}/seed{seed}"


def math_run_dir(model, beta, method, seed):
    """One cell of the math matrix; its config.json marks a finished run."""
    return f"{RESULTS}/math/{model}/{cell_path(beta, method, seed)}"


def math_curve_runs(wildcards):
    """The finished-run markers of every method and seed of the curve's (model, β)."""
    model_beta = (wildcards.model, float(wildcards.beta))
    return [f"{math_run_dir(*cell)}/config.json" for cell in math_cells() if cell[:2] == model_beta]


def math_runs():
    return [f"{math_run_dir(*cell)}/config.json" for cell in math_cells()]


def math_outputs():
    curves = [
        f"{FIGURES}/math_curves_{model}_beta{float(beta)}.{ext}"
        for model in MATH["run_models"]
        for beta in MATH["betas"]
        for ext in ("png", "pdf", "data.csv")
    ]
    return [*curves, *expand(f"{FIGURES}/math_peaks.{{ext}}", ext=["md", "csv"])]


def math_train_args(wildcards):
    """grpo_prm.math_rl flags of one cell: the shared train settings, the cell's axes and its model's lr at β."""
    beta = float(wildcards.beta)
    cell = {"method": wildcards.method, "beta": beta, "seed": wildcards.seed}
    lr = math_learning_rate(MATH, wildcards.model, beta)
    return cli_args(MATH["train"] | cell | {"learning_rate": lr} | protect_flag())


def checkpoint_args(wildcards, input):
    """grpo_prm.checkpoints flags of one model entry (source hub, smollm2 or tiny)."""
    model = MATH["models"][wildcards.model]
    if model["source"] == "hub":
        flags = {"model_id": model["hub_id"], "revision": model["revision"], "token_env": model.get("token_env")}
    elif model["source"] == "tiny":
        flags = {"train": input.train, "eval": input.val} | model.get("recipe", {})
    else:
        flags = {}
    return f"{shlex.quote(model['source'])} {cli_args(flags)}"


def checkpoint_inputs(wildcards):
    """A tiny model is trained on the workflow's training split (SFT-scored on validation); the others need none."""
    if MATH["models"][wildcards.model]["source"] != "tiny":
        return {}
    return {"train": f"{MATH_DATA}/train.jsonl", "val": f"{MATH_DATA}/val.jsonl"}


def math_data_args():
    data = MATH["data"]
    return f"{shlex.quote(data['source'])} {cli_args(data[data['source']])}"


EVAL = config["eval"]
# An evaluated checkpoint's place below its model's folder: `base`, or a run's cell_path (any method).
EVAL_CELL_PATTERN = rf"base|beta\d+(\.\d+)?/({METHOD_PATTERN})/seed\d+"


def eval_checkpoints():
    """(model, cell) of every checkpoint Table 2 evaluates (each run model's base, then every run of the matrix),
    mapped to its `--identity` words: built from the matrix, never parsed back out of the cell's path."""
    checkpoints = {(model, "base"): [f"model={model}", "method=base"] for model in MATH["run_models"]}
    for model, beta, method, seed in math_cells():
        identity = [f"model={model}", f"beta={float(beta)}", f"method={method}", f"seed={seed}"]
        checkpoints[(model, cell_path(beta, method, seed))] = identity
    return checkpoints


EVAL_CHECKPOINTS = eval_checkpoints()


def eval_results():
    """Every result JSON of Table 2: per protocol, each run model's base checkpoint and every run of the matrix."""
    return [
        f"{RESULTS}/eval/{protocol}/{model}/{cell}.json"
        for protocol in EVAL["protocol"]
        for model, cell in EVAL_CHECKPOINTS
    ]


def eval_outputs():
    return expand(f"{FIGURES}/table2.{{ext}}", ext=["md", "csv", "tex", "png", "pdf"])


def table2_references(wildcards):
    """Published rows Table 2 prints beside ours: the paper's, and Hochlehnert et al. 2025's when sober is evaluated."""
    reference = f"{workflow.basedir}/paper_figures/reference"
    refs = {"paper": f"{reference}/table2_paper.csv"}
    return refs | ({"sober": f"{reference}/table2_sober.csv"} if "sober" in EVAL["protocol"] else {})


def table2_reference_args(wildcards, input):
    return cli_args({"paper": input.paper, "sober": input.get("sober")})


def comma_pairs(mapping):
    """`k=v,k=v` of a mapping (grpo_prm.evaluate's --revisions / --sha256), None when empty (the flag left out)."""
    return ",".join(f"{k}={v}" for k, v in mapping.items()) or None


# Resolve once and lock (grpo_prm.benchmark_lock): the Hub commits of unpinned benchmarks, shared by every evaluation of
# the profile. Not a declared output: the first evaluation that reads such a benchmark writes it, later ones read it.
EVAL_LOCK = f"{RESULTS}/eval/benchmarks.lock.json"


def eval_args(wildcards):
    """grpo_prm.evaluate flags of one protocol (eval.protocols), shared by every checkpoint."""
    protocol = EVAL["protocols"][wildcards.protocol]
    samples = EVAL["samples"] if protocol["temperature"] > 0 else 1  # greedy draws one answer
    flags = {
        "tasks": ",".join(EVAL["tasks"]),
        "batch_size": EVAL["batch_size"],
        "backend": EVAL["backend"],
        "limit": EVAL["limit"],
        "revisions": comma_pairs(EVAL["revisions"]),
        "sha256": comma_pairs(EVAL["sha256"]),
        "protocol": wildcards.protocol,
        "samples": samples,
        "seed": EVAL["seed"],
    } | protocol  # a protocol's own samples (one per task: sober) override eval.samples
    if "offline" in EVAL["tasks"]:
        flags["offline_file"] = f"{MATH_DATA}/test.jsonl"
    if not EVAL["data_dir"] and set(EVAL["tasks"]) - {"offline"}:  # the Hub: pins, else the profile's lock
        flags["lock"] = EVAL_LOCK
    require = " --require-revisions" if EVAL["require_revisions"] else ""
    require += " --resolve-and-lock" if EVAL["resolve_and_lock"] and "lock" in flags else ""
    return cli_args(flags) + require + f" --data-dir {shlex.quote(EVAL['data_dir'] or '')}"


def eval_env():
    """Local data only: keep datasets and the Hub client from reaching for the network (no timeouts offline)."""
    local = EVAL["data_dir"] or EVAL["tasks"] == ["offline"]
    return "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1" if local else ""


def eval_inputs(wildcards):
    """The checkpoint to evaluate: a base model's folder, or a finished run (its best/ or final/ is read)."""
    data = [f"{MATH_DATA}/test.jsonl"] if "offline" in EVAL["tasks"] else []
    if wildcards.cell == "base":
        return {"checkpoint": f"{RESULTS}/checkpoints/{wildcards.model}", "data": data}
    return {"run": f"{RESULTS}/math/{wildcards.model}/{wildcards.cell}/config.json", "data": data}


def eval_model(wildcards, input):
    if wildcards.cell == "base":
        return input.checkpoint
    return os.path.join(os.path.dirname(input.run), EVAL["checkpoint"])


def eval_identity(wildcards):
    """`--identity` KEY=VALUE words of a checkpoint of the matrix, a list: the shell command quotes each with `:q`."""
    key = (wildcards.model, wildcards.cell)
    if key not in EVAL_CHECKPOINTS:
        raise ValueError(
            f"{'/'.join(key)} is not a checkpoint of the configured matrix (math.run_models, betas, " "methods, seeds)"
        )
    return EVAL_CHECKPOINTS[key]


# ---- overlap analysis (paper §3): one GRPO run per group size k, every group recorded
OVERLAP = config["overlap"]


def overlap_run_dir(k):
    """One overlap run; its config.json marks a finished run, groups.parquet lies beside it."""
    return f"{RESULTS}/overlap/{OVERLAP['model']}/k{k}"


def overlap_run_dirs():
    return [overlap_run_dir(run["group_size"]) for run in OVERLAP["runs"]]


def overlap_outputs():
    names = {
        "figure_overlap": ["png", "pdf", "data.csv"],
        "figure_overlap_tree": ["png", "pdf", "data.csv"],
        "table_overlap": ["md", "csv"],
        "table_theorem1": ["md", "csv"],
    }
    return [f"{FIGURES}/{name}.{ext}" for name, exts in names.items() for ext in exts]


def run_folders(wildcards, input):
    """The run folders of a rule's `runs` input files, in order, each once."""
    return list(dict.fromkeys(os.path.dirname(path) for path in input.runs))


def run_recording(wildcards, input):
    """The recorded groups (grpo_prm.recording) beside a finished run's config.json."""
    return f"{os.path.dirname(input[0])}/groups.parquet"


def overlap_train_args(wildcards):
    """grpo_prm.math_rl flags of one overlap run: math.train, then the run's k, steps and lr; groups recorded."""
    [run] = [r for r in OVERLAP["runs"] if r["group_size"] == int(wildcards.k)]
    fixed = {
        "method": OVERLAP["method"],
        "beta": float(OVERLAP["beta"]),
        "seed": OVERLAP["seed"],
        "record_groups": True,
    }
    return cli_args(MATH["train"] | fixed | run | protect_flag())


def overlap_tree_args():
    """figure_overlap_tree.py flags from overlap.tree (step null: the script picks the group)."""
    tree = OVERLAP["tree"]
    flags = {
        "step": tree["step"],
        "group": tree["group"],
        "min_distinct": tree["min_distinct_step_rewards"],
        "max_chars": tree["max_chars"],
    }
    return cli_args(flags)
