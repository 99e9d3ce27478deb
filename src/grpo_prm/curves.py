"""Validation curves of the math runs (paper §5, Fig. of validation accuracy; "a higher peak in under half the steps").

A finished run folder (grpo_prm.math_rl) holds `config.json` (method, beta, seed, model) and `metrics.jsonl`, whose
records with `val/accuracy` are the greedy validations. From those:

- `load_validation(paths)`: one row per (run, validation step).
- `seed_band(df, level)`: per (model, β, method, step), the mean over seeds and a two-sided Student-t confidence
  interval of that mean (n − 1 degrees of freedom; a single seed gets no band).
- `peak_table(df)`: per run, the peak accuracy, the first step reaching it, the final accuracy, and for every method
  but GRPO the ratio of its peak step to the GRPO run's of the same (model, β, seed).
- `peak_summary(peaks)`: the same, averaged over seeds.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from grpo_prm import stats
from grpo_prm.cli import InputError

KEYS = ["model", "beta", "method"]


class MathRunError(InputError):
    """A run folder that is not a finished math run (as ToyRunError and OverlapRunError for theirs); the message
    names it."""


def _read_run(config_path: Path) -> pd.DataFrame:
    folder = config_path.parent
    try:
        cfg = json.loads(config_path.read_text())
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise MathRunError(f"{folder}: not a finished math run ({type(e).__name__}: {e})") from None
    vals = [(r["step"], r["val/accuracy"]) for r in records if "val/accuracy" in r]
    if not vals:
        raise MathRunError(f"{folder}/metrics.jsonl: no validation records")
    df = pd.DataFrame(vals, columns=["step", "accuracy"]).drop_duplicates("step", keep="last")
    try:
        identity = {
            "model": Path(cfg["model"]).name,
            "beta": float(cfg["beta"]),
            "method": cfg["method"],
            "seed": int(cfg["seed"]),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise MathRunError(f"{config_path}: no run identity ({type(e).__name__}: {e})") from None
    return df.assign(**identity)[[*KEYS, "seed", "step", "accuracy"]]


def load_validation(paths) -> pd.DataFrame:
    """Validation records of every run (`paths`: run folders or their config.json)."""
    frames = [_read_run(Path(p) if Path(p).name == "config.json" else Path(p) / "config.json") for p in paths]
    df = pd.concat(frames, ignore_index=True)
    dup = df.duplicated([*KEYS, "seed", "step"])
    if dup.any():
        row = df[dup].iloc[0]
        raise MathRunError(f"two runs of model={row.model} beta={row.beta} method={row.method} seed={row.seed}")
    return df.sort_values([*KEYS, "seed", "step"], ignore_index=True)


def seed_band(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean over seeds and the `level` Student-t interval of the mean, per (model, β, method, step)."""
    return stats.seed_band(df.groupby([*KEYS, "step"]).accuracy, level)


def peak_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per run: peak accuracy, first step at the peak, final accuracy, peak step relative to GRPO's (same seed)."""
    rows = []
    for (model, beta, method, seed), run in df.groupby([*KEYS, "seed"]):
        peak = run.accuracy.max()
        rows.append(
            {
                "model": model,
                "beta": beta,
                "method": method,
                "seed": seed,
                "peak": peak,
                "peak_step": int(run.step[run.accuracy == peak].min()),
                "final": run.accuracy.iloc[-1],
                "final_step": int(run.step.iloc[-1]),
            }
        )
    peaks = pd.DataFrame(rows)
    grpo = peaks[peaks.method == "grpo"].set_index(["model", "beta", "seed"]).peak_step
    ref = peaks.set_index(["model", "beta", "seed"]).index.map(grpo.get)
    ratio = peaks.peak_step / pd.Series(ref, index=peaks.index, dtype=float).replace(0, np.nan)
    return peaks.assign(peak_step_vs_grpo=ratio.where(peaks.method != "grpo"))


def peak_summary(peaks: pd.DataFrame) -> pd.DataFrame:
    """Seed means of `peak_table` per (model, β, method), with the number of seeds."""
    cols = ["peak", "peak_step", "final", "peak_step_vs_grpo"]
    out = peaks.groupby(KEYS)[cols].mean()
    return out.assign(seeds=peaks.groupby(KEYS).size()).reset_index()
