"""shipping_stub: the shipping-quote dependency of the orders service, standard library only.

Run it with ``python shipping_stub.py``. It binds 127.0.0.1 unless SHIPPING_HOST says
otherwise, and prints ``shipping stub listening on <host>:<port>`` to stdout once it serves.

Environment variables
---------------------
SHIPPING_PORT     required. The port to listen on.
SHIPPING_HOST     default 127.0.0.1. The address to listen on (0.0.0.0 in a container).
SHIPPING_API_KEY  optional. When set, a quote needs header X-Api-Key equal to it; when
                  unset (or empty), any non-empty X-Api-Key is accepted.

Endpoints
---------
GET /quote?zip=..&weight_g=..  200 {"cents": 300 + weight_g // 10, "carrier": "parcelco"};
                               401 {"error": "bad key"} on a missing or wrong X-Api-Key;
                               400 {"error": ...} when zip or weight_g is missing or bad.
GET /health                    200 {"status": "ok"}.

SIGTERM (or SIGINT) stops it; it exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = os.environ.get("SHIPPING_HOST", "").strip() or "127.0.0.1"


class QuoteHandler(BaseHTTPRequestHandler):
    server_version = "shipping-stub/1"
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    expected_key: str | None = None

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/health":
            self._send(200, {"status": "ok"})
            return
        if url.path != "/quote":
            self._send(404, {"error": "not found"})
            return
        key = self.headers.get("X-Api-Key", "")
        if not key or (self.expected_key is not None and key != self.expected_key):
            self._send(401, {"error": "bad key"})
            return
        query = parse_qs(url.query)
        zip_code = query.get("zip", [""])[0]
        weight = query.get("weight_g", [""])[0]
        if not zip_code or not weight.isdigit():
            self._send(400, {"error": "zip and a non-negative integer weight_g are required"})
            return
        self._send(200, {"cents": 300 + int(weight) // 10, "carrier": "parcelco"})


def main() -> int:
    raw_port = os.environ.get("SHIPPING_PORT", "").strip()
    if not raw_port.isdigit() or not 0 < int(raw_port) <= 65535:
        print("shipping stub: SHIPPING_PORT must be a port number", file=sys.stderr, flush=True)
        return 2
    # Unset (or empty): any non-empty key will do.
    QuoteHandler.expected_key = os.environ.get("SHIPPING_API_KEY") or None

    server = ThreadingHTTPServer((HOST, int(raw_port)), QuoteHandler)
    server.daemon_threads = True

    stopping: list[int] = []

    def _on_signal(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="serve", daemon=True
    )
    serving.start()
    print(f"shipping stub listening on {HOST}:{server.server_port}", flush=True)
    while not stopping and serving.is_alive():
        time.sleep(0.1)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
