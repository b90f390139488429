"""Start `lab up` / `lab drill` as a user would (a subprocess), find its control API in
what it prints, and stop it with Ctrl-C (SIGINT) at the end, checking it cleaned up."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.lab_cli import REPO, popen_lab

__all__ = ["REPO", "Live", "live_stack"]
URL = re.compile(r"dashboard:\s+(http://127\.0\.0\.1:\d+)/")


@dataclass
class Live:
    proc: subprocess.Popen[str]
    api: str
    ready_s: float
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.api}{path}", timeout=30) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict[str, Any] | None = None,
             timeout: float = 120) -> tuple[int, Any]:
        req = urllib.request.Request(f"{self.api}{path}", data=json.dumps(body or {}).encode(),
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


def _pump(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line)


@contextmanager
def live_stack(args: list[str], runs_root: Path, *, ready_timeout: float = 180,
               stop_timeout: float = 120) -> Iterator[Live]:
    """`python -m lab ARGS` until its dashboard URL is printed; SIGINT on exit (unless it
    already ended), then the exit code must say it was interrupted or ended cleanly. The
    child gets SIGINT at its default (lab_cli.popen_lab), so the Ctrl-C works however
    pytest was started."""
    began = time.monotonic()
    proc = popen_lab(args, runs_root, env={"PYTHONUNBUFFERED": "1"},
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout: list[str] = []
    stderr: list[str] = []
    threads = [threading.Thread(target=_pump, args=(proc.stdout, stdout), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, stderr), daemon=True)]
    for t in threads:
        t.start()
    try:
        api = None
        while api is None:
            found = [m.group(1) for line in list(stdout) if (m := URL.search(line))]
            if found:
                api = found[0]
                break
            if proc.poll() is not None or time.monotonic() - began > ready_timeout:
                raise AssertionError(f"lab {' '.join(args)} did not get ready:\n"
                                     + "".join(stdout) + "".join(stderr))
            time.sleep(0.1)
        yield Live(proc, api, time.monotonic() - began, stdout, stderr)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the live stack did not stop within "
                                 f"{stop_timeout:g}s of Ctrl-C") from None
        for t in threads:
            t.join(5)
