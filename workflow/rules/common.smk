# Validate the config (one-line error naming the key), and name the paths every rule shares.
import os
import sys

from grpo_prm.config import ConfigError, validate_config

try:
    config.update(validate_config(config))
except ConfigError as e:
    sys.exit(f"config error: {e}")

RESULTS = f"results/{config['profile']}"
FIGURES = f"paper_figures/{config['profile']}"
TOY = config["toy"]

wildcard_constraints:
    method="grpo|lambda_grpo|lambda_grpo_scaled",
    n=r"\d+",
    r_neg=r"-?\d+(\.\d+)?",
    seed=r"\d+",


def toy_cell_runs(cell_dir):
    """One CSV per seed of a toy cell: <cell_dir>/seed<seed>.csv."""
    return [f"{cell_dir}/seed{seed}.csv" for seed in TOY["seeds"]]


def toy_runs():
    """Every toy run of the grid (method × n × r_neg × seed)."""
    return [
        run
        for method in TOY["methods"]
        for n in TOY["n"]
        for r_neg in TOY["r_neg"]
        for run in toy_cell_runs(f"{RESULTS}/toy/{method}/n{n}_r{float(r_neg)}")
    ]


def toy_settings():
    """ToyConfig fields shared by every cell (the grid axes and table options removed)."""
    grid = {"methods", "n", "r_neg", "seeds", "last_steps", "figure"}
    return {k: v for k, v in TOY.items() if k not in grid}


def output_prefix(wildcards, output):
    """A multiext output's common prefix (scripts that write <prefix>.<ext> themselves)."""
    return os.path.splitext(output[0])[0]


def toy_outputs():
    return [
        *expand(f"{FIGURES}/table1_toy.{{ext}}", ext=["md", "csv", "tex"]),
        *expand(f"{FIGURES}/figure_toy_curves.{{ext}}", ext=["png", "pdf"]),
    ]
