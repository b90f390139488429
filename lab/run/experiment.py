"""One variant's experiment on a stack that is up, built one way for every command that
runs one (`lab run` and the pytest plugin through the runner, `lab up` and `lab drill`
through the live session, bench through the runner): the load sized on this machine
(calibration, workers, the capacity refusal), its generator, the sampler, and the
fault. A change to how a variant is wired is made here and reaches them all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lab.faults.base import Fault
from lab.faults.registry import create_fault
from lab.load.arrivals import DEFAULT_MAX_IN_FLIGHT
from lab.load.calibrate import calibrate
from lab.load.capacity import Capacity, RateRefused, measure_capacity, refusal
from lab.load.ceiling import read_ceiling, workers_for
from lab.records.sampler import Sampler
from lab.scenario.models import LoadSpec, Scenario
from lab.scenario.physics import Calibration, OwnSlowPath
from lab.services.checkout.switches import read_switches
from lab.stack.base import LoadGenerator, StackHandle
from lab.stack.dependency_check import check_dependencies_used


@dataclass
class Experiment:
    """What a variant runs on its stack; nothing started yet (the caller starts the
    sampler and the load, and holds the fault open when it chooses)."""

    scenario: Scenario
    variant: str
    handle: StackHandle
    calibration: Calibration | None
    capacity: Capacity | None
    load_spec: LoadSpec
    load: LoadGenerator
    sampler: Sampler

    def new_fault(self) -> Fault:
        """The scenario's fault with the variant's params, on this stack (one per
        injection: a live session injects again after a revert)."""
        return create_fault(self.scenario.fault.kind,
                            self.scenario.variant_fault_params(self.variant),
                            self.handle.stack, self.scenario.seed, handle=self.handle)


async def build_experiment(
    scenario: Scenario, variant: str, backend: str, handle: StackHandle, *,
    shape: Callable[[LoadSpec], LoadSpec] = lambda load: load,
    refuse_beyond_capacity: bool = True,
) -> Experiment:
    """The experiment of `variant` on the stack `handle` runs. `shape` changes the load
    before its workers are decided (a live session holds it for hours); a rate the
    healthy stack cannot serve is refused (RateRefused, exit 2) unless
    `refuse_beyond_capacity` is off (a rehearsal has no verdict to protect)."""
    await check_dependencies_used(scenario, handle.stack)
    calibration = await calibrate_scenario(scenario, backend, handle.stack.db_dsn)
    load = (scenario.load if calibration is None else
            scenario.load.sized(calibration.rate_per_s, calibration.max_in_flight))
    load = with_workers(shape(load))
    capacity = (await check_capacity(scenario, backend, handle, load,
                                     physics=calibration is not None)
                if refuse_beyond_capacity else None)
    stack = handle.stack
    # Re-read every round: a fault may start or retire checkout instances.
    sampler = Sampler(lambda: [*stack.instances, *stack.services])
    generator = handle.load_generator(load, carts=scenario.stack.seed.carts, seed=scenario.seed)
    return Experiment(scenario, variant, handle, calibration, capacity, load, generator, sampler)


def service_settings(env: dict[str, str]) -> dict[str, object]:
    """The checkout's switches as the service reads them from a variant's environment."""
    return read_switches(env, on_host=False, user_only=True)


def with_workers(load: LoadSpec) -> LoadSpec:
    """The load with its workers decided (lab.load.ceiling); a rate they cannot send is
    refused before the load (RateRefused, exit 2)."""
    if load.remote_workers and load.workers == "auto":
        return load.with_workers(0)  # the load is the remote workers' (--remote-workers)
    try:
        n = workers_for(load.rate_per_s if load.open_model else None, load.workers,
                        read_ceiling(), remote=load.remote_workers)
    except ValueError as exc:
        raise RateRefused("load", str(exc)) from None
    return load.with_workers(n)


async def check_capacity(scenario: Scenario, backend: str, handle: StackHandle,
                         load: LoadSpec, *, physics: bool) -> Capacity | None:
    """For the open model: what the healthy stack serves here (lab.load.capacity); a rate it
    cannot serve is refused before the load (RateRefused, exit 2)."""
    if not load.open_model:
        return None
    seed = scenario.stack.seed
    capacity = await measure_capacity(
        handle, load, carts=seed.carts, seed=scenario.seed,
        key=(scenario.name, backend, seed.carts, seed.items_per_cart, scenario.stack.instances))
    why = refusal(load.rate_per_s, capacity, physics=physics)
    if why is not None:
        raise RateRefused(scenario.name, why)
    return capacity


async def calibrate_scenario(scenario: Scenario, backend: str, dsn: str) -> Calibration | None:
    """Size a `rate: calibrated` load on this machine (lab.scenario.physics, lab.load.calibrate)."""
    if scenario.physics is None:
        return None
    slow_path = scenario.physics.slow_path
    pool = (slow_path.pool if isinstance(slow_path, OwnSlowPath) else
            int(str(service_settings(scenario.variant_env("baseline"))["DB_POOL_MAX"])))
    seed = scenario.stack.seed
    return await calibrate(
        dsn, scenario.physics, endpoints=[(e.name, e.weight) for e in scenario.load.endpoints],
        carts=seed.carts, pool=pool, seed=scenario.seed,
        default_max_in_flight=_cap(scenario.load),
        key=(scenario.name, backend, seed.carts, seed.items_per_cart))


def _cap(load: LoadSpec) -> int:
    return load.max_in_flight if "max_in_flight" in load.model_fields_set else DEFAULT_MAX_IN_FLIGHT
