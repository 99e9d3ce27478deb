# Overlap analysis (paper §3): GRPO at several group sizes with every training group recorded, the
# per-step statistics, the 2 × 3 figure, the headline and Theorem-1 tables and one group's prefix tree. One run alone:
#   snakemake --cores 2 results/<profile>/overlap/<model>/k<k>/config.json


wildcard_constraints:
    k=r"\d+",


# One run per k: the math_rl CLI of rule train_math, resumable the same way; groups.parquet is written beside config.json.
rule train_overlap:
    input:
        model=f"{RESULTS}/checkpoints/{{model}}",
        train=f"{MATH_DATA}/train.jsonl",
        val=f"{MATH_DATA}/val.jsonl",
    output:
        finished(f"{RESULTS}/overlap/{{model}}/k{{k}}/config.json"),
    log:
        f"{RESULTS}/logs/overlap/{{model}}/k{{k}}.log",
    conda:
        "../../envs/cpu.yaml"
    threads: THREADS["train_overlap"]
    params:
        args=overlap_train_args,
        out=output_folder,
        torch_env=torch_env("train_overlap"),
    shell:
        "{params.torch_env} python -m grpo_prm.math_rl --model {input.model:q} --train {input.train:q} --val {input.val:q}"
        " --out {params.out:q} {params.args} > {log:q} 2>&1"


# Per-step flat share, path depth and intermediate proportion (overlap.csv), headline and Theorem 1 (overlap.json).
rule analyse_overlap:
    input:
        f"{RESULTS}/overlap/{{model}}/k{{k}}/config.json",
    output:
        multiext(f"{RESULTS}/overlap/{{model}}/k{{k}}/overlap", ".csv", ".json"),
    log:
        f"{RESULTS}/logs/overlap/{{model}}/k{{k}}_analysis.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        groups=OVERLAP["theorem1_groups"],
        prefix=output_prefix,
        recording=run_recording,
    shell:
        "python -m grpo_prm.overlap {params.recording:q} --out {params.prefix:q} --theorem1-groups {params.groups:q}"
        " > {log:q} 2>&1"


# The 2 × 3 figure: validation reward, path depth and intermediate proportion over steps, one row per k.
rule figure_overlap:
    input:
        runs=expand("{run}/overlap.{ext}", run=overlap_run_dirs(), ext=["csv", "json"]),
    output:
        report(f"{FIGURES}/figure_overlap.png", caption="../report/figure_overlap.rst", category="Overlap (§3)"),
        f"{FIGURES}/figure_overlap.pdf",
        f"{FIGURES}/figure_overlap.data.csv",
    log:
        f"{RESULTS}/logs/figure_overlap.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/figure_overlap.py",
        runs=run_folders,
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {params.runs:q} --out-prefix {params.prefix:q} > {log:q} 2>&1"


# Flat / total groups and the non-trivial share per k, beside the paper's 12 of 6,700 and 0 of 1,100.
rule table_overlap:
    input:
        runs=expand("{run}/overlap.json", run=overlap_run_dirs()),
        paper=f"{workflow.basedir}/paper_figures/reference/overlap_paper.csv",
    output:
        f"{FIGURES}/table_overlap.md",
        report(f"{FIGURES}/table_overlap.csv", caption="../report/table_overlap.rst", category="Overlap (§3)"),
    log:
        f"{RESULTS}/logs/table_overlap.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/table_overlap.py",
        runs=run_folders,
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {params.runs:q} --paper {input.paper:q} --out-prefix {params.prefix:q} > {log:q} 2>&1"


# Theorem 1 on the checked recorded groups of every run: largest |L_GRPO − L_PRM|.
rule table_theorem1:
    input:
        runs=expand("{run}/overlap.json", run=overlap_run_dirs()),
    output:
        f"{FIGURES}/table_theorem1.md",
        report(f"{FIGURES}/table_theorem1.csv", caption="../report/table_theorem1.rst", category="Overlap (§3)"),
    log:
        f"{RESULTS}/logs/table_theorem1.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/table_theorem1.py",
        runs=run_folders,
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {params.runs:q} --out-prefix {params.prefix:q} > {log:q} 2>&1"


# One recorded group's prefix tree with R̂(λ) and Â(λ), from the run of overlap.tree.group_size.
rule figure_overlap_tree:
    input:
        runs=[f"{overlap_run_dir(OVERLAP['tree']['group_size'])}/config.json"],
    output:
        report(
            f"{FIGURES}/figure_overlap_tree.png", caption="../report/figure_overlap_tree.rst", category="Overlap (§3)"
        ),
        f"{FIGURES}/figure_overlap_tree.pdf",
        f"{FIGURES}/figure_overlap_tree.data.csv",
    log:
        f"{RESULTS}/logs/figure_overlap_tree.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/figure_overlap_tree.py",
        run=run_folders,
        args=overlap_tree_args(),
        prefix=output_prefix,
    shell:
        "python {params.script:q} --run {params.run:q} {params.args} --out-prefix {params.prefix:q} > {log:q} 2>&1"
