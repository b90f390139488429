"""The variant lifecycle: stack up, load, fault in and out, samples, stack down.

Built on nested async context managers so that every way out — a failed expectation,
an exception, Ctrl-C, SIGTERM (the CLI turns it into a cancellation) — reverts the fault,
stops the load and tears the stack down, in that order.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from lab.errors import Interrupted, LabError, ScenarioError
from lab.faults.base import Fault
from lab.load.request_log import (
    RequestLogReader,
    RequestRecord,
    ended_before,
    read_request_log,
)
from lab.records.ledger_collector import collect_ledger
from lab.records.samples import Sample
from lab.run.events import Progress, ProgressFn, Run, RunEvents, RunFailed, VariantDone
from lab.run.experiment import build_experiment, service_settings
from lab.scenario.models import Scenario
from lab.scenario.physics import Calibration, mechanism, why_not
from lab.stack.base import Backend
from lab.stack.wiring import stack_request
from lab.system.run_dirs import new_run_id
from lab.system.threads import off_loop
from lab.system.waiting import wait_until_async
from lab.verdict.judge import is_mitigation, judge
from lab.verdict.results import (
    ArrivalAccount,
    ExpectationResult,
    RunError,
    RunResults,
    Skipped,
    VariantResult,
    Windows,
    WindowSummary,
    failure_signatures,
    in_window,
    load_summary,
    timeline,
)
from lab.verdict.validity import check_experiment

# After the load window the load goes on (requests sent then are in no window) until every
# request sent in the window has ended — answered, or given up on at the client timeout —
# so no window is judged on requests whose end the lab never saw; a healthy stack answers
# the last ones in milliseconds. This much past the client timeout is the bound.
LOAD_STOP_SLACK_S = 1.0


@dataclass
class _Live:
    """Request records as they arrive, for progress; the full log is re-read at the end."""

    reader: RequestLogReader
    last_second: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def poll(self, now: float) -> None:
        fresh = self.reader.read_new()
        self.total += len(fresh)
        self.last_second = Counter(r.cls for r in fresh if r.start >= now - 1.0)


def skip_reason(scenario: Scenario, backend: Backend) -> str | None:
    """Why this machine cannot run the scenario on this backend (e.g. no way to mount a
    size-limited filesystem), or None. Such a scenario is skipped, never faked."""
    return backend.unsupported(stack_request(scenario, "baseline", "cl-probe"))


async def run_variant(
    scenario: Scenario,
    variant: str,
    backend: Backend,
    events: RunEvents | ProgressFn | None = None,
    index: int = 1,
    count: int = 1,
) -> VariantResult:
    """One run of one variant; `events` (a bundle, or a plain progress callback) gets its
    progress."""
    spec = scenario.variants[variant]
    run_id = new_run_id()
    bus = RunEvents.of(events)

    def report(phase: str, **kw: float | int | dict[str, int]) -> None:
        bus.progress.fire(Progress(scenario.name, variant, index, count, phase, **kw))  # type: ignore[arg-type]

    report("starting")
    began = time.monotonic()
    request = stack_request(scenario, variant, run_id)
    fault_params = scenario.variant_fault_params(variant)
    async with backend.up(request) as handle:
        stack = handle.stack
        experiment = await build_experiment(scenario, variant, backend.name, handle)
        calibration, capacity = experiment.calibration, experiment.capacity
        load_spec, load, sampler = experiment.load_spec, experiment.load, experiment.sampler
        fault = experiment.new_fault()
        await fault.check()
        sampler_task = asyncio.create_task(sampler.run())
        try:
            load_start = await off_loop(load.start)
            live = _Live(RequestLogReader(load.request_log))
            end = load_start + load_spec.duration

            async def tick_until(deadline: float, phase: str, during: Fault | None = None) -> None:
                while (now := time.time()) < deadline:
                    load.check_alive()
                    live.poll(now)
                    report(phase, elapsed_s=now - load_start, remaining_s=end - now,
                           last_second=dict(live.last_second), total_requests=live.total)
                    if during is not None:
                        await during.observe()
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.time())))

            await tick_until(load_start + scenario.fault.at, "before")
            fault_start = time.time()
            async with fault.active():
                await tick_until(load_start + scenario.fault.until, "fault", during=fault)
            fault_end = time.time()
            await tick_until(end, "after")
            report("stopping", elapsed_s=time.time() - load_start, total_requests=live.total)
            await wait_until_async(
                lambda: load.finished() or ended_before(load.request_log, end),
                load_spec.client_timeout + LOAD_STOP_SLACK_S, every=0.1)
        finally:
            # The load's stop may wait seconds: off the loop (lab.system.threads). A cancellation
            # meanwhile waits for it; the sampler ends after it either way.
            try:
                await off_loop(load.stop)
            finally:
                await cancel_and_wait(sampler_task)
        records = read_request_log(load.request_log)
        ledger = await collect_ledger(stack, records)
        stderr_lines = handle.service_stderr()
        stack_started_in = stack.started_in_s
        teardown_began = time.monotonic()
    teardown_s = time.monotonic() - teardown_began
    total_s = time.monotonic() - began

    windows = Windows(load_start, fault_start, fault_end, end)
    arrivals = (ArrivalAccount.of(records, windows, load_spec, scenario.seed)
                if load_spec.open_model else None)
    results = judge(variant, spec, records, sampler.samples, windows, ledger)
    inconclusive = check_experiment(
        spec, mitigation=is_mitigation(variant, spec), records=records, windows=windows,
        load=load_spec, seed=scenario.seed, physics=calibration is not None,
        schedule_start_s=None if arrivals is None else arrivals.started_s)
    results.append(_evidence_verdict(fault))
    if calibration is not None and calibration.healthy_use is not None:
        results.append(_headroom_verdict(calibration, calibration.healthy_use))
    physics = _mechanism(scenario, variant, records, sampler.samples, windows, calibration,
                         passed=all(r.passed for r in results))
    return VariantResult(
        scenario=scenario.name,
        name=variant,
        description=spec.description,
        backend=backend.name,
        run_id=run_id,
        config=scenario.variant_env(variant),
        fault={"kind": scenario.fault.kind, "params": fault_params, **windows.relative()},
        windows=_window_summaries(records, windows),
        timeline=timeline(records, sampler.samples, windows, arrivals),
        expectations=results,
        evidence=fault.evidence.to_json(),
        signatures=failure_signatures(stderr_lines, scenario.error_log_pattern),
        timing={
            "stack_start_s": round(stack_started_in, 3),
            "load_s": round(load_spec.duration, 3),
            "teardown_s": round(teardown_s, 3),
            "total_s": round(total_s, 3),
            "overhead_s": round(total_s - load_spec.duration, 3),
        },
        ledger=ledger,
        load=load_summary(load_spec, arrivals, capacity),
        calibration=None if calibration is None else calibration.to_json(),
        mechanism=physics,
        inconclusive=inconclusive,
    )


def _headroom_verdict(calibration: Calibration, use: float) -> ExpectationResult:
    """A calibrated load must leave the healthy path room, or a mitigation's 'before'
    would fail for the load, not the fault."""
    return ExpectationResult(
        text=(f"[calibration] the healthy path keeps its headroom (modelled pool use before "
              f"the fault <= {calibration.max_healthy_use:.0%})"),
        passed=calibration.headroom_ok,
        measured=f"{use:.1%} at {calibration.rate_per_s:g}/s",
    )


def _mechanism(scenario: Scenario, variant: str, records: list[RequestRecord],
               samples: list[Sample], windows: Windows, calibration: Calibration | None,
               *, passed: bool) -> dict[str, object] | None:
    """The incident's physics as it played out; for a failed baseline (or control), why —
    also for a scenario without `physics:` (closed loop or a fixed rate), in the same
    terms: arrivals against what was served, waits against the session."""
    reproduces = variant == "baseline" or scenario.variants[variant].shows_problem
    if scenario.physics is None and (passed or not reproduces):
        return None
    if scenario.stack.service is not None or (
            scenario.physics is not None and not isinstance(scenario.physics.slow_path, str)):
        return None  # its terms (the pool, the session's TTL) are the sample shop's

    before = [s for s in samples if s.t < windows.fault_start]
    last_round = max((s.round for s in before), default=None)
    figures = mechanism(
        None if scenario.physics is None else str(scenario.physics.slow_path), records, samples,
        (windows.fault_start, windows.fault_end), service_settings(scenario.variant_env(variant)),
        before_samples=[s for s in before if s.round == last_round],
        before=(windows.load_start, windows.fault_start),
        users=None if scenario.load.open_model else scenario.load.users)
    if not passed and reproduces:
        figures["why_not"] = why_not(figures, calibration)
    return figures


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel a helper task and wait for it, without swallowing a cancellation of *this*
    task (Ctrl-C arriving during cleanup must still stop the run)."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


def _window_summaries(records: list[RequestRecord], windows: Windows) -> dict[str, WindowSummary]:
    out = {}
    for name in ("before", "fault", "after"):
        start, stop = windows.range(name)
        out[name] = WindowSummary.of(
            in_window(records, (start, stop)), start - windows.load_start,
            stop - windows.load_start, ends_at=stop,
        )
    return out


def _fact(value: object) -> str:
    """A fact as one short token: a breakdown reads `(hit 3700 stale 91 miss 0)`."""
    if isinstance(value, dict):
        return "(" + " ".join(f"{k} {v}" for k, v in value.items()) + ")"
    return str(value)


def _evidence_verdict(fault: Fault) -> ExpectationResult:
    facts = fault.evidence.facts
    # Long facts (definitions, schedules, change logs) stay in the JSON only.
    hidden = ("definition", "schedule", "changes")
    shown = ", ".join(f"{k}={_fact(v)}" for k, v in facts.items() if k not in hidden)
    return ExpectationResult(
        text=f"[fault] {fault.kind} took effect (evidence recorded)",
        passed=fault.evidence.took_effect,
        measured=shown or "no evidence recorded",
    )


class VariantRunner(Protocol):
    """What the loop calls for one run: `run_variant`, or a test's stand-in."""

    def __call__(self, scenario: Scenario, variant: str, backend: Backend,
                 events: RunEvents | ProgressFn | None = None, /, *, index: int = 1,
                 count: int = 1) -> Coroutine[Any, Any, VariantResult]: ...


class RunLoop:
    """The one run loop: scenarios × variants × repeats, for `lab run`, `run_scenario` and
    the pytest plugin alike.

    It checks every scenario up front (`skip_reason`; `events.skipped` fires for each one
    this machine cannot run, and it lands in `results.skipped`), so the numbering counts
    only the variants that will run. Then `runs()` gives the variants in order, a variant's
    runs back to back; `events.started` fires before each and `events.variant_done` after
    it, once its result is in `results`. `run` drives it synchronously, each variant under
    its own `run_async` (the CLI's turns SIGTERM into a cancellation), `run_here` inside a
    running event loop. `run_variant` is looked up when the loop is made (or given as
    `variant_runner`), so tests can stand in for it.
    """

    def __init__(self, plan: list[tuple[Scenario, list[str]]], backend: Backend,
                 events: RunEvents | None = None, repeat: int = 1, *,
                 variant_runner: VariantRunner | None = None) -> None:
        self.backend = backend
        self.events = events if events is not None else RunEvents()
        self.repeat = repeat
        self.results = RunResults()
        self._refused: set[str] = set()
        self._run_variant = variant_runner if variant_runner is not None else run_variant
        self.runnable: list[tuple[Scenario, list[str]]] = []
        for scenario, variants in plan:
            if (reason := skip_reason(scenario, backend)) is not None:
                skipped = Skipped(scenario.name, variants, reason)
                self.results.skipped.append(skipped)
                self.events.skipped.fire(skipped)
            else:
                self.runnable.append((scenario, variants))
        self.count = sum(len(variants) for _, variants in self.runnable)

    def runs(self) -> Iterator[Run]:
        index = 0
        for scenario, variants in self.runnable:
            for name in variants:
                index += 1
                for n in range(1, self.repeat + 1):
                    yield Run(scenario, name, index, self.count, n, self.repeat)

    def _start(self, run: Run) -> Coroutine[Any, Any, VariantResult]:
        self.events.started.fire(run)
        return self._run_variant(run.scenario, run.variant, self.backend, self.events,
                                 index=run.index, count=run.count)

    def _finish(self, run: Run, result: VariantResult) -> None:
        self.results.variants.append(result)
        self.events.variant_done.fire(VariantDone(run, result, self.results))

    def _broke(self, run: Run, exc: LabError) -> bool:
        """A run broke off: name it in the results, and say whether the loop goes on (a
        refused scenario leaves the others to run; a broken stack stops everything)."""
        refused = isinstance(exc, ScenarioError)
        self.results.errors.append(RunError(run.scenario.name, run.variant, run.run,
                                            "refused" if refused else "error", str(exc)))
        self.events.run_failed.fire(RunFailed(run, exc, self.results))
        if refused:
            self._refused.add(run.scenario.name)
        return refused

    def run(self, run_async: Callable[[Coroutine[Any, Any, VariantResult]], VariantResult]
            = asyncio.run) -> RunResults:
        for run in self.runs():
            if run.scenario.name in self._refused:
                continue
            try:
                result = run_async(self._start(run))
            except Interrupted:
                raise
            except LabError as exc:
                if self._broke(run, exc):
                    continue
                break
            self._finish(run, result)
        return self.results

    async def run_here(self) -> RunResults:
        for run in self.runs():
            if run.scenario.name in self._refused:
                continue
            try:
                result = await self._start(run)
            except Interrupted:
                raise
            except LabError as exc:
                if self._broke(run, exc):
                    continue
                break
            self._finish(run, result)
        return self.results


async def run_scenario(
    scenario: Scenario,
    variants: list[str],
    backend: Backend,
    progress: RunEvents | ProgressFn | None = None,
    repeat: int = 1,
) -> RunResults:
    """Every variant `repeat` times, a variant's runs back to back; lab.verdict.stability
    aggregates them."""
    return await RunLoop([(scenario, variants)], backend, RunEvents.of(progress),
                         repeat).run_here()
