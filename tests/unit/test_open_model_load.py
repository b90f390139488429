"""Open-model load (issue 12, item 1): the arrival schedule, the cap on requests in flight
and its drops, the `rate:` grammar, and how results and verdicts account for drops and
for a generator that fell behind its target.

Everything here is pure: the Locust side (lab/load/open_model.py) only wires these
decisions to gevent, and is never imported by tests.
"""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from lab.load.arrivals import (
    InFlightCap,
    OpenLoad,
    RequestPicker,
    arrival_offsets,
    behind_seconds,
    drive,
    drop_record,
    offsets_until,
    schedule_start,
    scheduled_per_second,
)
from lab.load.classify import matches
from lab.load.locust_process import locust_argv, locust_env
from lab.load.request_log import RequestLogReader, RequestRecord, answers
from lab.report.table import load_lines
from lab.scenario.loader import load_scenario_file, scenario_paths
from lab.scenario.models import LoadSpec, Variant
from lab.verdict.judge import HONEST_TEXT, evaluate, judge
from lab.verdict.results import ArrivalAccount, Windows, WindowSummary, load_summary, timeline
from tests.unit.scenario_docs import problems_if_any

# ---------------------------------------------------------------- the arrival schedule


def test_even_arrivals_are_exactly_one_over_the_rate_apart() -> None:
    offsets = offsets_until(200.0, "even", seed=1, horizon=10.0)
    assert len(offsets) == 2000
    assert offsets == [k / 200.0 for k in range(2000)]  # computed from the index: no drift
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(offsets)}
    assert gaps == {0.005}


def test_even_arrivals_ignore_the_seed() -> None:
    assert offsets_until(7.0, "even", 1, 5.0) == offsets_until(7.0, "even", 99, 5.0)


def test_poisson_arrivals_are_reproducible_for_a_seed_and_differ_between_seeds() -> None:
    a = offsets_until(200.0, "poisson", seed=1, horizon=20.0)
    assert a == offsets_until(200.0, "poisson", seed=1, horizon=20.0)
    assert a != offsets_until(200.0, "poisson", seed=2, horizon=20.0)
    assert all(x < y for x, y in itertools.pairwise(a))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_poisson_arrivals_keep_the_mean_rate_with_exponential_gaps(seed: int) -> None:
    offsets = offsets_until(200.0, "poisson", seed=seed, horizon=100.0)  # ~20 000 arrivals
    assert len(offsets) / 100.0 == pytest.approx(200.0, rel=0.03)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 200.0, rel=0.03)
    # Exponential gaps: the standard deviation equals the mean (even gaps would give 0).
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.05)


def test_poisson_seconds_vary_around_the_rate() -> None:
    """Why the lab judges each second against the schedule, not the mean: a Poisson
    second is often more than 10 % under the rate by draw alone."""
    counts = scheduled_per_second(50.0, "poisson", seed=1, start_s=0.0, seconds=60)
    assert sum(counts) / 60 == pytest.approx(50.0, rel=0.1)
    assert any(c < 0.9 * 50 for c in counts)


@pytest.mark.parametrize(("rate", "kind"), [(0.0, "even"), (-1.0, "poisson"),
                                            (float("inf"), "even"), (10.0, "bursty")])
def test_a_schedule_refuses_what_it_cannot_mean(rate: float, kind: str) -> None:
    with pytest.raises(ValueError):
        next(arrival_offsets(rate, kind, 1))


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_drive_fires_each_arrival_when_it_is_due_without_waiting_for_answers() -> None:
    clock = FakeClock()
    fired: list[tuple[float, float]] = []
    n = drive(arrival_offsets(10.0, "even", 1), start=100.0, clock=clock, sleep=clock.sleep,
              arrive=lambda due: fired.append((due, clock())), until=101.0)
    assert n == 10
    assert [due for due, _ in fired] == pytest.approx([100.0 + k / 10 for k in range(10)])
    assert all(at == pytest.approx(due) for due, at in fired)  # sent at its time, not later


def test_a_late_generator_catches_up_on_the_absolute_schedule() -> None:
    """Starved for 0.35 s by the first arrival, the generator fires the overdue arrivals
    at once (after zero sleeps that let spawned requests run), then is on time again: the
    rate over the run is kept, not quietly lowered."""
    clock = FakeClock()
    fired: list[float] = []

    def arrive(due: float) -> None:
        fired.append(clock())
        if len(fired) == 1:
            clock.now += 0.35  # something blocked the loop

    drive(arrival_offsets(10.0, "even", 1), start=100.0, clock=clock, sleep=clock.sleep,
          arrive=arrive, until=101.0)
    assert len(fired) == 10
    assert fired[1:4] == pytest.approx([100.35] * 3)  # due at .1, .2, .3: fired at once
    assert fired[4:] == pytest.approx([100.4, 100.5, 100.6, 100.7, 100.8, 100.9])
    assert clock.sleeps[1:4] == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------- the cap and its drops


def test_the_cap_admits_up_to_its_limit_and_counts_every_drop() -> None:
    cap = InFlightCap(3)
    assert [cap.admit() for _ in range(5)] == [True, True, True, False, False]
    assert (cap.in_flight, cap.sent, cap.dropped, cap.peak) == (3, 3, 2, 3)
    cap.release()
    assert cap.admit() is True
    assert (cap.in_flight, cap.sent, cap.dropped) == (3, 4, 2)


def test_releasing_what_was_never_admitted_is_a_bug_not_a_free_slot() -> None:
    cap = InFlightCap(2)
    with pytest.raises(RuntimeError):
        cap.release()
    with pytest.raises(ValueError):
        InFlightCap(0)


def test_demand_above_the_cap_is_dropped_never_deferred() -> None:
    """100 arrivals/s, each request held 0.5 s: 50 in flight are wanted (Little's law),
    the cap allows 20. Every arrival is either sent at its time or dropped and counted —
    none waits for a slot — and the cap is never exceeded."""
    cap = InFlightCap(20)
    finishing: list[float] = []
    sent_at: list[float] = []
    for due in offsets_until(100.0, "even", 1, horizon=5.0):
        for done in [f for f in finishing if f <= due]:
            finishing.remove(done)
            cap.release()
        if cap.admit():
            sent_at.append(due)
            finishing.append(due + 0.5)
        assert cap.in_flight <= 20
    assert cap.sent + cap.dropped == 500
    assert cap.peak == 20
    # Steady state: 20 slots freed every 0.5 s, so 40 of every 100 arrivals are sent.
    assert cap.sent == pytest.approx(200, abs=20)
    assert cap.dropped == pytest.approx(300, abs=20)


def test_a_drop_is_logged_as_a_dropped_record_not_as_an_answer(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    answer = {"t": 1000.5, "ms": 3.2, "status": 201, "outcome": "response",
              "retry_after": False, "kind": "ok", "request": "checkout", "instance": "c-1"}
    log.write_text(json.dumps(answer) + "\n" + json.dumps(drop_record(1000.25, "checkout")) + "\n")
    ok, dropped = sorted(RequestLogReader(log).read_new(), key=lambda r: -r.start)
    assert dropped.dropped and not ok.dropped
    assert (dropped.start, dropped.status, dropped.outcome) == (1000.25, None, "dropped")
    assert (dropped.cls, dropped.status_key, dropped.error) == ("dropped", "dropped",
                                                                "max_in_flight")
    # No status selector claims a drop: not an error, not a timeout, not a 5xx.
    for selector in ("error", "timeout", "5xx", "server_errors", "2xx", "500", "other_5xx"):
        assert not matches(selector, dropped.status, dropped.cls)
    assert answers([ok, dropped]) == [ok]


def test_the_request_mix_follows_the_weights_and_the_seed() -> None:
    picker = RequestPicker([("checkout", 3), ("catalog", 1)], seed=5)
    picks = [picker.pick() for _ in range(4000)]
    assert picks.count("checkout") / 4000 == pytest.approx(0.75, abs=0.03)
    again = RequestPicker([("checkout", 3), ("catalog", 1)], seed=5)
    assert [again.pick() for _ in range(4000)] == picks
    assert RequestPicker([("health", 1)], seed=1).pick() == "health"


# ---------------------------------------------------------------- the `rate:` grammar

BASE: dict[str, Any] = {
    "name": "demo",
    "title": "a demo",
    "description": "what happened",
    "load": {"duration": "20s", "endpoints": [{"request": "checkout"}]},
    "fault": {"kind": "drop-index", "at": "5s", "until": "10s"},
    "variants": {"baseline": {"expect": [{"window": "fault", "status": 500, "rate": ">= 10%"}]}},
}


def problems(tmp_path: Path, **load: Any) -> list[str]:
    doc = json.loads(json.dumps(BASE))
    doc["load"].update(load)
    return problems_if_any(tmp_path, doc)


def spec(**load: Any) -> LoadSpec:
    return LoadSpec.model_validate({"duration": "20s", "endpoints": [{"request": "checkout"}],
                                    **load})


def test_an_open_model_is_a_rate_with_sensible_defaults(tmp_path: Path) -> None:
    assert problems(tmp_path, rate="200/s") == []
    s = spec(rate="200/s")
    assert (s.rate, s.arrivals, s.max_in_flight, s.open_model) == (200.0, "poisson", 1000, True)
    assert spec(rate="600/m", arrivals="even", max_in_flight=50).model_dump(
        include={"rate", "arrivals", "max_in_flight"}) == {
            "rate": 10.0, "arrivals": "even", "max_in_flight": 50}
    assert spec(rate=" 12.5 / s").rate == 12.5
    closed = spec(users=5, spawn_rate=5, wait="500ms")
    assert (closed.open_model, closed.users, closed.wait) == (False, 5, 0.5)


def test_users_and_rate_together_are_refused(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, users=5, spawn_rate=5, rate="200/s")
    assert problem.startswith("load: give either 'users'")
    assert "'rate'" in problem and "not both" in problem


def test_neither_users_nor_rate_is_refused(tmp_path: Path) -> None:
    [problem] = problems(tmp_path)
    assert problem.startswith("load: expected 'users'")
    assert "'rate'" in problem


@pytest.mark.parametrize("rate", ["0/s", "0.0/s", "0/m"])
def test_a_rate_of_zero_is_refused(tmp_path: Path, rate: str) -> None:
    [problem] = problems(tmp_path, rate=rate)
    assert problem.startswith("load.rate: expected an arrival rate above 0")


@pytest.mark.parametrize("rate", ["200/h", "200", 200, "200 rps", "fast", "-5/s", "200/ms",
                                  True, "/s"])
def test_a_rate_without_a_known_unit_is_refused(tmp_path: Path, rate: Any) -> None:
    [problem] = problems(tmp_path, rate=rate)
    assert problem.startswith("load.rate: expected an arrival rate like '200/s'")


@pytest.mark.parametrize(("extra", "start"), [
    ({"rate": "200/s", "wait": "1s"}, "load: 'wait' belongs to closed-loop 'users'"),
    ({"rate": "200/s", "spawn_rate": 10}, "load: 'spawn_rate' belongs to closed-loop 'users'"),
    ({"users": 5, "spawn_rate": 5, "max_in_flight": 10},
     "load: 'max_in_flight' belongs to the open model"),
    ({"users": 5, "spawn_rate": 5, "arrivals": "even"},
     "load: 'arrivals' belongs to the open model"),
    ({"users": 5}, "load: 'spawn_rate' is required with 'users'"),
])
def test_options_of_the_other_model_are_refused(
    tmp_path: Path, extra: dict[str, Any], start: str
) -> None:
    [problem] = problems(tmp_path, **extra)
    assert problem.startswith(start)


@pytest.mark.parametrize(("extra", "path"), [
    ({"rate": "200/s", "arrivals": "bursty"}, "load.arrivals: expected 'poisson' or 'even'"),
    ({"rate": "200/s", "max_in_flight": 0}, "load.max_in_flight:"),
])
def test_bad_open_model_options_are_named(
    tmp_path: Path, extra: dict[str, Any], path: str
) -> None:
    [problem] = problems(tmp_path, **extra)
    assert problem.startswith(path)


# ---------------------------------------------------------------- Locust's command line


def test_closed_loop_runs_exactly_as_before() -> None:
    """A closed-loop scenario keeps its Locust command line and its spec for the locustfile
    (no `open` key, so the locustfile never loads the open model); the shipped scenarios
    that moved to the open model are exactly those sized by their physics."""
    s = spec(users=100, spawn_rate=100, wait="500ms", client_timeout="5s")
    assert locust_argv(s, "http://h", "lf.py") == [
        "-f", "lf.py", "--headless", "--host", "http://h", "-u", "100", "-r", "100.0",
        # The 20 s window, then one client timeout for its last request and a little slack:
        # the lab stops Locust once every judged request has ended.
        "--run-time", "27s", "--stop-timeout", "0", "--exit-code-on-error", "0",
        "--only-summary", "--loglevel", "WARNING", "Shopper"]
    env = locust_env(s, carts=30000, seed=1, request_log="/x")
    assert env == {"CHAOSLAB_LOAD_SPEC": json.dumps({
        "endpoints": [{"request": "checkout", "weight": 1, "contract": {
            "json": True, "requires": ["order_id", "status"]}}], "client_timeout": 5.0,
        "wait": 0.5, "carts": 30000, "seed": 1}), "CHAOSLAB_REQUEST_LOG": "/x"}
    for path in scenario_paths():
        scenario = load_scenario_file(path)
        shipped = scenario.load
        if scenario.physics is not None:
            assert shipped.open_model and shipped.calibrated, path.name
            continue
        assert not shipped.open_model, f"{path.name} switched to the open model"
        assert "open" not in json.loads(locust_env(shipped, carts=1, seed=1,
                                                   request_log="-")["CHAOSLAB_LOAD_SPEC"])
    physics = {load_scenario_file(p).name for p in scenario_paths()
               if load_scenario_file(p).physics is not None}
    assert physics == {"pool-exhaustion", "cache-stampede"}


def test_the_open_model_runs_one_user_that_fires_every_arrival() -> None:
    s = spec(rate="200/s", arrivals="even", max_in_flight=300)
    argv = locust_argv(s, "http://h", "lf.py")
    assert argv[argv.index("-u") + 1] == "1" and argv[argv.index("-r") + 1] == "1"
    doc = json.loads(locust_env(s, carts=10, seed=7, request_log="-")["CHAOSLAB_LOAD_SPEC"])
    assert doc["open"] == {"rate": 200.0, "arrivals": "even", "max_in_flight": 300}
    assert OpenLoad.from_json(doc["open"]) == OpenLoad(200.0, "even", 300)
    assert doc["seed"] == 7


# ---------------------------------------------------------------- results

W = Windows(load_start=1000.0, fault_start=1010.0, fault_end=1020.0, load_end=1030.0)


def rec(t: float, status: int | None = 201, *, outcome: str = "response",
        retry_after: bool = False, kind: str = "ok") -> RequestRecord:
    return RequestRecord(start=t, latency_ms=10.0, status=status, outcome=outcome,
                         retry_after=retry_after, body_kind=kind, request="checkout",
                         instance="checkout-1")


def drop(t: float) -> RequestRecord:
    return RequestRecord.from_json(drop_record(t, "checkout"))


def test_drops_are_counted_per_window_but_kept_out_of_totals_and_shares() -> None:
    window = [rec(1010 + i * 0.1, 201) for i in range(6)] + [rec(1011, 500, kind="problem")]
    window += [drop(1012 + i * 0.01) for i in range(13)]
    s = WindowSummary.of(window, 10, 20, ends_at=W.fault_end)
    assert (s.total, s.dropped) == (7, 13)
    assert s.by_status == {"201": 6, "500": 1}
    assert s.by_class == {"2xx": 6, "500": 1}
    assert s.completed_by_class == {"2xx": 6, "500": 1}
    assert s.share("500") == pytest.approx(1 / 7)
    assert s.p50_ms == 10.0  # the drops' 0 ms are not latencies
    assert s.to_json()["dropped"] == 13
    # A status expectation's share is over answers only.
    exp = Variant.model_validate({"expect": [{"window": "fault", "status": 500,
                                              "rate": ">= 10%"}]}).expect[0]
    verdict = evaluate(exp, window, [], W)
    assert (verdict.passed, verdict.measured) == (True, "14.3% (1 of 7)")


def even_records(rate: int, start: float, until: float, *, skip: tuple[int, ...] = (),
                 drop_in: tuple[int, ...] = ()) -> list[RequestRecord]:
    """What an on-time generator logs for an even schedule that began `start` seconds into
    the load: an answer (or a drop) per arrival; none in the `skip` seconds."""
    out = []
    for offset in offsets_until(float(rate), "even", 1, until - start):
        t = start + offset
        if int(t) in skip:
            continue
        out.append(drop(W.load_start + t) if int(t) in drop_in else rec(W.load_start + t + 0.001))
    return out


def test_an_on_time_generator_is_not_behind_and_its_achieved_rate_is_the_target() -> None:
    s = spec(rate="20/s", arrivals="even", client_timeout="5s", duration="30s")
    records = even_records(20, 0.6, 30.0)
    acc = ArrivalAccount.of(records, W, s, seed=1)
    assert acc.started_s == pytest.approx(0.6, abs=0.002)
    # The load runs on until every request of the window ended: every second is judged.
    assert acc.judged_until_s == 30
    assert acc.behind == []
    assert acc.achieved[1:25] == [20] * 24
    assert acc.achieved_rate == pytest.approx(20.0, rel=0.01)
    doc = load_summary(s, acc)
    assert doc["model"] == "open" and doc["behind_target"] is False
    assert (doc["rate_per_s"], doc["arrivals"], doc["max_in_flight"]) == (20.0, "even", 1000)
    assert doc["sent"] == len(records) and doc["dropped"] == 0
    assert (doc["workers"], doc["remote_workers"]) == (1, 0)
    assert load_summary(s.with_workers(2), acc)["workers"] == 2


def test_seconds_the_generator_fell_behind_are_named() -> None:
    s = spec(rate="20/s", arrivals="even", client_timeout="5s", duration="30s")
    records = even_records(20, 0.6, 30.0, skip=(7, 8, 27))
    acc = ArrivalAccount.of(records, W, s, seed=1)
    assert acc.behind == [7, 8, 27]
    doc = load_summary(s, acc)
    assert (doc["behind_target"], doc["behind_seconds"]) == (True, [7, 8, 27])
    assert doc["achieved_rate_per_s"] == pytest.approx(20 * (29.4 - 3) / 29.4, rel=0.01)
    line = timeline(records, [], W, acc)
    assert (line[7]["arrivals"], line[7]["scheduled"], line[7]["behind"]) == (0, 20, True)
    assert (line[6]["arrivals"], line[6]["behind"]) == (20, False)
    assert (line[27]["arrivals"], line[27]["scheduled"], line[27]["behind"]) == (0, 20, True)
    [shown] = load_lines(doc)
    assert shown.startswith("LOAD GENERATOR BEHIND TARGET: 3 s below 90% of the arrivals "
                            "scheduled (second 7, 8, 27)")


def test_drops_count_as_arrivals_achieved_and_per_second_in_the_timeline() -> None:
    """A full cap is not a generator that fell behind: dropped arrivals happened on time."""
    s = spec(rate="20/s", arrivals="even", client_timeout="5s", duration="30s")
    records = even_records(20, 0.6, 30.0, drop_in=(12, 13))
    acc = ArrivalAccount.of(records, W, s, seed=1)
    assert acc.behind == []
    line = timeline(records, [], W, acc)
    assert (line[12]["total"], line[12]["dropped"], line[12]["arrivals"]) == (0, 20, 20)
    assert (line[11]["total"], line[11]["dropped"]) == (20, 0)
    doc = load_summary(s, acc)
    assert (doc["sent"], doc["dropped"]) == (len(records) - 40, 40)
    [shown] = load_lines(doc)
    assert shown.startswith("load: 40 arrivals dropped at max_in_flight (1000)")


def test_a_quiet_poisson_second_is_not_taken_for_a_generator_behind() -> None:
    s = spec(rate="50/s", client_timeout="2s", duration="30s")
    start = 0.8
    records = [rec(W.load_start + start + o + 0.0005)
               for o in offsets_until(50.0, "poisson", 3, 30.0 - start)]
    acc = ArrivalAccount.of(records, W, s, seed=3)
    assert any(a < 0.9 * 50 for a in acc.achieved[1:28])  # below the mean by draw...
    assert acc.behind == []  # ...but on its schedule
    assert acc.started_s == pytest.approx(start, abs=0.002)
    # The same log against the mean rate would have cried wolf; against the schedule of
    # another seed it is far off, so the schedule read back is the generator's own.
    other = ArrivalAccount.of(records, W, s, seed=4)
    assert other.behind != []


def test_no_arrival_at_all_is_behind_everywhere() -> None:
    s = spec(rate="10/s", arrivals="even", client_timeout="5s", duration="30s")
    acc = ArrivalAccount.of([], W, s, seed=1)
    assert acc.behind == list(range(30))
    assert load_summary(s, acc)["behind_target"] is True


def test_behind_needs_a_real_shortfall() -> None:
    assert behind_seconds([9, 17, 18, 1], [10, 20, 20, 2], judged=4) == [1]
    assert behind_seconds([0, 0], [5, 5], judged=1) == [0]
    assert schedule_start(2.5, 10.0, "even", 1) == 2.5


def test_closed_loop_results_keep_their_shape() -> None:
    s = spec(users=10, spawn_rate=10, wait="1s")
    assert load_summary(s, None) == {"model": "closed", "users": 10, "spawn_rate": 10.0,
                                     "wait_s": 1.0, "workers": 1, "remote_workers": 0}
    assert load_lines(load_summary(s, None)) == []
    line = timeline([rec(1000.5), rec(1001.5)], [], W)
    assert line[0]["dropped"] == 0 and "arrivals" not in line[0] and "behind" not in line[0]


# ---------------------------------------------------------------- the honest line

NO_500S = {"window": "fault", "status": 500, "count": "== 0"}


def honest(records: list[RequestRecord]) -> tuple[bool, str, float | None]:
    v = Variant.model_validate({"expect": [NO_500S]})
    [_, line] = judge("timeouts", v, records, [], W)
    assert line.text == HONEST_TEXT
    return line.passed, line.measured, line.value


def test_drops_count_against_a_mitigations_honest_line() -> None:
    # A user dropped at the cap got an answer the lab never saw: it cannot vouch for it.
    records = [rec(1010 + i * 0.5) for i in range(20)] + [drop(1012 + i * 0.1) for i in range(3)]
    assert honest(records) == (False, "3 dishonest of 23: dropped at the in-flight cap ×3", 3.0)


def test_an_allowance_for_drops_leaves_them_to_its_bound() -> None:
    records = [rec(1010 + i * 0.5) for i in range(20)] + [drop(1012 + i * 0.1) for i in range(3)]
    v = Variant.model_validate({"expect": [NO_500S, {"window": "fault", "status": "dropped",
                                                     "rate": "<= 20%"}]})
    [_, allowance, line] = judge("timeouts", v, records, [], W)
    assert (allowance.passed, allowance.measured) == (True, "13.0% (3 of 23)")
    assert (line.passed, line.measured) == (
        True, "0 dishonest of 23; dropped left to its allowance: 3")


def test_drops_neither_hide_nor_excuse_a_dishonest_answer() -> None:
    records = [rec(1010 + i * 0.5) for i in range(20)] + [rec(1015.3, 500, kind="problem"),
                                                           drop(1016)]
    passed, measured, value = honest(records)
    assert (passed, value) == (False, 2.0)
    assert measured == "2 dishonest of 22: 500 ×1, dropped at the in-flight cap ×1"


def test_a_window_of_drops_only_measured_nothing() -> None:
    passed, measured, _ = honest([rec(1001), *(drop(1011 + i) for i in range(4))])
    assert (passed, measured) == (False, "no requests in the window")


def test_without_drops_the_honest_line_reads_as_before() -> None:
    assert honest([rec(1010 + i) for i in range(5)]) == (True, "0 dishonest of 5", 0.0)


def test_the_html_report_says_it_too() -> None:
    from lab.report.html import render_html
    from tests.unit.test_html_report import variant as html_variant

    s = spec(rate="20/s", arrivals="even", client_timeout="5s", duration="30s")
    v = html_variant("baseline", [])
    v["load"] = load_summary(s, ArrivalAccount.of(
        even_records(20, 0.6, 30.0, skip=(7,), drop_in=(9,)), W, s, seed=1))
    page = render_html({"schema_version": 2, "passed": True, "variants": [v]})
    assert "LOAD GENERATOR BEHIND TARGET: 1 s below 90%" in page
    assert "load: 20 arrivals dropped at max_in_flight (1000)" in page
    closed = html_variant("baseline", [])  # a results file from before `load` existed
    assert "LOAD GENERATOR" not in render_html({"schema_version": 2, "passed": True,
                                                "variants": [closed]})
