"""Stability of repeated runs as text (the terminal) and as an HTML section (the report).

The figures come from lab.verdict.stability; this module only lays them out. The terminal form
is built from the typed aggregates, the HTML form from the results JSON's `stability`
section, so `lab report results.json DIR` shows the same thing as `lab run --report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from lab.verdict.stability import VariantStability, format_margin, format_value

_MARGIN_HELP = ("margin: how far the worst run stayed from the bound; negative = a run "
                "crossed it")


def _grid(rows: list[list[str]], left: set[int], indent: str = "") -> list[str]:
    """Columns padded to width; columns in `left` flush left (text), the rest right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i in left else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out.append(indent + "  ".join(cells).rstrip())
        if n == 0:
            out.append(indent + "  ".join("-" * w for w in widths))
    return out


def _by_scenario(stats: Sequence[VariantStability]) -> dict[str, list[VariantStability]]:
    out: dict[str, list[VariantStability]] = {}
    for s in stats:
        out.setdefault(s.scenario, []).append(s)
    return out


def render_stability(stats: Sequence[VariantStability], repeat: int) -> str:
    """Per scenario: variant, passes k/N, tightest expectation and its margin; then per
    variant every expectation's min / median / max and margin."""
    out: list[str] = []
    for scenario, variants in _by_scenario(stats).items():
        out.append(f"{scenario}: stability over {repeat} runs per variant ({_MARGIN_HELP})")
        rows = [["variant", "passes", "tightest expectation", "margin"]]
        for v in variants:
            t = v.tightest
            flag = "" if v.passes == v.runs else " !"
            rows.append([v.variant, f"{v.passes}/{v.runs}{flag}",
                         "-" if t is None else t.text,
                         "-" if t is None else format_margin(t.margin, t.unit)])
        out += _grid(rows, left={0, 1, 2})
        out.append("")
        for v in variants:
            out.append(f"{v.variant}: {v.passes} of {v.runs} runs passed{_apart(v)}")
            rows = [["expectation", "passes", "min", "median", "max", "margin"]]
            notes = []
            for e in v.expectations:
                rows.append([e.text, f"{e.passes}/{e.runs}", format_value(e.min, e.unit),
                             format_value(e.median, e.unit), format_value(e.max, e.unit),
                             format_margin(e.margin, e.unit)])
                if e.unmeasured and e.bound is not None:
                    notes.append(f"  {e.text}: {e.unmeasured} run(s) measured nothing "
                                 "(not in min/median/max or the margin)")
            out += _grid(rows, left={0}, indent="  ")
            out += notes
            out.append("")
    return "\n".join(out).rstrip("\n")


def _apart(v: VariantStability) -> str:
    """The runs that neither passed nor failed: inconclusive ones, and ones that broke off."""
    parts = [f"{v.inconclusive} INCONCLUSIVE" if v.inconclusive else "",
             f"{v.errored} broke off with an error" if v.errored else ""]
    shown = ", ".join(p for p in parts if p)
    return f" ({shown})" if shown else ""


def _e(value: object) -> str:
    return escape(str(value))


def _passes(v: dict[str, Any]) -> str:
    word = "pass" if v["passes"] == v["runs"] else "fail"
    return f'<span class="badge {word}">{v["passes"]}/{v["runs"]}</span>'


def stability_html(results: dict[str, Any]) -> str:
    """The report's stability section; empty when the results carry none (one run each)."""
    section = results.get("stability")
    if not section or section.get("repeat", 1) <= 1:
        return ""
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for v in section["variants"]:
        by_scenario.setdefault(v["scenario"], []).append(v)
    parts = []
    for scenario, variants in by_scenario.items():
        rows = "".join(
            f'<tr data-variant="{_e(v["variant"])}"><td class="l">{_e(v["variant"])}</td>'
            f"<td>{_passes(v)}</td>"
            f'<td class="l">{_e(v["tightest"]["text"] if v["tightest"] else "-")}</td>'
            f'<td>{_e(v["tightest"]["shown"] if v["tightest"] else "-")}</td></tr>'
            for v in variants)
        details = []
        for v in variants:
            exp_rows = "".join(
                f'<tr><td class="l">{_e(e["text"])}</td><td>{e["passes"]}/{e["runs"]}</td>'
                f'<td>{_e(e["shown"]["min"])}</td><td>{_e(e["shown"]["median"])}</td>'
                f'<td>{_e(e["shown"]["max"])}</td><td>{_e(e["shown"]["margin"])}</td></tr>'
                for e in v["expectations"])
            apart = "".join(f" ({v[key]} {word})" for key, word in (
                ("inconclusive", "INCONCLUSIVE"), ("errored", "broke off")) if v.get(key))
            details.append(
                f'<h4>{_e(v["variant"])}: {v["passes"]} of {v["runs"]} runs passed{apart}</h4>'
                f'<table class="stability-expectations"><tr><th class="l">expectation</th>'
                f"<th>passes</th><th>min</th><th>median</th><th>max</th><th>margin</th></tr>"
                f"{exp_rows}</table>")
        parts.append(
            f'<h3>{_e(scenario)}</h3><table class="stability"><tr><th class="l">variant</th>'
            f'<th>passes</th><th class="l">tightest expectation</th><th>margin</th></tr>'
            f"{rows}</table>{''.join(details)}")
    return (
        f'<section id="stability"><h2>Stability over {section["repeat"]} runs per variant</h2>'
        f'<p class="muted">Passes: runs in which every expectation held. Min / median / max: '
        f"what each expectation measured over the runs. Margin: how far the worst run stayed "
        f"from the bound (negative: a run crossed it); rates in percentage points.</p>"
        f"{''.join(parts)}</section>"
    )
