"""All-or-nothing output: a run or a table is either fully written or not there at all.

Each writer fills a temporary file in the target folder; only when every writer has succeeded are the files moved
into place (os.replace is atomic within a folder), so an error or a kill leaves nothing half-written behind.
"""

import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path


def default_file_mode() -> int:
    """The mode a plain open() would give (mkstemp makes files 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(prefix: str | Path, writers: dict[str, Callable[[str], object]]) -> list[Path]:
    """Write `<prefix><suffix>` with `writers[suffix](tmp_path)` for every suffix; all or nothing.

    Args:
        prefix (`str` or `Path`): output path without suffix (e.g. `paper_figures/default/table1_toy`).
        writers (`dict`): suffix (e.g. `".md"`, or `""` for `prefix` itself) → function writing to the given path.

    Returns:
        The final paths, in the order of `writers`.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tmps = []
    try:
        for suffix, write in writers.items():
            fd, tmp = tempfile.mkstemp(dir=prefix.parent, prefix=f".{prefix.name}", suffix=f"{suffix}.tmp")
            os.close(fd)
            tmps.append((tmp, Path(f"{prefix}{suffix}")))
            write(tmp)
            os.chmod(tmp, default_file_mode())
        for tmp, final in tmps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
    return [final for _, final in tmps]


def save_figure(fig, prefix: str | Path, formats=("png", "pdf"), dpi: int = 150) -> list[Path]:
    """`<prefix>.png` and `<prefix>.pdf` of a matplotlib figure (tight bounding box), all or nothing."""
    save = partial(fig.savefig, dpi=dpi, bbox_inches="tight")
    return write_atomic(prefix, {f".{fmt}": partial(save, format=fmt) for fmt in formats})


def save_table(table, prefix: str | Path, markdown: str) -> list[Path]:
    """`<prefix>.csv` (the numbers, 6 significant digits) and `<prefix>.md` (the rendered text), all or nothing."""
    return write_atomic(prefix, {".csv": lambda p: table.to_csv(p, index=False, float_format="%.6g"),
                                 ".md": lambda p: Path(p).write_text(markdown, encoding="utf-8")})
