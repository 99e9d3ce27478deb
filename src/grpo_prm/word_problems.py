"""Offline training data of the embedded default: GSM-style word problems generated locally (seeded).

The paper trains on OpenRS (§5, App. C), which needs the Hub; the embedded default runs offline, so it draws
multi-step word problems with integer answers and worked solutions from a seeded generator instead, split into
disjoint train / validation / test sets (`offline_splits`). Rows have the shape of every loader in `grpo_prm.data`:
`{"id", "problem", "answer", "solution"}`.
"""

import hashlib
import random

from grpo_prm.data import DataError

NAMES = ("Tom", "Ana", "Ravi", "Mei", "Lena", "Omar", "Sara", "Jonas", "Priya", "Kofi", "Elif", "Diego")
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "cards", "beads", "books")
BOXES = ("boxes", "bags", "jars", "crates", "packs")


def _step(rng: random.Random, x: int, name: str, item: str, top: int) -> tuple[str, str, int]:
    """One operation on the count `x`: (sentence, worked equation, new count); the count stays a positive integer."""
    friend = rng.choice([n for n in NAMES if n != name])
    divisors = [k for k in (2, 3, 4, 5) if x % k == 0]
    kinds = ["buy", "packs"] + ["give"] * (x > 1) + ["grow"] * (x <= 200) + ["share", "lose"] * bool(divisors)
    kind = rng.choice(kinds)
    if kind == "buy":
        c = rng.randint(2, top)
        return f"{name} buys {c} more {item}.", f"{x} + {c} = {x + c}", x + c
    if kind == "packs":
        c, d = rng.randint(2, 5), rng.randint(2, top)
        box = rng.choice(BOXES)
        return f"{name} then gets {c} {box} with {d} {item} in each.", f"{x} + {c} * {d} = {x + c * d}", x + c * d
    if kind == "give":
        c = rng.randint(1, min(x - 1, top))
        return f"{name} gives {c} {item} to {friend}.", f"{x} - {c} = {x - c}", x - c
    if kind == "grow":
        k = rng.choice((2, 3))
        return f"A month later {name} has {('twice', 'three times')[k - 2]} as many.", f"{x} * {k} = {x * k}", x * k
    k = rng.choice(divisors)
    if kind == "share":
        return f"{name} splits them equally into {k} piles and keeps one pile.", f"{x} / {k} = {x // k}", x // k
    part = {2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}[k]
    return f"{name} loses {part} of them.", f"{x} - {x} / {k} = {x - x // k}", x - x // k


def _word_problem(rng: random.Random, steps: int, top: int) -> dict:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(2, 9), rng.randint(2, top)
    if rng.random() < 0.5:
        sentences, work, x = [f"{name} has {a} {rng.choice(BOXES)} of {b} {item}."], [f"{a} * {b} = {a * b}"], a * b
    else:
        sentences, work, x = [f"{name} has {b} {item}."], [], b
    for _ in range(steps):
        sentence, eq, x = _step(rng, x, name, item, top)
        sentences.append(sentence)
        work.append(eq)
    sentences.append(f"How many {item} does {name} have now?")
    return {"problem": " ".join(sentences), "answer": str(x), "solution": "\n".join(work)}


def text_id(problem: str) -> str:
    """Stable id of a generated problem: a hash of its text (identical texts share it)."""
    return "p" + hashlib.sha1(problem.encode()).hexdigest()[:12]


def make_arithmetic_problems(
    n: int, seed: int = 0, min_steps: int = 2, max_steps: int = 4, max_operand: int = 20
) -> list[dict]:
    """Distinct GSM-style multi-step word problems with integer answers, generated locally (seeded, deterministic).

    Example: "Tom has 3 boxes of 12 apples. Tom gives 7 apples to Ana. ... How many apples does Tom have now?"

    Args:
        n (`int`):
            Number of problems.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the generator.
        min_steps (`int`, *optional*, defaults to `2`) and max_steps (`int`, *optional*, defaults to `4`):
            Operations after the opening sentence (difficulty); each problem draws its count in this range.
        max_operand (`int`, *optional*, defaults to `20`):
            Largest number drawn for an operand (difficulty).

    Returns:
        `list[dict]`: rows `{"id", "problem", "answer", "solution"}`; `solution` lists the worked equations.
    """
    if not 1 <= min_steps <= max_steps or max_operand < 2:
        raise DataError(f"bad difficulty: min_steps={min_steps}, max_steps={max_steps}, max_operand={max_operand}")
    rng, rows, seen = random.Random(seed), [], set()
    for _ in range(50 * n + 100):
        if len(rows) == n:
            return rows
        row = _word_problem(rng, rng.randint(min_steps, max_steps), max_operand)
        if row["problem"] not in seen:
            seen.add(row["problem"])
            rows.append({"id": text_id(row["problem"])} | row)
    raise DataError(f"could not generate {n} distinct problems with max_steps={max_steps}, max_operand={max_operand}")


def offline_splits(
    n_train: int, n_val: int, n_test: int, seed: int = 0, **difficulty
) -> tuple[list[dict], list[dict], list[dict]]:
    """Disjoint train/validation/test sets of generated problems (no problem text in two sets).

    Args:
        n_train (`int`), n_val (`int`), n_test (`int`):
            Set sizes; `n_val` must be positive.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the generator and of the split.
        **difficulty:
            Passed to `make_arithmetic_problems` (`min_steps`, `max_steps`, `max_operand`).

    Returns:
        `tuple[list[dict], list[dict], list[dict]]`: train, validation and test rows.
    """
    if n_val < 1 or n_train < 0 or n_test < 0:
        raise DataError(f"sizes n_train={n_train}, n_val={n_val}, n_test={n_test}: need n_val >= 1 and none negative")
    total = n_train + n_val + n_test
    # reasoning-gym's gsm_symbolic was considered and left out: its templates come from GSM8K *test*.
    pool = make_arithmetic_problems(total, seed, **difficulty)
    random.Random(seed).shuffle(pool)
    return pool[:n_train], pool[n_train : n_train + n_val], pool[n_train + n_val :]
