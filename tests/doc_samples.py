"""The sample outputs in the docs, and their shape, so a test can check that what the lab
prints still looks like what the docs show a newcomer.

A sample is the first fenced block after the paragraph that introduces it (found by a
phrase of that paragraph). Two outputs have the same *shape* when they have the same
lines in the same order once the measured parts are set aside: numbers become `#`, runs
of dashes (a table's rule, whose width follows its figures) one dash, and a line of the
form `label: measured text` (an expectation, `ledger:`, `physics:` …) keeps only what is
before its first `: `.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sample_after(doc: str, phrase: str) -> list[str]:
    """The lines of the first fenced block after `phrase` in `doc` (a path from the repo)."""
    text = (REPO / doc).read_text()
    at = text.index(phrase)
    start = text.index("```", at)
    body_start = text.index("\n", start) + 1
    end = text.index("```", body_start)
    return text[body_start:end].rstrip("\n").split("\n")


def shape(line: str, labelled: bool = True) -> str:
    """A line with its measured figures set aside (`labelled`: also what follows the
    line's label)."""
    line = " ".join(line.split())
    if labelled and ": " in line:
        line = line.split(": ", 1)[0]
    line = re.sub(r"\d+(\.\d+)?", "#", line)
    return re.sub(r"-{2,}", "-", line)


#: Lines a variant's block has only when what they report happened (drops at the cap, a
#: second instance answering, lying 200s, fallbacks, a baseline that did not reproduce).
CONDITIONAL = ("load:", "served by:", "LYING 200s:", "fallbacks:", "why it did not reproduce:")


def block(lines: list[str], first: str) -> list[str]:
    """The lines from the one starting with `first` up to the next blank line, without
    the conditional ones."""
    at = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next((i for i in range(at, len(lines)) if not lines[i].strip()), len(lines))
    return [line for line in lines[at:end] if not line.strip().startswith(CONDITIONAL)]


def table_head(lines: list[str], title_start: str) -> list[str]:
    """A table's title, column header and rule (the three lines from `title_start`)."""
    at = next(i for i, line in enumerate(lines) if line.startswith(title_start))
    return [shape(line, labelled=False) for line in lines[at:at + 3]]
