"""λ-GRPO reproduction ("GRPO is Secretly a Process Reward Model", arXiv 2509.21154).

    snakemake --cores 2                                   # embedded default: offline, CPU
    snakemake --cores 4 --configfile config/paper.yaml    # the paper's settings (Hub, GPU)

Outputs: results/<profile>/ (runs) and paper_figures/<profile>/ (tables and figures).
"""


configfile: f"{workflow.basedir}/config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/toy.smk"
include: "workflow/rules/math.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/overlap.smk"


rule all:
    default_target: True
    input:
        toy_outputs(),
        math_outputs(),
        eval_outputs(),
        overlap_outputs(),


# One experiment alone: `snakemake --cores 2 toy`, `... math`, `... evaluation` or `... overlap`.
rule toy:
    input:
        toy_outputs(),


rule math:
    input:
        math_outputs(),


rule evaluation:
    input:
        eval_outputs(),


rule overlap:
    input:
        overlap_outputs(),
