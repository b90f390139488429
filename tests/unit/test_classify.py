"""Request classification: what a response means, beyond its status code."""

from __future__ import annotations

import json

import pytest

from lab.load.classify import classify_body, matches, response_class


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("status", "doc", "expected"),
    [
        (201, {"order_id": 7, "status": "CONFIRMED"}, "ok"),
        (200, {"success": False, "order_id": None}, "lying_200"),
        (200, {"status": "FAILED"}, "lying_200"),
        (200, {"error": "payment gateway timeout"}, "lying_200"),
        (200, {"ok": True, "errors": ["card declined"]}, "lying_200"),
        (202, {"order_id": 9, "status": "PAYMENT_PENDING"}, "fallback"),
        (201, {"order_id": 9, "status": "CONFIRMED", "degraded": True}, "fallback"),
        (201, {"error": None, "status": "CONFIRMED"}, "ok"),  # a null error field is no error
    ],
)
def test_2xx_bodies(status: int, doc: object, expected: str) -> None:
    assert classify_body(status, "application/json", body(doc)) == expected


def test_non_json_2xx_is_ok() -> None:
    assert classify_body(200, "text/plain", b"fine") == "ok"


def test_error_bodies() -> None:
    problem = body({"type": "about:blank", "status": 503})
    assert classify_body(503, "application/problem+json; charset=utf-8", problem) == "problem"
    assert classify_body(500, "text/plain", b"500 Internal Server Error") == "plain"


@pytest.mark.parametrize(
    ("status", "outcome", "kind", "cls"),
    [
        (201, "response", "ok", "2xx"),
        (200, "response", "lying_200", "lying_200"),
        (202, "response", "fallback", "fallback"),
        (404, "response", "problem", "4xx"),
        (500, "response", "problem", "500"),
        (503, "response", "problem", "503"),
        (502, "response", "plain", "502"),
        (504, "response", "plain", "504"),
        (501, "response", "plain", "other_5xx"),
        (None, "timeout", "none", "timeout"),
        (None, "error", "none", "error"),
        (302, "response", "plain", "other"),
    ],
)
def test_response_class(status: int | None, outcome: str, kind: str, cls: str) -> None:
    assert response_class(status, outcome, kind) == cls


def test_selectors_never_count_lying_200s_as_success() -> None:
    assert not matches("2xx", 200, "lying_200")
    assert matches("lying_200", 200, "lying_200")
    assert matches("200", 200, "lying_200")  # an exact code is the code as sent
    assert matches("2xx", 202, "fallback")
    assert matches("5xx", 502, "other_5xx") and matches("5xx", 500, "500")
    assert not matches("5xx", None, "timeout")
    assert matches("timeout", None, "timeout") and not matches("error", None, "timeout")


class _Wrapper(Exception):
    """geventhttpclient's RetriesExceeded keeps the error it wraps as `original`."""

    def __init__(self, original: BaseException) -> None:
        super().__init__("URL /api/checkout")
        self.original = original


def test_a_wrapped_socket_timeout_is_a_timeout_and_named_with_its_cause() -> None:

    from lab.load.classify import error_name, is_timeout

    assert is_timeout(_Wrapper(TimeoutError("timed out")))
    assert is_timeout(TimeoutError())
    assert not is_timeout(_Wrapper(ConnectionResetError()))
    assert not is_timeout(None)
    assert error_name(_Wrapper(ConnectionResetError())) == "_Wrapper(ConnectionResetError)"
    assert error_name(ConnectionResetError()) == "ConnectionResetError"
