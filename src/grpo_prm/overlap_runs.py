"""Finished overlap runs (arXiv 2509.21154 §3) as the tables and figures read them back.

An analysed overlap run folder holds config.json (its group size k) and the files `python -m grpo_prm.overlap`
writes: <run>/overlap.csv (per step) and <run>/overlap.json (headline, Theorem 1).
"""

import json
from pathlib import Path

import pandas as pd

from grpo_prm.cli import InputError

ANALYSIS = "overlap"  # <run>/overlap.csv and <run>/overlap.json


class OverlapRunError(InputError):
    """A run folder that cannot be read back for a table or figure."""


def load_run(folder) -> tuple[int, pd.DataFrame, dict]:
    """An analysed run folder: its group size k (config.json), per-step table and headline; `OverlapRunError` names
    what is missing."""
    folder = Path(folder)
    try:
        k = int(json.loads((folder / "config.json").read_text())["group_size"])
        steps = pd.read_csv(folder / f"{ANALYSIS}.csv")
        summary = json.loads((folder / f"{ANALYSIS}.json").read_text())
    except (OSError, KeyError, json.JSONDecodeError, pd.errors.ParserError) as e:
        raise OverlapRunError(f"{folder}: not an analysed overlap run ({type(e).__name__}: {e})") from None
    return k, steps, summary
