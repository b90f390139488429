"""`lab bench`: the lab's own costs, measured in one run and reported as ratios.

Timings live here, never in unit tests: they vary with the machine, the ratios much less.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from lab.backends.base import Backend, StackRequest, wait_http_ok
from lab.backends.local import LocalBackend
from lab.load.locust_process import LocustProcess
from lab.load.request_log import read_request_log
from lab.ports import free_port
from lab.processes import REPO_ROOT, ManagedProcess, python_env
from lab.runner import run_variant
from lab.runs import RunDir, new_run_id
from lab.scenario import Endpoint, LoadSpec, Scenario


@dataclass
class BenchReport:
    figures: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


#: The per-variant overhead (a variant's total time minus its load window) on the local
#: backend before seeded data sets were cached (every variant ran initdb, the seed and
#: VACUUM ANALYZE): 5.5–6.4 s over 2 variants on 2026-12-02, on the 2-core machine
#: (stack_start_s 4.2–4.9 s, teardown_s 0.8 s). Ratios are taken to its midpoint.
OVERHEAD_BEFORE_CACHE_S = (5.5, 6.4)
OVERHEAD_BEFORE_CACHE_NOTE = ("5.5–6.4 s, 2 variants, 2026-12-02, before the cache "
                              "(ratios to its midpoint)")


def _throughput_spec(load_s: float) -> LoadSpec:
    return LoadSpec(users=20, spawn_rate=20, duration=load_s,
                    endpoints=[Endpoint(request="checkout")])


async def _local_stack_figures(
    backend: LocalBackend, scenario: Scenario, report: BenchReport,
    progress: Callable[[str], None], cycles: int, load_s: float, docker: bool,
) -> float:
    """Per-variant overhead (cold, then warm data set cache), stack start/teardown (warm),
    docker against local if asked; return the checkout's throughput under Locust."""
    progress("one short variant (load 12 s) with a cold data set cache, then again warm")
    short = scenario.model_copy(update={
        "load": scenario.load.model_copy(update={"duration": 12.0}),
        "fault": scenario.fault.model_copy(update={"at": 4.0, "until": 8.0}),
    })
    variant = "index-restored" if "index-restored" in short.variants else "baseline"
    cold = (await run_variant(short, variant, backend)).timing
    warm = (await run_variant(short, variant, backend)).timing
    before = statistics.mean(OVERHEAD_BEFORE_CACHE_S)
    for name, timing in (("cold", cold), ("warm", warm)):
        report.figures[f"variant_stack_start_{name}_cache_s"] = timing["stack_start_s"]
        report.figures[f"variant_teardown_{name}_cache_s"] = timing["teardown_s"]
        report.figures[f"variant_overhead_{name}_cache_s"] = timing["overhead_s"]
        report.figures[f"variant_overhead_{name}_cache_ratio_to_before_cache"] = round(
            timing["overhead_s"] / before, 2)
    report.figures["variant_overhead_ratio_to_load"] = round(
        warm["overhead_s"] / warm["load_s"], 3)
    report.notes["overhead before the cache"] = OVERHEAD_BEFORE_CACHE_NOTE

    progress(f"stack start/teardown × {cycles} (warm cache)")
    ups, downs = [], []
    for _ in range(cycles):
        up, down = await _stack_cycle(backend, scenario)
        ups.append(up)
        downs.append(down)
    report.figures["stack_start_s_median"] = round(statistics.median(ups), 3)
    report.figures["stack_teardown_s_median"] = round(statistics.median(downs), 3)
    if docker:
        from lab.backends.docker import DockerBackend

        progress(f"docker stack start/teardown × {cycles}")
        cycles_docker = [await _stack_cycle(DockerBackend(), scenario) for _ in range(cycles)]
        up = statistics.median(c[0] for c in cycles_docker)
        down = statistics.median(c[1] for c in cycles_docker)
        report.figures["docker_stack_start_s_median"] = round(up, 3)
        report.figures["docker_stack_teardown_s_median"] = round(down, 3)
        report.figures["docker_to_local_stack_start_ratio"] = round(
            up / statistics.median(ups), 2)
        report.figures["docker_to_local_stack_teardown_ratio"] = round(
            down / statistics.median(downs), 2)

    spec = _throughput_spec(load_s)
    progress(f"checkout throughput under Locust ({spec.users} users, {load_s:g} s)")
    request = StackRequest(new_run_id(), 1, {}, scenario.stack.seed.carts,
                           scenario.stack.seed.items_per_cart)
    async with backend.up(request) as handle:
        return await _throughput(handle.stack.entry_url, request.run_id,
                                 Path(handle.stack.work_dir), spec, scenario.stack.seed.carts)


async def _stack_cycle(backend: Backend, scenario: Scenario) -> tuple[float, float]:
    request = StackRequest(new_run_id(), 1, scenario.variant_env("baseline"),
                           scenario.stack.seed.carts, scenario.stack.seed.items_per_cart)
    began = time.monotonic()
    async with backend.up(request):
        up = time.monotonic() - began
        down_began = time.monotonic()
    return up, time.monotonic() - down_began


async def _throughput(host: str, run_id: str, work_dir: Path, spec: LoadSpec, carts: int) -> float:
    load = LocustProcess(spec, host, run_id=run_id, work_dir=work_dir, env=python_env({}),
                         carts=carts)
    started = load.start()
    try:
        while not load.finished() and time.time() - started < spec.duration + 10:
            await asyncio.sleep(0.25)
    finally:
        load.stop()
    records = read_request_log(load.request_log)
    # Steady state only: skip the first 2 s of ramp-up.
    ok = [r for r in records if r.cls == "2xx" and r.start >= started + 2]
    return len(ok) / (spec.duration - 2)


async def run_bench(
    scenario: Scenario, progress: Callable[[str], None], cycles: int = 3, load_s: float = 15,
    hops_only: bool = False, docker: bool = False,
) -> BenchReport:
    report = BenchReport()
    if hops_only:
        progress("fault proxy and router: per-request overhead with no fault, against direct")
        report.figures.update(await hop_overheads())
        report.notes["method"] = HOPS_METHOD
        return report
    # A data set cache of the bench's own, cold at first (the variant's first run builds
    # the seeded set), removed at the end; a RunDir, so `lab cleanup` finds it after a kill.
    cache = RunDir.create(new_run_id())
    try:
        backend = LocalBackend(dataset_cache=cache.path / "datasets")
        checkout_rps = await _local_stack_figures(backend, scenario, report, progress,
                                                  cycles, load_s, docker)
    finally:
        cache.remove()

    spec = _throughput_spec(load_s)
    progress(f"bare aiohttp handler under Locust ({spec.users} users, {load_s:g} s)")
    run_dir = RunDir.create(new_run_id())
    try:
        port = free_port()
        bare = ManagedProcess(
            "bare", [sys.executable, "-m", "lab.services.bare"],
            env=python_env({"CHECKOUT_HOST": "127.0.0.1", "CHECKOUT_PORT": str(port)}),
            run_id=run_dir.run_id, log_dir=run_dir.path, cwd=REPO_ROOT,
        )
        try:
            await wait_http_ok(f"http://127.0.0.1:{port}/livez", 10, "bare app", bare.exit_reason)
            bare_rps = await _throughput(f"http://127.0.0.1:{port}", run_dir.run_id,
                                         run_dir.path, spec, scenario.stack.seed.carts)
        finally:
            bare.stop()
    finally:
        run_dir.remove()
    progress("fault proxy and router: per-request overhead with no fault, against direct")
    for key, value in (await hop_overheads()).items():
        report.figures[key] = value
    report.figures["checkout_rps"] = round(checkout_rps, 1)
    report.figures["bare_rps"] = round(bare_rps, 1)
    report.figures["checkout_to_bare_throughput_ratio"] = round(checkout_rps / bare_rps, 3)
    report.notes["machine"] = "2 cores shared by Locust, the service and Postgres"
    report.notes["method"] = HOPS_METHOD
    return report


HOPS_METHOD = ("proxy_*/router_*: 4 alternating batches of 500 sequential keep-alive requests, "
               "direct vs through the hop (proxy: POST /v1/charges to the gateway stub with no "
               "toxic; router: GET /livez of a bare app); added = hop p − direct p")


async def _latencies(url: str, n: int, method: str = "GET",
                     payload: dict[str, object] | None = None,
                     headers: dict[str, str] | None = None) -> list[float]:
    """`n` sequential requests on one keep-alive connection; seconds each."""
    out = []
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(total=10)
    ) as http:
        for _ in range(n):
            began = time.perf_counter()
            async with http.request(method, url, json=payload, headers=headers) as resp:
                await resp.read()
            out.append(time.perf_counter() - began)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


async def _compare(direct_url: str, via_url: str, name: str, n: int, rounds: int,
                   method: str = "GET", payload: dict[str, object] | None = None,
                   headers: dict[str, str] | None = None) -> dict[str, float]:
    """Alternate batches direct / through the hop, so drift on a shared machine hits both."""
    direct: list[float] = []
    via: list[float] = []
    for _ in range(rounds):
        direct += await _latencies(direct_url, n, method, payload, headers)
        via += await _latencies(via_url, n, method, payload, headers)
    out: dict[str, float] = {}
    for q in (50, 99):
        d, v = _pct(direct, q), _pct(via, q)
        out[f"{name}_p{q}_direct_us"] = round(d * 1e6)
        out[f"{name}_p{q}_added_us"] = round((v - d) * 1e6)
        out[f"{name}_p{q}_ratio_to_direct"] = round(v / d, 2)
    return out


async def hop_overheads(n: int = 500, rounds: int = 4) -> dict[str, float]:
    """What the fault proxy (no toxic) adds to a charge, and the router to a request."""
    run_dir = RunDir.create(new_run_id())
    procs: list[ManagedProcess] = []

    def spawn(name: str, module: str, env: dict[str, str]) -> ManagedProcess:
        proc = ManagedProcess(name, [sys.executable, "-m", module], env=python_env(env),
                              run_id=run_dir.run_id, log_dir=run_dir.path, cwd=REPO_ROOT)
        procs.append(proc)
        return proc

    try:
        pay, listen, admin, bare, router, router_admin = (free_port() for _ in range(6))
        key = "sk_bench"
        waits = [
            (f"http://127.0.0.1:{pay}/health", spawn("payments", "lab.services.payments", {
                "PAYMENTS_PORT": str(pay), "PAYMENTS_API_KEY": key}), "payments"),
            (f"http://127.0.0.1:{admin}/health", spawn("proxy", "lab.services.proxy", {
                "PROXY_LISTEN_PORT": str(listen), "PROXY_ADMIN_PORT": str(admin),
                "PROXY_UPSTREAM": f"127.0.0.1:{pay}"}), "proxy"),
            (f"http://127.0.0.1:{bare}/livez", spawn("bare", "lab.services.bare", {
                "CHECKOUT_PORT": str(bare)}), "bare app"),
            (f"http://127.0.0.1:{router}/livez", spawn("router", "lab.services.router", {
                "ROUTER_PORT": str(router), "ROUTER_ADMIN_PORT": str(router_admin),
                "ROUTER_BACKENDS": f"bare-1=http://127.0.0.1:{bare}",
                "ROUTER_HEALTH_PATH": "/livez"}), "router"),
        ]
        for url, proc, what in waits:
            await wait_http_ok(url, 20, what, proc.exit_reason)
        figures = await _compare(
            f"http://127.0.0.1:{pay}/v1/charges", f"http://127.0.0.1:{listen}/v1/charges",
            "proxy", n, rounds, "POST",
            {"amount_cents": 100, "token": "tok", "order_ref": "bench"},
            {"Authorization": f"Bearer {key}"})
        figures |= await _compare(f"http://127.0.0.1:{bare}/livez",
                                  f"http://127.0.0.1:{router}/livez", "router", n, rounds)
        return figures
    finally:
        for proc in procs:
            proc.stop()
        run_dir.remove()
