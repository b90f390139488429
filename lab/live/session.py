"""A scenario's stack kept up under steady load until someone stops it (`lab up`,
`lab drill`): the live side of the lab, where a fault goes in and out on request.

The pieces are the batch run's (lab.run.runner): the backend's stack, the calibrated load
(sized once, then held for hours), the sampler and the scenario's fault. What differs is
that nothing ends on its own, so everything the session started is pushed on one exit
stack: leaving the session — a normal stop, an exception, Ctrl-C or SIGTERM (the CLI turns
both into a cancellation) — reverts a fault still in, then stops the load, the sampler
and the stack, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from lab.errors import FaultError, LabError
from lab.faults.base import Fault
from lab.live.series import LiveSeries
from lab.load.request_log import RequestLogReader
from lab.records.sampler import Sampler
from lab.records.samples import Sample
from lab.run.experiment import Experiment, build_experiment
from lab.run.runner import cancel_and_wait
from lab.scenario.models import LoadSpec, Scenario
from lab.stack.base import Backend, StackHandle
from lab.stack.wiring import stack_request
from lab.system.run_dirs import new_run_id
from lab.system.threads import off_loop
from lab.system.waiting import wait_until_async
from lab.verdict.results import failure_signatures

#: How long `lab up` holds its load by default: the load generator needs a run time.
DEFAULT_HOLD_S = 4 * 3600.0
#: The metrics the dashboard and the debrief show for "what the infrastructure shows".
INFRA_PREFIXES = ("checkout_db_pool_", "checkout_catalog_cache_", "checkout_data_disk_",
                  "checkout_data_write_failures", "checkout_dependency_failures",
                  "checkout_unhandled_errors", "router_backends", "payments_double_charges",
                  "proxy_")
#: Samples kept for the sampler's own list (the live view needs only the latest round).
KEEP_SAMPLES = 200
#: Infra history kept for a debrief: about an hour of one sample per service a second.
KEEP_INFRA = 20_000
POLL_S = 0.25


def infra_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The subset of a service's metrics that says what the infrastructure is doing."""
    return {k: v for k, v in metrics.items()
            if k.startswith(INFRA_PREFIXES) or "breaker" in k}


def steady_load(load: LoadSpec, hold_s: float) -> LoadSpec:
    """The scenario's load shape, held for `hold_s` instead of its window."""
    return load.model_copy(update={"duration": hold_s})


class LiveSession:
    """One variant's stack under steady load, with its fault injectable on demand."""

    def __init__(self, scenario: Scenario, variant: str, backend: Backend, *,
                 hold_s: float = DEFAULT_HOLD_S,
                 on_phase: Callable[[str], None] | None = None) -> None:
        scenario.require_variants(variant)
        self.scenario = scenario
        self.variant = variant
        self.backend = backend
        self.hold_s = hold_s
        self.run_id = new_run_id()
        self.phase = "starting"
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.series = LiveSeries()
        self.infra_history: deque[dict[str, Any]] = deque(maxlen=KEEP_INFRA)
        self.load_spec: LoadSpec | None = None
        self.calibration: dict[str, Any] | None = None
        self.fault: Fault | None = None
        self.fault_state = "none"
        self.injected_at: float | None = None
        self.reverted_at: float | None = None
        self._on_phase = on_phase or (lambda _phase: None)
        self._exit = AsyncExitStack()
        self._handle: StackHandle | None = None
        self._experiment: Experiment | None = None
        self._sampler: Sampler | None = None
        self._fault_cm: AbstractAsyncContextManager[Fault] | None = None
        self._observer: asyncio.Task[None] | None = None
        self._errors_cache: tuple[float, list[dict[str, Any]]] = (0.0, [])
        #: One change at a time: inject, revert and a drill's rolling restart.
        self.lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> LiveSession:
        try:
            await self._start()
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._set_phase("stopping")
        try:
            if self.fault_state == "injected":
                await self.revert()
        finally:
            await self._exit.aclose()

    async def _start(self) -> None:
        self._set_phase("stack")
        request = stack_request(self.scenario, self.variant, self.run_id)
        handle = await self._exit.enter_async_context(self.backend.up(request))
        self._handle = handle
        self._set_phase("calibrating")
        experiment = await build_experiment(
            self.scenario, self.variant, self.backend.name, handle,
            shape=lambda load: steady_load(load, self.hold_s), refuse_beyond_capacity=False)
        self._experiment = experiment
        if experiment.calibration is not None:
            self.calibration = experiment.calibration.to_json()
        self.load_spec = experiment.load_spec
        sampler = experiment.sampler
        self._sampler = sampler
        self._spawn(sampler.run())
        self._set_phase("load")
        generator = experiment.load
        self._exit.push_async_callback(off_loop, generator.stop)
        await off_loop(generator.start)
        self._generator = generator
        self._spawn(self._follow(RequestLogReader(generator.request_log)))
        # Ready once the first answers came back: the URLs printed then really serve.
        def answered() -> bool:
            if self.series.total != 0 or self.series.current():
                return True
            generator.check_alive()
            return False

        if not await wait_until_async(answered, 30, every=0.1):
            raise LabError("the load generator sent nothing within 30 s of starting")
        self.ready_at = time.time()
        self._set_phase("ready")

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._exit.push_async_callback(cancel_and_wait, task)

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self._on_phase(phase)

    async def _follow(self, reader: RequestLogReader) -> None:
        """Fold new requests into the series; keep the latest infra figures."""
        last_round = 0
        while True:
            self.series.add(reader.read_new(), time.time())
            sampler = self._sampler
            if sampler is not None and sampler.samples:
                newest = sampler.samples[-1].round
                if newest > last_round:
                    for s in self.latest_round():
                        self.infra_history.append({"t": round(s.t, 3), "instance": s.instance,
                                                   "service": s.service,
                                                   "metrics": infra_metrics(s.metrics)})
                    last_round = newest
                if len(sampler.samples) > KEEP_SAMPLES * 2:
                    del sampler.samples[:-KEEP_SAMPLES]
            await asyncio.sleep(POLL_S)

    @property
    def handle(self) -> StackHandle:
        if self._handle is None:
            raise LabError("the stack is not up yet")
        return self._handle

    @property
    def experiment(self) -> Experiment:
        if self._experiment is None:
            raise LabError("the stack is not up yet")
        return self._experiment

    def check_alive(self) -> None:
        """Raise LoadError when the load generator died (the session is then useless)."""
        self._generator.check_alive()

    # ------------------------------------------------------------------ the fault

    async def inject(self) -> dict[str, Any]:
        async with self.lock:
            if self.fault_state == "injected":
                raise FaultError(f"{self.scenario.fault.kind} is already injected: revert first")
            if self.phase != "ready":
                raise FaultError(f"the stack is not ready ({self.phase})")
            fault = self.experiment.new_fault()
            manager = fault.active()
            self.injected_at = time.time()
            await manager.__aenter__()
            self.fault, self._fault_cm = fault, manager
            self.fault_state, self.reverted_at = "injected", None
            self._observer = asyncio.create_task(self._observe(fault))
            return self.fault_json()

    async def _observe(self, fault: Fault) -> None:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(LabError):  # a missed observation is no failure
                await fault.observe()

    async def revert(self) -> dict[str, Any]:
        async with self.lock:
            if self.fault_state != "injected" or self._fault_cm is None:
                raise FaultError("nothing is injected")
            if self._observer is not None:
                await cancel_and_wait(self._observer)
                self._observer = None
            manager, self._fault_cm = self._fault_cm, None
            try:
                await manager.__aexit__(None, None, None)
            finally:
                self.fault_state, self.reverted_at = "reverted", time.time()
            return self.fault_json()

    def fault_json(self) -> dict[str, Any]:
        return {"kind": self.scenario.fault.kind, "state": self.fault_state,
                "injected_at": self.injected_at, "reverted_at": self.reverted_at}

    def evidence(self) -> dict[str, Any]:
        return self.fault.evidence.to_json() if self.fault is not None else {}

    # ------------------------------------------------------------------ what it shows

    def latest_round(self) -> list[Sample]:
        sampler = self._sampler
        if sampler is None or not sampler.samples:
            return []
        newest = sampler.samples[-1].round
        return [s for s in sampler.samples[-50:] if s.round == newest]

    def infra(self) -> dict[str, Any]:
        latest = self.latest_round()
        return {"t": max((s.t for s in latest), default=None),
                "instances": [{"instance": s.instance, "service": s.service,
                               "health": s.health, "metrics": infra_metrics(s.metrics)}
                              for s in latest]}

    def errors(self) -> list[dict[str, Any]]:
        """The checkout's unhandled errors grouped by signature, with their errorIds
        (re-read at most every 2 s: the logs are files that only grow)."""
        at, cached = self._errors_cache
        if self._handle is not None and time.monotonic() - at > 2.0:
            cached = [{"exception": s.exception, "frame": s.frame, "count": s.count,
                       "errorId": s.example_error_id, "message": s.message}
                      for s in failure_signatures(self._handle.service_stderr(),
                                                  self.scenario.error_log_pattern)]
            self._errors_cache = (time.monotonic(), cached)
        return cached

    def mix(self, last: int = 60) -> list[dict[str, Any]]:
        """The last `last` closed seconds, then the seconds still filling (`open`)."""
        return [*self.series.last(last), *({**s, "open": True} for s in self.series.current())]

    def load_json(self) -> dict[str, Any]:
        spec = self.load_spec
        return {"rate_per_s": spec.rate_per_s if spec is not None and spec.open_model else None,
                "users": spec.users if spec is not None and not spec.open_model else None,
                "requests": self.series.total}

    def urls(self) -> dict[str, str]:
        if self._handle is None:
            return {}
        return {"shop": self._handle.stack.entry_url}

    def instances(self) -> Sequence[str]:
        return [i.name for i in self.handle.stack.instances]
