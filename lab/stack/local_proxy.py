"""The fault proxy as a local process, in front of any upstream: the sample's payment
gateway, or a dependency of the user's own service. One way to start it, so both stacks
hand it the same variables."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lab.system.ports import free_port
from lab.system.processes import REPO_ROOT, ManagedProcess, python_env


@dataclass(frozen=True)
class LocalProxy:
    process: ManagedProcess
    url: str  # where the service sends its calls (the proxy's listening side)
    admin_url: str  # the admin API toxics are set on (and /health)


def start_proxy(name: str, upstream: str, *, seed: int, run_id: str,
                log_dir: Path) -> LocalProxy:
    """The proxy on two free ports of 127.0.0.1, relaying to `upstream` (host:port)."""
    listen, admin = free_port(), free_port()
    process = ManagedProcess(
        name, [sys.executable, "-m", "lab.services.proxy"],
        env=python_env({"PROXY_LISTEN_PORT": str(listen), "PROXY_ADMIN_PORT": str(admin),
                        "PROXY_UPSTREAM": upstream, "PROXY_SEED": str(seed)}),
        run_id=run_id, log_dir=log_dir, cwd=REPO_ROOT)
    return LocalProxy(process, f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}")
