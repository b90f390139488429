"""The TCP relay: checkout ⇄ proxy ⇄ gateway, with the live toxics applied to each chunk.

The checkout → gateway direction is read as HTTP/1.1 requests (head, then a
Content-Length body), so `http_error` can answer one request without forwarding it and
requests can be counted; anything that is not such a request is relayed raw. The other
direction is relayed raw, chunk by chunk. HTTP clients do not pipeline, so a response is
always complete before the next request arrives and an injected answer never interleaves
with a real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from .toxics import FaultChooser, Toxic, applies

CHUNK = 64 * 1024


@dataclass
class ProxyStats:
    """Counters for /stats and /metrics: what reached the proxy and what the toxics did."""

    connections: int = 0
    requests: int = 0
    forwarded: int = 0
    http_errors: Counter[int] = field(default_factory=Counter)
    toxic_hits: Counter[str] = field(default_factory=Counter)  # toxic key → times it acted
    resets: int = 0
    refused: int = 0


class _Closed(Exception):
    """The connection was reset or closed by a toxic."""


@dataclass(eq=False)
class _Link:
    number: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    request: int = 0  # the HTTP request in flight (0 before the first, or when raw)
    held: bool = False  # a timeout toxic is swallowing this link's data
    hold_closer: asyncio.TimerHandle | None = None
    closed: bool = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.hold_closer is not None:
            self.hold_closer.cancel()
        for w in (self.client, self.upstream):
            if w is not None:
                w.transport.abort()

    def reset(self) -> None:
        """Close the checkout's side with a TCP RST (SO_LINGER 0), like reset_peer."""
        if self.closed:
            return
        sock = self.client.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


def _content_length(head: bytes) -> int | None:
    """The body length of a request head; None when it cannot be framed (chunked)."""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"transfer-encoding" and value.strip().lower() != b"identity":
            return None
        if lname == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return None
    return length


def error_response(status: int) -> bytes:
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
              504: "Gateway Timeout"}[status]
    body = json.dumps({"error": {"type": "api_error", "code": f"upstream_{status}",
                                 "message": f"{reason} (injected by the fault proxy)"}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


class FaultProxy:
    """Listens on `listen`, relays to `upstream`; toxics are set and removed while it runs."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], seed: int) -> None:
        self.listen = listen
        self.upstream = upstream
        self.chooser = FaultChooser(seed)
        self.stats = ProxyStats()
        self.toxics: dict[str, Toxic] = {}
        self.changes: list[dict[str, object]] = []  # when each toxic was set or removed
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._conn_numbers = itertools.count(1)
        self._request_numbers = itertools.count(1)

    # -- lifecycle and control -------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, *self.listen,
                                                  reuse_address=True)

    async def close(self) -> None:
        self._stop_listening()
        for link in list(self._links):
            link.close()

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def set_toxic(self, toxic: Toxic) -> None:
        self.toxics[toxic.key] = toxic
        self._log("set", toxic)
        if toxic.type == "down":
            self._stop_listening()
            for link in list(self._links):
                link.close()

    async def remove_toxic(self, key: str) -> bool:
        toxic = self.toxics.pop(key, None)
        if toxic is None:
            return False
        self._log("removed", toxic)
        await self._after_removal(toxic)
        return True

    async def reset(self) -> None:
        """Remove every toxic; connections a `timeout` toxic is holding are closed, so
        nothing stays hung once the lab has reverted the fault."""
        for key in list(self.toxics):
            await self.remove_toxic(key)
        for link in list(self._links):
            if link.held:
                link.close()

    async def _after_removal(self, toxic: Toxic) -> None:
        if toxic.type == "down" and self._server is None and not any(
            t.type == "down" for t in self.toxics.values()
        ):
            await self.start()

    def _log(self, what: str, toxic: Toxic) -> None:
        self.changes.append({"t": round(time.time(), 3), "change": what,
                             "toxic": toxic.model_dump(exclude_defaults=True)})

    # -- relaying ----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(next(self._conn_numbers), writer)
        self.stats.connections += 1
        if any(t.type == "down" for t in self.toxics.values()):
            self.stats.refused += 1
            link.close()
            return
        self._links.add(link)
        try:
            try:
                up_reader, link.upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                link.close()
                return
            tasks = [asyncio.create_task(self._requests(link, reader)),
                     asyncio.create_task(self._responses(link, up_reader))]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
        finally:
            link.close()
            self._links.discard(link)

    async def _requests(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """checkout → gateway, one HTTP request at a time (raw once it cannot be framed)."""
        assert link.upstream is not None
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    await self._through(link, "upstream", exc.partial, 0)
                return
            except asyncio.LimitOverrunError:
                link.request = 0
                return await self._raw(link, reader, "upstream")
            length = _content_length(head)
            if length is None:
                link.request = 0
                await self._through(link, "upstream", head, 0)
                return await self._raw(link, reader, "upstream")
            body = await reader.readexactly(length) if length else b""
            number = next(self._request_numbers)
            link.request = number
            self.stats.requests += 1
            injected = self._http_error(number)
            if injected is not None:
                link.client.write(error_response(injected))
                await link.client.drain()
                continue
            if await self._through(link, "upstream", head + body, number):
                self.stats.forwarded += 1

    def _http_error(self, request: int) -> int | None:
        for toxic in list(self.toxics.values()):
            if toxic.type == "http_error" and self.chooser.hits_request(toxic, request):
                self.stats.http_errors[toxic.status] += 1
                self.stats.toxic_hits[toxic.key] += 1
                return toxic.status
        return None

    async def _responses(self, link: _Link, reader: asyncio.StreamReader) -> None:
        await self._raw(link, reader, "downstream")

    async def _raw(self, link: _Link, reader: asyncio.StreamReader, stream: str) -> None:
        for chunk in itertools.count(1):
            data = await reader.read(CHUNK)
            if not data:
                return
            await self._through(link, stream, data, chunk)

    async def _through(self, link: _Link, stream: str, data: bytes, seq: int) -> bool:
        """Apply the toxics acting on this link's `stream`, then write; False if dropped."""
        target = link.upstream if stream == "upstream" else link.client
        assert target is not None
        for toxic in list(self.toxics.values()):
            if not applies(toxic, stream=stream, chooser=self.chooser, connection=link.number,
                           request=link.request):
                continue
            self.stats.toxic_hits[toxic.key] += 1
            if toxic.type == "timeout":
                if not link.held and toxic.timeout > 0:
                    link.hold_closer = asyncio.get_running_loop().call_later(
                        toxic.timeout / 1000, link.close)
                link.held = True
                return False  # data is swallowed
            if toxic.type == "reset_peer":
                if toxic.timeout:
                    await asyncio.sleep(toxic.timeout / 1000)
                self.stats.resets += 1
                link.reset()
                raise _Closed
            if toxic.type == "latency":
                await asyncio.sleep(self.chooser.delay_ms(toxic, link.number, seq) / 1000)
            elif toxic.type == "bandwidth":
                await asyncio.sleep(len(data) / (toxic.rate * 1024))
        if link.closed:
            raise _Closed
        target.write(data)
        await target.drain()
        return True

    def snapshot(self) -> dict[str, object]:
        s = self.stats
        return {
            "listen": f"{self.listen[0]}:{self.listen[1]}",
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "enabled": self._server is not None,
            "toxics": [t.model_dump() | {"key": t.key} for t in self.toxics.values()],
            "connections": s.connections,
            "open_connections": len(self._links),
            "requests": s.requests,
            "forwarded": s.forwarded,
            "http_errors": {str(k): v for k, v in sorted(s.http_errors.items())},
            "toxic_hits": dict(sorted(s.toxic_hits.items())),
            "resets": s.resets,
            "refused": s.refused,
            "changes": self.changes,
        }
