"""All-or-nothing output: a run or a table is either fully written or not there at all.

Each writer fills a temporary file in the target folder; only when every writer has succeeded are the files moved
into place (os.replace is atomic within a folder), so an error or a kill leaves nothing half-written behind.
"""

import csv
import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from grpo_prm.errors import SettingError


def default_file_mode() -> int:
    """The mode a plain open() would give (mkstemp makes files 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_output_path(path: str | Path, flag: str = "--out") -> None:
    """Refuse, before any work, an output whose folder cannot be made: an existing ancestor that is not a folder."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise SettingError(f"{flag} {path}: {parent} is not a folder")
            return


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
            try:
                write(tmp)
            except OSError as e:
                if e.filename is None:  # a failed write() names no file (a full disk): name the output
                    raise OSError(e.errno, e.strerror, f"{prefix}{suffix}") from e
                raise
            os.chmod(tmp, default_file_mode())
        for tmp, final in tmps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
    return [final for _, final in tmps]


def write_texts(prefix: str | Path, texts: dict[str, str]) -> list[Path]:
    """`write_atomic` for rendered tables: `texts` maps a suffix (".md", ".csv", ".tex") to the file's text."""
    return write_atomic(prefix, {suffix: partial(write_text, text) for suffix, text in texts.items()})


def write_text(text: str, path: str) -> None:
    """A text file in UTF-8 (the writer `write_atomic` is given for a rendered table)."""
    Path(path).write_text(text, encoding="utf-8")


def tex_escape(s: str) -> str:
    """Plain text (a caption, a method label) as LaTeX: special characters escaped, λ ± § and dashes spelled out."""
    for a, b in (("{", r"\{"), ("}", r"\}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    for a, b in (("λ", r"$\lambda$"), ("±", r"$\pm$"), ("§", r"\S "), ("–", "--"), ("—", "--")):
        s = s.replace(a, b)
    return s


# No version string or creation date in the files, so the same figure gives the same bytes (matplotlib also reads
# SOURCE_DATE_EPOCH; the dates are dropped outright here). Bytes still depend on the fonts and the matplotlib and
# FreeType versions, which is why the tests compare figures through `figure_data`, not through PNG/PDF bytes.
FIGURE_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def figure_savefig(fig, path: str, fmt: str, dpi: int = 150, **kw) -> None:
    """`fig.savefig` with fixed metadata (`FIGURE_METADATA`): the one way this project writes a PNG or PDF."""
    fig.savefig(path, format=fmt, dpi=dpi, metadata=FIGURE_METADATA.get(fmt), **kw)


def _num(value) -> str:
    return f"{float(value):.6g}"


def figure_data(fig) -> list[list[str]]:
    """Every plotted datum of `fig` as rows `axes, artist, index, label, x, y` (numbers to 6 significant digits).

    Lines give their points, collections (bands, scatters) their path vertices and offsets, patches (bars, boxes)
    their corners, texts their position and string, and each axes its title and axis labels. This is what the figure
    shows, independent of fonts and rendering, so two runs' figures compare byte for byte through it.
    """
    rows = [["axes", "artist", "index", "label", "x", "y"]]
    for a, ax in enumerate(fig.axes):
        rows += [
            [a, kind, 0, text, "", ""]
            for kind, text in (("title", ax.get_title()), ("xlabel", ax.get_xlabel()), ("ylabel", ax.get_ylabel()))
            if text
        ]
        for i, line in enumerate(ax.get_lines()):
            rows += [[a, "line", i, line.get_label(), _num(x), _num(y)] for x, y in line.get_xydata()]
        for i, coll in enumerate(ax.collections):
            for path in coll.get_paths():
                rows += [[a, "collection", i, coll.get_label(), _num(x), _num(y)] for x, y in path.vertices]
            rows += [[a, "offset", i, coll.get_label(), _num(x), _num(y)] for x, y in coll.get_offsets()]
        for i, patch in enumerate(ax.patches):
            corners = patch.get_patch_transform().transform(patch.get_path().vertices)  # in data coordinates
            rows += [[a, "patch", i, patch.get_label(), _num(x), _num(y)] for x, y in corners]
        for i, text in enumerate(ax.texts):
            x, y = text.get_position()
            rows.append([a, "text", i, text.get_text(), _num(x), _num(y)])
    return rows


def _write_figure_data(fig, path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(figure_data(fig))


def save_figure(fig, prefix: str | Path, formats=("png", "pdf"), dpi: int = 150) -> list[Path]:
    """`<prefix>.png`, `<prefix>.pdf` (tight bounding box) and `<prefix>.data.csv` (`figure_data`), all or nothing."""
    writers = {f".{fmt}": partial(figure_savefig, fig, fmt=fmt, dpi=dpi, bbox_inches="tight") for fmt in formats}
    return write_atomic(prefix, writers | {".data.csv": partial(_write_figure_data, fig)})


def save_table(table, prefix: str | Path, markdown: str) -> list[Path]:
    """`<prefix>.csv` (the numbers, 6 significant digits) and `<prefix>.md` (the rendered text), all or nothing."""
    return write_atomic(
        prefix,
        {".csv": lambda p: table.to_csv(p, index=False, float_format="%.6g"), ".md": partial(write_text, markdown)},
    )
