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

from lab.load.locust_process import LocustProcess
from lab.load.request_log import read_request_log
from lab.run.runner import run_variant
from lab.scenario.models import Endpoint, LoadSpec, Scenario
from lab.stack.base import Backend, StackRequest, wait_http_ok
from lab.stack.local import LocalBackend
from lab.system.ports import free_port
from lab.system.processes import REPO_ROOT, ManagedProcess, python_env
from lab.system.run_dirs import RunDir, new_run_id
from lab.system.threads import off_loop


@dataclass(frozen=True)
class Goal:
    """A cost the lab holds itself to, against what this run measured."""

    what: str
    measured: float
    limit: float
    unit: str

    @property
    def met(self) -> bool:
        return self.measured <= self.limit


@dataclass
class BenchReport:
    figures: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)


#: The lab's own costs, as goals (issue 22).
OVERHEAD_GOAL_S = 1.5
DOCKER_OVERHEAD_GOAL_S = 4.0
PROXY_GOAL_US = 80
ROUTER_GOAL_US = 300
MATRIX_GOAL_RATIO = 1.1


async def generator_figures(report: BenchReport, progress: Callable[[str], None]) -> None:
    """One worker's ceiling and two workers', the first recorded for the runs that follow
    (lab.load.ceiling)."""
    from lab.load.ceiling import write_ceiling

    progress("the load generator's ceiling: one worker, against the bare aiohttp app")
    one = await generator_ceiling(1, progress)
    progress("… and two workers")
    two = await generator_ceiling(2, progress, start=max(2000.0, one))
    recorded = write_ceiling(one)
    report.figures["generator_ceiling_1_worker_per_s"] = one
    report.figures["generator_ceiling_2_workers_per_s"] = two
    report.figures["generator_2_to_1_worker_ratio"] = round(two / one, 2) if one else 0.0
    report.notes["generator ceiling"] = (
        f"the highest rate held at >= 98 % of its schedule; one worker's is now the "
        f"ceiling load.workers: auto uses ({recorded.source})")


def matrix_goal(results: Path = Path("results/latest.json")) -> Goal | None:
    """The whole matrix's time against the sum of its load windows, from the last `make
    demo` (its results file); None when there is none."""
    import json

    try:
        variants = json.loads(results.read_text())["variants"]
        total = sum(float(v["timing"]["total_s"]) for v in variants)
        windows = sum(float(v["timing"]["load_s"]) for v in variants)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Goal(f"the matrix ({len(variants)} variants in {results}) against its load "
                "windows", round(total / windows, 3), MATRIX_GOAL_RATIO, "x")


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
    report.goals.append(Goal("per-variant overhead beyond the load window, local (warm)",
                             warm["overhead_s"], OVERHEAD_GOAL_S, "s"))
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
        from lab.stack.docker import DockerBackend

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
        progress("one short variant on docker")
        docker_timing = (await run_variant(short, variant, DockerBackend())).timing
        report.figures["docker_variant_overhead_s"] = docker_timing["overhead_s"]
        report.goals.append(Goal("per-variant overhead beyond the load window, docker",
                                 docker_timing["overhead_s"], DOCKER_OVERHEAD_GOAL_S, "s"))

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
    started = await off_loop(load.start)
    try:
        while not load.finished() and time.time() - started < spec.duration + 10:
            await asyncio.sleep(0.25)
    finally:
        load.stop()
    records = read_request_log(load.request_log)
    # Steady state only: skip the first 2 s of ramp-up.
    ok = [r for r in records if r.cls == "2xx" and r.start >= started + 2]
    return len(ok) / (spec.duration - 2)


def _hop_goals(report: BenchReport) -> None:
    report.goals.append(Goal("the fault proxy with no toxic, added at p50",
                             report.figures["proxy_p50_added_us"], PROXY_GOAL_US, "us"))
    report.goals.append(Goal("the router's hop, added at p50",
                             report.figures["router_p50_added_us"], ROUTER_GOAL_US, "us"))


async def run_bench(
    scenario: Scenario, progress: Callable[[str], None], cycles: int = 3, load_s: float = 15,
    hops_only: bool = False, docker: bool = False, generator_only: bool = False,
) -> BenchReport:
    report = BenchReport()
    if hops_only:
        progress("fault proxy and router: per-request overhead with no fault, against direct")
        report.figures.update(await hop_overheads())
        report.notes["method"] = HOPS_METHOD
        _hop_goals(report)
        return report
    if generator_only:
        await generator_figures(report, progress)
        return report
    await generator_figures(report, progress)
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
    _hop_goals(report)
    matrix = matrix_goal()
    if matrix is not None:
        report.goals.append(matrix)
    else:
        report.notes["matrix"] = "no results/latest.json: run make demo for the matrix's goal"
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


# ---------------------------------------------------------------- the generator's ceiling

#: One probe: this long a window, judged over its first CEILING_SPAN_S from the first due.
CEILING_WINDOW_S = 5.0
CEILING_SPAN_S = 3.0


async def held_share(rate: float, workers: int, progress: Callable[[str], None]) -> float:
    """The share of its schedule an open-model load of `rate`/s on `workers` workers sent
    within a span against the bare aiohttp app (a trivial endpoint): sent (or dropped)
    by the span's end, of the arrivals the schedule put in it."""
    from lab.load.arrivals import offsets_until
    from lab.load.request_log import ended_before

    spec = LoadSpec.model_validate({
        "rate": f"{rate:g}/s", "arrivals": "poisson", "duration": f"{CEILING_WINDOW_S:g}s",
        "client_timeout": "2s", "endpoints": [{"request": "health"}]})
    run_dir = RunDir.create(new_run_id())
    try:
        port = free_port()
        bare = ManagedProcess(
            "bare", [sys.executable, "-m", "lab.services.bare"],
            env=python_env({"CHECKOUT_HOST": "127.0.0.1", "CHECKOUT_PORT": str(port)}),
            run_id=run_dir.run_id, log_dir=run_dir.path, cwd=REPO_ROOT)
        try:
            await wait_http_ok(f"http://127.0.0.1:{port}/livez", 10, "bare app", bare.exit_reason)
            load = LocustProcess(spec, f"http://127.0.0.1:{port}", run_id=run_dir.run_id,
                                 work_dir=run_dir.path, env=python_env({}), carts=100,
                                 seed=1, workers=workers)
            started = await off_loop(load.start)
            end = started + spec.duration
            try:
                while not (time.time() > end and ended_before(load.request_log, end)):
                    load.check_alive()
                    if time.time() > end + 20:
                        break
                    await asyncio.sleep(0.2)
            finally:
                load.stop()
        finally:
            bare.stop()
        records = [r for r in read_request_log(load.request_log) if r.due is not None]
    finally:
        run_dir.remove()
    if not records:
        return 0.0
    first = min(r.due for r in records if r.due is not None)
    scheduled = offsets_until(rate, "poisson", 1, CEILING_SPAN_S + 5)
    due = sum(1 for o in scheduled if o - scheduled[0] < CEILING_SPAN_S)
    sent = sum(1 for r in records if r.start - first < CEILING_SPAN_S)
    share = sent / due if due else 0.0
    progress(f"  {rate:.0f}/s on {workers} worker(s): {share:.1%} of the schedule held")
    return share


async def generator_ceiling(workers: int, progress: Callable[[str], None],
                            start: float = 2000.0, steps: int = 3) -> float:
    """The highest rate `workers` hold at MIN_HELD_SHARE of their schedule: doubling from
    `start` until one fails, then `steps` bisections."""
    from lab.load.ceiling import MIN_HELD_SHARE

    held, failed = 0.0, None
    rate = start
    while failed is None and rate <= 64000:
        if await held_share(rate, workers, progress) >= MIN_HELD_SHARE:
            held, rate = rate, rate * 2
        else:
            failed = rate
    if failed is None:
        return held
    for _ in range(steps):
        middle = (held + failed) / 2
        if await held_share(middle, workers, progress) >= MIN_HELD_SHARE:
            held = middle
        else:
            failed = middle
    return round(held, -1)
