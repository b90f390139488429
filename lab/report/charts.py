"""Timeline charts as inline SVG (matplotlib), so a report needs no network to view.

One figure per variant, three panels sharing the time axis: responses per second by
class (fault window shaded), client latency p50/p99, and the service's own series
(pool, breaker, disk, cache — whichever the incident has).
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt

from lab.load.classify import RESPONSE_CLASSES

CLASS_COLOURS = {
    "2xx": "#2e9d48",
    "fallback": "#1b9aaa",
    "lying_200": "#c2185b",
    "4xx": "#f39c12",
    "500": "#d62728",
    "502": "#e8590c",
    "503": "#f1c40f",
    "504": "#a0522d",
    "other_5xx": "#8c1c13",
    "timeout": "#7f7f7f",
    "error": "#222222",
    "other": "#c7c7c7",
}
CLASS_LABELS = {
    "2xx": "2xx", "fallback": "fallback", "lying_200": "lying 200", "4xx": "4xx",
    "500": "500", "502": "502", "503": "503", "504": "504", "other_5xx": "other 5xx",
    "timeout": "timeout",
    "error": "conn. error", "other": "other",
}

# Service series worth plotting when present: exact names, then patterns.
_SERIES = (
    ("checkout_db_pool_in_use", "pool in use"),
    ("checkout_db_pool_waiting", "pool waiting"),
)
_SERIES_PATTERNS = (
    re.compile(r".*breaker_state.*"),
    re.compile(r".*disk_used_ratio.*"),
    re.compile(r".*recomputes?_(total|in_progress|concurrent).*"),
)


def _service_series(timeline: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    names: dict[str, str] = {}
    for sec in timeline:
        for metrics in sec.get("metrics", {}).values():
            for name in metrics:
                label = dict(_SERIES).get(name)
                if label is None and any(p.fullmatch(name) for p in _SERIES_PATTERNS):
                    label = name.removeprefix("checkout_").replace("_", " ")
                if label is not None:
                    names[name] = label
    series: dict[str, list[float | None]] = {}
    for name, label in names.items():
        values: list[float | None] = []
        for sec in timeline:
            found = [float(m[name]) for m in sec.get("metrics", {}).values() if name in m]
            values.append(max(found) if found else None)
        if any(v for v in values):
            series[label] = values
    return series


def timeline_svg(variant: dict[str, Any]) -> str:
    """The variant's timeline as an <svg> element (no XML prolog)."""
    timeline = variant["timeline"]
    fault = variant["fault"]
    xs = [int(s["t"]) for s in timeline]
    series = _service_series(timeline)
    panels = 3 if series else 2
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.1 * panels + 0.6), sharex=True,
                             constrained_layout=True)
    bars, latency = axes[0], axes[1]

    bottom = [0] * len(xs)
    for cls in RESPONSE_CLASSES:
        counts = [int(s["by_class"].get(cls, 0)) for s in timeline]
        if any(counts):
            bars.bar(xs, counts, bottom=bottom, width=0.9, color=CLASS_COLOURS[cls],
                     label=CLASS_LABELS[cls], align="edge")
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    bars.set_ylabel("responses / s")
    bars.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    for key, style, label in (("p50_ms", "-", "p50"), ("p99_ms", "--", "p99")):
        ys = [s.get(key) for s in timeline]
        latency.plot([x + 0.5 for x in xs], [float("nan") if y is None else y for y in ys],
                     style, color="#34495e", label=label, linewidth=1.4)
    latency.set_ylabel("latency ms")
    latency.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    if series:
        service = axes[2]
        for label, values in series.items():
            service.plot([x + 0.5 for x in xs],
                         [float("nan") if v is None else v for v in values], label=label,
                         linewidth=1.4)
        service.set_ylabel("service")
        service.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    for ax in axes:
        ax.axvspan(fault["fault_start_s"], fault["fault_end_s"], color="#e74c3c", alpha=0.10,
                   label="_fault")
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].text(fault["fault_start_s"], 1.01, " fault", transform=axes[0].get_xaxis_transform(),
                 color="#c0392b", fontsize=8, va="bottom")
    axes[-1].set_xlabel("seconds since the load began")

    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]
