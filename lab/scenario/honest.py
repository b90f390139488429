"""The one rule of an honest answer, used by the verdict's honest line, the live mix, the
drill score and the reports, so no two of them can disagree about the same answers.

An answer is honest when it tells the user the truth about what happened: a 2xx that
serves them (fallbacks such as "payment pending" included; a lying 200 or a 2xx cut short
or off its endpoint's contract never), a 503 that says when to come back (Retry-After),
or a 4xx code the variant's own expectations name for the window it was sent in (a rate
limiter's 429, say). Everything else is not: a 500, 502 or 504, a 503 without Retry-After,
any other status, a timeout, a connection error, a request still unanswered when the
load stopped — and an arrival the load generator dropped at its cap on requests in
flight: the lab never saw the answer that user would have got, so it cannot vouch for it.

Pure: records in, classes and words out.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from lab.load.classify import RESPONSE_CLASSES, UNFINISHED

if TYPE_CHECKING:
    from lab.load.request_log import RequestRecord

#: A 503 without Retry-After tells the client nothing about when to come back: shown
#: apart, so "503" means the honest answer.
BARE_503 = "503_bare"
DROPPED = "dropped"
#: Every class an arrival is shown in (the live mix, the debrief): the response classes,
#: the bare 503 told apart from the honest one, and the drops.
SHOWN_CLASSES: tuple[str, ...] = (*RESPONSE_CLASSES[:7], BARE_503, *RESPONSE_CLASSES[7:],
                                  DROPPED)
#: The shown classes that are honest whatever the variant says.
HONEST_CLASSES = frozenset({"2xx", "fallback", "503"})
#: The shown classes that are never honest where no expectation names a 4xx (a live stack,
#: a drill): the rest.
BAD_CLASSES = frozenset(SHOWN_CLASSES) - HONEST_CLASSES


def shown_class(record: RequestRecord) -> str:
    """The class an arrival is shown and judged in: its response class, with a 503
    lacking Retry-After told apart, and `dropped` for an arrival never sent."""
    if record.dropped:
        return DROPPED
    cls = record.cls
    if cls == "503" and not record.retry_after:
        return BARE_503
    return cls


def is_honest(record: RequestRecord, honest_codes: Collection[str] = ()) -> bool:
    """Did this arrival get an honest answer? `honest_codes`: the 4xx codes the variant's
    expectations name for the window the request was sent in."""
    shown = shown_class(record)
    if shown in HONEST_CLASSES:
        return True
    return shown == "4xx" and str(record.status) in honest_codes


def dishonest_kind(record: RequestRecord) -> str:
    """What a dishonest answer was, in the words the honest line counts it by."""
    shown = shown_class(record)
    if shown == DROPPED:
        return "dropped at the in-flight cap"
    if record.outcome == UNFINISHED:
        return "unfinished when the load stopped"
    if shown == "lying_200":
        return "lying 200"
    if shown == BARE_503:
        return "503 without Retry-After"
    if shown == "timeout":
        return "timeout"
    if shown == "error":
        return f"error ({record.error})" if record.error else "error"
    return str(record.status)
