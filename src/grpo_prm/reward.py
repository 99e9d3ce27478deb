"""Binary math reward with math-verify, as in the authors' `open_rs_reward.py` (github.com/coli-saar/grpo-prm;
arXiv 2509.21154 §5).

A completion earns 1.0 if the answer in its first closed `\\boxed{…}` is equivalent to the gold answer, else 0.0.

- **Completion:** cut right after the first closed box (the BoxedLP stop rule, `stop_rule.py`), then parsed with
  the authors' boxed-first LaTeX extraction. A completion without a closed box scores 0, unless math-verify
  finds an anchored LaTeX answer such as "the final answer is $2$"; bare text ("the answer is 2") scores 0.
  The authors' config keeps `malformed_operators=False`, so `\\dfrac12` does not parse (write `\\dfrac{1}{2}`).
- **Gold:** parsed with LaTeX, then plain-expression extraction. A bare answer ("\\frac{1}{2}", "3") is first
  wrapped in `$…$`; the authors passed it raw, where LaTeX extraction finds nothing and every completion would
  score 1. A full solution (with `$`, `\\boxed`, `\\(` or `\\[`) is parsed as it is.
- **Unparseable gold:** the authors reward 1.0, so the group has zero advantage (only KL acts); `skip` returns
  `None`, which TRL turns into NaN (unscored).
- **Argument order:** the authors call `verify(answer, gold)`, the reverse of math-verify's documented
  `verify(gold, target)`. Kept: it matters only in asymmetric cases, e.g. the answer `1 < x < 2` matches the
  gold `(1,2)` this way round but not the other.
- **Time limit:** math-verify's own timeout uses `signal.alarm`: main thread only, whole seconds, per operation,
  and blind to long C calls. Here parse + verify run in a child process that is killed when one item overruns
  `timeout_s`; that item scores 0 and is counted, and the next item starts a fresh child.
- **Parallel:** a batch is scored by up to `workers` such children at once (threads hand items to idle children),
  so k overrunning items cost about ceil(k / workers) time limits instead of k; results keep the batch's order.
  concurrent.futures' process pool cannot kill one overrunning task without breaking the whole pool, hence the
  hand-made pool of killable children.

The brace scanner that finds the first closed box is `grpo_prm.boxed` (plain Python), shared with the stop rule;
the verification child imports it and math-verify only (no torch).
"""

import json
import logging
import math
import os
import queue
import re
import select
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from latex2sympy2_extended import NormalizationConfig
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from grpo_prm.boxed import truncate_after_first_boxed
from grpo_prm.errors import SettingError

UNPARSEABLE_GOLD = ("reward_one", "reward_zero", "skip")
# The training reward's values for a wrong and a right answer: zero_one, the λ-GRPO paper's and the authors' open-rs
# reward (GRPO's and λ-GRPO's advantages are unchanged by the map, up to their 1e-4 in the std), or plus_minus_one,
# Reinforce-Rej's convention (Xiong et al. 2025, arXiv 2504.11343: wrong answers −1), without which its raw-reward
# advantage never pushes a wrong answer down. Validation accuracy always uses {0, 1}.
REWARD_MAPPINGS = {"zero_one": (0.0, 1.0), "plus_minus_one": (-1.0, 1.0)}


class MappedReward:
    """A {0, 1} reward function with its values mapped to `REWARD_MAPPINGS[mapping]` (None, unscored, stays None);
    TRL's metric names keep the wrapped function's `__name__`."""

    def __init__(self, reward, mapping: str):
        if mapping not in REWARD_MAPPINGS:
            raise SettingError(f"unknown reward_mapping {mapping!r}; choose one of {', '.join(REWARD_MAPPINGS)}")
        self.reward, (self.low, self.high) = reward, REWARD_MAPPINGS[mapping]
        self.__name__ = reward.__name__

    def __call__(self, *args, **kwargs) -> list[float | None]:
        return [None if r is None else self.low + (self.high - self.low) * r for r in self.reward(*args, **kwargs)]


# ----------------------------------------------------------------------------- parse + verify (child process)
# The authors' completion config (open-rs): boxed first, well-formed LaTeX only. `equations=True` keeps the last
# side of "a = b = c"; latex2sympy2_extended logs it as deprecated, so the child silences that logger.
ANSWER_CONFIG = [
    LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            nits=False, malformed_operators=False, basic_latex=True, equations=True, boxed="all", units=True
        ),
        boxed_match_priority=0,
        try_extract_without_anchor=False,
    )
]
GOLD_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]
# A gold holding one of these is a solution text; anything else is a bare answer to wrap in $…$.
_MATH_DELIMITER = re.compile(r"(?<!\\)\$|\\boxed|\\\(|\\\[")


@lru_cache(maxsize=4096)  # the k completions of a group share one gold
def _parse_gold(gold: str) -> list:
    text = gold if _MATH_DELIMITER.search(gold) else f"${gold}$"
    return parse(text, extraction_config=GOLD_CONFIG, extraction_mode="first_match", parsing_timeout=None)


def _judge(answer_text: str, gold: str) -> str:
    """Verdict `correct`, `wrong` or `gold_unparseable`, without math-verify's signal timeouts (the parent kills)."""
    gold_parsed = _parse_gold(gold)
    if not gold_parsed:
        return "gold_unparseable"
    answer = parse(answer_text, extraction_config=ANSWER_CONFIG, extraction_mode="first_match", parsing_timeout=None)
    return "correct" if verify(answer, gold_parsed, timeout_seconds=None) else "wrong"  # authors' order


def _serve() -> None:
    """Child loop: one JSON `[answer_text, gold]` per stdin line, one JSON verdict per line on the original stdout."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints from sympy must not corrupt the protocol
    sys.stdout = sys.stderr
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _judge(r"\boxed{\frac{1}{2}}", "0.5")  # first use loads parsers lazily: not inside the first item's time limit
    print(json.dumps("ready"), file=replies, flush=True)
    for line in sys.stdin:  # math-verify catches its own errors; anything else ends the child (counted as a crash)
        print(json.dumps(_judge(*json.loads(line))), file=replies, flush=True)


class _Verifier:
    """A `_serve` child process with a hard per-item deadline; restarted after a timeout or a crash (POSIX)."""

    def __init__(self, startup_timeout_s: float = 120.0):
        self.startup_timeout_s = startup_timeout_s
        self.proc = None

    def _start(self) -> None:
        src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # importable even without an install
        code = f"import sys; sys.path.insert(0, {src!r}); from grpo_prm.reward import _serve; _serve()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self._read(self.startup_timeout_s) != "ready":
            self.close()
            raise RuntimeError("math-verify worker failed to start (see its stderr above)")

    def _read(self, timeout_s: float) -> str | None:
        """The next reply, or None if none comes within `timeout_s` or the child died."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else b""
        return json.loads(line) if line else None

    def __call__(self, answer_text: str, gold: str, timeout_s: float) -> str:
        """Verdict `correct`, `wrong`, `gold_unparseable`, `timeout` or `crash` (the child died)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.close()  # died between items
        if self.proc is None:
            self._start()
        try:
            self.proc.stdin.write((json.dumps([answer_text, gold]) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            return "crash"
        verdict = self._read(timeout_s)
        if verdict is None:
            crashed = self.proc.poll() is not None
            self.close()
            return "crash" if crashed else "timeout"
        return verdict

    def close(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()  # an overrunning child may be stuck in C code, so no polite shutdown
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc = None

    def __del__(self):
        self.close()


# ----------------------------------------------------------------------------- TRL reward function
def _completion_text(completion) -> str:
    """A conversational completion's assistant messages joined in order; a string as it is."""
    if isinstance(completion, str):
        return completion
    return "".join(message["content"] for message in completion if message.get("role", "assistant") == "assistant")


class MathReward:
    """Binary accuracy reward for TRL's `GRPOTrainer` (the authors' open-rs reward, `open_rs_reward.py`).

    Called as `reward(completions=…, answer=…, **kwargs)`; the dataset's gold column must be named `answer`.

    Args:
        unparseable_gold (`str`, *optional*, defaults to `"reward_one"`):
            What a completion earns when the gold cannot be parsed: `"reward_one"` (the authors' choice: the
            group gets zero advantage), `"reward_zero"`, or `"skip"` (returns `None`; TRL treats it as unscored).
        timeout_s (`float`, *optional*, defaults to `5.0`):
            Hard limit in seconds on parsing and verifying one completion; an overrun scores 0.0.
        name (`str`, *optional*, defaults to `"accuracy"`):
            `__name__`, which TRL uses in its metric names (`rewards/accuracy/mean`).
        workers (`int`, *optional*, defaults to `8`):
            Verification children scoring a batch in parallel (each keeps the per-item limit); 1 = one at a time.

    Counters (cumulative): `n_scored` (completions seen), `n_correct`, `n_gold_unparseable`, `n_timeouts` and
    `n_crashes` (the child died). If TRL passes `log_metric`, each call also logs the batch fractions
    `<name>/gold_unparseable` and `<name>/timeouts`. Call `close()` (or use `with`) to stop the child processes.
    """

    def __init__(
        self, unparseable_gold: str = "reward_one", timeout_s: float = 5.0, name: str = "accuracy", workers: int = 8
    ):
        if unparseable_gold not in UNPARSEABLE_GOLD:
            raise SettingError(
                f"unknown unparseable_gold {unparseable_gold!r}; choose one of {', '.join(UNPARSEABLE_GOLD)}"
            )
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < math.inf:
            raise SettingError(f"reward timeout_s must be a positive finite number of seconds, got {timeout_s!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise SettingError(f"reward workers must be a positive integer, got {workers!r}")
        self.unparseable_gold = unparseable_gold
        self.timeout_s = timeout_s
        self.__name__ = name
        self.n_scored = self.n_correct = self.n_gold_unparseable = self.n_timeouts = self.n_crashes = 0
        self._verifiers = [_Verifier() for _ in range(workers)]  # children start on first use
        self._idle = queue.LifoQueue()  # last used first: a warm child is reused before a cold one starts
        for verifier in reversed(self._verifiers):
            self._idle.put(verifier)
        self._lock = threading.Lock()  # the counters
        self._threads = None

    def score(self, completion: str, gold: str | None) -> float | None:
        """Reward of one completion text against one gold answer (thread-safe: each call takes an idle child)."""
        gold = "" if gold is None else str(gold)  # a missing gold is unparseable
        verifier = self._idle.get()  # one child, one request at a time
        try:
            verdict = verifier(truncate_after_first_boxed(completion), gold, self.timeout_s)
        finally:
            self._idle.put(verifier)
        with self._lock:
            self.n_scored += 1
            self.n_correct += verdict == "correct"
            self.n_timeouts += verdict == "timeout"
            self.n_crashes += verdict == "crash"
            self.n_gold_unparseable += verdict == "gold_unparseable"
        if verdict == "gold_unparseable":
            return {"reward_one": 1.0, "reward_zero": 0.0, "skip": None}[self.unparseable_gold]
        return 1.0 if verdict == "correct" else 0.0

    def __call__(self, completions: list, answer: list[str], log_metric=None, **kwargs) -> list[float | None]:
        """Rewards for TRL. `completions` are strings or conversations (lists of `{"role", "content"}` dicts)."""
        before = (self.n_gold_unparseable, self.n_timeouts)
        texts = [_completion_text(c) for c in completions]
        if len(texts) != len(answer):
            raise ValueError(f"{len(texts)} completions but {len(answer)} answers")
        if len(texts) > 1 and len(self._verifiers) > 1:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(len(self._verifiers), thread_name_prefix="math-verify")
            rewards = list(self._threads.map(self.score, texts, answer))  # in the batch's order
        else:
            rewards = [self.score(text, gold) for text, gold in zip(texts, answer)]
        if log_metric is not None and rewards:
            log_metric(f"{self.__name__}/gold_unparseable", (self.n_gold_unparseable - before[0]) / len(rewards))
            log_metric(f"{self.__name__}/timeouts", (self.n_timeouts - before[1]) / len(rewards))
        return rewards

    def close(self) -> None:
        """Stop the verification children; a later call starts new ones."""
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None
        for verifier in self._verifiers:
            verifier.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
