"""Runs Locust headless as subprocesses (it monkey-patches with gevent at import, so it
must never be imported into the lab's asyncio process or pytest).

One worker is one Locust process. More (`load.workers`) is Locust's own master and
workers: the master on 127.0.0.1 holds the run's time and writes the request log, each
worker fires its share of the schedule and ships its records to the master
(lab.load.sinks). Workers on other machines join the master the way Locust's do
(`lab worker --master HOST:PORT`, counted in `remote_workers`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LoadError
from lab.load.arrivals import OpenLoad
from lab.load.contracts import ANY_BODY, SAMPLE_CONTRACTS, SuccessContract
from lab.load.request_log import start_path, wait_for_load_start
from lab.scenario.models import Endpoint, LoadSpec
from lab.system.ports import free_port
from lab.system.processes import ManagedProcess

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
#: Locust's own run time goes this far past the load window plus one client timeout: the
#: lab stops it once every judged request has ended (lab.load.request_log.ended_before),
#: so this is only the bound if the lab never does.
RUN_TIME_SLACK_S = 2.0
#: How long a master waits for its workers to join before the lab gives up.
WORKERS_JOIN_S = 60.0
#: Beyond that, how long Locust may take to import and begin (0.9 s measured on 2 cores).
LOAD_BEGIN_SLACK_S = 30.0


def run_time_s(spec: LoadSpec) -> int:
    """Locust's --run-time: the window, then long enough for the last request sent in it
    to be answered or time out, under the same load (a request that ended only because
    the load stopped would be judged on a quieter stack than the one it was sent to)."""
    return round(spec.duration + spec.client_timeout + RUN_TIME_SLACK_S)


@dataclass(frozen=True)
class Workers:
    """How a load run is spread: `local` worker processes here, `remote` ones that join
    from elsewhere, and the port the master listens on for them (0: one process, no
    master)."""

    local: int = 1
    remote: int = 0
    master_port: int = 0
    master_host: str = "127.0.0.1"

    @property
    def total(self) -> int:
        return self.local + self.remote

    @property
    def distributed(self) -> bool:
        return self.total > 1 or self.remote > 0


def locust_argv(spec: LoadSpec, host: str, locustfile: str, workers: Workers = Workers(),
                spec_json: str | None = None) -> list[str]:
    """Locust's command line for one load run (after `python -m locust`): the only
    process, or the master of `workers`.

    The open model runs one Locust user per worker, which fires the worker's share of the
    arrivals on its schedule (one greenlet per request); closed loop runs `users`."""
    if spec.rate is not None:
        users, spawn_rate, user_class = str(workers.total), str(workers.total), "OpenArrivals"
    else:
        users, spawn_rate, user_class = str(spec.users), str(spec.spawn_rate), "Shopper"
    argv = [
        "-f", locustfile, "--headless", "--host", host,
        "-u", users, "-r", spawn_rate,
        "--run-time", f"{run_time_s(spec)}s",
        "--stop-timeout", "0",
        # Expected 5xx must not make Locust report failure; we judge the log ourselves.
        "--exit-code-on-error", "0",
        "--only-summary", "--loglevel", "WARNING",
    ]
    if workers.distributed:
        argv += ["--master", "--master-bind-host", workers.master_host,
                 "--master-bind-port", str(workers.master_port),
                 "--expect-workers", str(workers.total),
                 "--expect-workers-max-wait", str(round(WORKERS_JOIN_S))]
        if spec_json is not None:  # forwarded by Locust to every worker at the start
            argv += ["--chaoslab-spec", spec_json]
    return [*argv, user_class]


def worker_argv(locustfile: str, master_host: str, master_port: int) -> list[str]:
    """A Locust worker's command line: it gets the load spec and its share from the master."""
    return ["-f", locustfile, "--worker", "--master-host", master_host,
            "--master-port", str(master_port), "--loglevel", "WARNING"]


def endpoint_json(e: Endpoint) -> dict[str, object]:
    """One endpoint as the locustfile reads it: its kind's name, weight and success
    contract, and for a request of the user's own its definition (`custom`)."""
    if isinstance(e.request, str):
        return {"request": e.request, "weight": e.weight,
                "contract": SAMPLE_CONTRACTS.get(e.request, ANY_BODY).to_json()}
    r = e.request
    return {"request": r.name, "weight": e.weight,
            "contract": SuccessContract(
                json=r.expects_json, requires=tuple(r.requires),
                lies_when=tuple((k, tuple(v)) for k, v in r.lies_when.items())).to_json(),
            "custom": {"method": r.method, "path": r.path, "json": r.json_body,
                       "headers": dict(r.headers)}}


def load_spec_json(spec: LoadSpec, *, carts: int, seed: int, workers: int = 1) -> str:
    """The load spec the locustfile reads (CHAOSLAB_LOAD_SPEC, or forwarded by a master)."""
    doc: dict[str, object] = {
        "endpoints": [endpoint_json(e) for e in spec.endpoints],
        "client_timeout": spec.client_timeout,
        "wait": spec.wait,
        "carts": carts,
        "seed": seed,
    }
    if workers > 1:
        doc["workers"] = workers
    if spec.rate is not None:  # the open model: the locustfile runs lab.load.open_model
        doc["open"] = OpenLoad(spec.rate_per_s, spec.arrivals, spec.max_in_flight).to_json()
    return json.dumps(doc)


def locust_env(spec: LoadSpec, *, carts: int, seed: int, request_log: str,
               workers: int = 1) -> dict[str, str]:
    """What the locustfile reads: the load spec and where to log each request."""
    return {"CHAOSLAB_LOAD_SPEC": load_spec_json(spec, carts=carts, seed=seed,
                                                 workers=workers),
            "CHAOSLAB_REQUEST_LOG": request_log}


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
        workers: int | None = None,
        remote_workers: int | None = None,
        master_port: int | None = None,
        master_host: str | None = None,
    ) -> None:
        self.spec = spec
        self.host = host
        self.run_id = run_id
        self.work_dir = work_dir
        self.env = env
        self.request_log = work_dir / "requests.jsonl"
        self.carts = carts
        self.seed = seed
        workers = spec.worker_count if workers is None else workers
        remote_workers = spec.remote_workers if remote_workers is None else remote_workers
        spec_host, spec_port = spec.master_address
        master_host = master_host or spec_host
        master_port = master_port or spec_port
        distributed = workers > 1 or remote_workers > 0
        # The master listens where it is told (127.0.0.1 unless the user names an address
        # for workers on other machines).
        self.workers = Workers(workers, remote_workers,
                               (master_port or free_port()) if distributed else 0, master_host)
        self.process: ManagedProcess | None = None
        self.worker_processes: list[ManagedProcess] = []
        self.started_at = 0.0

    def start(self) -> float:
        """Start Locust (its master and local workers); return when the load began (its
        first arrival is due then: the windows are measured from it). Blocks: call it off
        the event loop."""
        w = self.workers
        spec_json = load_spec_json(self.spec, carts=self.carts, seed=self.seed, workers=w.total)
        argv = [sys.executable, "-m", "locust",
                *locust_argv(self.spec, self.host, str(LOCUSTFILE), w, spec_json)]
        env = {**self.env, "CHAOSLAB_LOAD_SPEC": spec_json,
               "CHAOSLAB_REQUEST_LOG": str(self.request_log)}
        self.request_log.touch()
        # A marker left by an earlier generator on this log (the capacity probe's) is not
        # this load's start: 4.1-4.9 s early in the first variant of a scenario.
        start_path(self.request_log).unlink(missing_ok=True)
        self.started_at = time.time()
        try:
            self.process = ManagedProcess(
                "locust", argv, env=env, run_id=self.run_id, log_dir=self.work_dir)
            if w.distributed:
                # Workers learn the spec from the master, as a worker elsewhere does.
                worker_env = {k: v for k, v in self.env.items() if k != "CHAOSLAB_LOAD_SPEC"}
                for i in range(w.local):
                    self.worker_processes.append(ManagedProcess(
                        f"locust-worker-{i + 1}",
                        [sys.executable, "-m", "locust",
                         *worker_argv(str(LOCUSTFILE), "127.0.0.1", w.master_port)],
                        env=worker_env, run_id=self.run_id, log_dir=self.work_dir))
        except OSError as exc:
            self.stop()
            raise LoadError(str(exc)) from exc
        self.started_at = wait_for_load_start(
            self.request_log, self._alive, WORKERS_JOIN_S + LOAD_BEGIN_SLACK_S, self.stop)
        return self.started_at

    def _alive(self) -> None:
        """Before the load began: any process that exited is a LoadError."""
        for proc in [p for p in [self.process, *self.worker_processes] if p is not None]:
            code = proc.poll()
            if code is not None:
                raise LoadError(f"Locust ({proc.name}) exited with code {code} before its "
                                f"load began:\n{proc.stderr_tail()}")

    def check_alive(self) -> None:
        """Raise if Locust died early: a run without load proves nothing."""
        assert self.process is not None
        early = time.time() - self.started_at < self.spec.duration - 1
        for proc in [self.process, *self.worker_processes]:
            code = proc.poll()
            if code is not None and early:
                raise LoadError(f"Locust ({proc.name}) exited early with code {code}:\n"
                                f"{proc.stderr_tail()}")

    def finished(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        """The master first (its workers stop with it), then whatever is left."""
        if self.process is not None:
            self.process.stop(timeout=5)
        for proc in self.worker_processes:
            proc.stop(timeout=5)
