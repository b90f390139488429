"""Drill scoring (lab.live.score) on crafted series: the rule must rank a right diagnosis
with a switch that works above a wrong switch, charge hints and wrong guesses, count only
the answers users saw as failures, and not call an incident mitigated until the bad share
stays down to the end."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab.live.score import score_drill

T0 = 1_764_670_000  # the stack is ready
INJECT = T0 + 10.0
CAUSE = "pool-exhaustion"


def second(t: float, **counts: int) -> dict[str, Any]:
    counts = {k.removeprefix("c"): v for k, v in counts.items()}  # c500=3 -> "500": 3
    return {"t": int(t), "counts": counts, "n": sum(counts.values()),
            "p50_ms": 10.0, "p99_ms": 100.0}


def series(bad_until: float, end: float, bad: int = 20) -> list[dict[str, Any]]:
    """60 answers a second; `bad` of them 500s from the injection until `bad_until`."""
    return [second(t, c2xx=60 - bad, c500=bad) if INJECT <= t < bad_until
            else second(t, c2xx=60) for t in range(T0, int(end))]


def act(t: float, kind: str, **args: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    if kind in ("mitigate", "rollback"):
        outcome = {"restart": {"outcome": args.pop("outcome", "completed"),
                               "took_s": args.pop("took_s", 5.0), "replaced": [],
                               "failure": None}}
    return {"t": t, "player": "ana", "kind": kind, "args": args, "outcome": outcome}


def test_the_right_diagnosis_and_a_working_switch_beat_a_wrong_switch() -> None:
    end = INJECT + 120
    right = score_drill(series(INJECT + 45, end), INJECT, end, [
        act(INJECT + 20, "diagnose", cause=CAUSE),
        act(INJECT + 40, "mitigate", switches={"DB_ACQUIRE_TIMEOUT_MS": "500"}),
    ], CAUSE)
    wrong = score_drill(series(end, end), INJECT, end, [
        act(INJECT + 20, "diagnose", cause="disk-full"),
        act(INJECT + 40, "mitigate", switches={"LOG_ROTATE": "1"}),
    ], CAUSE)

    assert (right.diagnosis, right.diagnose_s, right.mitigate_s) == ("right", 20.0, 45.0)
    assert right.bad == 20 * 45 and right.bad_500 == right.bad
    # 1000 − 500 (900 bad, capped) + 200 − 45
    assert right.points == 655
    assert (wrong.diagnosis, wrong.wrong_diagnoses, wrong.mitigate_s) == ("wrong", 1, None)
    assert wrong.bad == 20 * 120
    # 1000 − 500 − 100 − 300
    assert wrong.points == 100
    assert right.points > wrong.points and right.bad < wrong.bad
    assert right.detect_s == wrong.detect_s == 20.0


def test_fewer_bad_answers_and_faster_mitigation_score_higher_below_the_cap() -> None:
    end = INJECT + 100
    quick = score_drill(series(INJECT + 10, end, bad=3), INJECT, end,
                        [act(INJECT + 5, "mitigate")], CAUSE)
    slow = score_drill(series(INJECT + 30, end, bad=3), INJECT, end,
                       [act(INJECT + 25, "mitigate")], CAUSE)
    assert (quick.bad, quick.mitigate_s, quick.points) == (30, 10.0, 1000 - 30 - 10)
    assert (slow.bad, slow.mitigate_s, slow.points) == (90, 30.0, 1000 - 90 - 30)


def test_hints_cost_points_and_are_counted_even_before_the_injection() -> None:
    end = INJECT + 60
    seconds = series(INJECT + 20, end, bad=1)
    actions = [act(INJECT + 15, "mitigate")]
    without = score_drill(seconds, INJECT, end, actions, CAUSE)
    hinted = score_drill(seconds, INJECT, end, [act(INJECT - 5, "hint"),
                                                act(INJECT + 3, "hint"), *actions], CAUSE)
    assert hinted.hints == 2
    assert without.points - hinted.points == 200
    assert ("hints: 2", -200) in hinted.breakdown


def test_wrong_guesses_cost_more_than_the_right_one_earns() -> None:
    end = INJECT + 60
    seconds = series(INJECT + 20, end, bad=1)
    base = [act(INJECT + 15, "mitigate")]
    straight = score_drill(seconds, INJECT, end,
                           [act(INJECT + 1, "diagnose", cause=CAUSE), *base], CAUSE)
    guessing = score_drill(seconds, INJECT, end, [
        act(INJECT + 1, "diagnose", cause=c) for c in
        ("disk-full", "cache-stampede", "flaky-dependency", CAUSE)] + base, CAUSE)
    nothing = score_drill(seconds, INJECT, end, base, CAUSE)
    assert straight.points - nothing.points == 200
    assert guessing.diagnosis == "right" and guessing.wrong_diagnoses == 3
    assert guessing.points < nothing.points < straight.points


def test_one_rule_of_honest_bare_503_4xx_and_drops_are_bad_honest_503_is_not() -> None:
    end = INJECT + 3
    seconds = [second(INJECT, c2xx=10, c500=1, lying_200=2, c503_bare=3, c503=4, c502=1,
                      c504=1, other_5xx=1, timeout=1, error=1, c4xx=5, fallback=2,
                      dropped=50),
               second(INJECT + 1, c503=30, dropped=9),
               second(INJECT + 2, c2xx=30)]
    score = score_drill(seconds, INJECT, end, [], CAUSE)
    assert (score.bad_500, score.bad_lying_200) == (1, 2)
    # The verdict's rule (lab.scenario.honest): bare 503, 502, 504, other 5xx, timeout, error, an
    # unnamed 4xx, and the drops (an answer the lab never saw) are all bad.
    assert score.bad_other == 3 + 1 + 1 + 1 + 1 + 1 + 5 + 50 + 9
    assert score.bad == 1 + 2 + score.bad_other
    assert score.answers == (10 + 1 + 2 + 3 + 4 + 1 + 1 + 1 + 1 + 1 + 5 + 2 + 50) + 39 + 30


def test_mitigate_s_is_none_when_the_bad_share_never_drops() -> None:
    end = INJECT + 60
    score = score_drill(series(end, end, bad=2), INJECT, end, [
        act(INJECT + 10, "mitigate"), act(INJECT + 30, "mitigate")], CAUSE)
    assert score.mitigate_s is None
    assert ("never mitigated", -300) in score.breakdown


def test_a_failed_restart_or_a_rollback_does_not_mitigate() -> None:
    end = INJECT + 60
    seconds = series(INJECT + 20, end)
    failed = score_drill(seconds, INJECT, end,
                         [act(INJECT + 10, "mitigate", outcome="failed")], CAUSE)
    rollback = score_drill(seconds, INJECT, end, [act(INJECT + 10, "rollback")], CAUSE)
    assert failed.mitigate_s is None and rollback.mitigate_s is None


def test_a_relapse_after_a_mitigation_voids_it_and_a_later_one_counts() -> None:
    end = INJECT + 80
    seconds = series(INJECT + 20, end)
    for s in seconds:  # the rollback at +30 brings the 500s back until +50
        if INJECT + 30 <= s["t"] < INJECT + 50:
            s["counts"] = {"2xx": 40, "500": 20}
    score = score_drill(seconds, INJECT, end, [
        act(INJECT + 15, "mitigate"), act(INJECT + 28, "rollback"),
        act(INJECT + 45, "mitigate")], CAUSE)
    assert score.mitigate_s == 50.0


@pytest.mark.parametrize(("bad", "mitigated"), [(1, True), (2, False)])
def test_the_one_percent_boundary(bad: int, mitigated: bool) -> None:
    end = INJECT + 40
    seconds = [second(t, c2xx=60) if t < INJECT else second(t, c2xx=100 - bad, c500=bad)
               for t in range(T0, int(end))]
    for s in seconds:
        if INJECT <= s["t"] < INJECT + 10:
            s["counts"] = {"2xx": 50, "500": 50}
    score = score_drill(seconds, INJECT, end, [act(INJECT + 5, "mitigate")], CAUSE)
    assert (score.mitigate_s is not None) is mitigated


def test_window_boundaries_and_mitigations_the_drill_ended_on() -> None:
    inject = INJECT + 0.5  # mid-second: that second overlaps the fault and counts
    end = INJECT + 5.0
    seconds = [second(t, c500=1) if t < INJECT + 3 else second(t, c2xx=60)
               for t in range(int(INJECT) - 2, int(INJECT) + 8)]
    score = score_drill(seconds, inject, end, [act(inject + 1, "mitigate", took_s=3.5)],
                        CAUSE)
    # seconds INJECT .. INJECT+4 overlap [inject, end); INJECT-1 ended before the fault
    assert score.bad == 3
    # its restart ended at the end: the clean seconds after it are past the drill
    assert score.mitigate_s is None
    earlier = score_drill(seconds, inject, end, [act(inject + 1, "mitigate", took_s=2.5)],
                          CAUSE)
    assert earlier.mitigate_s == 3.5  # ended at INJECT+4: one clean second, INJECT+4


def test_seconds_to_mitigate_are_capped_and_points_floored_at_zero() -> None:
    end = INJECT + 600
    late = score_drill(series(INJECT + 400, end, bad=1), INJECT, end,
                       [act(INJECT + 395, "mitigate")], CAUSE)
    assert late.mitigate_s == 400.0 and late.points == 1000 - 400 - 300
    worst = score_drill(series(end, end), INJECT, end,
                        [act(INJECT + 1, "hint")] * 3 +
                        [act(INJECT + 2, "diagnose", cause="disk-full")] * 2, CAUSE)
    assert worst.points == 0  # 1000 − 500 − 300 − 200 − 300 < 0


def test_no_injection_no_incident_and_no_actions() -> None:
    score = score_drill(series(0, T0 + 30), None, T0 + 30,
                        [act(T0 + 5, "diagnose", cause=CAUSE)], CAUSE)
    assert (score.bad, score.detect_s, score.diagnosis, score.mitigate_s) == (
        0, None, "none", None)
    assert score.points == 1000
    idle = score_drill(series(INJECT + 50, INJECT + 50), INJECT, INJECT + 50, [], CAUSE)
    assert (idle.detect_s, idle.diagnose_s, idle.diagnosis) == (None, None, "none")


def test_to_json_round_trips_and_lines_name_every_term() -> None:
    end = INJECT + 60
    score = score_drill(series(INJECT + 20, end, bad=2), INJECT, end, [
        act(INJECT + 1, "hint"), act(INJECT + 2, "diagnose", cause=CAUSE),
        act(INJECT + 15, "mitigate")], CAUSE)
    doc = json.loads(json.dumps(score.to_json()))
    assert doc["points"] == score.points == 1000 - 40 - 100 + 200 - 20
    assert sum(item["points"] for item in doc["breakdown"]) == doc["points"]
    text = "\n".join(score.lines())
    assert f"score: {score.points} points" in text
    for what in ("bad answers: 40", "hints: 1", "right diagnosis", "seconds to mitigate",
                 "mitigated after 20.0 s"):
        assert what in text
