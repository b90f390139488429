"""Ports for the lab's services on 127.0.0.1."""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1, never one this process handed out before: a stack draws
    several ports before any service binds, and the kernel may offer the same one twice."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
