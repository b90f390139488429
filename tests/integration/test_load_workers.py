"""The open model on Locust's master and workers (issue 22), through real Locust processes
against the bare aiohttp app: the same seed gives the same arrivals whatever the number of
workers; two workers hold 1500/s with every request in the records once; a
worker started as `lab worker --master HOST:PORT` (another machine, here 127.0.0.1)
joins and sends the load; and on the docker backend, a master and two worker containers
hold the same rate with every request once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from lab.load.arrivals import offsets_until
from lab.load.locust_process import LocustProcess
from lab.load.request_log import RequestRecord, ended_before, read_request_log
from lab.run.runner import LOAD_STOP_SLACK_S
from lab.scenario.models import LoadSpec
from lab.stack.base import wait_http_ok
from lab.stack.docker.locust import LocustContainer
from lab.system.ports import free_port
from lab.system.processes import REPO_ROOT, ManagedProcess, python_env
from lab.system.run_dirs import RunDir, new_run_id
from tests.conftest import docker_client_or_skip

pytestmark = pytest.mark.integration
SEED = 11
#: Two workers' rate, local and docker (see the test's note).
TWO_WORKER_RATE = 1500.0


@pytest.fixture
def bare(runs_root: Path) -> Iterator[tuple[str, RunDir]]:
    run = RunDir.create(new_run_id())
    port = free_port()
    app = ManagedProcess("bare", [sys.executable, "-m", "lab.services.bare"],
                         env=python_env({"CHECKOUT_HOST": "127.0.0.1",
                                         "CHECKOUT_PORT": str(port)}),
                         run_id=run.run_id, log_dir=run.path, cwd=REPO_ROOT)
    try:
        asyncio.run(wait_http_ok(f"http://127.0.0.1:{port}/livez", 10, "bare app",
                                 app.exit_reason))
        yield f"http://127.0.0.1:{port}", run
    finally:
        app.stop()
        run.remove()


def spec(rate: float, duration: float = 5.0, workers: int | str = "auto") -> LoadSpec:
    return LoadSpec.model_validate({
        "rate": f"{rate:g}/s", "arrivals": "poisson", "duration": f"{duration:g}s",
        "client_timeout": "2s", "workers": workers,
        "endpoints": [{"request": "health", "weight": 3}, {"request": "checkout"}]})


def drive(load: LocustProcess | LocustContainer, end_after: float,
          also: Sequence[subprocess.Popen[bytes]] = ()) -> list[RequestRecord]:
    """Run `load` as the lab's runner does: past its window until every request sent in
    it has ended or the generator has finished, within a client timeout and the slack."""
    started = load.start()
    end = started + end_after
    # start() returns when the load began: the schedule's first arrival is due its first
    # offset later (on one Locust process 0.9 s, on a master and two workers 3.2 s after
    # the processes were started, 2 cores), so a window measured from it is all load.
    first_offset = offsets_until(load.spec.rate_per_s, load.spec.arrivals, SEED, 1.0)[0]
    try:
        while time.time() < end:
            load.check_alive()
            time.sleep(0.1)
        settle = end + load.spec.client_timeout + LOAD_STOP_SLACK_S
        while not (load.finished() or ended_before(load.request_log, end)):
            assert time.time() < settle, "the load never settled"
            time.sleep(0.1)
    finally:
        load.stop()
        for proc in also:
            proc.terminate()
            proc.wait(10)
    records = read_request_log(load.request_log)
    first_due = min((r.due for r in records if r.due is not None), default=None)
    assert first_due is not None and abs(first_due - (started + first_offset)) < 1e-3, (
        first_due, started, first_offset)
    return records


def from_first(records: list[RequestRecord]) -> list[tuple[float, str, float]]:
    """(due, request, sent − due) of each arrival, due times from the first one's."""
    sent = sorted((r for r in records if r.due is not None), key=lambda r: r.due or 0.0)
    first = sent[0].due or 0.0
    return [((r.due or 0.0) - first, r.request, r.start - (r.due or 0.0)) for r in sent]


def test_the_same_seed_gives_the_same_arrivals_with_one_and_two_workers(
        bare: tuple[str, RunDir], tmp_path: Path) -> None:
    host, run = bare
    got = {}
    for n in (1, 2):
        work = run.path / f"w{n}"
        work.mkdir()
        load = LocustProcess(spec(300), host, run_id=run.run_id, work_dir=work,
                             env=python_env({}), carts=100, seed=SEED, workers=n)
        got[n] = from_first([r for r in drive(load, 5.0) if r.outcome != "unfinished"])
    one, two = got[1], got[2]
    n = min(len(one), len(two)) - 20  # the two runs' windows end at different arrivals
    assert n > 600, (len(one), len(two))
    # The same arrivals: each due at the same time after the first, sending the same
    # request — and those times are the schedule's own, read back from the seed.
    schedule = offsets_until(300, "poisson", SEED, 10.0)
    expected = [o - schedule[0] for o in schedule[:n]]
    for run_ in (one, two):
        assert max(abs(t - e) for (t, _, _), e in zip(run_[:n], expected, strict=True)) < 1e-5
    assert [k for _, k, _ in one[:n]] == [k for _, k, _ in two[:n]]
    # ... and sent when due, to the scheduling jitter, by one worker or by two.
    for run_ in (one, two):
        lags = sorted(lag for _, _, lag in run_[:n])
        assert lags[int(n * 0.99)] < 0.025, lags[-5:]


def test_two_workers_hold_a_high_rate_with_every_request_once(
        bare: tuple[str, RunDir]) -> None:
    host, run = bare
    # What two workers hold that one cannot is a throughput figure, so `make bench`
    # measures it. Here the claim is the split and the merge at a rate that keeps both
    # workers busy. The bare app, the master and two workers share 2 cores, and what they
    # hold differs by machine: on one, 6000/s (5500/s held by one worker) failed in one CI
    # run; on another, two workers held 99.8 % of 2000/s and 81-99 % of 3000/s, one
    # worker 97.2 % of 2000/s (one run each, 2026-12-03).
    rate = TWO_WORKER_RATE
    load = LocustProcess(spec(rate, 6.0), host, run_id=run.run_id, work_dir=run.path,
                         env=python_env({}), carts=100, seed=SEED, workers=2)
    records = drive(load, 6.0)
    stderr = "".join(p.read_text(errors="replace")[-800:] for p in run.path.glob("locust*.err"))
    assert_held_once(records, rate, stderr)


def assert_held_once(records: list[RequestRecord], rate: float, stderr: str) -> None:
    """Every arrival the schedule put in the first 3.5 s is in the records once, sent or
    dropped; >= 98 % of them were sent within that span (a generator behind sends them
    later and later); and >= 97 % were answered 2xx."""
    span = 3.5  # well inside the window, after the workers' common start
    scheduled = offsets_until(rate, "poisson", SEED, span + 1)
    due = [o - scheduled[0] for o in scheduled if o - scheduled[0] < span]
    dues = sorted(r.due for r in records if r.due is not None)
    assert dues, f"no arrival was recorded:\n{stderr}"
    got = [d - dues[0] for d in dues if d - dues[0] < span]
    assert abs(len(got) - len(due)) <= 1, (len(got), len(due), stderr)
    held = [r for r in records if r.due is not None and r.start - dues[0] < span]
    assert len(held) >= 0.98 * len(due), (len(held), len(due), stderr)
    ok = sum(1 for r in records if r.cls == "2xx")
    assert ok >= 0.97 * len(records), (ok, len(records), stderr)


def test_lab_worker_joins_a_master_over_loopback(bare: tuple[str, RunDir]) -> None:
    host, run = bare
    port = free_port()
    load = LocustProcess(spec(100), host, run_id=run.run_id, work_dir=run.path,
                         env=python_env({}), carts=100, seed=SEED, workers=0, remote_workers=1,
                         master_port=port)
    worker = subprocess.Popen([sys.executable, "-m", "lab", "worker", "--master",
                               f"127.0.0.1:{port}"], cwd=REPO_ROOT, env=python_env({}),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = drive(load, 5.0, also=[worker])
    # The window began when the master gave the worker its start (drive checks it): every
    # arrival the schedule puts in its 5 s was sent by the worker and answered.
    schedule = offsets_until(100, "poisson", SEED, 6.0)
    first = min(r.due for r in records if r.due is not None)
    in_window = [r for r in records if r.due is not None and r.due - first < 5.0 - schedule[0]]
    due = [o for o in schedule if o < 5.0]
    assert abs(len(in_window) - len(due)) <= 1, (len(in_window), len(due), worker.stderr.read()
                                                 if worker.stderr else b"")
    assert all(r.cls == "2xx" for r in in_window), [r for r in in_window if r.cls != "2xx"][:3]


@pytest.fixture
def bare_container(runs_root: Path) -> Iterator[tuple[Any, str, str, RunDir]]:
    """The bare app in the lab's image on a network of the run's own, as the docker
    backend runs a stack: (client, network, the app's URL there, the run directory)."""
    from lab.stack.docker import remove_run_objects
    from lab.stack.docker.containers import exited, published_port, run_container
    from lab.stack.docker.specs import RUN_LABEL, ContainerSpec
    from lab.stack.images import IMAGES

    client: Any = docker_client_or_skip()
    run = RunDir.create(new_run_id())
    network = f"chaoslab-{run.run_id}"
    labels = {RUN_LABEL: run.run_id}
    try:
        client.networks.create(network, driver="bridge", labels=labels)
        app = run_container(client, ContainerSpec(
            "bare", IMAGES["lab"], ["python", "-m", "lab.services.bare"],
            {"CHECKOUT_HOST": "0.0.0.0", "CHECKOUT_PORT": "8080"}, (8080,)),
            f"{run.run_id}-bare", labels, network)
        port = published_port(app, 8080)
        asyncio.run(wait_http_ok(f"http://127.0.0.1:{port}/livez", 30, "bare app",
                                 lambda: exited(app)))
        yield client, network, f"http://{run.run_id}-bare:8080", run
    finally:
        remove_run_objects(client, run.run_id)
        run.remove()


def test_two_worker_containers_hold_a_high_rate_with_every_request_once(
        bare_container: tuple[Any, str, str, RunDir]) -> None:
    from lab.stack.docker import run_objects

    client, network, target, run = bare_container
    load = LocustContainer(client, run.run_id, network, run.path, target,
                           spec(TWO_WORKER_RATE, 6.0, workers=2), carts=100, seed=SEED)
    records = drive(load, 6.0)
    # The master and both workers ran, and stop() removed them.
    names = {c.name for c in [load.container, *load.workers]}
    assert names == {f"{run.run_id}-locust", f"{run.run_id}-locust-w1",
                     f"{run.run_id}-locust-w2"}
    assert [kind for kind, _, _ in run_objects(client, run.run_id)
            if kind == "container"] == ["container"]  # only the app is left
    assert_held_once(records, TWO_WORKER_RATE, "(see the Locust containers' logs)")
