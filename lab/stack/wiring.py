"""What a backend must bring up for one variant of a scenario: the scenario's stack, the
variant's environment and router, read in one place for every backend and every command
(`lab run`, `lab up`, `lab drill`, `lab compose-files`, bench)."""

from __future__ import annotations

import sys
from pathlib import Path

from lab.scenario.models import PYTHON_PLACEHOLDER, DependencySpec, ProcessSpec, Scenario
from lab.stack.base import OwnDependency, OwnProcess, OwnStack, RouterSettings, StackRequest


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
        own=own_stack(scenario),
    )


def scenario_folder(scenario: Scenario) -> Path:
    """Where a scenario's relative paths start: its file's folder (else the current one)."""
    return Path(scenario.source).resolve().parent if scenario.source else Path.cwd()


def own_process(spec: ProcessSpec | DependencySpec, folder: Path, python: str) -> OwnProcess:
    """A declared process with its paths resolved and `{python}` made the lab's own."""
    assert spec.command is not None and spec.port_env is not None
    argv = tuple(python if a == PYTHON_PLACEHOLDER else a for a in spec.command)
    return OwnProcess(argv=argv, cwd=str(folder), port_env=spec.port_env, health=spec.health,
                      env=dict(spec.env), ready_timeout_s=spec.ready_timeout,
                      host_env=spec.host_env, compose_service=spec.compose_service)


def own_stack(scenario: Scenario) -> OwnStack | None:
    """The user's own stack as a backend starts it (None: the sample shop)."""
    stack = scenario.stack
    if stack.service is None:
        return None
    folder = scenario_folder(scenario)
    deps = tuple(
        OwnDependency(d.name, d.url_env,
                      process=own_process(d, folder, sys.executable) if d.command else None,
                      url=d.url)
        for d in stack.dependencies)
    db = stack.database
    return OwnStack(
        service=own_process(stack.service, folder, sys.executable),
        instance_env=stack.service.instance_env,
        db_url_env=db.url_env if db is not None else None,
        sql_files=tuple(str((folder / f).resolve()) for f in db.sql) if db is not None else (),
        dependencies=deps,
        compose_file=(str((folder / stack.compose.file).resolve())
                      if stack.compose is not None else None),
    )
