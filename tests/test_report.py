"""The report's captions (workflow/report/*.rst, filled in from each config as Snakemake does) are valid
reStructuredText: docutils reports no warning or error (e.g. `|λ|` read as an undefined substitution)."""

import io
import re
import types
from pathlib import Path

import jinja2
import pytest
import yaml
from docutils.core import publish_doctree

from grpo_prm.config import validate_config

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = sorted((ROOT / "workflow" / "report").glob("*.rst"))
CONFIGS = ["config.yaml", "paper.yaml", "smollm2.yaml", "ci.yaml"]


def resolved(name: str) -> dict:
    """A config as the workflow sees it: config/config.yaml, the named file merged over it, defaults filled in."""
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())

    def merge(a, b):
        return {
            k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v for k, v in (a | b).items()
        }

    return validate_config(merge(base, yaml.safe_load((ROOT / "config" / name).read_text())))


def problems(rst: str) -> list[str]:
    """docutils' messages at warning level or above (the parser reports them on its warning stream), one line each."""
    stream = io.StringIO()
    publish_doctree(rst, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": stream})
    return [line for line in stream.getvalue().splitlines() if re.search(r"\((WARNING|ERROR|SEVERE)/\d\)", line)]


def test_a_bare_bar_pair_is_caught():
    assert any("substitution" in p for p in problems("Tokens with 1 < |λ| < k."))
    assert problems("Tokens with 1 < \\|λ\\| < k.") == []


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("caption", CAPTIONS, ids=lambda p: p.stem)
def test_caption_renders_without_errors(caption, config):
    snakemake = types.SimpleNamespace(config=resolved(config))
    text = jinja2.Template(caption.read_text(encoding="utf-8")).render(snakemake=snakemake)
    assert problems(text) == [], caption.name
