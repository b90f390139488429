"""The fault proxy's seeded choices: exact counts for a fixed seed, order independence."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from lab.services.proxy.server import _content_length, error_response
from lab.services.proxy.toxics import FaultChooser, Toxic, applies


def test_toxicity_hits_an_exact_count_of_connections_for_a_seed() -> None:
    chooser = FaultChooser(seed=7)
    reset = Toxic(type="reset_peer", toxicity=0.3)
    hits = [c for c in range(1, 1001) if chooser.hits_connection(reset, c)]
    assert len(hits) == 290
    assert hits[:5] == [1, 3, 9, 10, 12]
    # Another seed, another (equally exact) choice.
    other = [c for c in range(1, 1001) if FaultChooser(8).hits_connection(reset, c)]
    assert len(other) == 301 and other != hits


def test_http_error_share_of_requests_is_exact_and_order_independent() -> None:
    chooser = FaultChooser(seed=7)
    err = Toxic(type="http_error", status=502, toxicity=0.5)
    in_order = {r for r in range(1, 2001) if chooser.hits_request(err, r)}
    shuffled = list(range(1, 2001))
    random.Random(1).shuffle(shuffled)  # concurrent requests ask in any order
    assert {r for r in shuffled if FaultChooser(7).hits_request(err, r)} == in_order
    assert len(in_order) == 1007


def test_toxicity_bounds_and_names_separate_the_draws() -> None:
    chooser = FaultChooser(seed=1)
    always = Toxic(type="latency", latency=10, toxicity=1.0)
    never = Toxic(type="latency", latency=10, toxicity=0.0)
    assert all(chooser.hits_connection(always, c) for c in range(100))
    assert not any(chooser.hits_connection(never, c) for c in range(100))
    a = Toxic(type="timeout", name="a", toxicity=0.5)
    b = Toxic(type="timeout", name="b", toxicity=0.5)
    assert [chooser.hits_connection(a, c) for c in range(50)] != [
        chooser.hits_connection(b, c) for c in range(50)]


def test_jitter_stays_within_latency_plus_minus_jitter() -> None:
    chooser = FaultChooser(seed=3)
    toxic = Toxic(type="latency", latency=1000, jitter=200)
    delays = [chooser.delay_ms(toxic, 1, chunk) for chunk in range(500)]
    assert min(delays) >= 800 and max(delays) <= 1200
    assert round(sum(delays) / len(delays)) == 1003
    assert chooser.delay_ms(Toxic(type="latency", latency=5), 1, 1) == 5.0


def test_tcp_toxics_act_on_their_stream_only() -> None:
    chooser = FaultChooser(seed=1)
    up = Toxic(type="timeout", stream="upstream")
    assert applies(up, stream="upstream", chooser=chooser, connection=1)
    assert not applies(up, stream="downstream", chooser=chooser, connection=1)
    assert not applies(Toxic(type="http_error"), stream="downstream", chooser=chooser,
                       connection=1)


def test_request_scope_picks_a_share_of_requests_on_one_connection() -> None:
    chooser = FaultChooser(seed=7)
    per_conn = Toxic(type="reset_peer", toxicity=0.3)
    per_req = Toxic(type="reset_peer", toxicity=0.3, scope="request")
    on_conn_1 = [applies(per_conn, stream="downstream", chooser=chooser, connection=1,
                         request=r) for r in range(1, 201)]
    assert len(set(on_conn_1)) == 1  # connection scope: all or nothing for a keep-alive link
    hits = sum(applies(per_req, stream="downstream", chooser=chooser, connection=1, request=r)
               for r in range(1, 201))
    assert hits == sum(chooser.hits_request(per_req, r) for r in range(1, 201)) == 60
    # Outside an HTTP exchange (raw relay) the connection decides.
    assert applies(per_req, stream="downstream", chooser=chooser, connection=1, request=0) == (
        chooser.hits_connection(per_req, 1))


def test_toxiproxy_json_shape_and_validation() -> None:
    t = Toxic.model_validate({"type": "latency", "stream": "upstream", "toxicity": 0.5,
                              "attributes": {"latency": 300, "jitter": 50}})
    assert (t.latency, t.jitter, t.stream, t.key) == (300, 50, "upstream", "latency")
    with pytest.raises(ValidationError, match="takes no status"):
        Toxic.model_validate({"type": "latency", "status": 503})
    with pytest.raises(ValidationError, match="rate > 0"):
        Toxic(type="bandwidth")
    with pytest.raises(ValidationError):
        Toxic.model_validate({"type": "http_error", "status": 404})
    with pytest.raises(ValidationError, match="toxicity must be 1"):
        Toxic(type="down", toxicity=0.5)


def test_request_framing_and_injected_answers() -> None:
    assert _content_length(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n") == 12
    assert _content_length(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 0
    assert _content_length(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") is None
    answer = error_response(503)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert f"Content-Length: {len(body)}".encode() in head
