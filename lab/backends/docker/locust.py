"""Locust in a container on the run's network; its per-request log lands in the run
directory (bind-mounted), so the host reads it live exactly as on the local backend."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from lab.backends.docker.containers import exited, run_container
from lab.backends.docker.specs import RUN_LABEL, ContainerSpec
from lab.errors import LoadError
from lab.images import IMAGES
from lab.load.locust_process import locust_argv, locust_env
from lab.scenario import LoadSpec

LOCUSTFILE_IN_IMAGE = "/opt/lab/lib/python3.11/site-packages/lab/load/locustfile.py"
REQUEST_LOG_IN_CONTAINER = "/run-data/requests.jsonl"


class LocustContainer:
    """Locust in a container on the run's network; the log lands in the run directory."""

    def __init__(self, client: Any, run_id: str, network: str, work_dir: Path, target: str,
                 spec: LoadSpec, carts: int, seed: int) -> None:
        self.client, self.run_id, self.network = client, run_id, network
        self.work_dir, self.target, self.spec = work_dir, target, spec
        self.carts, self.seed = carts, seed
        self.request_log = work_dir / "requests.jsonl"
        self.container: Any = None
        self.started_at = 0.0

    def start(self) -> float:
        self.request_log.touch()
        self.started_at = time.time()
        spec = ContainerSpec(
            "locust", IMAGES["lab"],
            ["python", "-m", "locust", *locust_argv(self.spec, self.target,
                                                    LOCUSTFILE_IN_IMAGE)],
            locust_env(self.spec, carts=self.carts, seed=self.seed,
                       request_log=REQUEST_LOG_IN_CONTAINER),
        )
        try:
            self.container = run_container(
                self.client, spec, f"{self.run_id}-locust", {RUN_LABEL: self.run_id},
                self.network, volumes={str(self.work_dir): {"bind": "/run-data", "mode": "rw"}})
        except Exception as exc:
            raise LoadError(f"cannot start the Locust container: {exc}") from exc
        return self.started_at

    def check_alive(self) -> None:
        reason = exited(self.container)
        if reason is not None and time.time() - self.started_at < self.spec.duration - 1:
            raise LoadError(f"the Locust container {reason}")

    def finished(self) -> bool:
        return self.container is not None and exited(self.container) is not None

    def stop(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.remove(force=True)
