"""The drill's debrief page from a drill record: self-contained, every text escaped, the
participants' actions on the timeline, the three layers, and the mitigations table whether
or not the scenario's variants were ever run."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from lab.live.debrief import infra_peaks, render_debrief, write_debrief

T0 = 1_764_670_000  # the stack was ready
INJECT = T0 + 30
MITIGATED = T0 + 75  # the rolling restart with the participant's switches finished
END = T0 + 120


def counts_at(t: int) -> dict[str, int]:
    """Pool exhaustion as users saw it: all 2xx, then 500s, then honest 503s once the
    timeouts were rolled out."""
    if t < INJECT:
        return {"2xx": 60}
    if t < INJECT + 5:
        return {"2xx": 40, "500": 5}
    if t < MITIGATED:
        return {"2xx": 10, "500": 45, "timeout": 2, "503_bare": 1}
    return {"2xx": 30, "503": 30}


def second(t: int) -> dict[str, Any]:
    counts = counts_at(t)
    slow = INJECT <= t < MITIGATED
    return {"t": t, "counts": counts, "n": sum(counts.values()),
            "p50_ms": 900.0 if slow else 12.5, "p99_ms": 4100.0 if slow else 40.0}


def infra_at(t: int) -> list[dict[str, Any]]:
    """checkout-1 until the rolling restart, checkout-2 (the new configuration) after it."""
    out = []
    if t < MITIGATED:
        fault = t >= INJECT
        out.append({"t": t + 0.2, "instance": "checkout-1", "service": "checkout", "metrics": {
            "checkout_db_pool_max": 10.0,
            "checkout_db_pool_in_use": 10.0 if fault else 2.0,
            "checkout_db_pool_waiting": float(min(40, (t - INJECT) * 2)) if fault else 0.0,
            "checkout_unhandled_errors_total": float(max(0, t - INJECT) * 45),
            "checkout_data_disk_free_bytes": 8.0 * 2**20,
            "checkout_breaker_open": 0.0}})
    if t >= MITIGATED - 5:
        out.append({"t": t + 0.2, "instance": "checkout-2", "service": "checkout", "metrics": {
            "checkout_db_pool_max": 10.0, "checkout_db_pool_in_use": 10.0,
            "checkout_db_pool_waiting": 0.0,
            "checkout_unhandled_errors_total": 3.0 if t >= MITIGATED else 0.0}})
    return out


def action(t: int, kind: str, args: dict[str, Any], outcome: dict[str, Any],
           player: str = "ana") -> dict[str, Any]:
    return {"t": t, "player": player, "kind": kind, "args": args, "outcome": outcome}


RECORD: dict[str, Any] = {
    "seed": 7, "player": "ana", "pool": ["pool-exhaustion", "cache-stampede", "disk-full"],
    "scenario": "pool-exhaustion",
    "title": "DB pool exhaustion: a dropped index and no timeouts turn checkouts into 500s",
    "fault_kind": "drop-index",
    "started_at": T0, "injected_at": INJECT, "ended_at": END,
    "actions": [
        action(INJECT + 12, "hint", {}, {"hint": "look at the pool metrics", "hints_used": 1}),
        action(INJECT + 15, "diagnose", {"cause": "cache-stampede"}, {"right": False}, "bo"),
        action(INJECT + 20, "diagnose", {"cause": "pool-exhaustion"}, {"right": True}),
        action(INJECT + 25, "mitigate",
               {"switches": {"DB_ACQUIRE_TIMEOUT_MS": "250", "DB_STATEMENT_TIMEOUT_MS": "400",
                             "DB_ERRORS_AS_503": "true"}},
               {"restarted": ["checkout-1"], "took_s": 20.0}),
    ],
    "seconds": [second(t) for t in range(T0, END)],
    "errors": [
        {"exception": "AttributeError", "frame": "handlers.py:95 in checkout", "count": 1800,
         "errorId": "0b6f2c1e-4d7a-4a57-9d1e-2f1d3c9a8b7e",
         "message": "'NoneType' object has no attribute 'user_id'"},
        {"exception": "TimeoutError", "frame": "db.py:40 in acquire", "count": 3,
         "errorId": "9f1e", "message": "pool acquire"},
    ],
    "infra": [sample for t in range(T0, END) for sample in infra_at(t)],
    "evidence": {"took_effect": True, "facts": {"index": "idx_cart_items_cart_id dropped"},
                 "observations": []},
    # As lab.live.score's Score.to_json() gives it.
    "score": {"cause": "pool-exhaustion", "points": 655, "bad": 1945, "bad_500": 1825,
              "bad_lying_200": 0, "bad_other": 120, "answers": 5245, "detect_s": 12.0,
              "diagnose_s": 20.0, "diagnosis": "right", "wrong_diagnoses": 1,
              "mitigate_s": 45.0, "hints": 1,
              "breakdown": [{"what": "start", "points": 1000},
                            {"what": "bad answers (1945, at most 500)", "points": -500},
                            {"what": "1 hint", "points": -100},
                            {"what": "right diagnosis", "points": 200},
                            {"what": "1 wrong diagnosis", "points": -100},
                            {"what": "45 s to mitigate", "points": -45}]},
    "mitigations": [
        {"variant": "timeouts", "description": "pool acquire timeout + statement timeout",
         "switches": {"DB_ACQUIRE_TIMEOUT_MS": "250", "DB_STATEMENT_TIMEOUT_MS": "400",
                      "DB_ERRORS_AS_503": "true"},
         "shows_problem": False,
         "result": {"passed": True, "fault_counts": {"2xx": 294, "503": 908, "500": 0},
                    "source": "results/latest.json"}},
        {"variant": "readiness", "description": "/health reports 503 above 80 % pool use",
         "switches": {"READINESS_MAX_POOL_USE": "0.8"}, "shows_problem": False,
         "result": None},
        {"variant": "bigger-pool", "description": "the control: pool max 50",
         "switches": {"DB_POOL_MAX": "50"}, "shows_problem": True,
         "result": {"passed": True, "fault_counts": {"2xx": 500, "500": 120, "timeout": 7},
                    "source": "results/latest.json"}},
        {"variant": "index-restored", "description": "the root fix", "switches": {},
         "shows_problem": False, "result": None},
    ],
}


def record(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(RECORD)
    out.update(changes)
    return out


def row(page: str, cls: str, marker: str) -> str:
    """The first table row of the given class that contains `marker`."""
    rows = re.findall(rf'<tr class="{cls}"[^>]*>.*?</tr>', page, re.S)
    found: list[str] = [r for r in rows if marker in r]
    assert found, f"no {cls} row with {marker!r}"
    return found[0]


def test_every_text_from_the_record_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    rec = record(player=evil, title=evil, errors=[
        {"exception": evil, "frame": "a.py:1 in <module>", "count": 1, "errorId": "<id>",
         "message": "'<b>' & \"quotes\""}])
    rec["actions"][0]["player"] = evil
    rec["mitigations"][0]["description"] = evil
    page = render_debrief(rec)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "a.py:1 in &lt;module&gt;" in page and "&lt;id&gt;" in page
    assert "&#x27;&lt;b&gt;&#x27; &amp; &quot;quotes&quot;" in page


def test_the_header_reveals_the_incident() -> None:
    page = render_debrief(RECORD)
    header = page[page.index("<header>"):page.index("</header>")]
    assert "players: <b>ana, bo</b>" in header and "seed 7" in header
    assert "<b>pool-exhaustion</b>" in header and "<code>drop-index</code>" in header
    assert "drawn from: pool-exhaustion, cache-stampede, disk-full" in header
    assert "injected 30 s after ready" in header


def test_the_timeline_marks_the_injection_and_every_action() -> None:
    page = render_debrief(RECORD)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert 'id="injection"' in svg
    for n in range(1, 5):
        assert f'id="action-{n}"' in svg and f'id="action-label-{n}"' in svg
    assert 'id="action-5"' not in svg
    kinds = re.findall(r'<tr class="action" data-kind="(\w+)"><td>(\d)</td><td>([^<]*)</td>',
                       page)
    assert kinds == [("hint", "1", "+12 s"), ("diagnose", "2", "+15 s"),
                     ("diagnose", "3", "+20 s"), ("mitigate", "4", "+25 s")]
    mitigate = row(page, "action", "mitigate ")
    assert ("mitigate DB_ACQUIRE_TIMEOUT_MS=250 DB_STATEMENT_TIMEOUT_MS=400 "
            "DB_ERRORS_AS_503=true") in mitigate
    assert "restarted: checkout-1, took_s: 20" in mitigate
    assert "diagnose cache-stampede" in row(page, "action", "cache-stampede")


def test_the_users_layer_counts_each_class_before_and_during_the_fault() -> None:
    page = render_debrief(RECORD)
    layer = page[page.index('id="layer-users"'):page.index('id="layer-app"')]
    # 90 s of fault: 5 s ramp (40 2xx + 5 500), 40 s of 500s, 45 s of honest 503s.
    cells = dict(re.findall(
        r'<tr data-class="([^"]+)">.*?</td><td>\d+</td><td>(\d+)</td>', layer))
    assert cells == {"2xx": str(5 * 40 + 40 * 10 + 45 * 30), "500": str(5 * 5 + 40 * 45),
                     "503": str(45 * 30), "503_bare": "40", "timeout": "80"}
    assert re.search(r'data-class="2xx"><td class="l">2xx</td><td>1800</td>', layer)
    assert f"{5 * 5 + 40 * 45 + 40 + 80} bad answers of" in layer
    assert "503 without Retry-After" in layer and "503 + Retry-After" in layer


def test_the_app_layer_lists_signatures_with_their_error_ids() -> None:
    page = render_debrief(RECORD)
    first = row(page, "signature", "AttributeError")
    assert "0b6f2c1e-4d7a-4a57-9d1e-2f1d3c9a8b7e" in first and "<td>1800</td>" in first
    assert page.index("AttributeError") < page.index("TimeoutError")  # most frequent first
    assert "No unhandled exceptions" in render_debrief(record(errors=[]))


def test_infra_peaks_read_gauges_as_peaks_counters_as_increases_across_a_restart() -> None:
    rows = {(r["instance"], r["metric"]): r for r in infra_peaks(RECORD)}
    waiting = rows[("checkout-1", "checkout_db_pool_waiting")]
    assert (waiting["how"], waiting["before"], waiting["during"]) == ("peak", 0.0, 40.0)
    in_use = rows[("checkout-1", "checkout_db_pool_in_use")]
    assert (in_use["before"], in_use["during"]) == (2.0, 10.0)
    errors = rows[("checkout-1", "checkout_unhandled_errors_total")]
    assert errors["how"] == "increase" and errors["during"] == 44 * 45
    assert rows[("checkout-2", "checkout_unhandled_errors_total")]["during"] == 3.0
    assert rows[("checkout-1", "checkout_data_disk_free_bytes")]["how"] == "lowest"
    # A metric that stayed at 0 says nothing about the incident.
    assert ("checkout-1", "checkout_breaker_open") not in rows
    order = [r["metric"] for r in infra_peaks(RECORD) if r["instance"] == "checkout-1"]
    assert order.index("checkout_db_pool_waiting") < order.index("checkout_data_disk_free_bytes")
    page = render_debrief(RECORD)
    assert "8.0 MiB" in row(page, "metric", "checkout_data_disk_free_bytes")
    assert "<b>40</b>" in row(page, "metric", "checkout_db_pool_waiting")
    assert "idx_cart_items_cart_id dropped" in page


def test_mitigations_with_and_without_results() -> None:
    page = render_debrief(RECORD)
    timeouts = row(page, "mitigation", 'data-variant="timeouts"')
    assert "PASS" in timeouts and "0 bad answers during the fault" in timeouts
    assert "2xx: 294, 503 + Retry-After: 908" in timeouts and "results/latest.json" in timeouts
    assert ("<code>mitigate DB_ACQUIRE_TIMEOUT_MS=250 DB_STATEMENT_TIMEOUT_MS=400 "
            "DB_ERRORS_AS_503=true</code>") in timeouts
    assert "you tried this" in timeouts
    readiness = row(page, "mitigation", 'data-variant="readiness"')
    assert "not measured: run <code>lab run pool-exhaustion</code> to fill this" in readiness
    assert "you tried this" not in readiness
    control = row(page, "mitigation", 'data-variant="bigger-pool"')
    assert "shows the problem" in control and "127 bad answers" in control
    assert "no switch" in row(page, "mitigation", 'data-variant="index-restored"')
    unmeasured = record(mitigations=[{**m, "result": None} for m in RECORD["mitigations"]])
    assert render_debrief(unmeasured).count("not measured: run") == 4


def test_the_page_fetches_nothing() -> None:
    page = render_debrief(RECORD)
    assert not re.search(r"https?://", page)
    assert not re.search(r"url\((?!#)", page)  # the chart's clip paths point inside it
    for needle in ("<script", "<link", "@import", "<iframe", "<img", "@font-face"):
        assert needle not in page


def test_the_score_shows_its_points_and_every_part_it_has() -> None:
    page = render_debrief(record(score={**RECORD["score"], "new_part": 3}))
    score = page[page.index('id="score"'):page.index('id="timeline"')]
    assert '<p class="points">655 points</p>' in score
    terms = re.findall(r'<tr class="term"><td class="l">([^<]*)</td><td>([^<]*)</td>', score)
    assert terms[0] == ("start", "+1000") and terms[-1] == ("45 s to mitigate", "-45")
    assert len(terms) == 6
    assert "time to mitigate</td><td class=\"l\">45.0 s" in score
    assert "of them 500s</td><td class=\"l\">1825" in score
    assert "new part</td><td class=\"l\">3" in score
    never = render_debrief(record(score={"points": 0, "mitigate_s": None}))
    assert "time to mitigate</td><td class=\"l\">never" in never
    assert "not scored" in render_debrief(record(score=None))


def test_a_drill_that_ended_before_anything_happened_still_renders(tmp_path: Path) -> None:
    bare = {"seed": 1, "player": "ana", "scenario": "disk-full", "started_at": T0,
            "injected_at": None, "ended_at": T0 + 5, "actions": [], "seconds": [],
            "errors": [], "infra": [], "score": {}, "mitigations": []}
    page = render_debrief(bare)
    assert "never injected" in page and "No one acted" in page
    assert 'id="injection"' not in page
    path = write_debrief(RECORD, tmp_path / "drill" / "debrief.html")
    assert path.read_text(encoding="utf-8") == render_debrief(RECORD)


def test_the_users_layer_counts_the_bad_answers_the_score_counts() -> None:
    """The page's "during the fault" is the score's window (every second that overlaps
    [injected_at, ended_at)), so the two figures on one page agree — also when the
    injection falls inside a second."""
    import re

    from lab.live.score import score_drill

    doc = record(injected_at=RECORD["injected_at"] + 0.6)
    score = score_drill(doc["seconds"], doc["injected_at"], doc["ended_at"], doc["actions"],
                        "pool-exhaustion")
    [shown] = re.findall(r"<p>(\d+) bad answers of \d+ during the fault", render_debrief(doc))
    assert int(shown) == score.bad > 0
