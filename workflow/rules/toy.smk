# The toy L/R tree (paper §4.3): train every run of one method (all cells and seeds in one process: importing torch,
# transformers and TRL costs about as much as a run), then Table 1, the seeds table and the figures.


# One process per method runs all its cells (toy.engine: one trainer per run, or all runs batched); the shared
# settings are grpo_prm.toy flags. With a sweep, each method trains at the rate the sweep selected for it.
rule train_toy:
    input:
        [toy_lr_selection()] if SWEEP["learning_rates"] else [],
    output:
        toy_method_runs("{method}"),
    log:
        f"{RESULTS}/logs/toy/{{method}}.log",
    conda:
        "../../envs/cpu.yaml"
    threads: THREADS["train_toy"]
    params:
        cells=toy_cell_args(),
        settings=cli_args(toy_settings()),
        rate=toy_learning_rate_args(),
        program=TOY_PROGRAM,
        torch_env=torch_env("train_toy"),
    shell:
        "{params.torch_env} python -m {params.program} --method {wildcards.method:q} --cells {params.cells:q}"
        " --out {output:q} {params.settings} {params.rate} > {log:q} 2>&1"


# The learning-rate sweep: every cell on the tuning seeds at every rate of the grid, one process per method.
rule train_toy_sweep:
    output:
        toy_sweep_runs("{method}"),
    log:
        f"{RESULTS}/logs/toy_sweep/{{method}}.log",
    conda:
        "../../envs/cpu.yaml"
    threads: THREADS["train_toy"]
    params:
        cells=[f"{n},{r_neg},{seed}" for n, r_neg, seed in toy_sweep_cells()],
        rates=[f"{lr:g}" for lr in SWEEP["learning_rates"]],
        settings=cli_args(toy_settings()),
        torch_env=torch_env("train_toy"),
    shell:
        "{params.torch_env} python -m grpo_prm.toy_batched --method {wildcards.method:q} --cells {params.cells:q}"
        " --learning-rates {params.rates:q} --out {output:q} {params.settings} > {log:q} 2>&1"


# Final target frequency against learning rate per method (tuning seeds), and the rate each method reports at.
rule figure_toy_lr:
    input:
        [run for method in TOY["methods"] for run in toy_sweep_runs(method)],
    output:
        multiext(f"{FIGURES}/figure_toy_lr", ".png", ".pdf", ".data.csv"),
        multiext(f"{FIGURES}/table_toy_lr", ".csv", ".md"),
    log:
        f"{RESULTS}/logs/figure_toy_lr.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/figure_toy_lr.py",
        last=TOY["last_steps"],
        prefix=output_prefix,
        table=last_output_prefix,
    shell:
        "python {params.script:q} --runs {input:q} --last {params.last:q} --out-prefix {params.prefix:q}"
        " --table-prefix {params.table:q} > {log:q} 2>&1"


# Table 1: target frequency over the last steps, ours beside the paper's.
rule table1_toy:
    input:
        runs=toy_runs(),
        paper=f"{workflow.basedir}/paper_figures/reference/table1_paper.csv",
    output:
        report(
            f"{FIGURES}/table1_toy.csv",
            caption="../report/table1_toy.rst",
            category="Toy experiment",
            labels={"item": "Table 1"},
        ),
        multiext(f"{FIGURES}/table1_toy", ".md", ".tex"),
    log:
        f"{RESULTS}/logs/table1_toy.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/table1_toy.py",
        last=TOY["last_steps"],
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {input.runs:q} --paper {input.paper:q} --last {params.last:q}"
        " --out-prefix {params.prefix:q} > {log:q} 2>&1"


# Per-seed target-frequency curves of one cell (paper: n = 1, r_neg = -1.0).
rule figure_toy_curves:
    input:
        toy_runs(),
    output:
        report(
            f"{FIGURES}/figure_toy_curves.png",
            caption="../report/figure_toy_curves.rst",
            category="Toy experiment",
            labels={"item": "Figure (toy curves)"},
        ),
        f"{FIGURES}/figure_toy_curves.pdf",
        f"{FIGURES}/figure_toy_curves.data.csv",
    log:
        f"{RESULTS}/logs/figure_toy_curves.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/figure_toy_curves.py",
        n=TOY["figure"]["n"],
        r_neg=TOY["figure"]["r_neg"],
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {input:q} --n {params.n:q} --r-neg {params.r_neg:q}"
        " --out-prefix {params.prefix:q} > {log:q} 2>&1"


# Beyond the paper: every method against λ-GRPO seed by seed (95 % intervals, paired differences) with its cost.
rule table_toy_seeds:
    input:
        toy_runs(),
    output:
        multiext(f"{FIGURES}/table_toy_seeds", ".md", ".csv", ".tex"),
    log:
        f"{RESULTS}/logs/table_toy_seeds.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/table_toy_seeds.py",
        last=TOY["last_steps"],
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {input:q} --last {params.last:q} --out-prefix {params.prefix:q} > {log:q} 2>&1"


# Target frequency over steps, every method in one plot: seed mean with its 95 % band (the figure cell).
rule figure_toy_methods:
    input:
        toy_runs(),
    output:
        multiext(f"{FIGURES}/figure_toy_methods", ".png", ".pdf", ".data.csv"),
    log:
        f"{RESULTS}/logs/figure_toy_methods.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/figure_toy_methods.py",
        n=TOY["figure"]["n"],
        r_neg=TOY["figure"]["r_neg"],
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {input:q} --n {params.n:q} --r-neg {params.r_neg:q}"
        " --out-prefix {params.prefix:q} > {log:q} 2>&1"
