"""The HAProxy config carries the router settings a scenario asks for (the real HAProxy's
behaviour is tested in tests/integration/test_docker_backend.py)."""

from __future__ import annotations

import json
import re

from lab.stack.base import RouterSettings
from lab.stack.haproxy import render_config, server_check


def test_health_check_settings_reach_every_server() -> None:
    settings = RouterSettings(health_path="/livez", inter_s=0.25, fall=3, rise=4)
    config = render_config([("checkout-1", "a:8080"), ("checkout-2", "b:8080")], settings, 7)
    assert "option httpchk GET /livez" in config
    servers = re.findall(r"^\s+server (\S+) (\S+) (.*)$", config, re.M)
    check = "check inter 250 fall 3 rise 4 pool-purge-delay 1s"
    assert servers == [("checkout-1", "a:8080", check), ("checkout-2", "b:8080", check)]
    assert server_check(settings) == check


def test_no_backend_answer_is_the_local_routers_problem_json() -> None:
    config = render_config([("checkout-1", "a:8080")], RouterSettings(), 7)
    [line] = [ln for ln in config.splitlines() if "http-error status 503" in ln]
    assert "hdr Retry-After 7" in line and "content-type application/problem+json" in line
    body = json.loads(line.split(" string ", 1)[1].strip("'"))
    assert body["status"] == 503 and body["reason"] == "router"
