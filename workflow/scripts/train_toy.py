"""Rule train_toy: train every run (n × r_neg × seed) of one toy method with grpo_prm.toy; trainer output goes to the rule's log."""

import contextlib
import logging
import os

from transformers.utils import logging as hf_logging

from grpo_prm.cli import reproducible
from grpo_prm.toy import ToyConfig, run_toy

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
sm = snakemake  # noqa: F821 (injected by Snakemake)
reproducible(threads=sm.params.threads)  # the rule's fixed count (common.smk THREADS), not Snakemake's {threads}
with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    hf_logging.disable_default_handler()  # its handler holds the console's stderr; send its lines to the log
    hf_logging.add_handler(logging.StreamHandler(log))
    for (n, r_neg, seed), out in zip(sm.params.cells, sm.output, strict=True):
        run = ToyConfig(method=sm.wildcards.method, n=n, r_neg=r_neg, seed=seed, **sm.params.settings)
        run_toy(run).to_csv(out, index=False)
