"""Stability over repeated runs: the aggregation (min / median / max, margin, pass rate),
its terminal, JSON and HTML forms, and `--repeat` in the CLI, the runner and the pytest
plugin — on crafted results, with the variant runner stubbed (no stack is started)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from lab import cli
from lab.report.html import render_html
from lab.report.stability import render_stability
from lab.run import runner
from lab.run.events import RunEvents
from lab.run.runner import Progress, ProgressFn, run_scenario
from lab.scenario.loader import load_scenario_file
from lab.scenario.models import Bound, Expectation, Scenario
from lab.stack.local import LocalBackend
from lab.verdict.results import ExpectationResult, RunResults, VariantResult, WindowSummary
from lab.verdict.stability import (
    format_margin,
    format_value,
    margin,
    results_json,
    summarize,
    variant_stability,
)

pytest_plugins = ["pytester"]

DRILL = Path(__file__).resolve().parent.parent / "fixtures" / "drill.yaml"
EVIDENCE = "[fault] drop-index took effect (evidence recorded)"


def exp(**fields: Any) -> Expectation:
    return Expectation.model_validate(fields)


RATE = exp(window="fault", status=500, rate=">= 30%")       # a share, >= bound
P99 = exp(window="fault", p99="<= 2000ms")                   # a latency, <= bound
ZERO = exp(window="fault", status=500, count="== 0")         # a count, == bound
PEAK = exp(window="fault", metric="checkout_db_pool_waiting", max=">= 10")  # a metric


def variant(name: str, verdicts: Sequence[tuple[Expectation | str, bool, float | None]],
            run_id: str = "cl-x", scenario: str = "drill") -> VariantResult:
    """A crafted run: each verdict as (expectation or text, passed, value)."""
    results = [ExpectationResult(e if isinstance(e, str) else e.text, ok, "crafted", value)
               for e, ok, value in verdicts]
    empty = WindowSummary.of([], 0.0, 1.0)
    return VariantResult(
        scenario=scenario, name=name, description="", backend="local", run_id=run_id,
        config={}, fault={"kind": "drop-index", "params": {}, "fault_start_s": 0.0,
                          "fault_end_s": 1.0, "load_end_s": 1.0},
        windows={"before": empty, "fault": empty, "after": empty}, timeline=[],
        expectations=results, evidence={"took_effect": True, "facts": {}, "observations": []},
        signatures=[], timing={},
    )


def runs_of(name: str, columns: dict[Expectation, list[float | None]],
            evidence: Sequence[bool] | None = None) -> list[VariantResult]:
    """N runs of one variant: per expectation its value in each run; the verdict is the
    bound's own (a missing value fails), then the fault's evidence."""
    n = len(next(iter(columns.values())))
    runs = []
    for i in range(n):
        verdicts: list[tuple[Expectation | str, bool, float | None]] = []
        for e, values in columns.items():
            v = values[i]
            bound = _bound(e)
            verdicts.append((e, v is not None and bound.holds(v), v))
        verdicts.append((EVIDENCE, True if evidence is None else evidence[i], None))
        runs.append(variant(name, verdicts, run_id=f"cl-{name}-{i + 1}"))
    return runs


def _bound(e: Expectation) -> Bound:
    b = e.rate or e.p99 or e.count or e.max
    assert b is not None
    return b


# ---------------------------------------------------------------- aggregation


def test_min_median_max_and_margin_of_a_rate_with_a_lower_bound() -> None:
    runs = runs_of("baseline", {RATE: [0.896, 0.771, 0.852, 0.35, 0.80]})
    stats = variant_stability(runs, [RATE])
    rate = stats.expectations[0]
    assert (rate.min, rate.median, rate.max) == (0.35, 0.80, 0.896)
    assert rate.margin == pytest.approx(0.05)  # the worst run (35 %) stayed 5 pp above 30 %
    assert format_margin(rate.margin, rate.unit) == "+5 pp"
    assert [format_value(v, "%") for v in (rate.min, rate.median, rate.max)] == [
        "35%", "80%", "89.6%"]
    assert (stats.passes, stats.runs) == (5, 5)


def test_a_run_below_a_lower_bound_makes_the_margin_negative() -> None:
    runs = runs_of("baseline", {RATE: [0.896, 0.248, 0.852, 0.50]})
    stats = variant_stability(runs, [RATE])
    rate = stats.expectations[0]
    assert rate.passes == 3
    assert rate.margin == pytest.approx(-0.052)
    assert format_margin(rate.margin, "%") == "-5.2 pp"
    assert (stats.passes, stats.runs) == (3, 4)
    assert stats.passed == (True, False, True, True)


def test_latency_with_an_upper_bound_margin_is_taken_from_the_largest_value() -> None:
    ok = variant_stability(runs_of("timeouts", {P99: [602.0, 1650.0, 410.0]}), [P99])
    assert ok.expectations[0].margin == 350.0
    assert format_margin(ok.expectations[0].margin, "ms") == "+350 ms"
    assert ok.expectations[0].median == 602.0
    bad = variant_stability(runs_of("timeouts", {P99: [602.0, 2100.0, 410.0]}), [P99])
    assert bad.expectations[0].margin == -100.0
    assert format_margin(bad.expectations[0].margin, "ms") == "-100 ms"
    assert bad.passes == 2


def test_counts_and_metrics_have_margins_in_their_own_units() -> None:
    stats = variant_stability(
        runs_of("baseline", {PEAK: [74.0, 13.0, 40.0], ZERO: [0.0, 0.0, 0.0]}), [PEAK, ZERO])
    peak, zero, evidence = stats.expectations
    assert peak.margin == 3.0 and format_margin(peak.margin, peak.unit) == "+3"
    assert format_value(peak.median, peak.unit) == "40"
    # An `==` bound has no room to spare: met exactly every time its margin is 0 …
    assert zero.margin == 0 and format_margin(zero.margin, zero.unit) == "0"
    off = variant_stability(runs_of("x", {ZERO: [0.0, 2.0, 0.0]}), [ZERO]).expectations[0]
    assert off.margin == -2.0  # … and one run off by 2 makes it -2
    # The fault's evidence has no bound: a pass count, no margin.
    assert evidence.text == EVIDENCE and evidence.bound is None and evidence.margin is None
    assert (evidence.passes, evidence.runs) == (3, 3)


def test_margin_for_each_operator() -> None:
    assert margin(Bound(">", 3.0, ""), [5.0, 4.0]) == 1.0
    assert margin(Bound("<", 10.0, ""), [5.0, 9.0]) == 1.0
    assert margin(Bound("==", 1.0, ""), [1.0, 0.0, 3.0]) == -2.0
    assert margin(Bound(">=", 1.0, ""), []) is None


def test_runs_that_measured_nothing_fail_but_stay_out_of_the_spread() -> None:
    stats = variant_stability(runs_of("readiness", {P99: [300.0, None, 500.0]}), [P99])
    p99 = stats.expectations[0]
    assert (p99.passes, p99.unmeasured) == (2, 1)
    # A run failed: no margin to spare is shown, whatever the measured runs left.
    assert (p99.min, p99.max, p99.margin) == (300.0, 500.0, None)
    assert stats.tightest is p99  # fewest passes comes first, whatever the margin


def test_a_run_that_broke_off_counts_as_not_passed() -> None:
    stats = variant_stability(runs_of("readiness", {P99: [300.0, 500.0]}), [P99], errored=1)
    assert (stats.runs, stats.passes, stats.errored) == (3, 2, 1)
    assert stats.to_json()["passed"] == [True, True, False]


def test_tightest_is_the_fewest_passes_then_the_smallest_relative_margin() -> None:
    # 500 share: 89.6 % - 30 % = +59.6 pp (1.99× its limit); p99: 2000 - 1800 = +200 ms
    # (0.1× its limit): the p99 is the tighter one.
    runs = runs_of("timeouts", {RATE: [0.896, 0.9], P99: [1800.0, 900.0], ZERO: [0.0, 0.0]})
    tight = variant_stability(runs, [RATE, P99, ZERO]).tightest
    assert tight is not None and tight.text == P99.text
    failing = runs_of("timeouts", {RATE: [0.896, 0.2], P99: [1800.0, 900.0]})
    tight = variant_stability(failing, [RATE, P99]).tightest
    assert tight is not None and tight.text == RATE.text
    # A run that failed outranks any margin: the p99 measured nothing once (its measured
    # runs leave +1500 ms), the share held every time by only 2 pp.
    unmeasured = runs_of("timeouts", {RATE: [0.32, 0.5], P99: [500.0, None]})
    tight = variant_stability(unmeasured, [RATE, P99]).tightest
    assert tight is not None and tight.text == P99.text
    # Nothing with slack to rank and every run passed: no tightest expectation.
    exact = runs_of("x", {ZERO: [0.0, 0.0]})
    assert variant_stability(exact, [ZERO]).tightest is None


def test_a_verdict_the_file_does_not_name_gets_no_bound() -> None:
    runs = [variant("x", [(RATE, True, 0.5), ("[fault, after] a built-in line", False, 3.0)])]
    stats = variant_stability(runs, [RATE])
    assert stats.expectations[0].bound == RATE.rate
    assert stats.expectations[1].bound is None and stats.expectations[1].margin is None
    assert stats.expectations[1].max == 3.0


def test_runs_with_different_expectations_are_refused() -> None:
    a = variant("x", [(RATE, True, 0.5)])
    b = variant("x", [(P99, True, 10.0)])
    with pytest.raises(ValueError, match="different expectations"):
        variant_stability([a, b], [RATE, P99])


# ---------------------------------------------------------------- terminal, JSON, HTML


@pytest.fixture
def drill() -> Scenario:
    return load_scenario_file(DRILL)


def _drill_runs(drill: Scenario, baseline: Sequence[float], broken: Sequence[float],
                ) -> list[VariantResult]:
    b_exp = drill.variants["baseline"].expect[0]
    x_exp = drill.variants["broken"].expect[0]
    return (runs_of("baseline", {b_exp: list(baseline)})
            + runs_of("broken", {x_exp: list(broken)}))


def test_terminal_shows_pass_rate_tightest_expectation_and_margins(drill: Scenario) -> None:
    runs = _drill_runs(drill, [0.5, 0.3, 0.08], [3.0, 1.0, 4.0])
    text = render_stability(summarize(runs, {"drill": drill}), 3)
    lines = text.splitlines()
    assert lines[0].startswith("drill: stability over 3 runs per variant")
    baseline_row = next(line for line in lines if line.startswith("baseline "))
    assert "2/3 !" in baseline_row
    assert "[fault] 500 share >= 10%" in baseline_row
    assert baseline_row.endswith("-2 pp")  # the worst run: 8 % against >= 10 %
    broken_row = next(line for line in lines if line.startswith("broken "))
    assert "3/3" in broken_row and "3/3 !" not in broken_row
    assert broken_row.endswith(" 0")  # the worst run: exactly 1 against >= 1
    assert "baseline: 2 of 3 runs passed" in lines
    detail = next(line for line in lines if line.strip().startswith("[fault] 500 share"))
    assert detail.split()[-5:] == ["8%", "30%", "50%", "-2", "pp"]


def test_json_carries_every_run_and_the_stability_section(drill: Scenario) -> None:
    results = RunResults(variants=_drill_runs(drill, [0.5, 0.3, 0.08], [3.0, 1.0, 4.0]))
    doc = json.loads(json.dumps(results_json(results, {"drill": drill}, 3)))
    assert [v["run_id"] for v in doc["variants"]] == [
        "cl-baseline-1", "cl-baseline-2", "cl-baseline-3",
        "cl-broken-1", "cl-broken-2", "cl-broken-3"]
    assert doc["passed"] is False
    section = doc["stability"]
    assert section["repeat"] == 3
    baseline = section["variants"][0]
    assert (baseline["scenario"], baseline["variant"]) == ("drill", "baseline")
    assert (baseline["runs"], baseline["passes"]) == (3, 2)
    assert baseline["pass_rate"] == pytest.approx(2 / 3)
    assert baseline["passed"] == [True, True, False]
    assert baseline["run_ids"] == ["cl-baseline-1", "cl-baseline-2", "cl-baseline-3"]
    share = baseline["expectations"][0]
    assert share["bound"] == {"op": ">=", "limit": 0.1, "unit": "%", "text": ">= 10%"}
    assert share["values"] == [0.5, 0.3, 0.08]
    assert (share["min"], share["median"], share["max"]) == (0.08, 0.3, 0.5)
    assert share["margin"] == pytest.approx(-0.02)
    assert share["shown"] == {"min": "8%", "median": "30%", "max": "50%", "margin": "-2 pp"}
    assert baseline["tightest"]["text"] == "[fault] 500 share >= 10%"
    assert baseline["tightest"]["shown"] == "-2 pp"
    assert baseline["expectations"][1]["text"] == EVIDENCE
    assert baseline["expectations"][1]["bound"] is None
    # One run each: nothing to aggregate, the document is as it always was.
    assert "stability" not in results_json(results, {"drill": drill}, 1)


@pytest.mark.filterwarnings("ignore:No artists with labels")  # crafted runs: empty timelines
def test_html_report_has_a_stability_section_only_with_repeated_runs(drill: Scenario) -> None:
    results = RunResults(variants=_drill_runs(drill, [0.5, 0.3, 0.08], [3.0, 1.0, 4.0]))
    once = results.to_json()
    once["variants"] = once["variants"][:1]
    assert 'id="stability"' not in render_html(once)
    page = render_html(results_json(results, {"drill": drill}, 3))
    section = page[page.index('<section id="stability">'):]
    section = section[:section.index("</section>")]
    assert "Stability over 3 runs per variant" in section
    assert '<span class="badge fail">2/3</span>' in section
    assert '<span class="badge pass">3/3</span>' in section
    assert "<td>-2 pp</td>" in section


# ---------------------------------------------------------------- --repeat


class _StubRunner:
    """Stands in for runner.run_variant: crafted results, the 500 share of each baseline
    run taken in turn from `shares`; reports progress as the real one does."""

    def __init__(self, drill: Scenario, shares: Sequence[float]) -> None:
        self.drill = drill
        self.shares: Iterator[float] = iter(shares)
        self.calls: list[str] = []

    async def __call__(self, scenario: Scenario, name: str, backend: object,
                       events: RunEvents | ProgressFn | None = None, index: int = 1,
                       count: int = 1) -> VariantResult:
        self.calls.append(name)
        RunEvents.of(events).progress.fire(Progress(scenario.name, name, index, count,
                                                    "starting"))
        e = self.drill.variants[name].expect[0]
        value = next(self.shares) if name == "baseline" else 2.0
        assert e.rate is not None or e.count is not None
        bound = e.rate if e.rate is not None else e.count
        assert bound is not None
        n = len(self.calls)
        return variant(name, [(e, bound.holds(value), value), (EVIDENCE, True, None)],
                       run_id=f"cl-{name}-{n}")


def _stability_row(out: str, name: str) -> str:
    """The variant's row in the stability table (its status-mix row comes first)."""
    after = out[out.index("stability over"):]
    return next(line for line in after.splitlines() if line.startswith(f"{name} "))


def test_repeat_zero_is_refused_as_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", str(DRILL), "--repeat", "0"])
    assert exc.value.code == 2
    assert "--repeat: expected at least 1 run, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", str(DRILL), "--repeat", "three"])
    assert exc.value.code == 2


def test_repeat_runs_each_variant_n_times_and_fails_on_one_failed_run(
    drill: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stub = _StubRunner(drill, [0.5, 0.05, 0.4])
    monkeypatch.setattr(runner, "run_variant", stub)  # cmd_run imports it when it runs
    out = tmp_path / "results.json"
    code = cli.main(["run", str(DRILL), "--variant", "baseline", "--repeat", "3",
                     "--progress", "lines", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 1  # 2 of 3 is not 3 of 3
    assert stub.calls == ["baseline"] * 3
    for run in (1, 2, 3):
        assert f"[1/1] drill/baseline run {run}/3  starting" in captured.err
    assert "drill: stability over 3 runs per variant" in captured.out
    row = _stability_row(captured.out, "baseline")
    assert "2/3 !" in row and row.endswith("-5 pp")
    doc = json.loads(out.read_text())
    assert len(doc["variants"]) == 3
    assert doc["stability"]["variants"][0]["passes"] == 2


def test_repeat_exits_0_when_every_run_passed(
    drill: Scenario, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(runner, "run_variant", _StubRunner(drill, [0.5, 0.4]))
    assert cli.main(["run", str(DRILL), "--variant", "baseline", "--repeat", "2",
                     "--quiet"]) == 0
    row = _stability_row(capsys.readouterr().out, "baseline")
    assert "2/2" in row and row.endswith("+30 pp")


def test_run_scenario_repeats_each_variant_back_to_back(
    drill: Scenario, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub = _StubRunner(drill, [0.5, 0.4])
    monkeypatch.setattr(runner, "run_variant", stub)
    results = asyncio.run(run_scenario(drill, ["baseline", "broken"], LocalBackend(),
                                       repeat=2))
    assert [(v.name, v.run_id) for v in results.variants] == [
        ("baseline", "cl-baseline-1"), ("baseline", "cl-baseline-2"),
        ("broken", "cl-broken-3"), ("broken", "cl-broken-4")]


def test_pytest_plugin_runs_an_item_n_times_and_fails_with_the_pass_rate(
    drill: Scenario, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lab.run import pytest_plugin

    monkeypatch.setattr(pytest_plugin, "run_variant", _StubRunner(drill, [0.5, 0.05, 0.4]))
    scenarios = pytester.path / "scenarios"
    scenarios.mkdir()
    shutil.copy(DRILL, scenarios / "drill.yaml")
    out = pytester.path / "results.json"
    result = pytester.runpytest_inprocess(
        "-p", "no:locust", "-p", "no:cacheprovider", "scenarios", "-k", "baseline",
        "--lab-repeat", "3", f"--lab-json={out}")
    result.assert_outcomes(failed=1, deselected=1)
    out_text = result.stdout.str()
    assert "drill::baseline: 1 of 3 runs failed (passed 2/3)" in out_text
    assert ("  - [fault] 500 share >= 10%: held in 2/3; min 5%, median 40%, max 50%, "
            "margin -5 pp") in out_text
    doc = json.loads(out.read_text())
    assert len(doc["variants"]) == 3
    assert doc["stability"]["repeat"] == 3
    assert doc["stability"]["variants"][0]["passed"] == [True, False, True]


def test_pytest_plugin_refuses_a_repeat_below_one(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("-p", "no:locust", "--lab-repeat", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--lab-repeat: expected at least 1 run, got 0*"])


def test_pytest_plugin_marks_baseline_controls_and_mitigations(pytester: pytest.Pytester) -> None:
    scenarios = pytester.path / "scenarios"
    scenarios.mkdir()
    shutil.copy(DRILL.parents[2] / "scenarios" / "flaky-dependency.yaml", scenarios)

    def selected(marker: str) -> list[str]:
        result = pytester.runpytest_inprocess(
            "-p", "no:locust", "-p", "no:cacheprovider", "scenarios", "--collect-only", "-q",
            "-m", marker)
        return sorted(line.split("::")[-1] for line in result.stdout.lines if "::" in line)

    assert selected("reproduces") == ["baseline"]
    assert selected("shows_problem") == ["retries-without-keys", "swallow-errors"]
    assert selected("mitigation") == ["circuit-breaker", "fallback", "timeouts-retries"]


def test_pytest_plugin_collects_scenario_files_wherever_they_live(
        pytester: pytest.Pytester) -> None:
    """A team keeps its scenarios beside its code: a file with the schema header in any
    folder, or one named on the command line, is collected; other YAML is not."""
    text = (DRILL.parents[2] / "scenarios" / "flaky-dependency.yaml").read_text()
    incidents = pytester.path / "incidents"
    incidents.mkdir()
    (incidents / "flaky-dependency.yaml").write_text(text)
    plain = pytester.path / "config"
    plain.mkdir()
    (plain / "flaky-dependency.yaml").write_text("\n".join(text.splitlines()[1:]))

    def collected(*args: str) -> list[str]:
        result = pytester.runpytest_inprocess("-p", "no:locust", "-p", "no:cacheprovider",
                                              *args, "--collect-only", "-q")
        return sorted(line.split("::")[0] for line in result.stdout.lines if "::" in line)

    assert set(collected("incidents", "config")) == {"incidents/flaky-dependency.yaml"}
    assert set(collected("config/flaky-dependency.yaml")) == {"config/flaky-dependency.yaml"}
