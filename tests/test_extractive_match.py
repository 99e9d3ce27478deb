"""The evaluation scorer (`grpo_prm.extractive_match`) on the five Table-2 benchmarks' own gold answers.

Real local copies from ../shared/data (the loaders' local-directory override). Each benchmark's golds, boxed as a model
would write them, must score correct (>= 99.5 %, every gold parsing), and a problem's boxed answer must score wrong
against another problem's different gold.
"""

from pathlib import Path

import datasets
import pytest
from math_verify import verify

from grpo_prm.data import TABLE2, load_benchmark
from grpo_prm.extractive_match import PRECISION, GoldError, is_correct, parse_gold
from grpo_prm.reward import MathReward

DATA = Path(__file__).parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


@pytest.fixture(scope="module")
def golds() -> dict[str, list[str]]:
    if not DATA.is_dir():
        pytest.fail(f"local benchmark copies not found at {DATA} (expected ../shared/data from the project root)")
    return {b: [r["answer"] for r in load_benchmark(b, local_dir=str(DATA))] for b in TABLE2}


@pytest.mark.parametrize("benchmark", TABLE2)
def test_every_gold_parses_and_its_boxed_self_scores_correct(golds, benchmark):
    unparsed, as_text, wrong = [], [], []
    for gold in golds[benchmark]:
        try:
            parsed = parse_gold(gold)
        except GoldError:
            unparsed.append(gold)
            continue
        if all(isinstance(p, str) for p in parsed):  # no maths object: compared as text (lighteval's fallback)
            as_text.append(gold)
        if not is_correct(f"Reasoning first. The final answer is $\\boxed{{{gold}}}$.", gold):
            wrong.append(gold)
    assert not unparsed, f"{benchmark}: golds that do not parse: {unparsed}"
    accuracy = 1 - len(wrong) / len(golds[benchmark])
    assert accuracy >= 0.995, f"{benchmark}: {accuracy:.4f}; failing golds: {wrong}; parsed as text only: {as_text}"
    assert len(as_text) <= 0.02 * len(golds[benchmark]), f"{benchmark}: golds parsed as text only: {as_text}"


def _same_answer(a: str, b: str) -> bool:
    """Golds that state one answer in two spellings (MATH-500 has `5` and `x=5`): gold against gold, by math-verify."""
    return verify(list(parse_gold(a)), list(parse_gold(b)), float_rounding=PRECISION)


@pytest.mark.parametrize("benchmark", TABLE2)
def test_a_boxed_answer_scores_wrong_against_another_problems_gold(golds, benchmark):
    items = golds[benchmark]
    pairs = [(a, b) for a, b in zip(items, items[1:] + items[:1]) if not _same_answer(a, b)]
    assert len(pairs) > 0.9 * len(items)  # neighbours rarely share an answer
    accepted = [(a, b) for a, b in pairs if is_correct(f"So the answer is \\boxed{{{a}}}.", b)]
    assert not accepted, f"{benchmark}: answers accepted for another problem's gold: {accepted}"


def test_the_scorer_accepts_golds_as_math_writes_them_where_the_training_reward_does_not():
    """MATH-500 writes `\\frac43` and `11\\sqrt2`; the authors' training reward (malformed_operators=False) fails
    them."""
    with MathReward(unparseable_gold="reward_zero") as reward:
        for gold in (r"\frac43", r"11\sqrt2", r"\frac 59", r"\frac9{19}"):
            assert is_correct(f"\\boxed{{{gold}}}", gold)
            assert reward.score(f"\\boxed{{{gold}}}", gold) == 0.0


@pytest.mark.parametrize(
    "completion, gold, correct",
    [
        (r"The answer is $\boxed{\frac{1}{2}}$.", "0.5", True),
        (r"\boxed{0.333333}", r"\frac13", True),  # lighteval compares 5 decimals
        (r"\boxed{0.33}", r"\frac13", False),
        (r"\boxed{(1, 2]}", "(1,2]", True),
        (r"\boxed{[1, 2]}", "(1,2]", False),
        (r"\boxed{\{8, 221\}}", r"$221,$8$", True),  # OlympiadBench's two-answer gold, read as a set
        ("No box; the final answer is $27$.", "27", True),  # extractive match falls back to LaTeX anchors
        ("I cannot solve this.", "27", False),
        (r"cut off at \boxed{2", "27", False),
    ],
)
def test_extractive_match_cases(completion, gold, correct):
    assert is_correct(completion, gold) is correct


def test_unparseable_gold_is_named():
    with pytest.raises(GoldError, match="does not parse"):
        parse_gold(" ")
