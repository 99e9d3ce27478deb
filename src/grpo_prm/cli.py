"""Command lines built from run dataclasses (`ToyConfig`, `MathRunConfig`): one flag per field, defaults shown.

Refusals are one line naming the flag and end the process with a non-zero status: argparse's own errors (a bad
int, an unknown flag) are printed without the multi-line usage block, and `check_fields` refuses non-finite
numbers, non-positive counts and mistyped values (also when a dataclass is built in Python, not from the CLI).
"""

import argparse
import dataclasses
import errno
import json
import math
import os
import sys

from grpo_prm.errors import InputError, SettingError

# The workflow sets this per rule (workflow/rules/common.smk, THREADS); unset, a CLI uses one thread.
THREADS_ENV = "GRPO_PRM_THREADS"
# CPU kernels that do not depend on the processor: MKL's conditional numerical reproducibility (its own dispatch would
# pick AVX-512 or AVX2 code with different rounding), and ATen's vectorised kernels capped at AVX2 (most x86 CI
# machines have it). Both are read lazily, at the first kernel call; the rules also set them in the job's environment.
CPU_ENV = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2"}


def parse_bool(text: str) -> bool:
    """Only true/false (any case): a typo such as `ture` must not read as False."""
    if text.strip().lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} is neither true nor false")
    return text.strip().lower() == "true"


def finite_float(text: str) -> float:
    """A finite float; NaN and infinity are refused here so the flag is named."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    """argparse type of a count or interval: an integer ≥ 1."""
    value = parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type of a seed or an optional count: an integer ≥ 0."""
    value = parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def open_fraction(text: str) -> float:
    """argparse type of a confidence level or a share: a number strictly between 0 and 1."""
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def _parse_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("not a JSON object")
    return value


def _flags(name: str) -> list[str]:
    return list(dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"]))


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (`prog: error: argument --steps: ...`), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def table_parser(doc: str, inputs_help: str, writes: str, inputs: str = "--runs") -> argparse.ArgumentParser:
    """The command line every table and figure script starts from: `inputs` (the result files or run folders it
    reads, one or more) and `--out-prefix` (what it writes: `writes`); the script adds its own options."""
    parser = OneLineParser(description=doc.split("\n\n")[0])
    parser.add_argument(inputs, nargs="+", required=True, help=inputs_help)
    parser.add_argument("--out-prefix", required=True, help=f"writes {writes}")
    return parser


def dataclass_parser(cls, description: str) -> argparse.ArgumentParser:
    """`--<field>` (or `--<field-with-dashes>`, as the workflow's `cli_args` writes) for every field of `cls`; fields
    without a default are required."""
    parser = OneLineParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            parser.add_argument(*_flags(f.name), required=True)
            continue
        kind = {bool: parse_bool, dict: _parse_object, float: finite_float, int: parse_int, type(None): str}.get(
            type(default), type(default)
        )
        parser.add_argument(*_flags(f.name), type=kind, default=default, help=f"(default: {default})")
    return parser


def check_fields(obj, positive=(), nonnegative=()) -> None:
    """Refuse, as a one-line SettingError naming the flag, a field whose value does not fit its default's type (an int
    field given 2.5, a bool field given "ture"), a non-finite float, or a value of `positive` ≤ 0 / `nonnegative` < 0.
    """
    for f in dataclasses.fields(obj):
        value, flag = getattr(obj, f.name), f"--{f.name}"
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, bool) and not isinstance(value, bool):
            raise SettingError(f"{flag}: {value!r} is neither true nor false")
        if type(default) is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise SettingError(f"{flag}: {value!r} is not an integer")
        if type(default) is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SettingError(f"{flag}: {value!r} is not a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingError(f"{flag}: {value} is not a finite number")
        if f.name in positive and not value > 0:
            raise SettingError(f"{flag}: must be positive, got {value}")
        if f.name in nonnegative and not value >= 0:
            raise SettingError(f"{flag}: must not be negative, got {value}")


def check_choice(flag: str, value, choices) -> None:
    if value not in choices:
        raise SettingError(f"{flag}: {value!r} is not one of {', '.join(choices)}")


def exit_on_error(fn):
    """Run `fn()`; bad settings, unreadable inputs or a full disk end the process with one line naming the culprit."""
    try:
        return fn()
    except OSError as e:
        if e.errno == errno.ENOSPC:  # finished outputs are written atomically, so they are still whole
            sys.exit(f"error: {e.filename or 'an output'}: no space left on device; free some and rerun")
        sys.exit(f"error: {e}".splitlines()[0])
    except InputError as e:
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
