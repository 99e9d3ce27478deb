"""The math runs' data files (arXiv 2509.21154 §5, App. C): train / validation / test JSONL and the split record.

    python -m grpo_prm.prepare_data offline --out-dir results/default/math/data --n-train 2000 --n-val 100 --n-test 200
    python -m grpo_prm.prepare_data openrs --out-dir results/paper/math/data --revision <commit> --n-val 125

Every file holds rows `{id, problem, answer[, solution]}` (what `grpo_prm.data.read_problems` reads). `split.json`
records the source, its settings and which ids went where, so a run can be traced to its exact problems. OpenRS has no
test split of its own (the paper tests on the five benchmarks of Table 2), so its `test.jsonl` is empty.
"""

import argparse
import json
from pathlib import Path

from grpo_prm.cli import OneLineParser, exit_on_error
from grpo_prm.data import fingerprint, load_openrs, split_train_val
from grpo_prm.io import write_atomic
from grpo_prm.word_problems import offline_splits


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_atomic(path, {"": lambda p: Path(p).write_text("".join(json.dumps(r) + "\n" for r in rows))})


def write_splits(out_dir: str | Path, train: list[dict], val: list[dict], test: list[dict], record: dict) -> Path:
    """Write the three sets and, last, `split.json` (its presence marks a complete folder)."""
    out = Path(out_dir)
    for name, rows in (("train", train), ("val", val), ("test", test)):
        write_jsonl(out / f"{name}.jsonl", rows)
    ids = {f"{name}_ids": [r["id"] for r in rows] for name, rows in (("train", train), ("val", val), ("test", test))}
    record = record | {"n_train": len(train), "n_val": len(val), "n_test": len(test)} | ids
    write_atomic(out / "split.json", {"": lambda p: Path(p).write_text(json.dumps(record, indent=1) + "\n")})
    return out


def prepare_offline(out_dir, n_train: int, n_val: int, n_test: int, seed: int, **difficulty) -> Path:
    """Generated GSM-style problems, disjoint train / validation / test (grpo_prm.word_problems.offline_splits)."""
    train, val, test = offline_splits(n_train, n_val, n_test, seed=seed, **difficulty)
    record = {"source": "offline", "seed": seed, **difficulty, "fingerprint": fingerprint(train + val + test)}
    return write_splits(out_dir, train, val, test, record)


def prepare_openrs(out_dir, n_val: int, seed: int, revision: str | None = None, local_dir: str | None = None) -> Path:
    """OpenRS with a seeded validation set of `n_val` problems (paper: 125); the rest is training data."""
    train, val, record = split_train_val(load_openrs(local_dir, revision), n_val, seed)
    record = {k: v for k, v in record.items() if not k.endswith("_ids")}
    return write_splits(out_dir, train, val, [], {"source": "openrs", "revision": revision} | record)


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m grpo_prm.prepare_data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="source", required=True)
    offline = sub.add_parser("offline", help="generated problems (embedded default)")
    for name in ("n_train", "n_val", "n_test", "seed", "min_steps", "max_steps", "max_operand"):
        offline.add_argument(f"--{name.replace('_', '-')}", type=int, required=True)
    openrs = sub.add_parser("openrs", help="knoveleng/open-rs (paper)")
    openrs.add_argument("--n-val", type=int, default=125)
    openrs.add_argument("--seed", type=int, default=0)
    openrs.add_argument("--revision", help="Hub revision to pin")
    openrs.add_argument("--local-dir", help="local copy instead of the Hub")
    for p in (offline, openrs):
        p.add_argument("--out-dir", required=True)
    return parser


def main(argv=None) -> None:
    args = vars(_parser().parse_args(argv))
    source, out_dir = args.pop("source"), args.pop("out_dir")
    out = exit_on_error(lambda: (prepare_offline if source == "offline" else prepare_openrs)(out_dir, **args))
    record = json.loads((out / "split.json").read_text())
    print(json.dumps({k: v for k, v in record.items() if not k.endswith("_ids")}))


if __name__ == "__main__":
    main()
