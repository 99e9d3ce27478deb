"""Command lines built from run dataclasses (`ToyConfig`, `MathRunConfig`): one flag per field, defaults shown."""

import argparse
import dataclasses
import json
import os
import sys

# The workflow sets this per rule (workflow/rules/common.smk, THREADS); unset, a CLI uses one thread.
THREADS_ENV = "GRPO_PRM_THREADS"
# CPU kernels that do not depend on the processor: MKL's conditional numerical reproducibility (its own dispatch would
# pick AVX-512 or AVX2 code with different rounding), and ATen's vectorised kernels capped at AVX2 (most x86 CI
# machines have it). Both are read lazily, at the first kernel call; the rules also set them in the job's environment.
CPU_ENV = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2"}


def _parse_bool(text: str) -> bool:
    return text.lower() in ("1", "true", "yes")


def _flags(name: str) -> list[str]:
    return list(dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"]))


def dataclass_parser(cls, description: str) -> argparse.ArgumentParser:
    """`--<field>` (or `--<field-with-dashes>`, as the workflow's `cli_args` writes) for every field of `cls`; fields
    without a default are required."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            parser.add_argument(*_flags(f.name), required=True)
            continue
        kind = {bool: _parse_bool, dict: json.loads, type(None): str}.get(type(default), type(default))
        parser.add_argument(*_flags(f.name), type=kind, default=default, help=f"(default: {default})")
    return parser


def exit_on_error(fn):
    """Run `fn()`; bad settings or unreadable inputs end the process with one line naming the culprit."""
    try:
        return fn()
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}".splitlines()[0])



def reproducible(seed: int | None = None, threads: int | None = None) -> int:
    """Fix what a run's numbers depend on besides its inputs: torch's threads, the CPU kernels and, given `seed`, RNGs.

    CPU kernels split their sums by thread, so the thread count is part of the result: it comes from `threads`, else
    `$GRPO_PRM_THREADS`, else 1, never from the machine's core count or how many jobs run beside this one. `CPU_ENV`
    is set unless already set. `seed` goes to transformers' `set_seed` (Python `random`, NumPy, torch). Returns the
    thread count.
    """
    import torch  # only the CLIs that train or evaluate pay for the import

    threads = threads or int(os.environ.get(THREADS_ENV) or 1)
    for key, value in CPU_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # Rust-side parallel batches: order-safe, but keep one rule
    torch.set_num_threads(threads)
    if seed is not None:
        from transformers import set_seed

        set_seed(seed)
    return threads
