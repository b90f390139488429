"""Every relative link in README.md and docs/*.md points at a file that exists, and a link
with an anchor (`docs/x.md#some-heading`, `#some-heading`) at a heading of that file, by
GitHub's slug of it: the docs are split by task across files, so a moved section must not
leave a link behind that goes nowhere."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: [text](target) and [text](target "title"); images too. Not reference-style links:
#: the docs do not use them (a test below holds them to that).
_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, …


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with code spans blanked out."""
    return [(n, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line))
            for n, line in prose_lines_raw(text)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (markup of links and code removed),
    lowercased, every character that is not a letter, digit, space, hyphen or underscore
    dropped, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's slug; a repeated one gets -1, -2 … as on GitHub."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in prose_lines_raw(path.read_text()):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        out.add(slug)
    return out


def prose_lines_raw(text: str) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, as written (headings keep their code spans)."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, line))
    return out


def links(path: Path) -> list[tuple[int, str]]:
    return [(n, m.group("target")) for n, line in prose_lines(path.read_text())
            for m in _LINK.finditer(line)]


LINKS = [(doc, n, target) for doc in DOCS for n, target in links(doc)
         if not _EXTERNAL.match(target)]


def test_the_docs_have_links_to_check() -> None:
    readme_links = {target for doc, _, target in LINKS if doc.name == "README.md"}
    for page in ("running", "scenarios", "load-and-physics", "stack", "incidents",
                 "rehearsals-and-workshops", "docker", "ci", "results", "architecture",
                 "measurements"):
        assert f"docs/{page}.md" in readme_links, f"the README's contents miss docs/{page}.md"


@pytest.mark.parametrize(("doc", "line", "target"), LINKS,
                         ids=[f"{d.relative_to(REPO)}:{n} {t}" for d, n, t in LINKS])
def test_a_relative_link_points_at_a_file_and_heading_that_exist(doc: Path, line: int,
                                                                 target: str) -> None:
    path_part, _, anchor = target.partition("#")
    dest = (doc.parent / unquote(path_part)).resolve() if path_part else doc
    assert dest.exists(), f"{doc.relative_to(REPO)}:{line}: {target}: no such file"
    assert REPO in dest.parents or dest == REPO, f"{target} leaves the repository"
    if anchor:
        assert dest.suffix == ".md", f"{doc.relative_to(REPO)}:{line}: an anchor into " \
                                     f"{dest.name}, which has no headings"
        known = anchors(dest)
        assert anchor in known, (f"{doc.relative_to(REPO)}:{line}: {target}: no heading "
                                 f"with the slug {anchor!r} in {dest.relative_to(REPO)}")


def test_no_reference_style_links() -> None:
    """[text][ref] links are not checked above, so the docs do not use them."""
    for doc in DOCS:
        for n, line in prose_lines(doc.read_text()):
            assert not re.search(r"\]\[[^\]]+\]", line), f"{doc.relative_to(REPO)}:{n}"


@pytest.mark.parametrize(("heading", "slug"), [
    ("The checkout service's switches", "the-checkout-services-switches"),
    ("On machines unlike this one: `lab conditions`",
     "on-machines-unlike-this-one-lab-conditions"),
    ("Stability: `--repeat N`", "stability---repeat-n"),
    ("`lab drill`: a graded exercise", "lab-drill-a-graded-exercise"),
    ("Instructor's guide", "instructors-guide"),
    ("The lab's own overheads", "the-labs-own-overheads"),
])
def test_github_slugs(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug
