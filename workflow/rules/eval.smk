# Downstream evaluation (paper §5, Table 2): lm-evaluation-harness on each base checkpoint and on every run's best
# (or final) checkpoint under each protocol of eval.protocol, then Table 2 beside the paper's numbers.


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        json=f"{RESULTS}/eval/{{protocol}}/{{model}}/{{cell}}.json",
        samples=f"{RESULTS}/eval/{{protocol}}/{{model}}/{{cell}}.samples.jsonl",
    log:
        f"{RESULTS}/logs/eval/{{protocol}}/{{model}}/{{cell}}.log",
    wildcard_constraints:
        cell=EVAL_CELL_PATTERN,
        protocol=r"[A-Za-z0-9_]+",
    conda:
        "../../envs/cpu.yaml"
    threads: THREADS["evaluate"]
    params:
        args=eval_args,
        model=eval_model,
        identity=eval_identity,
        prefix=output_prefix,
        env=eval_env(),
        torch_env=torch_env("evaluate"),
    shell:
        "{params.env} {params.torch_env} python -m grpo_prm.evaluate --model {params.model:q} {params.args}"
        " --identity {params.identity:q} --out {params.prefix:q} > {log:q} 2>&1"


# Table 2: rows model × β × method plus Base, the five benchmarks (or the offline set) and their average.
rule table2:
    input:
        unpack(table2_references),
        results=eval_results(),
    output:
        f"{FIGURES}/table2.md",
        report(f"{FIGURES}/table2.csv", caption="../report/table2.rst", category="Table 2"),
        f"{FIGURES}/table2.tex",
        report(f"{FIGURES}/table2.png", caption="../report/table2.rst", category="Table 2"),
        f"{FIGURES}/table2.pdf",
    log:
        f"{RESULTS}/logs/table2.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        script=f"{workflow.basedir}/paper_figures/table2.py",
        prefix=output_prefix,
        references=table2_reference_args,
    shell:
        "python {params.script:q} --results {input.results:q} {params.references} --out-prefix {params.prefix:q} > {log:q} 2>&1"
