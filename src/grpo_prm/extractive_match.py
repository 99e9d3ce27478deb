"""Evaluation scorer: math-verify extractive match as Open-RS configures lighteval for Table 2 (arXiv 2509.21154).

This is the evaluation instrument, separate from the training reward (`grpo_prm.reward`, the authors' reward, which
keeps `malformed_operators=False` and reads the first box). Open-RS evaluates AIME24, MATH-500, AMC23, Minerva-Math
and OlympiadBench with lighteval's `multilingual_extractive_match_metric` (its `latex_gold_metric` and
`expr_gold_metric`); here one scorer covers both, through math-verify, the library lighteval's metric wraps:

- **Gold:** written as `\\boxed{<gold>}` and parsed with LaTeX, then expression extraction (math-verify's default
  normalisation, so `\\frac43` and `11\\sqrt2` parse). Lighteval reads MATH-500's and Minerva's gold from the
  solution's box; boxing the bare answers of the other sets gives them the same reading (the whole gold is the
  answer: OlympiadBench's `$221,$8$` is the set {221, 8}, not its first `$…$` span).
- **Prediction:** the whole completion (no cut after the first box, unlike training), expression and LaTeX
  extraction with boxed answers first (`boxed_match_priority=0`), read by math-verify as it reads them for lighteval
  (matches tried from the right; boxes in one matched span are read together, e.g. as a set).
- **Comparison:** `verify` at lighteval's precision of 5 decimals; the score is the max over extracted pairs.
- **Time limits:** math-verify's own (signal-based, whole seconds, main thread only); lm-eval scores in the main
  thread, as lighteval does. A gold from which nothing is extracted raises `GoldError` naming it; one that parses
  to no maths object (5 of 272 Minerva golds, e.g. `np.arcsin(10/13)`) is compared as text, as in lighteval.
"""

import logging
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from grpo_prm.cli import InputError

GOLD_TARGETS = (LatexExtractionConfig(), ExprExtractionConfig())
PREDICTION_TARGETS = (ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0))
PRECISION = 5  # lighteval's `precision` of the Open-RS metrics: decimals compared
TIMEOUT_S = 5  # math-verify's per-operation limit (its default)
SCORER = "math-verify extractive match (lighteval/Open-RS: gold LaTeX+expr, prediction boxed-first LaTeX+expr)"

logging.getLogger("math_verify").setLevel(logging.ERROR)  # every unparseable completion would log a warning
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)


class GoldError(InputError):
    """A gold answer from which math-verify extracts nothing (not even its text fallback)."""


def gold_text(gold: str) -> str:
    """The gold as a boxed answer (unchanged if it is already boxed)."""
    return gold if "\\boxed" in gold else f"\\boxed{{{gold}}}"


@lru_cache(maxsize=8192)  # the n samples of a problem share one gold
def parse_gold(gold: str) -> tuple:
    parsed = parse(gold_text(gold), extraction_config=GOLD_TARGETS, parsing_timeout=TIMEOUT_S)
    if not parsed:
        raise GoldError(f"gold answer {gold!r} does not parse")
    return tuple(parsed)


def parse_prediction(completion: str) -> list:
    return parse(completion, extraction_config=PREDICTION_TARGETS, parsing_timeout=TIMEOUT_S)


def is_correct(completion: str, gold: str) -> bool:
    """Whether `completion`'s extracted answer is equivalent to `gold` (lighteval's extractive match)."""
    golds, predictions = parse_gold(gold), parse_prediction(completion)
    return bool(predictions) and verify(list(golds), predictions, float_rounding=PRECISION, timeout_seconds=TIMEOUT_S)
