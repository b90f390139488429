"""A gate that cannot be fooled (issue 19): INCONCLUSIVE runs, drops on the honest line,
claims the loader refuses, a run that breaks off under --repeat, a failed closed-loop
baseline that says why. Crafted records and stand-in runners: no stack is started."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lab import cli
from lab.errors import BackendError, ScenarioError
from lab.load.arrivals import offsets_until
from lab.load.request_log import RequestRecord
from lab.run import runner
from lab.scenario.loader import find_scenario, load_scenario_file
from lab.scenario.models import LoadSpec, Variant
from lab.scenario.physics import mechanism, why_not
from lab.verdict.judge import judge
from lab.verdict.results import Inconclusive, RunResults, Windows
from lab.verdict.validity import MIN_ANSWERS, check_experiment
from tests.unit.test_stability import EVIDENCE, variant

pytest_plugins = ["pytester"]

# A 40 s load, the fault from 10 s to 28 s (cache-stampede's shape at 105 arrivals/s).
W = Windows(1000.0, 1010.0, 1028.0, 1040.0)
RATE = 105.0
SEED = 7


def rec(t: float, status: int | None = 200, ms: float = 2.0, outcome: str = "response",
        kind: str = "ok", retry_after: bool = False) -> RequestRecord:
    return RequestRecord(start=t, latency_ms=ms, status=status, outcome=outcome,
                         retry_after=retry_after, body_kind=kind, request="catalog",
                         instance="checkout-1")


def drop(t: float) -> RequestRecord:
    return rec(t, None, 0.0, "dropped", "none")


def open_load(**kw: Any) -> LoadSpec:
    return LoadSpec.model_validate({"rate": f"{RATE:g}/s", "arrivals": "poisson",
                                    "duration": "40s", "endpoints": [{"request": "catalog"}],
                                    **kw})


def scheduled(start_s: float = 0.5) -> list[float]:
    """The schedule's arrival times for SEED, begun `start_s` into the load window."""
    return [W.load_start + start_s + o for o in offsets_until(RATE, "poisson", SEED, 39.5)]


SINGLE_FLIGHT = Variant.model_validate({"expect": [
    {"window": "fault", "status": "5xx", "count": "== 0"},
    {"window": "fault", "status": "timeout", "count": "== 0"}]})


def checks(records: Sequence[RequestRecord], variant: Variant = SINGLE_FLIGHT,
           start_s: float | None = 0.5) -> list[Inconclusive]:
    return check_experiment(variant, mitigation=True, records=records, windows=W,
                            load=open_load(), seed=SEED, schedule_start_s=start_s)


def test_an_experiment_as_designed_is_conclusive() -> None:
    assert checks([rec(t) for t in scheduled()]) == []


def test_a_generator_that_sent_21_of_its_arrivals_is_inconclusive() -> None:
    times = scheduled()
    found = checks([rec(t) for t in times[:21]])
    assert {i.check for i in found} >= {"generator"}
    behind = [i for i in found if i.check == "generator"]
    assert [i.what.split(":")[0] for i in behind] == [
        "the load generator fell behind its schedule in [before]",
        "the load generator fell behind its schedule in [fault]",
        "the load generator fell behind its schedule in [after]"]
    assert "load.workers" in behind[0].knob


def test_drops_count_against_the_honest_line_and_drops_before_the_fault_are_inconclusive(
) -> None:
    times = scheduled()
    # 4158 of ~4200 arrivals dropped at the cap, as in the crafted cache-stampede record.
    records = [rec(t) if i % 100 == 0 else drop(t) for i, t in enumerate(times)]
    [*_, line] = judge("single-flight", SINGLE_FLIGHT, records, [], W)
    assert not line.passed and "dropped at the in-flight cap ×" in line.measured
    found = {i.check for i in checks(records)}
    assert "dropped_before" in found and "too_few" in found


def test_a_saturated_before_window_is_inconclusive() -> None:
    records = [rec(t, ms=600.0) for t in scheduled()]  # median 600 ms before the fault
    [saturated] = [i for i in checks(records) if i.check == "saturated_before"]
    assert "median 600 ms" in saturated.what
    records = [rec(t, 500 if t < W.fault_start and i % 10 == 0 else 200, kind="problem")
               for i, t in enumerate(scheduled())]
    assert [i.check for i in checks(records)] == ["saturated_before"]  # 90 % 2xx


def test_a_judged_window_with_too_few_answers_is_inconclusive() -> None:
    few = [rec(1011.0 + i * 0.5) for i in range(MIN_ANSWERS - 1)]
    records = [rec(1001.0 + i * 0.1) for i in range(80)] + few + [
        rec(1030.0 + i * 0.1) for i in range(80)]
    closed = LoadSpec.model_validate({"users": 5, "spawn_rate": 5, "duration": "40s",
                                      "endpoints": [{"request": "catalog"}]})
    found = check_experiment(SINGLE_FLIGHT, mitigation=False, records=records, windows=W,
                             load=closed, seed=SEED)
    assert [(i.check, i.what) for i in found] == [
        ("too_few", f"[fault] had {MIN_ANSWERS - 1} answers, fewer than the {MIN_ANSWERS} "
                    "a verdict needs")]


def test_the_verdict_of_a_variant_with_a_reason_is_inconclusive_whatever_it_measured() -> None:
    v = variant("single-flight", [(EVIDENCE, True, None)])
    assert (v.verdict, v.passed) == ("PASS", True)
    v.inconclusive.append(Inconclusive("generator", "fell behind", "lower the rate"))
    assert (v.verdict, v.passed) == ("INCONCLUSIVE", False)
    results = RunResults(variants=[v])
    assert (results.passed, results.failed, results.inconclusive) == (False, False, True)
    doc = results.to_json()["variants"][0]
    assert doc["verdict"] == "INCONCLUSIVE" and doc["inconclusive"][0]["knob"] == "lower the rate"


# ---------------------------------------------------------------- the loader refuses


def load(tmp_path: Path, change: dict[str, Any]) -> None:
    """pool-exhaustion with the timeouts variant's expectations replaced by `change`."""
    import yaml

    doc = yaml.safe_load(find_scenario("pool-exhaustion").read_text())
    doc["variants"]["timeouts"]["expect"] = [change]
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(doc))
    load_scenario_file(path)


@pytest.mark.parametrize(("claim", "says"), [
    ({"window": "fault", "p50": "<= 100ms", "p99": "<= 1000ms"}, "one percentile per expectation"),
    ({"window": "fault", "status": 500, "rate": "<= 100%"}, "cannot fail"),
    ({"window": "fault", "status": 500, "rate": ">= 0%"}, "cannot fail"),
    ({"window": "fault", "status": 500, "count": ">= -1"}, "never negative"),
    ({"window": "fault", "status": 500, "count": ">= 0"}, "cannot fail"),
    ({"window": "fault", "status": 500, "rate": "> 100%"}, "cannot hold"),
    ({"window": "after+12s", "status": "2xx", "rate": ">= 95%"}, "leaves 0s to judge"),
    ({"window": "fault", "health": "lying_200", "count": "== 0"}, "no body class"),
    ({"window": "fault", "p99": ">= 0ms"}, "cannot fail"),
])
def test_the_loader_refuses_claims_that_cannot_mean_what_they_say(
    tmp_path: Path, claim: dict[str, Any], says: str,
) -> None:
    with pytest.raises(ScenarioError) as caught:
        load(tmp_path, claim)
    assert "changed.yaml" in str(caught.value) and says in str(caught.value)


def test_health_classes_match_what_the_samples_answered() -> None:
    from lab.records.samples import Sample
    from lab.verdict.judge import evaluate

    samples = [Sample(1011.0 + i, "checkout-1", "503") for i in range(5)]
    e = Variant.model_validate({"expect": [{"window": "fault", "health": "5xx",
                                            "count": "== 0"}]}).expect[0]
    r = evaluate(e, [], samples, W)
    assert (r.passed, r.value) == (False, 5.0)  # 'health: 5xx' is not compared literally


def test_a_named_4xx_is_honest_only_in_its_own_window() -> None:
    v = Variant.model_validate({"expect": [
        {"window": "fault", "status": 500, "count": "== 0"},
        {"window": "after", "status": 429, "count": ">= 1"}]})
    records = [rec(1011.0 + i * 0.1) for i in range(30)] + [
        rec(1012.0, 429, kind="problem"), rec(1030.0, 429, kind="problem")]
    [*_, line] = judge("rate-limit", v, records, [], W)
    assert (line.passed, line.measured) == (False, "1 dishonest of 32: 429 ×1")


# ---------------------------------------------------------------- --repeat that breaks


class _Breaking:
    """Stands in for run_variant: passes twice, then the stack cannot start."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scenario: Any, name: str, backend: Any, events: Any = None,
                       index: int = 1, count: int = 1) -> Any:
        self.calls += 1
        if self.calls == 3:
            raise BackendError("Postgres did not start")
        return variant(name, [(EVIDENCE, True, None)], run_id=f"cl-{self.calls}",
                       scenario=scenario.name)


def test_repeat_with_a_run_that_breaks_is_not_passed_and_names_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(runner, "run_variant", _Breaking())
    out = tmp_path / "r.json"
    code = cli.main(["run", "pool-exhaustion", "--variant", "timeouts", "--repeat", "3",
                     "--quiet", "--json", str(out)])
    printed = capsys.readouterr()
    assert code == cli.EXIT_STACK
    assert "timeouts — all expectations held" in printed.out  # the runs so far, in the table
    assert "pool-exhaustion/timeouts run 3: BROKE OFF: Postgres did not start" in printed.out
    assert "timeouts: 2 of 3 runs passed (1 broke off with an error)" in printed.out
    doc = json.loads(out.read_text())
    assert doc["passed"] is False and doc["errors"][0]["message"] == "Postgres did not start"
    assert doc["stability"]["variants"][0]["passed"] == [True, True, False]


class _Unsure:
    async def __call__(self, scenario: Any, name: str, backend: Any, events: Any = None,
                       index: int = 1, count: int = 1) -> Any:
        v = variant(name, [(EVIDENCE, True, None)], scenario=scenario.name)
        v.inconclusive.append(Inconclusive("generator", "the load generator fell behind",
                                           "give the load more workers (load.workers)"))
        return v


def test_lab_run_exits_4_and_says_inconclusive(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(runner, "run_variant", _Unsure())
    assert cli.main(["run", "pool-exhaustion", "--variant", "timeouts", "--quiet"]) == 4
    out = capsys.readouterr().out
    assert any(line.split()[:2] == ["timeouts", "INCONCLUSIVE"] for line in out.splitlines())
    assert ("  INCONCLUSIVE: the load generator fell behind: give the load more workers "
            "(load.workers)") in out
    assert "1 INCONCLUSIVE" in out.splitlines()[-1]


def test_the_pytest_plugin_reports_inconclusive_as_a_junit_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lab.run import pytest_plugin

    monkeypatch.setattr(pytest_plugin, "run_variant", _Unsure())
    scenarios = pytester.path / "scenarios"
    scenarios.mkdir()
    shutil.copy(find_scenario("pool-exhaustion"), scenarios)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_inprocess("-p", "no:locust", "-p", "no:cacheprovider",
                                          "scenarios", "-k", "timeouts", f"--junitxml={junit}")
    result.assert_outcomes(errors=1, deselected=4)
    assert "the experiment did not happen as designed" in result.stdout.str()
    [case] = ET.parse(junit).getroot().iter("testcase")
    assert case.find("error") is not None and case.find("failure") is None
    assert case.find("skipped") is None


# ---------------------------------------------------------------- why, closed loop


def test_a_failed_closed_loop_baseline_says_why_in_its_mechanism() -> None:
    # 60 users, pool of 5: arrivals slow with the service and no wait outlives the session.
    records = [rec(1000.5 + i * 0.008) for i in range(1100)] + [
        rec(1010.0 + i * 0.025, ms=800.0) for i in range(700)] + [
        rec(1028.0 + i * 0.01) for i in range(1100)]
    figures = mechanism(None, records, [], (W.fault_start, W.fault_end),
                        {"DB_POOL_MAX": 5, "SESSION_TTL_MS": 1000},
                        before=(W.load_start, W.fault_start), users=60)
    text = why_not(figures, None)
    assert text.startswith("the load is a closed loop: at most 60 requests were ever in flight")
    assert "no wait outlived the 1 s session (longest 0.8 s)" in text
    assert "load.rate" in text

