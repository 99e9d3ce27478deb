"""Tests for `grpo_prm.boxed`: the first closed box (streamed or whole), truncation after it, the last box."""

import pytest

from grpo_prm.boxed import BoxedScanner, first_boxed, last_boxed, truncate_after_first_boxed


# ----------------------------------------------------------------------------- first closed box
@pytest.mark.parametrize(
    "text, content",
    [
        (r"so \boxed{3}.", "3"),
        (r"\boxed{\frac{1}{2}} and later \boxed{7}", r"\frac{1}{2}"),  # the first box, nested braces
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces count too, as in math-verify
        (r"\boxed{}", ""),
        (r"\boxed{x^{2", None),  # never closes
        (r"\boxed 3 and \fbox{4}", None),  # only the literal "\boxed{" opens a box
        ("no box", None),
    ],
)
def test_first_boxed(text, content):
    assert first_boxed(text) == content


def test_truncate_after_first_boxed():
    assert truncate_after_first_boxed(r"a \boxed{x_{1}}$. Then \boxed{2}") == r"a \boxed{x_{1}}"
    assert truncate_after_first_boxed(r"a \boxed{x") == r"a \boxed{x"


@pytest.mark.parametrize(
    "text", [r"We get \boxed{\frac{a}{b}} so \boxed{1}", r"x\boxed{}y", r"\boxed{{}{}}", r"\\boxed{a}"]
)
def test_scanner_pieces_agree_with_whole_text(text):
    # Every way of cutting the text in three pieces finds the same closing brace as the whole text.
    expected = BoxedScanner().feed(text)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            scanner, offset, found = BoxedScanner(), 0, None
            for piece in (text[:i], text[i:j], text[j:]):
                end = scanner.feed(piece)
                if end is not None and found is None:
                    found = offset + end
                offset += len(piece)
            assert found == expected, (i, j)


def test_last_boxed_counts_braces():
    assert last_boxed("so \\boxed{1} and \\boxed{\\frac{1}{2}} cm") == "\\frac{1}{2}"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{\\frac{1}{2}") is None


# ---- Hub code path, against local stand-ins ----
