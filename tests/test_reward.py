"""Tests for `grpo_prm.reward`: math-verify equivalences, unparseable gold, the hard timeout."""

import threading
import time

import pytest

from grpo_prm.reward import MathReward

# A power tower sympy cannot finish comparing; math-verify's own alarm is off in the child, so only the kill helps.
PATHOLOGICAL = r"\boxed{9^{9^{9^{9}}}}"


@pytest.fixture(scope="module")
def reward():
    with MathReward(timeout_s=10.0) as r:
        yield r


# ----------------------------------------------------------------------------- equivalences
EQUIVALENT = [  # (completion, gold)
    (r"\boxed{0.5}", r"\frac{1}{2}"),
    (r"\boxed{\frac{1}{2}}", "0.5"),
    (r"\boxed{\dfrac{1}{2}}", "1/2"),
    (r"\boxed{-\frac{3}{4}}", "-0.75"),
    (r"\boxed{\frac{1}{3}}", "0.333333"),  # numeric comparison rounds to 6 places
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}"),
    (r"\boxed{\sqrt{8}}", r"2\sqrt{2}"),
    (r"\boxed{\dfrac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}"),  # the gold's config repairs \sqrt3
    (r"\boxed{x^2+2x+1}", "(x+1)^2"),
    (r"\boxed{\{2, 1\}}", r"\{1,2\}"),
    (r"\boxed{1, 2}", r"\{1,2\}"),
    (r"\boxed{(1, 2]}", "(1,2]"),
    (r"\boxed{[0, \infty)}", r"[0,\infty)"),
    (r"\boxed{1 < x < 2}", "(1,2)"),  # thanks to the authors' verify(answer, gold) order
    (r"\boxed{x \in (1,2)}", "(1,2)"),
    (r"\boxed{x=3}", "3"),
    (r"\boxed{3}", "x=3"),
    (r"\boxed{a = 2 + 1 = 3}", "3"),
    (r"\boxed{50\%}", "0.5"),
    (r"\boxed{50\%}", "50"),  # math-verify accepts a percentage against either scale
    (r"\boxed{0.5}", r"50\%"),
    (r"\boxed{1,000}", "1000"),
    (r"\boxed{3\text{ cm}}", "3"),
    (r"\boxed{10^\circ}", "10"),
    (r"\boxed{\$5}", "5"),
    (r"\boxed{\text{(B)}}", "B"),
    (r"\boxed{\text{(C)}}", r"\textbf{(C)}"),
    (r"\boxed{\text{Evelyn}}", r"\text{Evelyn}"),
    (r"\boxed{\frac{\pi}{2}}", r"\dfrac{\pi}{2}"),
    (r"\boxed{\begin{pmatrix}1\\2\end{pmatrix}}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    (r"Thus $\boxed{3}$.", "3"),
    (r"\boxed{3}", r"We get $x=1$, so the answer is $\boxed{3}$."),  # a full solution as gold
    (r"\boxed{3}. Check: \boxed{4}", "3"),  # only the first box counts
]

NOT_EQUIVALENT = [
    (r"\boxed{0.33}", r"\frac{1}{3}"),
    (r"\boxed{2}", "3"),
    (r"\boxed{-3}", "3"),
    (r"\boxed{\sqrt{2}}", "2"),
    (r"\boxed{x+1}", "x-1"),
    (r"\boxed{\{1,2,3\}}", r"\{1,2\}"),
    (r"\boxed{(1,2)}", "(1,2]"),
    (r"\boxed{[0,\infty)}", r"(0,\infty)"),
    (r"\boxed{(1,2)}", "1<x<2"),  # the other side of the asymmetry
    (r"\boxed{y = 4}", "3"),
    (r"\boxed{5\%}", "0.5"),
    (r"\boxed{\text{(A)}}", "B"),
    (r"\boxed{4}. Check: \boxed{3}", "3"),  # only the first box counts
    (r"\boxed{1} and \boxed{2}", r"\{1,2\}"),  # math-verify alone would join both boxes into {1, 2}
    (r"\boxed{\frac12}", "1/2"),  # malformed_operators=False in the authors' config: "\frac12" stays unparsed
    (r"\boxed{}", "2"),
    (r"\boxed{2", "2"),  # never closes
    ("the answer is 2", "2"),  # no box and no LaTeX anchor
    ("2", "2"),
]


@pytest.mark.parametrize("completion, gold", EQUIVALENT)
def test_equivalent_scores_one(reward, completion, gold):
    assert reward.score(completion, gold) == 1.0


@pytest.mark.parametrize("completion, gold", NOT_EQUIVALENT)
def test_not_equivalent_scores_zero(reward, completion, gold):
    assert reward.score(completion, gold) == 0.0


def test_no_box_falls_back_to_anchored_latex(reward):
    # Without a box, math-verify still reads an answer after "final answer is" in $…$.
    assert reward.score("The final answer is $2$.", "2") == 1.0
    assert reward.score("The final answer is 2.", "2") == 0.0


# ----------------------------------------------------------------------------- unparseable gold and counters
@pytest.mark.parametrize("policy, expected", [("reward_one", 1.0), ("reward_zero", 0.0), ("skip", None)])
def test_unparseable_gold_policy(policy, expected):
    with MathReward(unparseable_gold=policy) as r:
        assert r([r"\boxed{3}", r"\boxed{4}", r"\boxed{3}"], ["", "   ", "3"]) == [expected, expected, 1.0]
        assert r([r"\boxed{3}"], [None]) == [expected]
        assert (r.n_scored, r.n_gold_unparseable, r.n_correct, r.n_timeouts) == (4, 3, 1, 0)


def test_unknown_policy_raises():
    with pytest.raises(ValueError, match="unparseable_gold"):
        MathReward(unparseable_gold="reward_half")


def test_trl_interface(reward):
    # TRL passes conversational completions, the `answer` column and extra keywords (log_metric among them).
    logged = {}
    completions = [
        [{"role": "assistant", "content": r"It is \boxed{\frac{1}{2}}."}],
        [{"role": "assistant", "content": "No idea."}],
    ]
    out = reward(
        prompts=["p", "p"],
        completions=completions,
        answer=["0.5", ""],
        completion_ids=[[1], [2]],
        trainer_state=None,
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    assert out == [1.0, 1.0]  # the second gold is unparseable: the authors reward 1
    assert reward.__name__ == "accuracy"
    assert logged == {"accuracy/gold_unparseable": 0.5, "accuracy/timeouts": 0.0}


def test_works_off_the_main_thread(reward):
    # math-verify's own signal.alarm timeout raises outside the main thread; the child process does not care.
    out = []
    thread = threading.Thread(target=lambda: out.append(reward.score(r"\boxed{0.5}", r"\frac{1}{2}")))
    thread.start()
    thread.join()
    assert out == [1.0]


# ----------------------------------------------------------------------------- hard timeout
def test_pathological_completion_times_out_and_run_continues():
    with MathReward(timeout_s=1.0) as r:
        assert r.score(r"\boxed{3}", "3") == 1.0  # starts the child outside the timed call
        start = time.monotonic()
        assert r.score(PATHOLOGICAL, "3") == 0.0
        assert time.monotonic() - start < 1.0 + 2.0
        assert r.n_timeouts == 1
        assert r([r"\boxed{3}", r"\boxed{4}"], ["3", "3"]) == [1.0, 0.0]  # a fresh child takes over
        for verifier in r._verifiers:  # a child that died between calls is replaced too
            if verifier.proc is not None:
                verifier.proc.kill()
                verifier.proc.wait()
        assert r.score(r"\boxed{3}", "3") == 1.0
        assert (r.n_scored, r.n_correct, r.n_timeouts, r.n_crashes) == (5, 3, 1, 0)


def test_parallel_batch_equals_one_at_a_time_in_order():
    """A pool of children gives the sequential verdicts in the batch's order, timeouts and counters included."""
    completions = [
        r"\boxed{3}",
        PATHOLOGICAL,
        r"\boxed{4}",
        r"\boxed{\frac{1}{2}}",
        PATHOLOGICAL,
        "no box",
        r"\boxed{7}",
    ]
    golds = ["3", "3", "3", "0.5", "2", "1", ""]
    results = {}
    for workers in (1, 4):
        with MathReward(timeout_s=2.0, workers=workers) as r:
            results[workers] = (r(completions, golds), r.n_timeouts, r.n_correct, r.n_gold_unparseable, r.n_scored)
    assert results[4] == results[1] == ([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0], 2, 2, 1, 7)


@pytest.mark.parametrize("workers", [0, -1, 2.0, True])
def test_bad_worker_count_is_refused(workers):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        MathReward(workers=workers)


def test_reward_mapping_maps_right_and_wrong_and_keeps_unscored():
    """Reinforce-Rej's {−1, +1} (arXiv 2504.11343) and the paper's {0, 1}; an unscored completion stays None."""
    from grpo_prm.reward import MappedReward

    def accuracy(completions, answer, **kwargs):
        return [1.0, 0.0, None]

    accuracy.__name__ = "accuracy"
    assert MappedReward(accuracy, "plus_minus_one")(["a", "b", "c"], answer=["1", "2", "3"]) == [1.0, -1.0, None]
    assert MappedReward(accuracy, "zero_one")(["a", "b", "c"], answer=["1", "2", "3"]) == [1.0, 0.0, None]
    assert MappedReward(accuracy, "zero_one").__name__ == "accuracy"
    with pytest.raises(ValueError, match="unknown reward_mapping 'signed'"):
        MappedReward(accuracy, "signed")
