"""The README and docs/ stay what a new reader needs: a short README whose links resolve, and an
equation map whose every function exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text("utf-8")
    assert len(text) <= 10_000, f"README.md is {len(text)} characters"
    first_block = text.split("```")[1]
    assert "make reproduce" in first_block and "make test" in first_block


def test_every_relative_link_of_readme_and_docs_resolves():
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text("utf-8")):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("comgan_lib." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_function_named_in_the_equation_map_exists():
    text = (REPO / "docs" / "EQUATIONS.md").read_text("utf-8")
    names = {n for n in re.findall(r"`([a-z_]+(?:\.[A-Za-z_0-9]+)+)`", text) if ".yaml" not in n}
    assert len(names) > 20
    missing = sorted(n for n in names if not _resolves(n))
    assert not missing, f"docs/EQUATIONS.md names what comgan_lib does not have: {missing}"
