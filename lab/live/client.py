"""The CLI's side of the control API (lab.live.api): plain urllib, so `lab inject` and
`lab drill diagnose …` start in a fraction of a second and need nothing but the stdlib."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from lab.errors import LabError, StateError, UsageError
from lab.live.files import LiveFile, live_stacks


class LiveClient:
    def __init__(self, base_url: str, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("POST", path, body or {})

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                doc = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error") or exc.reason
            except (ValueError, AttributeError):
                message = exc.reason
            raise refusal(exc.code, f"{method} {path}", str(message)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StateError(f"no live stack answers at {self.base_url} ({reason}); is "
                             "`lab up` or `lab drill` still running?") from None
        if not isinstance(doc, dict):
            raise LabError(f"{method} {path}: the answer is not a JSON object")
        return doc


def refusal(status: int, what: str, message: str) -> LabError:
    """What an answer of the control API (lab.live.api) with this HTTP status means: 400 the
    request was wrong (bad input), 403/404 the stack is not in a state to do it (a drill
    forbids it, no drill runs there); 409 is also what a fault or a restart that failed
    answers, so it stays a failure of the machinery (the CLI checks the states it can tell
    apart before asking)."""
    if status == 400:
        return UsageError(what, message)
    if status in (403, 404):
        return StateError(f"{what}: {message}")
    return LabError(f"{what}: {message}")


def find_live(api: str | None = None, *, drill: bool | None = None) -> LiveFile | None:
    """The one live stack to talk to: the one at `api`, or the only one running (None
    when none runs; an error naming them when several do)."""
    stacks = [s for s in live_stacks() if drill is None or s.drill == drill]
    if api is not None:
        return next((s for s in stacks if s.api.rstrip("/") == api.rstrip("/")),
                    LiveFile(0, api, None, None, "?", bool(drill)))
    if len(stacks) > 1:
        listed = ", ".join(f"{s.api} (pid {s.pid})" for s in stacks)
        raise LabError(f"several live stacks run: {listed}; pick one with --api URL")
    return stacks[0] if stacks else None
