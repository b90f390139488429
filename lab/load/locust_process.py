"""Runs Locust headless as a subprocess (it monkey-patches with gevent at import, so it
must never be imported into the lab's asyncio process or pytest)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lab.errors import LoadError
from lab.load.arrivals import OpenLoad
from lab.processes import ManagedProcess
from lab.scenario import LoadSpec

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def locust_argv(spec: LoadSpec, host: str, locustfile: str) -> list[str]:
    """Locust's command line for one load run (after `python -m locust`).

    The open model runs one Locust user, which fires every arrival on its schedule (one
    greenlet per request); closed loop runs `users` of them."""
    if spec.rate is not None:
        users, spawn_rate = "1", "1"
    else:
        users, spawn_rate = str(spec.users), str(spec.spawn_rate)
    return [
        "-f", locustfile, "--headless", "--host", host,
        "-u", users, "-r", spawn_rate,
        "--run-time", f"{round(spec.duration)}s",
        "--stop-timeout", "0",
        # Expected 5xx must not make Locust report failure; we judge the log ourselves.
        "--exit-code-on-error", "0",
        "--only-summary", "--loglevel", "WARNING",
    ]


def locust_env(spec: LoadSpec, *, carts: int, seed: int, request_log: str) -> dict[str, str]:
    """What the locustfile reads: the load spec and where to log each request."""
    load_spec: dict[str, object] = {
        "endpoints": [e.model_dump() for e in spec.endpoints],
        "client_timeout": spec.client_timeout,
        "wait": spec.wait,
        "carts": carts,
        "seed": seed,
    }
    if spec.rate is not None:  # the open model: the locustfile runs lab.load.open_model
        load_spec["open"] = OpenLoad(spec.rate_per_s, spec.arrivals, spec.max_in_flight).to_json()
    return {"CHAOSLAB_LOAD_SPEC": json.dumps(load_spec), "CHAOSLAB_REQUEST_LOG": request_log}


class LocustProcess:
    """One load run: `start()` begins spawning users, `wait()` returns when it ends."""

    def __init__(
        self,
        spec: LoadSpec,
        host: str,
        *,
        run_id: str,
        work_dir: Path,
        env: dict[str, str],
        carts: int,
        seed: int = 1,
    ) -> None:
        self.spec = spec
        self.host = host
        self.run_id = run_id
        self.work_dir = work_dir
        self.env = env
        self.request_log = work_dir / "requests.jsonl"
        self.carts = carts
        self.seed = seed
        self.process: ManagedProcess | None = None
        self.started_at = 0.0

    def start(self) -> float:
        """Start Locust; return the wall-clock time the load began."""
        argv = [sys.executable, "-m", "locust",
                *locust_argv(self.spec, self.host, str(LOCUSTFILE))]
        env = {**self.env, **locust_env(self.spec, carts=self.carts, seed=self.seed,
                                        request_log=str(self.request_log))}
        self.request_log.touch()
        self.started_at = time.time()
        try:
            self.process = ManagedProcess(
                "locust", argv, env=env, run_id=self.run_id, log_dir=self.work_dir
            )
        except OSError as exc:
            raise LoadError(str(exc)) from exc
        return self.started_at

    def check_alive(self) -> None:
        """Raise if Locust died early: a run without load proves nothing."""
        assert self.process is not None
        code = self.process.poll()
        if code is not None and time.time() - self.started_at < self.spec.duration - 1:
            raise LoadError(f"Locust exited early with code {code}:\n{self.process.stderr_tail()}")

    def finished(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=5)
