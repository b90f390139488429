"""Run events (lab.run.events) and the one run loop (lab.run.runner.RunLoop): the hook's order,
removal and exceptions; the loop's skips, order, repeats and numbering; and `lab run`'s
listeners (progress line, JSON rewritten after each run) — with the variant runner
stubbed, so no stack is started."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from lab import cli
from lab.cli import run as cli_run
from lab.run import runner
from lab.run.events import EventHook, Progress, ProgressFn, Run, RunEvents, VariantDone
from lab.run.runner import RunLoop, run_scenario
from lab.scenario.loader import find_scenario, load_scenario_file
from lab.scenario.models import Scenario
from lab.stack.base import StackRequest
from lab.verdict.results import RunResults, Skipped, VariantResult
from tests.unit.test_stability import variant as crafted

DRILL = Path(__file__).resolve().parent.parent / "fixtures" / "drill.yaml"

# ---------------------------------------------------------------- EventHook


def test_listeners_are_called_in_the_order_they_were_added() -> None:
    hook: EventHook[int] = EventHook()
    calls: list[tuple[str, int]] = []
    hook.add_listener(lambda n: calls.append(("a", n)))

    @hook.add_listener  # add_listener returns the listener: usable as a decorator
    def b(n: int) -> None:
        calls.append(("b", n))

    hook.fire(1)
    hook.fire(2)
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert callable(b)


def test_a_removed_listener_is_not_called_and_removing_a_stranger_raises() -> None:
    hook: EventHook[int] = EventHook()
    calls: list[str] = []

    def a(_: int) -> None:
        calls.append("a")

    def b(_: int) -> None:
        calls.append("b")

    hook.add_listener(a)
    hook.add_listener(b)
    hook.remove_listener(a)
    hook.fire(0)
    assert calls == ["b"]
    with pytest.raises(ValueError):
        hook.remove_listener(a)


def test_a_listener_may_remove_itself_while_the_event_fires() -> None:
    hook: EventHook[int] = EventHook()
    calls: list[str] = []

    def once(_: int) -> None:
        calls.append("once")
        hook.remove_listener(once)

    hook.add_listener(once)
    hook.add_listener(lambda _: calls.append("always"))
    hook.fire(0)
    hook.fire(0)
    assert calls == ["once", "always", "always"]


def test_a_listeners_exception_propagates_and_stops_the_later_ones() -> None:
    # Chosen, unlike Locust (which logs it): a results file that cannot be written must
    # stop `lab run`, as it did before the events existed.
    hook: EventHook[int] = EventHook()
    calls: list[str] = []

    def broken(_: int) -> None:
        raise OSError("disk full")

    hook.add_listener(lambda _: calls.append("first"))
    hook.add_listener(broken)
    hook.add_listener(lambda _: calls.append("never"))
    with pytest.raises(OSError, match="disk full"):
        hook.fire(0)
    assert calls == ["first"]


def test_of_wraps_a_progress_callback_and_keeps_a_bundle() -> None:
    seen: list[str] = []
    events = RunEvents.of(lambda p: seen.append(p.phase))
    events.progress.fire(Progress("drill", "baseline", 1, 1, "starting"))
    assert seen == ["starting"]
    assert RunEvents.of(events) is events
    RunEvents.of(None).progress.fire(Progress("drill", "baseline", 1, 1, "starting"))


# ---------------------------------------------------------------- the run loop


class FakeBackend:
    """Refuses the fault kinds it is given, as a machine without a tmpfs refuses disk-fill."""

    name = "fake"

    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        self.refuse = refuse or {}

    def unsupported(self, request: StackRequest) -> str | None:
        return self.refuse.get(request.fault_kind)


class StubRunner:
    """Stands in for runner.run_variant: records each call, reports `starting` through
    the events it is given, and returns a crafted result numbered by call."""

    def __init__(self, on_call: Any = None) -> None:
        self.calls: list[tuple[str, str, int, int]] = []
        self.on_call = on_call

    async def __call__(self, scenario: Scenario, variant: str, backend: object,
                       events: RunEvents | ProgressFn | None = None, *, index: int = 1,
                       count: int = 1) -> VariantResult:
        self.calls.append((scenario.name, variant, index, count))
        if self.on_call is not None:
            self.on_call()
        RunEvents.of(events).progress.fire(Progress(scenario.name, variant, index, count,
                                                    "starting"))
        return crafted(variant, [("[fault] crafted", True, None)],
                       run_id=f"cl-{len(self.calls)}", scenario=scenario.name)


@pytest.fixture
def drill() -> Scenario:
    return load_scenario_file(DRILL)


@pytest.fixture
def stampede() -> Scenario:
    return load_scenario_file(find_scenario("cache-stampede"))


def test_the_loop_skips_refused_scenarios_up_front_and_numbers_only_what_runs(
    drill: Scenario, stampede: Scenario,
) -> None:
    events = RunEvents()
    log: list[str] = []
    events.skipped.add_listener(lambda s: log.append(f"skipped {s.scenario}: {s.reason}"))
    events.started.add_listener(
        lambda r: log.append(f"started {r.variant} [{r.index}/{r.count}] {r.run}/{r.repeat}"))
    events.progress.add_listener(lambda p: log.append(f"progress {p.variant} {p.phase}"))
    events.variant_done.add_listener(
        lambda d: log.append(f"done {d.run.variant} {d.result.run_id} "
                             f"({len(d.results.variants)} so far)"))
    stub = StubRunner()
    loop = RunLoop([(stampede, ["baseline", "single-flight"]), (drill, ["baseline", "broken"])],
                   FakeBackend({"hot-key-expiry": "no cache here"}), events, repeat=2,
                   variant_runner=stub)
    # Checked when the loop is made, before anything runs.
    assert log == ["skipped cache-stampede: no cache here"]
    assert loop.results.skipped == [Skipped("cache-stampede", ["baseline", "single-flight"],
                                            "no cache here")]
    assert [(s.name, v) for s, v in loop.runnable] == [("drill", ["baseline", "broken"])]
    assert loop.count == 2

    results = loop.run()
    assert stub.calls == [("drill", "baseline", 1, 2), ("drill", "baseline", 1, 2),
                          ("drill", "broken", 2, 2), ("drill", "broken", 2, 2)]
    assert [v.run_id for v in results.variants] == ["cl-1", "cl-2", "cl-3", "cl-4"]
    assert results is loop.results
    assert log[1:] == [
        "started baseline [1/2] 1/2", "progress baseline starting", "done baseline cl-1 (1 so far)",
        "started baseline [1/2] 2/2", "progress baseline starting", "done baseline cl-2 (2 so far)",
        "started broken [2/2] 1/2", "progress broken starting", "done broken cl-3 (3 so far)",
        "started broken [2/2] 2/2", "progress broken starting", "done broken cl-4 (4 so far)",
    ]


def test_the_loop_numbers_variants_across_scenarios(drill: Scenario, stampede: Scenario) -> None:
    stub = StubRunner()
    runs = list(RunLoop([(drill, ["broken"]), (stampede, ["baseline", "single-flight"])],
                        FakeBackend(), variant_runner=stub).runs())
    assert [(r.scenario.name, r.variant, r.index, r.count, r.run) for r in runs] == [
        ("drill", "broken", 1, 3, 1), ("cache-stampede", "baseline", 2, 3, 1),
        ("cache-stampede", "single-flight", 3, 3, 1)]


def test_each_run_goes_through_the_given_run_async(drill: Scenario) -> None:
    driven: list[str] = []

    def run_async(coro: Coroutine[Any, Any, VariantResult]) -> VariantResult:
        driven.append("run")
        return asyncio.run(coro)

    results = RunLoop([(drill, ["baseline", "broken"])], FakeBackend(),
                      variant_runner=StubRunner()).run(run_async)
    assert driven == ["run", "run"]
    assert len(results.variants) == 2


def test_run_scenario_is_the_same_loop_inside_an_event_loop(
    drill: Scenario, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub = StubRunner()
    monkeypatch.setattr(runner, "run_variant", stub)  # looked up when the loop is made
    phases: list[str] = []
    results = asyncio.run(run_scenario(drill, ["broken", "baseline"], FakeBackend(),
                                       lambda p: phases.append(p.phase), repeat=2))
    assert [v.name for v in results.variants] == ["broken", "broken", "baseline", "baseline"]
    assert [c[1:3] for c in stub.calls] == [("broken", 1), ("broken", 1),
                                            ("baseline", 2), ("baseline", 2)]
    assert phases == ["starting"] * 4
    skipped = asyncio.run(run_scenario(drill, ["baseline"], FakeBackend({"drop-index": "no"})))
    assert skipped == RunResults(skipped=[Skipped("drill", ["baseline"], "no")])
    assert len(stub.calls) == 4


# ---------------------------------------------------------------- lab run's listeners


def test_lab_run_rewrites_the_json_after_each_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "results.json"
    in_file_at_call: list[int] = []
    stub = StubRunner(lambda: in_file_at_call.append(
        len(json.loads(out.read_text())["variants"]) if out.exists() else 0))
    monkeypatch.setattr(runner, "run_variant", stub)
    monkeypatch.setattr(cli_run, "backend_named", lambda _: FakeBackend())
    code = cli.main(["run", str(DRILL), "--repeat", "2", "--json", str(out),
                     "--progress", "lines"])
    captured = capsys.readouterr()
    assert code == 0
    assert in_file_at_call == [0, 1, 2, 3]  # each run finds every earlier one written
    doc = json.loads(out.read_text())
    assert [v["run_id"] for v in doc["variants"]] == ["cl-1", "cl-2", "cl-3", "cl-4"]
    assert doc["stability"]["repeat"] == 2
    assert captured.err.splitlines() == [
        "[1/2] drill/baseline run 1/2  starting", "[1/2] drill/baseline run 2/2  starting",
        "[2/2] drill/broken run 1/2  starting", "[2/2] drill/broken run 2/2  starting"]
    assert f"results written to {out}" in captured.out


def test_lab_run_with_nothing_runnable_says_why_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    stub = StubRunner()
    monkeypatch.setattr(runner, "run_variant", stub)
    monkeypatch.setattr(cli_run, "backend_named", lambda _: FakeBackend({"drop-index": "no index"}))
    out = tmp_path / "results.json"
    assert cli.main(["run", str(DRILL), "--json", str(out), "--quiet"]) == 3
    captured = capsys.readouterr()
    assert captured.err == "lab: skipping drill: no index\n"
    assert "drill: SKIPPED (baseline, broken) — no index" in captured.out
    assert json.loads(out.read_text())["skipped"] == [
        {"scenario": "drill", "variants": ["baseline", "broken"], "reason": "no index"}]
    assert stub.calls == []


def test_variant_done_carries_the_run_and_the_results_so_far(drill: Scenario) -> None:
    done: list[VariantDone] = []
    events = RunEvents()
    events.variant_done.add_listener(done.append)
    RunLoop([(drill, ["baseline"])], FakeBackend(), events, repeat=3,
            variant_runner=StubRunner()).run()
    assert [d.run.run for d in done] == [1, 2, 3]
    assert [len(d.results.variants) for d in done] == [3, 3, 3]  # one list, growing
    assert [d.result.run_id for d in done] == ["cl-1", "cl-2", "cl-3"]
    assert isinstance(done[0].run, Run)
