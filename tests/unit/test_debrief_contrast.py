"""The debrief's header is read off a projector: every text in it (the fault's name
included, which was white on #eee) must stand out from what is behind it. A small CSS
cascade over the page's own <style> (tag, .class and #id selectors, descendant chains,
specificity then order; colour inherits, a background shows through from the nearest
ancestor that has one), so the test reads what the browser would paint."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import ClassVar

from lab.live.debrief import render_debrief
from tests.unit.test_debrief import RECORD

Element = tuple[str, frozenset[str], str]  # tag, classes, id

_SIMPLE = re.compile(r"([a-z0-9]*)((?:[.#][\w-]+)*)")


def rules(css: str) -> list[tuple[list[str], dict[str, str]]]:
    out = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = dict((k.strip(), v.strip()) for k, v in
                     (d.split(":", 1) for d in body.split(";") if ":" in d))
        for selector in selectors.split(","):
            out.append((selector.split(), decls))
    return out


def _matches_simple(simple: str, el: Element) -> bool:
    if simple == "*":
        return True
    m = _SIMPLE.fullmatch(simple)
    assert m is not None, simple
    tag, rest = m.group(1), m.group(2)
    if tag and tag != el[0]:
        return False
    for kind, name in re.findall(r"([.#])([\w-]+)", rest):
        if (kind == "." and name not in el[1]) or (kind == "#" and name != el[2]):
            return False
    return True


def _matches(chain: list[str], path: list[Element]) -> bool:
    """A descendant selector against the element at the end of `path`."""
    if not _matches_simple(chain[-1], path[-1]):
        return False
    i = len(path) - 2
    for simple in reversed(chain[:-1]):
        while i >= 0 and not _matches_simple(simple, path[i]):
            i -= 1
        if i < 0:
            return False
        i -= 1
    return True


def _specificity(chain: list[str]) -> tuple[int, int, int]:
    text = " ".join(chain)
    return (text.count("#"), text.count("."),
            sum(1 for s in chain if _SIMPLE.fullmatch(s) and _SIMPLE.fullmatch(s).group(1)))  # type: ignore[union-attr]


def own(prop: str, path: list[Element], css: list[tuple[list[str], dict[str, str]]]) -> str | None:
    found = [(_specificity(chain), n, decls) for n, (chain, decls) in enumerate(css)
             if _matches(chain, path)]
    for _, _, decls in sorted(found, key=lambda f: (f[0], f[1]), reverse=True):
        if prop in decls:
            return decls[prop]
        if prop == "background-color" and "background" in decls:
            return decls["background"]
    return None


def colour(path: list[Element], css: list[tuple[list[str], dict[str, str]]]) -> str:
    for depth in range(len(path), 0, -1):  # colour inherits
        if (value := own("color", path[:depth], css)) is not None:
            return value
    return "#000"


def background(path: list[Element], css: list[tuple[list[str], dict[str, str]]]) -> str:
    for depth in range(len(path), 0, -1):  # a background shows through
        if (value := own("background-color", path[:depth], css)) is not None:
            return value
    return "#fff"


def luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


class _Header(HTMLParser):
    """The element paths of everything in <header> that holds text."""

    VOID: ClassVar[set[str]] = {"br", "img", "meta", "link", "hr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[Element] = []
        self.texts: list[tuple[list[Element], str]] = []
        self.style = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        a = dict(attrs)
        self.stack.append((tag, frozenset((a.get("class") or "").split()), a.get("id") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1][0] == "style" and self.stack[-2][0] == "head":
            self.style += data  # the page's own; an inline SVG chart carries its own
        elif data.strip() and any(el[0] == "header" for el in self.stack):
            self.texts.append((list(self.stack), data.strip()))


def test_every_text_in_the_header_stands_out_from_its_background() -> None:
    page = _Header()
    page.feed(render_debrief(RECORD))
    css = rules(page.style)
    fault = [(path, text) for path, text in page.texts if path[-1][0] == "code"]
    assert fault and fault[0][1] == RECORD["fault_kind"]  # the fault's name is checked
    for path, text in page.texts:
        fg, bg = colour(path, css), background(path, css)
        assert fg != bg, (text, fg, bg)
        # WCAG AA for normal text: 4.5:1
        assert contrast(fg, bg) >= 4.5, f"{text!r}: {fg} on {bg} ({contrast(fg, bg):.2f}:1)"


def test_the_cascade_sees_what_the_fix_fixed() -> None:
    """Without `header code{…}` the fault's name inherits the header's white onto
    code's #eee: the test above would fail on it."""
    css = rules("header{background:#111;color:#fff} header p{color:#f2f2f2}"
                "code{background:#eee}")
    path: list[Element] = [("body", frozenset(), ""), ("header", frozenset(), ""),
                           ("p", frozenset(), "incident"), ("code", frozenset(), "")]
    assert (colour(path, css), background(path, css)) == ("#f2f2f2", "#eee")
    assert contrast("#f2f2f2", "#eee") < 1.2
