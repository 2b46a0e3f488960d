"""The notebooks' text narrates the paper, not our runs: each opens with the claim it tests, what
the reader will see and how long it takes; no markdown cell is long; and no number in markdown
comes from a run (numbers a run computed are printed by code cells, from that run's metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_MARKDOWN_CHARS = 2000
DECIMAL = re.compile(r"(?<![\w.§])\d+\.\d+(?![\w.])")
# Decimal numbers the notebooks may quote, each with where it comes from. Everything else must be
# computed: a run's numbers belong in code output, the history of runs in docs/FINDINGS.md.
QUOTED = {
    "0.1": "β = 0.1, the paper's weaker binary regularisation (Fig. 2, left)",
    "0.5": "a threshold of 0.5 on a soft mask (the paper's evaluation, released code)",
}
SECTION = re.compile(r"(?:§|Sec\.|Section|section)\s*\d\.\d")


def markdown_cells(path):
    nb = json.loads(path.read_text("utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def paper_table_numbers() -> set[str]:
    text = (REPO / "comgan_lib" / "paper_numbers.yaml").read_text("utf-8")
    return set(DECIMAL.findall(text))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_states_claim_picture_and_time(path):
    first = markdown_cells(path)[0]
    for heading in ("**The paper's claim", "**What you will see", "**How long"):
        assert heading in first, f"{path.name}: first cell lacks {heading}…"
    assert "CPU" in first and "GPU" in first, f"{path.name}: give the time on a CPU and a GPU"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_long_markdown_cell(path):
    for text in markdown_cells(path):
        assert len(text) <= MAX_MARKDOWN_CHARS, f"{path.name}: {text[:60]!r}… is {len(text)} chars"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_quotes_no_run_numbers(path):
    allowed = paper_table_numbers() | set(QUOTED)
    for text in markdown_cells(path):
        text = SECTION.sub("", text)
        stray = [n for n in DECIMAL.findall(text) if n not in allowed]
        assert not stray, f"{path.name}: numbers {stray} in {text[:60]!r}…: compute or quote them"


def test_the_check_catches_a_run_number():
    assert DECIMAL.findall("held-out IoU 0.32, below Otsu's 0.46 (§3.1)") == ["0.32", "0.46"]
    assert SECTION.sub("", "as §3.1 and Section 3.3 say") == "as  and  say"
