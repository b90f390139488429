"""HTTP clients for the router's and the fault proxy's admin APIs.

Backend-neutral: any backend that runs our router and proxy (local processes, containers)
hands these to faults. A backend that fronts the checkout with HAProxy implements
`RouterControl` over HAProxy's runtime API instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from lab.errors import FaultError

_TIMEOUT = aiohttp.ClientTimeout(total=15)


async def _call(method: str, url: str, what: str, payload: Any = None) -> Any:
    try:
        async with aiohttp.ClientSession(timeout=_TIMEOUT) as http, http.request(
            method, url, json=payload
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise FaultError(f"{what}: {method} {url} answered {resp.status}: {text[:300]}")
            return await resp.json(content_type=None) if text else None
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise FaultError(f"{what}: {method} {url} failed: {type(exc).__name__}: {exc}") from exc


class HttpRouterControl:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url.rstrip("/")

    async def backends(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await _call("GET", f"{self.admin_url}/backends", "router")
        return result

    async def add_backend(self, name: str, base_url: str) -> None:
        await _call("POST", f"{self.admin_url}/backends", "router",
                    {"name": name, "url": base_url})

    async def remove_backend(self, name: str, drain_s: float = 10.0) -> dict[str, Any]:
        result: dict[str, Any] = await _call(
            "DELETE", f"{self.admin_url}/backends/{name}?drain_s={drain_s:g}", "router")
        return result

    async def events(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await _call("GET", f"{self.admin_url}/events", "router")
        return result


class HttpProxyControl:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url.rstrip("/")

    async def set_toxic(self, toxic: Mapping[str, Any]) -> None:
        await _call("POST", f"{self.admin_url}/toxics", "fault proxy", dict(toxic))

    async def remove_toxic(self, name: str) -> None:
        await _call("DELETE", f"{self.admin_url}/toxics/{name}", "fault proxy")

    async def reset(self) -> None:
        await _call("POST", f"{self.admin_url}/reset", "fault proxy")

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await _call("GET", f"{self.admin_url}/stats", "fault proxy")
        return result
