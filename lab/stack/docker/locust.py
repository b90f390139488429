"""Locust in containers on the run's network; its per-request log lands in the run
directory (bind-mounted), so the host reads it live exactly as on the local backend.

One worker is one container. More (`load.workers`) is Locust's master in one container
and a container per worker, which find the master by its name on the run's network and
ship their records to it (lab.load.sinks): the log is the master's, in the run directory.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from lab.errors import LoadError
from lab.load.locust_process import (
    LOAD_BEGIN_SLACK_S,
    WORKERS_JOIN_S,
    Workers,
    load_spec_json,
    locust_argv,
    worker_argv,
)
from lab.load.request_log import start_path, wait_for_load_start
from lab.scenario.models import LoadSpec
from lab.stack.docker.containers import exited, run_container
from lab.stack.docker.specs import RUN_LABEL, ContainerSpec
from lab.stack.images import IMAGES

LOCUSTFILE_IN_IMAGE = "/opt/lab/lib/python3.11/site-packages/lab/load/locustfile.py"
REQUEST_LOG_IN_CONTAINER = "/run-data/requests.jsonl"
#: The master's port on the run's network (each run has a network of its own).
MASTER_PORT = 5557


class LocustContainer:
    """Locust (its master and workers) in containers; the log lands in the run directory."""

    def __init__(self, client: Any, run_id: str, network: str, work_dir: Path, target: str,
                 spec: LoadSpec, carts: int, seed: int) -> None:
        self.client, self.run_id, self.network = client, run_id, network
        self.work_dir, self.target, self.spec = work_dir, target, spec
        self.carts, self.seed = carts, seed
        self.request_log = work_dir / "requests.jsonl"
        self.container: Any = None
        self.workers: list[Any] = []
        self.started_at = 0.0

    @property
    def master_name(self) -> str:
        return f"{self.run_id}-locust"

    def start(self) -> float:
        self.request_log.touch()
        start_path(self.request_log).unlink(missing_ok=True)  # not this load's (see local)
        self.started_at = time.time()
        n = self.spec.worker_count
        # Inside the master's container, on the run's own network: the workers reach it
        # there by name; nothing is published on the host.
        workers = Workers(n, 0, MASTER_PORT, "0.0.0.0") if n > 1 else Workers()
        spec_json = load_spec_json(self.spec, carts=self.carts, seed=self.seed, workers=n)
        master = ContainerSpec(
            "locust", IMAGES["lab"],
            ["python", "-m", "locust", *locust_argv(self.spec, self.target,
                                                    LOCUSTFILE_IN_IMAGE, workers, spec_json)],
            {"CHAOSLAB_LOAD_SPEC": spec_json, "CHAOSLAB_REQUEST_LOG": REQUEST_LOG_IN_CONTAINER},
        )
        labels = {RUN_LABEL: self.run_id}
        volumes = {str(self.work_dir): {"bind": "/run-data", "mode": "rw"}}
        try:
            self.container = run_container(self.client, master, self.master_name, labels,
                                           self.network, volumes=volumes)
            for i in range(n if n > 1 else 0):
                worker = ContainerSpec("locust-worker", IMAGES["lab"], [
                    "python", "-m", "locust",
                    *worker_argv(LOCUSTFILE_IN_IMAGE, self.master_name, MASTER_PORT)], {})
                self.workers.append(run_container(
                    self.client, worker, f"{self.run_id}-locust-w{i + 1}", labels,
                    self.network))
        except Exception as exc:
            self.stop()
            raise LoadError(f"cannot start the Locust containers: {exc}") from exc
        # The windows are measured from the load's first due arrival, not from the
        # containers' start (2.5-3.1 s earlier, 6 runs).
        self.started_at = wait_for_load_start(
            self.request_log, self._alive, WORKERS_JOIN_S + LOAD_BEGIN_SLACK_S, self.stop)
        return self.started_at

    def _alive(self) -> None:
        for container in [self.container, *self.workers]:
            reason = exited(container)
            if reason is not None:
                raise LoadError(f"the Locust container {container.name} {reason} before its "
                                "load began")

    def check_alive(self) -> None:
        if time.time() - self.started_at >= self.spec.duration - 1:
            return
        for container in [self.container, *self.workers]:
            reason = exited(container)
            if reason is not None:
                raise LoadError(f"the Locust container {container.name} {reason}")

    def finished(self) -> bool:
        return self.container is not None and exited(self.container) is not None

    def stop(self) -> None:
        """SIGTERM first (Locust logs what is still in flight as unfinished), then remove;
        the master before its workers."""
        for container in [self.container, *self.workers]:
            if container is None:
                continue
            with contextlib.suppress(Exception):
                container.stop(timeout=5)
            with contextlib.suppress(Exception):
                container.remove(force=True)
