"""The terminal report: a table of variants × status mix during the fault, then each
expectation's verdict with the measured figure. Returns text; the CLI prints it."""

from __future__ import annotations

from typing import Any

from lab.load.arrivals import BEHIND_SHARE
from lab.records.ledger import inconsistencies
from lab.scenario.physics import calibration_text, mechanism_text
from lab.verdict.results import FAIL, INCONCLUSIVE, PASS, RunResults, VariantResult, WindowSummary

_COLUMNS = ("variant", "verdict", "2xx", "lying 200", "500", "502", "503 (Retry-After)", "504",
            "timeout", "other", "p50 ms", "p99 ms")


def _mix(w: WindowSummary) -> list[str]:
    c = w.by_class
    ok = c.get("2xx", 0) + c.get("fallback", 0)
    lying = c.get("lying_200", 0)
    s503 = c.get("503", 0)
    ra = w.retry_after.get("503", 0)
    shown = ("500", "502", "503", "504", "timeout")
    other = w.total - ok - lying - sum(c.get(k, 0) for k in shown)
    return [
        str(ok), f"{lying} !" if lying else "0", str(c.get("500", 0)), str(c.get("502", 0)),
        f"{s503} ({ra})" if s503 else "0", str(c.get("504", 0)), str(c.get("timeout", 0)),
        str(other),
        "-" if w.p50_ms is None else f"{w.p50_ms:.0f}",
        "-" if w.p99_ms is None else f"{w.p99_ms:.0f}",
    ]


def load_lines(load: dict[str, Any]) -> list[str]:
    """What the variant's output says about an open-model load: drops at the cap, and
    when the generator fell behind its target (then the service saw less than asked)."""
    if load.get("model") != "open":
        return []
    lines = []
    if load.get("dropped"):
        lines.append(
            f"load: {load['dropped']} arrivals dropped at max_in_flight ({load['max_in_flight']}) "
            "— the generator's, not the service's; counted per window as `dropped`, never as "
            "answers")
    if load.get("behind_target"):
        seconds = load["behind_seconds"]
        shown = ", ".join(str(t) for t in seconds[:10]) + (" …" if len(seconds) > 10 else "")
        achieved = load.get("achieved_rate_per_s")
        lines.append(
            f"LOAD GENERATOR BEHIND TARGET: {len(seconds)} s below {BEHIND_SHARE:.0%} of the "
            f"arrivals scheduled (second {shown}); achieved "
            f"{'-' if achieved is None else f'{achieved:g}'}/s against "
            f"{load['rate_per_s']:g}/s — the service saw less load than the scenario asks")
    return lines


def _grid(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _heading(verdict: str) -> str:
    return {PASS: "all expectations held", FAIL: "FAILED",
            INCONCLUSIVE: "INCONCLUSIVE: neither PASS nor FAIL"}[verdict]


def render_table(results: RunResults) -> str:
    out: list[str] = []
    by_scenario: dict[str, list[VariantResult]] = {}
    for v in results.variants:
        by_scenario.setdefault(v.scenario, []).append(v)
    for scenario, variants in by_scenario.items():
        out.append(f"{scenario}: status mix during the fault window "
                   "(2xx = honest successes incl. fallbacks; lying 200 = a 2xx whose body "
                   "says it failed)")
        rows = [list(_COLUMNS)]
        for v in variants:
            rows.append([v.name, v.verdict, *_mix(v.windows["fault"])])
        out.append(_grid(rows))
        out.append("")
        for v in variants:
            out.append(f"{v.name} — {_heading(v.verdict)}")
            out.extend(f"  INCONCLUSIVE: {i.text}" for i in v.inconclusive)
            for e in v.expectations:
                mark = "ok  " if e.passed else "FAIL"
                out.append(f"  {mark} {e.text}: {e.measured}")
            out.extend(f"  {line}" for line in load_lines(v.load))
            lying = sum(w.by_class.get("lying_200", 0) for w in v.windows.values())
            if lying:
                out.append(f"  LYING 200s: {lying} responses said 200 but their body reported a "
                           "failure; counted as failures, never as successes")
            fallback = v.windows["fault"].by_class.get("fallback", 0)
            if fallback:
                out.append(f"  fallbacks: {fallback} honest degraded answers during the fault "
                           "(counted under 2xx)")
            if v.ledger:
                led = v.ledger
                out.append(
                    f"  ledger: {led['charges']} charges, {led['double_charges']} double, "
                    f"{led['duplicate_attempts']} retries answered with the original charge, "
                    f"{led['confirmed_orders']} confirmed orders, {led['pending_orders']} "
                    f"pending, {led['charged_without_order']} charged without an order"
                    + "".join(f"; {problem}" for problem in
                              inconsistencies(led, skip=("charged_without_order",))))
            if v.windows["fault"].by_instance and len(
                    {i for w in v.windows.values() for i in w.by_instance}) > 1:
                served = "; ".join(
                    f"{name}: " + ", ".join(f"{i} {n}" for i, n in w.by_instance.items())
                    for name, w in v.windows.items())
                out.append(f"  served by: {served}")
            if v.calibration:
                out.append(f"  calibration: {calibration_text(v.calibration)}")
            if v.mechanism:
                out.append(f"  physics: {mechanism_text(v.mechanism)}")
                if v.mechanism.get("why_not"):
                    out.append(f"  why it did not reproduce: {v.mechanism['why_not']}")
            if v.signatures:
                top = v.signatures[0]
                out.append(f"  server log: {sum(s.count for s in v.signatures)} unhandled "
                           f"exceptions; top: {top.exception} at {top.frame} ×{top.count}")
            out.append("")
    for skipped in results.skipped:
        out.append(f"{skipped.scenario}: SKIPPED ({', '.join(skipped.variants)}) — "
                   f"{skipped.reason}")
        out.append("")
    verdict = "every expectation held" if results.passed else "some expectations FAILED"
    if results.inconclusive:
        n = sum(1 for v in results.variants if v.inconclusive)
        verdict = (f"{n} INCONCLUSIVE (the experiment did not happen as designed: see why "
                   "above)" + ("; some expectations FAILED" if results.failed else ""))
    if not results.variants:
        verdict = "nothing ran"
    skipped_count = sum(len(s.variants) for s in results.skipped)
    tail = f"; {skipped_count} skipped" if skipped_count else ""
    out.append(f"{len(results.variants)} variant(s) run{tail}: {verdict}.")
    return "\n".join(out)
