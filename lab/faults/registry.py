"""Fault kinds by name, so scenario files can name them and be validated up front."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from lab.faults.base import Fault, FaultParams
from lab.faults.disk_fill import DiskFill
from lab.faults.drop_index import DropIndex
from lab.faults.gateway import GatewayFault
from lab.faults.hot_key_expiry import HotKeyExpiry
from lab.faults.lock_table import LockTable
from lab.faults.rolling_deploy import RollingDeploy
from lab.stack.base import Stack, StackHandle

FAULT_KINDS: dict[str, type[Fault]] = {
    cls.kind: cls for cls in (DropIndex, GatewayFault, RollingDeploy, DiskFill, HotKeyExpiry,
                              LockTable)
}


#: The kinds that act on a stack the lab did not write (a scenario's `stack.service`).
OWN_SERVICE_KINDS = ("gateway", "rolling-deploy", "drop-index", "lock-table")


def params_problems(kind: str, params: dict[str, Any], where: str,
                    own_service: bool = False) -> list[str]:
    """Problems with a fault kind and its params, as 'field.path: expected ...' lines."""
    if kind not in FAULT_KINDS:
        return [f"fault.kind: expected one of {', '.join(sorted(FAULT_KINDS))}, got {kind!r}"]
    try:
        FAULT_KINDS[kind].Params.model_validate(params, context={"own_service": own_service})
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                known = ", ".join(FAULT_KINDS[kind].Params.model_fields)
                msg = f"unknown parameter for fault '{kind}' (known: {known})"
            out.append(f"{where}.{path}: {msg}")
        return out
    return []


def stack_problems(kind: str, has_data_volume: bool) -> list[str]:
    """What the fault kind needs from the stack that the scenario does not give it."""
    cls = FAULT_KINDS.get(kind)
    if cls is not None and cls.needs_data_volume and not has_data_volume:
        return [
            f"stack.data_volume: fault '{kind}' needs a size-limited filesystem to act on; "
            "add e.g. `data_volume: {size: 8MiB}` under stack"
        ]
    return []


def create_fault(
    kind: str, params: dict[str, Any], stack: Stack, seed: int, handle: StackHandle | None = None
) -> Fault:
    cls = FAULT_KINDS[kind]
    parsed: FaultParams = cls.Params.model_validate(
        params, context={"own_service": stack.own_service})
    return cls(parsed, stack, seed, handle=handle)
