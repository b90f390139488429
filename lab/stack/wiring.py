"""What a backend must bring up for one variant of a scenario: the scenario's stack, the
variant's environment and router, read in one place for every backend and every command
(`lab run`, `lab up`, `lab drill`, `lab compose-files`, bench)."""

from __future__ import annotations

from lab.scenario.models import Scenario
from lab.stack.base import RouterSettings, StackRequest


def stack_request(scenario: Scenario, variant: str, run_id: str) -> StackRequest:
    """What the backend must bring up for one variant of a scenario."""
    volume = scenario.stack.data_volume
    router = scenario.variant_router(variant)
    return StackRequest(
        run_id=run_id,
        instances=scenario.stack.instances,
        checkout_env=scenario.variant_env(variant),
        seed_carts=scenario.stack.seed.carts,
        seed_items_per_cart=scenario.stack.seed.items_per_cart,
        router=RouterSettings(router.health_path, router.inter, router.fall, router.rise),
        seed=scenario.seed,
        data_volume_bytes=volume.size if volume is not None else None,
        fault_kind=scenario.fault.kind,
    )
