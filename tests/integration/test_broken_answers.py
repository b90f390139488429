"""Answers that must not count as successes, through the real Locust subprocess and the
real locustfile, against a small server that breaks its bodies on purpose: a 2xx cut by a
close or a reset (fixed-length or chunked), stalled past the client timeout, empty, HTML
where the endpoint answers JSON, JSON without the order — and requests still in flight
when the load stops, which must be logged as unfinished rather than lost."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.load.locust_process import LocustProcess
from lab.load.request_log import RequestRecord, ended_before, read_request_log
from lab.scenario.models import LoadSpec
from lab.system.ports import free_port
from lab.system.processes import python_env
from lab.system.run_dirs import RunDir, new_run_id

pytestmark = pytest.mark.integration

GOOD = b'{"order_id": 7, "status": "CONFIRMED"}'
BEHAVIOURS = ("good", "cut_close", "cut_reset", "chunked_cut", "stall", "empty", "html",
              "no_order", "honest_503", "plain_500")


class BreakingServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers the n-th request with BEHAVIOURS[n %
    len(BEHAVIOURS)] (or `only`), one connection per request, and counts what it answered."""

    def __init__(self, only: str | None = None, stall_s: float = 3.0) -> None:
        self.only, self.stall_s = only, stall_s
        self.port = free_port()
        self.answered: Counter[str] = Counter()
        self._n = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()
        server.close()
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def __enter__(self) -> BreakingServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        kind = self.only or BEHAVIOURS[self._n % len(BEHAVIOURS)]
        self._n += 1
        self.answered[kind] += 1
        await getattr(self, f"_{kind}")(writer)

    @staticmethod
    def _head(status: str, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()),
                 "Connection: close", "", ""]
        return "\r\n".join(lines).encode()

    async def _send_close(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()

    async def _good(self, w: asyncio.StreamWriter) -> None:
        await self._send_close(w, self._head("201 Created", {
            "Content-Type": "application/json", "Content-Length": str(len(GOOD))}) + GOOD)

    async def _cut_close(self, w: asyncio.StreamWriter) -> None:
        await self._send_close(w, self._head("201 Created", {
            "Content-Type": "application/json", "Content-Length": "200"}) + GOOD[:12])

    async def _cut_reset(self, w: asyncio.StreamWriter) -> None:
        w.write(self._head("201 Created", {"Content-Type": "application/json",
                                           "Content-Length": "200"}) + GOOD[:12])
        await w.drain()
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()  # RST, not FIN

    async def _chunked_cut(self, w: asyncio.StreamWriter) -> None:
        await self._send_close(w, self._head("200 OK", {
            "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
            + f"{len(GOOD[:12]):x}\r\n".encode() + GOOD[:12] + b"\r\n")  # no final chunk

    async def _stall(self, w: asyncio.StreamWriter) -> None:
        w.write(self._head("201 Created", {"Content-Type": "application/json",
                                           "Content-Length": str(len(GOOD))}) + GOOD[:5])
        await w.drain()
        await asyncio.sleep(self.stall_s)
        await self._send_close(w, GOOD[5:])

    async def _empty(self, w: asyncio.StreamWriter) -> None:
        await self._send_close(w, self._head("200 OK", {"Content-Type": "application/json",
                                                        "Content-Length": "0"}))

    async def _html(self, w: asyncio.StreamWriter) -> None:
        page = b"<html><body>Service temporarily degraded</body></html>"
        await self._send_close(w, self._head("200 OK", {
            "Content-Type": "text/html", "Content-Length": str(len(page))}) + page)

    async def _honest_503(self, w: asyncio.StreamWriter) -> None:
        body = b'{"type": "about:blank", "status": 503, "reason": "db_timeout"}'
        await self._send_close(w, self._head("503 Service Unavailable", {
            "Content-Type": "application/problem+json", "Retry-After": "1",
            "Content-Length": str(len(body))}) + body)

    async def _plain_500(self, w: asyncio.StreamWriter) -> None:
        body = b'{"type": "about:blank", "status": 500}'
        await self._send_close(w, self._head("500 Internal Server Error", {
            "Content-Type": "application/problem+json", "Content-Length": str(len(body))})
            + body)

    async def _no_order(self, w: asyncio.StreamWriter) -> None:
        body = b'{"status": "ok"}'
        await self._send_close(w, self._head("200 OK", {
            "Content-Type": "application/json", "Content-Length": str(len(body))}) + body)


@pytest.fixture
def run_dir(runs_root: Path) -> Iterator[RunDir]:
    run = RunDir.create(new_run_id())
    yield run
    run.remove()


def drive(server: BreakingServer, run_dir: RunDir, spec: LoadSpec, stop_after: float
          ) -> tuple[list[RequestRecord], float]:
    """Real Locust with the real locustfile against `server`; stopped (SIGTERM, as the lab
    stops it) `stop_after` seconds after the load began. Returns the log and that time."""
    load = LocustProcess(spec, f"http://127.0.0.1:{server.port}", run_id=run_dir.run_id,
                         work_dir=run_dir.path, env=python_env({}), carts=100, seed=3)
    started = load.start()
    try:
        while time.time() < started + stop_after and not load.finished():
            time.sleep(0.1)
    finally:
        load.stop()
    return read_request_log(load.request_log), started


def test_a_2xx_cut_short_or_off_its_contract_is_never_a_success(run_dir: RunDir) -> None:
    spec = LoadSpec.model_validate({
        "rate": "30/s", "arrivals": "even", "duration": "5s", "client_timeout": "1s",
        "endpoints": [{"request": "checkout"}]})
    with BreakingServer(stall_s=3.0) as server:
        load = LocustProcess(spec, f"http://127.0.0.1:{server.port}", run_id=run_dir.run_id,
                             work_dir=run_dir.path, env=python_env({}), carts=100, seed=3)
        started = load.start()
        try:  # as the lab does: stop once every request of the window has ended
            end = started + spec.duration
            while not (time.time() > end and ended_before(load.request_log, end)):
                assert time.time() < end + 10, "the in-flight report never settled"
                time.sleep(0.1)
        finally:
            load.stop()
        records = read_request_log(load.request_log)
        answered = server.answered
    stderr = (run_dir.path / "locust.err").read_text(errors="replace")[-2000:]
    assert answered["good"] >= 10, (answered, stderr)
    # Only the good answer is a success; each broken kind is an error (or a timeout).
    classes = Counter(r.cls for r in records)
    assert classes["2xx"] == answered["good"], (classes, answered, stderr)
    # The load runs on past its window until the window's requests ended, so one answer
    # sent in that tail may still be in flight at the stop (then logged as unfinished).
    errors = Counter((r.error or "").split("(")[0] for r in records if r.cls == "error")
    for error, kinds in (("EmptyBody", ["empty"]), ("NotJson", ["html"]),
                         ("Missing", ["no_order"]),
                         ("BodyCut", ["cut_close", "cut_reset", "chunked_cut"])):
        sent = sum(answered[k] for k in kinds)
        assert sent - 1 <= errors[error] <= sent, (error, errors, answered)
    assert classes["timeout"] >= answered["stall"] - 1
    # A whole non-2xx answer is what its status says (Locust flags it; that is no cut).
    assert answered["honest_503"] - 1 <= classes["503"] <= answered["honest_503"]
    assert all(r.retry_after and r.reason == "db_timeout" for r in records if r.cls == "503")
    assert answered["plain_500"] - 1 <= classes["500"] <= answered["plain_500"]
    assert all(r.status is None or r.cls != "2xx" for r in records if r.error)
    assert {json.loads(line).get("outcome") for line in
            (run_dir.path / "requests.jsonl").read_text().splitlines()} <= {
        "response", "error", "timeout", "unfinished"}


def test_requests_in_flight_when_the_load_stops_are_logged_as_unfinished(
        run_dir: RunDir) -> None:
    spec = LoadSpec.model_validate({
        "rate": "10/s", "arrivals": "even", "duration": "5s", "client_timeout": "30s",
        "endpoints": [{"request": "checkout"}]})
    with BreakingServer(only="stall", stall_s=60.0) as server:
        records, started = drive(server, run_dir, spec, stop_after=3.0)
        sent = server.answered["stall"]
    assert sent >= 10
    unfinished = [r for r in records if r.outcome == "unfinished"]
    # Every request the server held is in the log, once, with the time it was sent.
    assert len(unfinished) == len(records) == sent
    assert all(started < r.start < started + 3.5 and r.cls == "timeout" for r in unfinished)
    assert {r.error for r in unfinished} == {"LoadStopped"}
