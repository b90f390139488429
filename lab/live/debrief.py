"""The debrief page a drill ends with: one self-contained HTML file from the drill record.

It is shown on a projector to the room that just played, so it is large type and high
contrast, and it needs no network (inline CSS and SVG, no fonts or scripts fetched).
Sections: who played and what the hidden incident was, the score, the timeline with the
participants' actions on it, the incident's three layers (what users saw, what the app
logged, what the infrastructure showed), and what each of the scenario's mitigations
would have done. The record's layout is the drill's (lab.live.drill, drill.json); every
field is read defensively so a debrief of a half-finished drill still renders.
"""

from __future__ import annotations

import io
import math
import re
import time
from collections.abc import Mapping, Sequence
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt

from lab.live.series import BAD_CLASSES, BARE_503
from lab.load.classify import RESPONSE_CLASSES
from lab.report.charts import CLASS_COLOURS, CLASS_LABELS

#: Live data tells a bare 503 apart ("503" alone is the honest one, with Retry-After).
_LABELS = {**CLASS_LABELS, "503": "503 + Retry-After", BARE_503: "503 without Retry-After"}
_COLOURS = {**CLASS_COLOURS, BARE_503: "#6a1b9a"}
_CLASS_ORDER = (*RESPONSE_CLASSES[:7], BARE_503, *RESPONSE_CLASSES[7:])
_GOOD = "#2e9d48"
_ACTION_COLOURS = {"diagnose": "#1f5fbf", "mitigate": "#007a5a", "hint": "#b35c00",
                   "rollback": "#555555"}

_CSS = """
body{font:22px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;
color:#111;background:#fff}
header{background:#111;color:#fff;padding:24px 40px}
header h1{margin:0;font-size:38px} header p{margin:8px 0 0;font-size:24px;color:#f2f2f2}
main{padding:8px 40px 64px;max-width:1700px}
section{border-top:4px solid #111;margin:28px 0 0;padding-top:8px}
h2{font-size:32px;margin:4px 0 12px} h3{font-size:26px;margin:16px 0 8px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:21px}
th,td{border-bottom:2px solid #ccc;padding:6px 14px;text-align:right;vertical-align:top}
th{background:#e8e8e8} td.l,th.l{text-align:left}
code{font:20px ui-monospace,Menlo,Consolas,monospace;background:#eee;padding:1px 5px}
header code{background:#f2f2f2;color:#111}
.points{font-size:64px;font-weight:800;margin:0}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;color:#fff;
font-size:18px;background:#333}
.pass{background:#1b6e2e} .fail{background:#b00020} .bad{background:#b00020}
.you{background:#1f5fbf} .control{background:#8a4b00}
.muted{color:#444} .layers{display:grid;grid-template-columns:1fr;gap:8px}
figure{margin:8px 0} figure svg{width:100%;height:auto}
"""


def _e(value: object) -> str:
    return escape(str(value))


def _num(value: Any) -> float | None:
    """A number from the record, or None: a hand-edited or partial record must not crash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _clock(t: float | None) -> str:
    return "-" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def _kv(value: Any) -> str:
    """Args and outcomes of actions, nested score parts: short `key: value` text."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_kv(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_kv(v) for v in value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class _Times:
    """The drill's clock: chart and tables count seconds from the stack being ready."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        seconds = _dicts(record.get("seconds"))
        first = _num(seconds[0].get("t")) if seconds else None
        self.start = _num(record.get("started_at")) or first or 0.0
        self.injected = _num(record.get("injected_at"))
        last = _num(seconds[-1].get("t")) if seconds else None
        self.end = _num(record.get("ended_at")) or (last + 1 if last is not None else self.start)

    def rel(self, t: float) -> float:
        return t - self.start

    def in_fault(self, t: float) -> bool:
        return self.injected is not None and self.injected <= t <= self.end

    def before_fault(self, t: float) -> bool:
        return self.injected is None or t < self.injected

    def second_in_fault(self, t: float) -> bool:
        """The second [t, t+1) overlaps the fault: the window the score counts."""
        return self.injected is not None and t + 1 > self.injected and t < self.end

    def second_before_fault(self, t: float) -> bool:
        return self.injected is None or t + 1 <= self.injected

    def label(self, t: float | None) -> str:
        """`+12 s after the fault` when there was one, else since the start."""
        if t is None:
            return "-"
        if self.injected is not None:
            return f"{t - self.injected:+.0f} s"
        return f"{t - self.start:.0f} s"


# ---------------------------------------------------------------- header and score


def _header(record: Mapping[str, Any], times: _Times) -> str:
    players = sorted({str(a.get("player")) for a in _dicts(record.get("actions"))
                      if a.get("player")} | ({str(record["player"])} if record.get("player")
                                             else set()))
    pool = record.get("pool")
    drawn = (f" · drawn from: {_e(', '.join(str(p) for p in pool))}"
             if isinstance(pool, list) and pool else "")
    injected = ("never injected" if times.injected is None else
                f"injected {times.injected - times.start:.0f} s after ready")
    summary = (f'<p class="summary">{_e(record["summary"])}</p>'
               if record.get("summary") else "")
    return (
        f"<header><h1>Debrief: {_e(record.get('title') or record.get('scenario') or 'drill')}"
        f"</h1><p>player{'s' if len(players) > 1 else ''}: "
        f"<b>{_e(', '.join(players) or '-')}</b> · seed {_e(record.get('seed', '-'))}</p>"
        f'<p id="incident">incident: <b>{_e(record.get("scenario") or "-")}</b> '
        f"(fault <code>{_e(record.get('fault_kind') or '-')}</code>){drawn}</p>"
        f"<p>ready {_clock(times.start)} · {injected} · ended {_clock(times.end)} "
        f"({times.end - times.start:.0f} s)</p>{summary}</header>"
    )


# Readable names for the parts of lab.live.score's Score.to_json(); a key not listed here
# is shown as it is, so a part added to the score later still reaches the page.
_SCORE_LABELS = {
    "cause": "the incident's class", "bad": "bad answers users saw", "bad_500": "of them 500s",
    "bad_lying_200": "of them lying 200s", "bad_other": "of them other bad answers",
    "answers": "answers during the fault", "detect_s": "time to detect",
    "diagnose_s": "time to diagnose", "diagnosis": "diagnosis",
    "wrong_diagnoses": "wrong diagnoses", "mitigate_s": "time to mitigate",
    "hints": "hints used",
}
_HEADLINE = ("points", "score", "total")


def _score_value(key: str, value: Any) -> str:
    if value is None:
        return "never" if key.endswith("_s") else "-"
    if key.endswith("_s") and _num(value) is not None:
        return f"{value:.1f} s"
    return _kv(value)


def _breakdown(terms: Any) -> str:
    """How the points add up, one term a row, in the score's own order."""
    rows = "".join(
        f'<tr class="term"><td class="l">{_e(t.get("what", "?"))}</td>'
        f'<td>{_e(f"{p:+g}" if (p := _num(t.get("points"))) is not None else "-")}</td></tr>'
        for t in _dicts(terms))
    if not rows:
        return ""
    return ('<table id="breakdown"><tr><th class="l">how the points add up</th>'
            f"<th>points</th></tr>{rows}</table>")


def _score(record: Mapping[str, Any]) -> str:
    score = record.get("score")
    if not isinstance(score, Mapping) or not score:
        return '<section id="score"><h2>Score</h2><p>not scored</p></section>'
    headline = next((k for k in _HEADLINE if _num(score.get(k)) is not None), None)
    top = (f'<p class="points">{_e(f"{score[headline]:g}")} {_e(headline)}</p>'
           if headline else "")
    rows = "".join(
        f'<tr><td class="l">{_e(_SCORE_LABELS.get(str(k), str(k).replace("_", " ")))}'
        f'</td><td class="l">{_e(_score_value(str(k), v))}</td></tr>'
        for k, v in score.items() if k not in (headline, "breakdown"))
    return (f'<section id="score"><h2>Score</h2>{top}{_breakdown(score.get("breakdown"))}'
            f'<table id="measured">{rows}</table></section>')


# ---------------------------------------------------------------- timeline


def _action_text(action: Mapping[str, Any]) -> str:
    """What was done, in the words a participant typed."""
    kind = str(action.get("kind") or "?")
    args = action.get("args")
    args = args if isinstance(args, Mapping) else {}
    if kind == "diagnose":
        return f"diagnose {args.get('cause', '?')}"
    if kind == "mitigate":
        switches = args.get("switches")
        if isinstance(switches, Mapping):
            return "mitigate " + " ".join(f"{k}={v}" for k, v in switches.items())
    extra = _kv({k: v for k, v in args.items() if k != "player"})
    return f"{kind} {extra}".strip()


def _timed_actions(record: Mapping[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    acts = [(t, a) for a in _dicts(record.get("actions"))
            if (t := _num(a.get("t"))) is not None]
    return sorted(acts, key=lambda pair: pair[0])


def _stack(seconds: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per-second counts in the layers the chart stacks: good, honest 503, then each bad
    class apart (which failure users saw matters more than how many good answers)."""
    layers: dict[str, list[float]] = {"good": [], "503": []}
    bad = [c for c in _CLASS_ORDER if c in BAD_CLASSES]
    for cls in bad:
        layers[cls] = []
    for sec in seconds:
        counts = sec.get("counts")
        counts = counts if isinstance(counts, Mapping) else {}
        good = sum(n for c, n in counts.items()
                   if c not in BAD_CLASSES and c not in ("503", "dropped") and _num(n))
        layers["good"].append(float(good))
        for cls in ["503", *bad]:
            layers[cls].append(float(_num(counts.get(cls)) or 0.0))
    return {k: v for k, v in layers.items() if k == "good" or any(v)}


def _strip_svg(svg: str) -> str:
    """Inline SVG in HTML needs neither the XML prolog nor namespace declarations, and
    leaving them out keeps every http:// string off the page."""
    svg = svg[svg.index("<svg"):]
    return re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)


def timeline_svg(record: Mapping[str, Any]) -> str:
    """Responses per second (stacked) and p50/p99, with the injection and every action
    marked: the actions carry ids `action-N` (numbered as in the actions table). A fixed
    hash salt makes the SVG's ids, so the page, the same for the same record."""
    with plt.rc_context({"font.size": 15, "svg.hashsalt": "chaoslab-debrief"}):
        return _timeline_svg(record)


def _timeline_svg(record: Mapping[str, Any]) -> str:
    times = _Times(record)
    seconds = [s for s in _dicts(record.get("seconds")) if _num(s.get("t")) is not None]
    xs = [times.rel(float(s["t"])) for s in seconds]
    edges = [*xs, xs[-1] + 1] if xs else [0.0, 1.0]
    fig, (bars, latency) = plt.subplots(2, 1, figsize=(16, 7.5), sharex=True,
                                        height_ratios=(3, 1.4), constrained_layout=True)
    bottom = [0.0] * len(xs)
    for name, counts in _stack(seconds).items():
        top = [b + c for b, c in zip(bottom, counts, strict=True)]
        colour = _GOOD if name == "good" else _COLOURS.get(name, "#999999")
        label = "good (2xx, fallback, 4xx)" if name == "good" else _LABELS.get(name, name)
        if xs:
            bars.fill_between(edges, [*bottom, bottom[-1]], [*top, top[-1]], step="post",
                              color=colour, linewidth=0, label=label)
        bottom = top
    bars.set_ylabel("responses / s")
    if xs:  # the legend lists the layers top down, as they are stacked
        handles, labels = bars.get_legend_handles_labels()
        bars.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0),
                    frameon=False)
    for key, style in (("p50_ms", "-"), ("p99_ms", "--")):
        ys = [_num(s.get(key)) for s in seconds]
        latency.plot([x + 0.5 for x in xs], [math.nan if y is None else y for y in ys], style,
                     color="#222222", label=key.removesuffix("_ms"), linewidth=1.8)
    latency.set_ylabel("latency ms")
    if xs:
        latency.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    latency.set_xlabel("seconds since the stack was ready")
    for ax in (bars, latency):
        ax.grid(axis="y", alpha=0.35)
        ax.spines[["top", "right"]].set_visible(False)
    if times.injected is not None:
        x = times.rel(times.injected)
        for ax in (bars, latency):
            ax.axvline(x, color="#b00020", linestyle="--", linewidth=2.5, gid="injection")
        bars.text(x, 1.01, "fault injected", transform=bars.get_xaxis_transform(),
                  color="#b00020", fontweight="bold", ha="center", va="bottom")
    for n, (t, action) in enumerate(_timed_actions(record), start=1):
        x = times.rel(t)
        colour = _ACTION_COLOURS.get(str(action.get("kind")), "#333333")
        bars.axvline(x, color=colour, linewidth=2.2, gid=f"action-{n}")
        latency.axvline(x, color=colour, linewidth=2.2)
        bars.text(x, 0.97, f"{n} {action.get('kind', '?')}", rotation=90, ha="center",
                  va="top", color=colour, fontweight="bold",
                  bbox={"facecolor": "white", "edgecolor": colour, "pad": 2.5},
                  transform=bars.get_xaxis_transform(), gid=f"action-label-{n}")
    buf = io.StringIO()
    fig.savefig(buf, format="svg",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    return _strip_svg(buf.getvalue())


def _timeline(record: Mapping[str, Any], times: _Times) -> str:
    rows = []
    for n, (t, action) in enumerate(_timed_actions(record), start=1):
        kind = str(action.get("kind") or "?")
        colour = _ACTION_COLOURS.get(kind, "#333333")
        rows.append(
            f'<tr class="action" data-kind="{_e(kind)}"><td>{n}</td><td>{_e(times.label(t))}'
            f'</td><td class="l">{_e(action.get("player") or "-")}</td>'
            f'<td class="l"><b style="color:{colour}">{_e(_action_text(action))}</b></td>'
            f'<td class="l">{_e(_kv(action.get("outcome")))}</td></tr>')
    table = (
        '<table id="actions"><tr><th>#</th><th>when</th><th class="l">player</th>'
        f'<th class="l">action</th><th class="l">outcome</th></tr>{"".join(rows)}</table>'
        if rows else "<p>No one acted during the drill.</p>")
    when = "times relative to the fault's injection" if times.injected is not None else \
        "times since the stack was ready"
    return (
        '<section id="timeline"><h2>Timeline</h2>'
        f'<figure class="timeline-chart">{timeline_svg(record)}</figure>'
        f'<h3>Actions</h3><p class="muted">{when}</p>{table}</section>'
    )


# ---------------------------------------------------------------- the three layers


def _users(record: Mapping[str, Any], times: _Times) -> str:
    before: dict[str, int] = {}
    during: dict[str, int] = {}
    for sec in _dicts(record.get("seconds")):
        t = _num(sec.get("t"))
        counts = sec.get("counts")
        if t is None or not isinstance(counts, Mapping):
            continue
        slot = (during if times.second_in_fault(t) else
                before if times.second_before_fault(t) else None)
        if slot is None:
            continue
        for cls, n in counts.items():
            if cls != "dropped" and _num(n):
                slot[str(cls)] = slot.get(str(cls), 0) + int(n)
    total = sum(during.values())
    order = [c for c in _CLASS_ORDER if c in before or c in during]
    order += sorted((set(before) | set(during)) - set(order))
    flag = ' <span class="badge bad">bad</span>'
    rows = "".join(
        f'<tr data-class="{_e(c)}"><td class="l">{_e(_LABELS.get(c, c))}'
        f'{flag if c in BAD_CLASSES else ""}</td>'
        f"<td>{before.get(c, 0)}</td><td>{during.get(c, 0)}</td>"
        f"<td>{f'{100 * during.get(c, 0) / total:.0f} %' if total else '-'}</td></tr>"
        for c in order)
    bad = sum(n for c, n in during.items() if c in BAD_CLASSES)
    return (
        '<div class="layer" id="layer-users"><h3>What users saw</h3>'
        f"<p>{bad} bad answers of {total} during the fault.</p>"
        '<table><tr><th class="l">class</th><th>before the fault</th>'
        f"<th>during the fault</th><th>share</th></tr>{rows}</table></div>"
    )


def _app(record: Mapping[str, Any]) -> str:
    sigs = sorted(_dicts(record.get("errors")), key=lambda s: -(_num(s.get("count")) or 0))
    rows = "".join(
        f'<tr class="signature"><td class="l"><code>{_e(s.get("exception", "?"))}</code><br>'
        f'<span class="muted">{_e(s.get("frame", ""))}</span><br>{_e(s.get("message", ""))}'
        f'</td><td>{_e(s.get("count", "-"))}</td>'
        f'<td class="l"><code>{_e(s.get("errorId") or "-")}</code></td></tr>' for s in sigs)
    body = (f'<table><tr><th class="l">signature (exception, frame, message)</th>'
            f'<th>count</th><th class="l">an errorId to grep for</th></tr>{rows}</table>'
            if rows else "<p>No unhandled exceptions were logged.</p>")
    return f'<div class="layer" id="layer-app"><h3>What the app logged</h3>{body}</div>'


# Shown first when present: the incidents' causes (pool, breaker, disk, cache), then the rest.
_INFRA_ORDER = ("checkout_db_pool_", "checkout_breaker_", "checkout_data_",
                "checkout_catalog_cache_", "checkout_dependency_", "checkout_unhandled_")


def _how(metric: str) -> str:
    """Counters are read as their increase, free space as its low, other gauges as a peak."""
    if metric.endswith("_total"):
        return "increase"
    return "lowest" if "free" in metric else "peak"


def _aggregate(how: str, values: Sequence[float]) -> float | None:
    if not values:
        return None
    if how == "peak":
        return max(values)
    if how == "lowest":
        return min(values)
    # A counter restarts at 0 with its process (a rolling restart): a drop is a new count.
    return sum(b - a if b >= a else b for a, b in pairwise(values))


def _fmt_metric(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if "bytes" in metric:
        for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(value) >= size:
                return f"{value / size:.1f} {unit}"
        return f"{value:.0f} B"
    if metric.endswith("_ratio"):
        return f"{100 * value:.1f} %"
    return f"{value:g}"


def infra_peaks(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per instance and metric: how it read before the fault and during it. Metrics that
    stayed at 0 throughout are left out: they say nothing about this incident."""
    times = _Times(record)
    series: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for sample in sorted(_dicts(record.get("infra")), key=lambda s: _num(s.get("t")) or 0.0):
        t = _num(sample.get("t"))
        metrics = sample.get("metrics")
        if t is None or not isinstance(metrics, Mapping):
            continue
        phase = "during" if times.in_fault(t) else "before" if times.before_fault(t) else None
        if phase is None:
            continue
        for name, value in metrics.items():
            v = _num(value)
            if v is not None:
                key = (str(sample.get("service") or "-"), str(sample.get("instance") or "-"),
                       str(name))
                series.setdefault(key, {"before": [], "during": []})[phase].append(v)

    def rank(key: tuple[str, str, str]) -> tuple[str, int, str]:
        order = next((i for i, p in enumerate(_INFRA_ORDER) if key[2].startswith(p)),
                     len(_INFRA_ORDER))
        return key[1], order, key[2]

    rows = []
    for key in sorted(series, key=rank):
        values = series[key]
        if not any(values["before"]) and not any(values["during"]):
            continue
        how = _how(key[2])
        rows.append({"service": key[0], "instance": key[1], "metric": key[2], "how": how,
                     "before": _aggregate(how, values["before"]),
                     "during": _aggregate(how, values["during"])})
    return rows


def _infra(record: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<tr class="metric"><td class="l">{_e(r["instance"])} '
        f'<span class="muted">({_e(r["service"])})</span></td>'
        f'<td class="l"><code>{_e(r["metric"])}</code></td><td class="l">{_e(r["how"])}</td>'
        f'<td>{_e(_fmt_metric(r["metric"], r["before"]))}</td>'
        f'<td><b>{_e(_fmt_metric(r["metric"], r["during"]))}</b></td></tr>'
        for r in infra_peaks(record))
    table = (f'<table><tr><th class="l">instance</th><th class="l">metric</th>'
             f'<th class="l">read as</th><th>before the fault</th><th>during the fault</th>'
             f"</tr>{rows}</table>" if rows else "<p>No infrastructure metrics moved.</p>")
    evidence = record.get("evidence")
    facts = ""
    if isinstance(evidence, Mapping):
        took = evidence.get("took_effect")
        items = evidence.get("facts")
        items = items if isinstance(items, Mapping) else {}
        took_text = "yes" if took is True else "NO" if took is False else "-"
        facts = (f"<p>the fault took effect: <b>{took_text}"
                 "</b></p>" + ("<table>" + "".join(
                     f'<tr><td class="l">{_e(k)}</td><td class="l">{_e(_kv(v))}</td></tr>'
                     for k, v in items.items() if k != "definition") + "</table>"
                     if items else ""))
    return (f'<div class="layer" id="layer-infra"><h3>What the infrastructure showed</h3>'
            f"{facts}{table}</div>")


def _layers(record: Mapping[str, Any], times: _Times) -> str:
    return ('<section id="layers"><h2>The incident\'s three layers</h2><div class="layers">'
            f"{_users(record, times)}{_app(record)}{_infra(record)}</div></section>")


# ---------------------------------------------------------------- mitigations


def _switch_text(switches: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in switches.items())


def _played(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The switch sets participants tried, to point at the mitigation each one matches."""
    out = []
    for action in _dicts(record.get("actions")):
        args = action.get("args")
        if action.get("kind") == "mitigate" and isinstance(args, Mapping):
            switches = args.get("switches")
            if isinstance(switches, Mapping):
                out.append({str(k): str(v) for k, v in switches.items()})
    return out


def _result(result: Any, scenario: str) -> str:
    if not isinstance(result, Mapping):
        return (f'<span class="not-measured">not measured: run <code>lab run '
                f"{_e(scenario)}</code> to fill this</span>")
    passed = result.get("passed")
    verdict = (f'<span class="badge {"pass" if passed else "fail"}">'
               f'{"PASS" if passed else "FAIL"}</span> ' if isinstance(passed, bool) else "")
    counts = result.get("fault_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    order = [c for c in _CLASS_ORDER if c in counts] + sorted(set(counts) - set(_CLASS_ORDER))
    shown = ", ".join(f"{_LABELS.get(c, c)}: {_kv(counts[c])}" for c in order if counts[c])
    bad = sum(int(n) for c, n in counts.items() if c in BAD_CLASSES and _num(n))
    source = (f'<br><span class="muted">from {_e(result["source"])}</span>'
              if result.get("source") else "")
    return (f"{verdict}{bad} bad answers during the fault<br>"
            f'<span class="muted">{_e(shown or "no answers recorded")}</span>{source}')


def _mitigations(record: Mapping[str, Any]) -> str:
    scenario = str(record.get("scenario") or "SCENARIO")
    played = _played(record)
    rows = []
    for m in _dicts(record.get("mitigations")):
        switches = m.get("switches")
        switches = switches if isinstance(switches, Mapping) else {}
        as_text = {str(k): str(v) for k, v in switches.items()}
        tags = ""
        if m.get("shows_problem"):
            tags += ' <span class="badge control">shows the problem: not a fix</span>'
        if as_text and as_text in played:
            tags += ' <span class="badge you">you tried this</span>'
        how = (f"<code>mitigate {_e(_switch_text(switches))}</code>" if switches else
               '<span class="muted">no switch: it changes the router or the fault '
               "(see the scenario file)</span>")
        rows.append(
            f'<tr class="mitigation" data-variant="{_e(m.get("variant", ""))}">'
            f'<td class="l"><b>{_e(m.get("variant", "?"))}</b>{tags}<br>'
            f'<span class="muted">{_e(m.get("description") or "")}</span></td>'
            f'<td class="l">{how}</td><td class="l">{_result(m.get("result"), scenario)}</td>'
            "</tr>")
    table = (f'<table><tr><th class="l">variant</th><th class="l">how to set it</th>'
             f'<th class="l">what it did under the same fault</th></tr>{"".join(rows)}</table>'
             if rows else "<p>The scenario lists no mitigations.</p>")
    return ('<section id="mitigations"><h2>What each mitigation would have done</h2>'
            f"{table}</section>")


# ---------------------------------------------------------------- page


def render_debrief(record: Mapping[str, Any]) -> str:
    """The whole debrief page for one drill record."""
    times = _Times(record)
    title = f"Debrief: {record.get('scenario') or 'drill'}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        '</title><meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{_CSS}</style></head><body>{_header(record, times)}<main>"
        f"{_score(record)}{_timeline(record, times)}{_layers(record, times)}"
        f"{_mitigations(record)}</main></body></html>"
    )


def write_debrief(record: Mapping[str, Any], path: Path) -> Path:
    """Write the page to `path` (its folder is created), for opening after the stack is
    gone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_debrief(record), encoding="utf-8")
    return path
