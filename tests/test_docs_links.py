"""Every relative link in README.md and docs/*.md resolves: the file exists and, where a #anchor is given, the target
Markdown file has a heading with that GitHub anchor."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {anchor(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_anchor_follows_github():
    assert (
        anchor("Toy, beyond the paper: is the implicit PRM enough? (`snakemake --cores 2 toy`)")
        == "toy-beyond-the-paper-is-the-implicit-prm-enough-snakemake---cores-2-toy"
    )
    assert anchor("Performance (`make bench`)") == "performance-make-bench"


def test_docs_exist_and_the_readme_links_each():
    readme_links = {t.split("#")[0] for t in links(ROOT / "README.md")}
    assert DOCUMENTS[1:] and {f"docs/{p.name}" for p in DOCUMENTS[1:]} <= readme_links


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc):
    broken = []
    for target in links(doc):
        file, _, frag = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        elif frag and path.suffix == ".md" and frag not in anchors(path):
            broken.append(f"{target}: no heading #{frag}")
    assert not broken, f"{doc.name}: broken links: {broken}"
