"""Everything a run creates carries the label RUN_LABEL: how a run's teardown and `lab
cleanup` find its containers, networks and volumes, even after the lab was killed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from lab.stack.docker.specs import RUN_LABEL
from lab.system.run_dirs import run_is_active


def run_objects(client: Any, run_id: str | None = None) -> Iterator[tuple[str, str, Any]]:
    """(kind, run id, object) for every container, network and volume of lab runs."""
    selector = {"label": f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL}
    for c in client.containers.list(all=True, filters=selector):
        yield "container", c.labels.get(RUN_LABEL, ""), c
    for n in client.networks.list(filters=selector):
        yield "network", (n.attrs.get("Labels") or {}).get(RUN_LABEL, ""), n
    for v in client.volumes.list(filters=selector):
        yield "volume", (v.attrs.get("Labels") or {}).get(RUN_LABEL, ""), v


def leftover_runs(client: Any, include_active: bool) -> dict[str, set[str]]:
    """Run ids with Docker objects whose run is no longer active → kinds of objects."""
    runs: dict[str, set[str]] = {}
    for kind, run_id, _ in run_objects(client):
        if include_active or not run_is_active(run_id):
            runs.setdefault(run_id, set()).add(kind)
    return runs


def remove_run_objects(client: Any, run_id: str) -> int:
    """Remove every object of one run: containers first, then networks and volumes."""
    removed = 0
    objects = sorted(run_objects(client, run_id), key=lambda o: o[0] != "container")
    for kind, _, obj in objects:
        with contextlib.suppress(Exception):
            if kind == "container":
                obj.remove(force=True)
            else:
                obj.remove()
            removed += 1
    return removed
