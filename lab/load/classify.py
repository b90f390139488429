"""What a response *means*, beyond its status code.

The lab must not reward a mitigation that hides errors: a 2xx whose body says the
operation failed is a "lying 200", counted apart from honest successes. A 2xx that
says the work was accepted in a degraded way (payment pending, receipt not written) is
an honest "fallback". Pure functions only: the Locust subprocess imports this module.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from lab.load.contracts import ANY_BODY, SuccessContract

# Body markers of a 2xx that admits the operation failed.
_FAILED_STATES = {"failed", "error", "declined"}
# Body markers of a 2xx that is an honest, degraded success.
_FALLBACK_STATES = {"payment_pending", "pending", "accepted", "degraded"}


def classify_body(status: int, content_type: str, body: bytes) -> str:
    """Return one of: ok, lying_200, fallback, problem, plain.

    `problem` is an RFC 9457 problem+json error body; `plain` any other error body.
    """
    if 200 <= status < 300:
        doc = _json_object(body)
        if doc is None:
            return "ok"
        if _says_failed(doc):
            return "lying_200"
        if _says_degraded(doc):
            return "fallback"
        return "ok"
    if content_type.split(";")[0].strip().lower() == "application/problem+json":
        return "problem"
    return "plain"


def problem_reason(body: bytes) -> str | None:
    """The `reason` member of a problem+json body (which dependency failure, or the
    router's own answer), so the lab can tell a breaker's fast 503 from a slow one."""
    doc = _json_object(body)
    reason = doc.get("reason") if doc is not None else None
    return reason[:64] if isinstance(reason, str) else None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _says_failed(doc: dict[str, Any]) -> bool:
    if doc.get("success") is False or doc.get("ok") is False:
        return True
    if doc.get("error") or doc.get("errors"):
        return True
    state = doc.get("status")
    return isinstance(state, str) and state.lower() in _FAILED_STATES


def _says_degraded(doc: dict[str, Any]) -> bool:
    if doc.get("degraded") is True:
        return True
    state = doc.get("status")
    return isinstance(state, str) and state.lower() in _FALLBACK_STATES


def answer_outcome(
    status: int, content_type: str, body: bytes | None,
    contract: SuccessContract | None = None, error: BaseException | None = None,
) -> tuple[str, str, str | None]:
    """(outcome, body kind, error name) of an answer with status `status`.

    `body` None: it could not be read. `error`: what the client raised while reading it
    (Locust hands the request hook a 2xx with `exception=` set when the body was cut by a
    close or a reset, or stalled past the client timeout). Such an answer proved nothing —
    counting it would reward a service that dies mid-answer — so it is an error (a
    timeout when the client gave up waiting for the rest), whatever its status said. A 2xx
    that breaks its endpoint's `contract` (empty, not JSON, no order in it) is an error
    too; a lying 200 keeps its own class. Other statuses already say what happened.
    """
    if error is not None:
        if is_timeout(error):
            return "timeout", "none", f"BodyTimeout({error_name(error)})"
        return "error", "none", f"BodyCut({error_name(error)})"
    if body is None:
        if 200 <= status < 300:
            return "error", "none", "BodyUnreadable"
        return "response", "plain", None
    kind = classify_body(status, content_type, body)
    if 200 <= status < 300 and contract is not None and contract.lies(body):
        kind = "lying_200"
    if 200 <= status < 300 and kind != "lying_200":
        broken = (contract or ANY_BODY).violation(content_type, body)
        if broken is not None:
            return "error", "none", broken
    return "response", kind, None


#: A request still in flight when the load generator stopped: logged at the stop with the
#: time it was sent, so no request of a judged window can go unrecorded.
UNFINISHED = "unfinished"

# The classes a request falls in, in the order reports show them. 502 and 504 are the
# router's answers for a backend that failed or never answered: apart from other 5xx.
RESPONSE_CLASSES = (
    "2xx", "fallback", "lying_200", "4xx", "500", "502", "503", "504", "other_5xx", "timeout",
    "error", "other",
)


def response_class(status: int | None, outcome: str, body_kind: str) -> str:
    """Fold status, outcome and body kind into one of RESPONSE_CLASSES — or `dropped`, an
    arrival the open model's load generator never sent (no answer, and not the service's:
    it is in none of the classes, and no status selector matches it)."""
    if outcome in ("timeout", "dropped"):
        return outcome
    if outcome == UNFINISHED:  # the load stopped before its answer came: no answer
        return "timeout"
    if outcome != "response" or status is None:
        return "error"
    if 200 <= status < 300:
        return {"lying_200": "lying_200", "fallback": "fallback"}.get(body_kind, "2xx")
    if 400 <= status < 500:
        return "4xx"
    if status == 500:
        return "500"
    if status in (502, 503, 504):
        return str(status)
    if 500 <= status < 600:
        return "other_5xx"
    return "other"


def matches(selector: str, status: int | None, cls: str) -> bool:
    """Does a request match a scenario's status selector?

    Exact codes ("500", "200") match the status as sent; "2xx" means honest success
    (fallbacks included, lying 200s never); "5xx"/"4xx" any such code; "server_errors"
    any 5xx but 503 (the one 5xx a mitigation may answer on purpose); "other_5xx" a 5xx
    that is none of 500, 502, 503, 504.
    """
    if selector == "2xx":
        return cls in ("2xx", "fallback")
    if selector == "5xx":
        return status is not None and 500 <= status < 600
    if selector == "server_errors":
        return status is not None and 500 <= status < 600 and status != 503
    if selector == "4xx":
        return cls == "4xx"
    if selector in ("lying_200", "fallback", "timeout", "error", "other_5xx", "dropped"):
        return cls == selector
    if cls == "error" and status is not None and 200 <= status < 300:
        return False  # a 2xx cut short or off its contract was no such answer
    return status is not None and str(status) == selector


def transport_cause(error: BaseException | None) -> BaseException | None:
    """geventhttpclient wraps the last error of its retries (Locust allows none) in
    RetriesExceeded, keeping it as `original`: that one says what happened."""
    original = getattr(error, "original", None)
    return original if isinstance(original, BaseException) else error


def is_timeout(error: BaseException | None) -> bool:
    """A request without an answer because the client gave up waiting — also when
    geventhttpclient reports it wrapped in RetriesExceeded."""
    error = transport_cause(error)
    if error is None:
        return False
    if isinstance(error, TimeoutError | socket.timeout):
        return True
    return "timeout" in type(error).__name__.lower()


def error_name(error: BaseException | None) -> str:
    """`RetriesExceeded(ConnectionResetError)`: the wrapper and what it wrapped."""
    cause = transport_cause(error)
    if cause is not None and cause is not error:
        return f"{type(error).__name__}({type(cause).__name__})"
    return type(error).__name__
