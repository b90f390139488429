"""The HTML report: one self-contained page (inline CSS and SVG, no network at view time).

Built from the results JSON, so `lab run --report DIR` and `lab report RESULTS.json DIR`
produce the same page. Sections: the matrix (which mitigation turns the 500s into what),
then per scenario the baseline's three layers (client, app log, infrastructure) and per
variant a timeline chart, the expectations with what they measured, and the alerts.
"""

from __future__ import annotations

import json
import re
import time
from html import escape
from pathlib import Path
from typing import Any

from lab.load.classify import RESPONSE_CLASSES
from lab.report.alerts import evaluate_alerts
from lab.report.charts import CLASS_COLOURS, CLASS_LABELS, timeline_svg
from lab.report.stability import stability_html
from lab.report.table import load_lines
from lab.scenario.physics import calibration_text, mechanism_text

_INTERESTING_METRIC = re.compile(r".*(pool|breaker|disk|recompute|dependency|unhandled|charges).*")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2733;
background:#f6f7f9}
header{background:#1d2733;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#c8d0da}
main{padding:12px 32px 48px;max-width:1280px}
section,article{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:16px 20px;
margin:16px 0}
h2{margin:0 0 8px;font-size:19px} h3{margin:0 0 6px;font-size:16px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid #e6e9ee;padding:4px 10px;text-align:right;vertical-align:top}
th{background:#f0f2f5;font-weight:600} td.l,th.l{text-align:left}
.pass{color:#1e7e34;font-weight:700} .fail{color:#c0392b;font-weight:700}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:700;
color:#fff} .badge.pass{background:#2e9d48;color:#fff} .badge.fail{background:#c0392b;color:#fff}
.badge.warn{background:#e67e22} .badge.lying{background:#c2185b}
.layers{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
.layer{border:1px solid #e6e9ee;border-radius:6px;padding:10px 12px}
.layer h4{margin:0 0 6px;font-size:14px}
.muted{color:#66717f} code{font-size:12px;background:#f0f2f5;padding:1px 4px;border-radius:3px}
figure{margin:8px 0} figure svg{max-width:100%;height:auto}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
"""


def _e(value: object) -> str:
    return escape(str(value))


def _verdict(passed: bool) -> str:
    word = "pass" if passed else "fail"
    return f'<span class="badge {word}">{word.upper()}</span>'


def _variant_verdict(variant: dict[str, Any]) -> str:
    """A variant's badge: PASS, FAIL or INCONCLUSIVE (results files before schema 3 carry
    only `passed`)."""
    verdict = variant.get("verdict") or ("PASS" if variant["passed"] else "FAIL")
    if verdict == "INCONCLUSIVE":
        return '<span class="badge warn">INCONCLUSIVE</span>'
    return _verdict(verdict == "PASS")


def _inconclusive(variant: dict[str, Any]) -> str:
    return "".join(f'<p class="inconclusive"><b>INCONCLUSIVE</b>: {_e(i["what"])}: '
                   f'{_e(i["knob"])}</p>' for i in variant.get("inconclusive") or [])


def _by_scenario(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for v in results["variants"]:
        out.setdefault(v["scenario"], []).append(v)
    return out


# Always shown, zeros included: whether a mitigation left any 500, 502 or 504 is the
# matrix's question, and an absent column cannot say "none".
_MATRIX_ALWAYS = ("2xx", "500", "502", "503", "504")


def _matrix(results: dict[str, Any]) -> str:
    classes = [c for c in RESPONSE_CLASSES if c in _MATRIX_ALWAYS
               or any(v["windows"]["fault"]["by_class"].get(c) for v in results["variants"])]
    head = "".join(
        f'<th><span class="swatch" style="background:{CLASS_COLOURS[c]}"></span>'
        f"{_e(CLASS_LABELS[c])}</th>" for c in classes
    )
    rows = []
    for scenario, variants in _by_scenario(results).items():
        for v in variants:
            w = v["windows"]["fault"]
            cells = []
            for c in classes:
                n = w["by_class"].get(c, 0)
                extra = ""
                if c == "503" and n:
                    extra = f' <span class="muted">({w["retry_after"].get("503", 0)} RA)</span>'
                share = f'<span class="muted"> {100 * n / w["total"]:.0f}%</span>' if n and w[
                    "total"] else ""
                cells.append(f"<td>{n}{extra}{share}</td>")
            p99 = "-" if w["p99_ms"] is None else f'{w["p99_ms"]:.0f}'
            lying = (' <span class="badge lying">lying 200s</span>'
                     if w["by_class"].get("lying_200") else "")
            rows.append(
                f'<tr data-scenario="{_e(scenario)}" data-variant="{_e(v["name"])}">'
                f'<td class="l">{_e(scenario)}</td>'
                f'<td class="l"><a href="#v-{_e(scenario)}-{_e(v["name"])}">{_e(v["name"])}</a>'
                f"{lying}</td><td class=\"l\">{_variant_verdict(v)}</td>{''.join(cells)}"
                f"<td>{w['total']}</td><td>{p99}</td></tr>"
            )
    return (
        '<section id="matrix"><h2>Matrix: what each variant turned the fault into</h2>'
        '<p class="muted">Responses sent during the fault window, by class. For a baseline, '
        "PASS means the incident was reproduced.</p>"
        f'<table><thead><tr><th class="l">scenario</th><th class="l">variant</th>'
        f'<th class="l">verdict</th>{head}<th>total</th><th>p99 ms</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _metric_peaks(variant: dict[str, Any]) -> list[tuple[str, float, float]]:
    peaks: dict[str, dict[str, float]] = {}
    for sec in variant["timeline"]:
        if sec["phase"] not in ("before", "fault"):
            continue
        for metrics in sec.get("metrics", {}).values():
            for name, value in metrics.items():
                if _INTERESTING_METRIC.fullmatch(name):
                    slot = peaks.setdefault(name, {"before": 0.0, "fault": 0.0})
                    slot[sec["phase"]] = max(slot[sec["phase"]], float(value))
    return [(n, p["before"], p["fault"]) for n, p in sorted(peaks.items())]


def _layers(variant: dict[str, Any]) -> str:
    w = variant["windows"]["fault"]
    client = "".join(f"<tr><td class=\"l\">{_e(CLASS_LABELS.get(c, c))}</td><td>{n}</td></tr>"
                     for c, n in w["by_class"].items())
    sigs = variant["signatures"]
    app = ("".join(
        f'<tr><td class="l"><code>{_e(s["exception"])}</code><br>'
        f'<span class="muted">{_e(s["frame"])}</span><br>'
        f'<span class="muted">{_e(s["message"])}</span></td><td>{s["count"]}</td>'
        f'<td class="l"><code>{_e(s["example_error_id"][:13])}…</code></td></tr>'
        for s in sigs) or '<tr><td class="l muted">no unhandled exceptions logged</td></tr>')
    ev = variant["evidence"]
    facts = "".join(f'<tr><td class="l">{_e(k)}</td><td class="l">{_e(v)}</td></tr>'
                    for k, v in ev["facts"].items() if k != "definition")
    peaks = "".join(f'<tr><td class="l"><code>{_e(n)}</code></td><td>{b:g}</td><td>{f:g}</td></tr>'
                    for n, b, f in _metric_peaks(variant))
    return (
        '<div class="layers">'
        f'<div class="layer" id="layer-client"><h4>What the client saw</h4>'
        f'<table><tr><th class="l">class</th><th>requests</th></tr>{client}</table></div>'
        f'<div class="layer" id="layer-app"><h4>What the app logged</h4>'
        f'<table><tr><th class="l">signature (type, frame)</th><th>count</th>'
        f'<th class="l">example errorId</th></tr>{app}</table></div>'
        f'<div class="layer" id="layer-infra"><h4>What the infrastructure showed</h4>'
        f'<p>fault took effect: {_verdict(bool(ev["took_effect"]))}</p>'
        f"<table>{facts}</table>"
        f'<table><tr><th class="l">metric</th><th>max before</th><th>max in fault</th></tr>'
        f"{peaks}</table></div></div>"
    )


def _expectations(variant: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td class="l">{_verdict(e["passed"])}</td><td class="l">{_e(e["text"])}</td>'
        f'<td class="l">{_e(e["measured"])}</td>'
        f'<td class="l muted">{_e(e.get("note") or "")}</td></tr>'
        for e in variant["expectations"]
    )
    return (f'<table class="expectations"><tr><th class="l">verdict</th>'
            f'<th class="l">expectation</th><th class="l">measured</th><th class="l">note</th>'
            f"</tr>{rows}</table>")


def _alerts(variant: dict[str, Any]) -> str:
    rows = []
    for a in (r.to_json() for r in evaluate_alerts(variant)):
        if not a["applicable"]:
            continue
        if a["fired"]:
            badge = "fail" if a["severity"] == "page" else "warn"
            fired = f'<span class="badge {badge}">FIRED</span>'
            when = f'{a["after_fault_start_s"]:+g} s'
            resolved = "still firing" if a["resolved_s"] is None else f't={a["resolved_s"]} s'
        else:
            fired, when, resolved = '<span class="pass">quiet</span>', "-", "-"
        rows.append(
            f'<tr><td class="l">{_e(a["name"])}</td><td class="l">{_e(a["severity"])}</td>'
            f'<td class="l">{_e(a["description"])}</td><td class="l">{fired}</td>'
            f"<td>{when}</td><td>{resolved}</td></tr>"
        )
    return (f'<table class="alerts"><tr><th class="l">alert</th><th class="l">severity</th>'
            f'<th class="l">rule</th><th class="l">state</th><th>after fault start</th>'
            f'<th>resolved</th></tr>{"".join(rows)}</table>')


def _physics(variant: dict[str, Any]) -> str:
    """How the load was sized on this machine, and the mechanism as it played out."""
    out = []
    if variant.get("calibration"):
        out.append(f'<p class="physics"><b>calibration</b>: '
                   f'{_e(calibration_text(variant["calibration"]))}</p>')
    mech = variant.get("mechanism")
    if mech:
        out.append(f'<p class="physics"><b>physics</b>: {_e(mechanism_text(mech))}</p>')
        if mech.get("why_not"):
            out.append(f'<p class="physics why-not"><b>why it did not reproduce</b>: '
                       f'{_e(mech["why_not"])}</p>')
    return "".join(out)


def _variant(variant: dict[str, Any]) -> str:
    anchor = f'v-{variant["scenario"]}-{variant["name"]}'
    config = ", ".join(f"<code>{_e(k)}={_e(v)}</code>" for k, v in variant["config"].items())
    # An open-model load that dropped arrivals or fell behind its target says so here.
    load = "".join(f'<p class="load">{_e(line)}</p>'
                   for line in load_lines(variant.get("load", {})))
    physics = _physics(variant)
    layers = ""
    if variant["name"] == "baseline":
        layers = "<h4>The three layers of the incident</h4>" + _layers(variant)
    return (
        f'<article class="variant" id="{_e(anchor)}" data-variant="{_e(variant["name"])}">'
        f'<h3>{_e(variant["name"])} {_variant_verdict(variant)}</h3>'
        f'<p>{_e(variant["description"])}</p><p class="muted">config: {config or "-"}</p>'
        f"{_inconclusive(variant)}{load}{physics}{layers}"
        f'<figure class="timeline-chart">{timeline_svg(variant)}'
        f"<figcaption class=\"muted\">Per second: responses by class (fault window shaded), "
        f"client latency, and the service's own series.</figcaption></figure>"
        f"<h4>Expectations</h4>{_expectations(variant)}"
        f"<h4>Alerts</h4>{_alerts(variant)}</article>"
    )


def render_html(results: dict[str, Any], title: str = "chaoslab report") -> str:
    sections = []
    for scenario, variants in _by_scenario(results).items():
        sections.append(
            f'<section class="scenario" id="s-{_e(scenario)}"><h2>{_e(scenario)}</h2>'
            + "".join(_variant(v) for v in variants) + "</section>"
        )
    n = len(results["variants"])
    verdicts = [v.get("verdict") or ("PASS" if v["passed"] else "FAIL")
                for v in results["variants"]]
    failed, unsure = verdicts.count("FAIL"), verdicts.count("INCONCLUSIVE")
    summary = "; ".join(part for part in (
        f"{failed} of {n} variants FAILED" if failed else "",
        f"{unsure} of {n} INCONCLUSIVE" if unsure else "") if part) or "every expectation held"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{_CSS}</style></head><body><header><h1>{_e(title)}</h1>"
        f"<p>{n} variant(s): {summary} · generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>"
        f"</header><main>{_matrix(results)}{stability_html(results)}"
        f"{''.join(sections)}</main></body></html>"
    )


def write_report(results: dict[str, Any], directory: Path) -> Path:
    """Write index.html (and the results it was made from) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, indent=2))
    page = directory / "index.html"
    page.write_text(render_html(results), encoding="utf-8")
    return page
