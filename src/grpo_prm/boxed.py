"""`\\boxed{…}` answers: where the first box closes, and what the first or the last box holds.

Two readings, for two kinds of text. A model's completion is judged on its *first* closed box (`first_boxed`): the
authors' BoxedLP stop rule (github.com/coli-saar/grpo-prm) ends generation right after it, and their reward parses
boxed-first. A worked reference solution (Minerva-Math's `solution` field) and the tiny model's worked answers end
with their final answer, so they are read at their *last* box (`last_boxed`). `BoxedScanner` finds the end of the
first box in a stream of text pieces, so the stop rule (token by token: `stop_rule`, `vllm_stop`) and the reward
(`truncate_after_first_boxed`) agree on it. Plain Python, so the reward's verification child imports no torch.
"""

import re

BOXED_OPEN = "\\boxed{"


class BoxedScanner:
    """Incremental search for the end of the first closed `\\boxed{…}` in a stream of text pieces.

    Every `{` and `}` after `\\boxed{` counts, escaped or not, as in the authors' `BoxedLP` and in
    latex2sympy2_extended's boxed extraction, so the stop rule and the verifier agree on where the box ends.
    `\\boxed{` may be split over pieces.
    """

    def __init__(self):
        self.tail = ""  # last len(BOXED_OPEN) - 1 characters, to find "\boxed{" across pieces
        self.depth = 0  # brace depth inside the box; 0 until it opens
        self.closed = False

    def feed(self, piece: str) -> int | None:
        """Consume `piece`; return the index in `piece` just past the closing brace if the first box closes in it."""
        if self.closed:
            return None
        start = 0
        if self.depth == 0:
            text = self.tail + piece
            found = text.find(BOXED_OPEN)
            if found < 0:
                self.tail = text[-(len(BOXED_OPEN) - 1) :]
                return None
            start, self.depth = found + len(BOXED_OPEN) - len(self.tail), 1
        for match in re.finditer(r"[{}]", piece[start:]):
            self.depth += 1 if match.group() == "{" else -1
            if self.depth == 0:
                self.closed = True
                return start + match.end()
        return None


def first_boxed(text: str) -> str | None:
    """Content of the first closed `\\boxed{…}` in `text` (nested braces allowed), or `None` if no box closes."""
    end = BoxedScanner().feed(text)
    return None if end is None else text[text.find(BOXED_OPEN) + len(BOXED_OPEN) : end - 1]


def truncate_after_first_boxed(text: str) -> str:
    """`text` cut right after the brace that closes its first `\\boxed{…}`; unchanged if no box closes."""
    end = BoxedScanner().feed(text)
    return text if end is None else text[:end]


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` in `text` (brace counting, nested braces kept), or `None`."""
    start = text.rfind(BOXED_OPEN)
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None
