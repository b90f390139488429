"""What a variant expects: one model per kind of claim, each judging itself.

A scenario writes an expectation without naming its kind (`{window: fault, status: 500,
rate: ">= 30%"}`); the subject key it gives picks the kind — `ledger`, `metric`,
`health`, `p50`/`p99`, else `status` — through a pydantic discriminated union. Each kind
takes only its own keys, says in a sentence why a key belongs elsewhere, writes itself as
text and checks itself against what a run observed (`Observed`, which `lab.verdict.judge`
provides). Also here: the small value types expectations are written in (bounds,
windows, status selectors, conditions). Pydantic only, so `lab check` stays light.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NamedTuple, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from lab.load.classify import matches

if TYPE_CHECKING:
    from lab.load.request_log import RequestRecord
    from lab.records.samples import Sample

# ---------------------------------------------------------------- small value types


def _eq(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": _eq, ">": operator.gt, "<": operator.lt,
}


@dataclass(frozen=True)
class Bound:
    """A comparison such as '>= 10%', '== 0' or '<= 1500ms'.

    `value` is normalised: rates are fractions (10% → 0.1), latencies milliseconds.
    """

    op: str
    value: float
    unit: str  # "", "%", "ms"

    def holds(self, measured: float) -> bool:
        return bool(_OPS[self.op](measured, self.value))

    def __str__(self) -> str:
        if self.unit == "%":
            return f"{self.op} {self.value * 100:g}%"
        if self.unit == "ms":
            return f"{self.op} {self.value:g} ms"
        return f"{self.op} {self.value:g}"


_BOUND_RE = re.compile(r"\s*(>=|<=|==|>|<)?\s*(-?[0-9]+(?:\.[0-9]+)?)\s*(%|ms|s)?\s*")
#: What a bound looks like, for the scenario schema (lab.scenario.schema).
BOUND_PATTERN = rf"^{_BOUND_RE.pattern}$"


def _bound_parser(kind: Literal["count", "rate", "latency", "number"]) -> Any:
    examples = {
        "count": "'== 0' or '>= 20'",
        "rate": "'>= 10%' or '<= 1%'",
        "latency": "'<= 1500ms' or '<= 2s'",
        "number": "'>= 1' or '== 0'",
    }[kind]

    def parse(value: Any) -> Bound:
        if isinstance(value, Bound):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a bound like {examples}")
        m = _BOUND_RE.fullmatch(str(value))
        if not m:
            raise ValueError(f"expected a bound like {examples}, got {value!r}")
        op, number, unit = m.group(1) or "==", float(m.group(2)), m.group(3) or ""
        if kind in ("count", "latency") and number < 0:
            what = "a count" if kind == "count" else "a latency"
            raise ValueError(f"{what} is never negative, so {value!r} cannot mean what it "
                             f"says; expected {examples}")
        if kind == "rate":
            if unit == "%":
                number /= 100
            elif unit:
                raise ValueError(f"a rate takes '%', got {value!r}; expected {examples}")
            elif number > 1:
                raise ValueError(f"a rate without '%' must be a fraction 0..1, got {value!r}")
            if not 0 <= number <= 1:  # '>= 200%' could never hold: the run would fail forever
                raise ValueError(f"a rate is a share from 0% to 100%, got {value!r}; "
                                 f"expected {examples}")
            return _can_fail(Bound(op, number, "%"), value, 0.0, 1.0, examples)
        if kind == "latency":
            if unit == "s":
                number *= 1000
            elif unit == "%":
                raise ValueError(f"a latency takes 'ms' or 's', got {value!r}")
            return _can_fail(Bound(op, number, "ms"), value, 0.0, None, examples)
        if unit:
            raise ValueError(f"a {kind} takes no unit, got {value!r}; expected {examples}")
        if kind == "count":
            return _can_fail(Bound(op, number, ""), value, 0.0, None, examples)
        return Bound(op, number, "")

    return BeforeValidator(parse)


def _can_fail(bound: Bound, written: Any, low: float, high: float | None,
              examples: str) -> Bound:
    """Refuse a bound every possible figure meets (`>= 0%`, `<= 100%`, `count >= 0`): a
    claim that cannot fail vouches for nothing. (One no figure meets is refused by the
    range checks: a negative count, a share above 100 %.)"""
    always = ((bound.op == ">=" and bound.value <= low)
              or (high is not None and bound.op == "<=" and bound.value >= high))
    if always:
        raise ValueError(f"{written!r} holds whatever is measured, so it cannot fail; "
                         f"expected a bound that could, like {examples}")
    never = ((bound.op == "<" and bound.value <= low)
             or (high is not None and bound.op == ">" and bound.value >= high))
    if never:
        raise ValueError(f"{written!r} cannot hold whatever is measured; expected {examples}")
    return bound


CountBound = Annotated[Bound, _bound_parser("count")]
RateBound = Annotated[Bound, _bound_parser("rate")]
LatencyBound = Annotated[Bound, _bound_parser("latency")]
NumberBound = Annotated[Bound, _bound_parser("number")]

# Response classes a request log entry can fall in (see lab.load.classify).
STATUS_CLASSES = ("2xx", "4xx", "5xx", "server_errors", "other_5xx", "lying_200", "fallback",
                  "timeout", "error", "dropped")
_STATUS_RE = re.compile(r"[1-5][0-9][0-9]")


def _parse_status(value: Any) -> str:
    text = str(value).strip()
    if text in STATUS_CLASSES or _STATUS_RE.fullmatch(text):
        return text
    raise ValueError(
        f"expected a status code like 500 or 503, or one of {', '.join(STATUS_CLASSES)}; "
        f"got {value!r}"
    )


StatusSelector = Annotated[str, BeforeValidator(_parse_status)]

#: What a /health sample can be compared with: a code, a class of codes, or no answer.
HEALTH_CLASSES = ("2xx", "4xx", "5xx", "server_errors", "timeout", "error")


def _parse_health(value: Any) -> str:
    text = str(value).strip()
    if text in HEALTH_CLASSES or _STATUS_RE.fullmatch(text):
        return text
    raise ValueError(
        f"expected the status /health answered, like 200 or 503, or one of "
        f"{', '.join(HEALTH_CLASSES)} (a /health sample has no body class); got {value!r}")


HealthSelector = Annotated[str, BeforeValidator(_parse_health)]


def health_matches(selector: str, health: str) -> bool:
    """Does a /health sample (its status as a string, or 'timeout'/'error') match?"""
    if selector in ("timeout", "error") or not health.isdigit():
        return selector == health
    code = int(health)
    if selector in ("2xx", "4xx", "5xx"):
        return code // 100 == int(selector[0])
    if selector == "server_errors":
        return 500 <= code < 600 and code != 503
    return health == selector

_WINDOW_RE = re.compile(r"(before|fault|after)(?:\+([0-9]+(?:\.[0-9]+)?)s)?")


def _parse_window(value: Any) -> str:
    text = str(value).strip()
    if _WINDOW_RE.fullmatch(text):
        return text
    raise ValueError(
        "expected a window: before, fault, after, or a window that starts later such as "
        f"'after+5s' (5 s after the fault was reverted); got {value!r}"
    )


WindowName = Annotated[str, BeforeValidator(_parse_window)]


def window_offset(window: str) -> tuple[str, float]:
    """'after+5s' → ('after', 5.0)."""
    m = _WINDOW_RE.fullmatch(window)
    assert m is not None  # validated at load time
    return m.group(1), float(m.group(2) or 0)


_CONDITION_RE = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(>=|<=|==|>|<)\s*"
                           r"(-?[0-9]+(?:\.[0-9]+)?)\s*")


@dataclass(frozen=True)
class Condition:
    """'checkout_breaker_open >= 1': a sampled checkout metric compared with a number."""

    metric: str
    bound: Bound

    def __str__(self) -> str:
        return f"{self.metric} {self.bound}"


def _parse_condition(value: Any) -> Condition:
    if isinstance(value, Condition):
        return value
    m = _CONDITION_RE.fullmatch(str(value))
    if not m:
        raise ValueError(f"expected '<metric> <op> <number>' such as "
                         f"'checkout_breaker_open >= 1', got {value!r}")
    return Condition(m.group(1), Bound(m.group(2), float(m.group(3)), ""))


MetricCondition = Annotated[Condition, BeforeValidator(_parse_condition)]

# Figures of a run's payment ledger (lab.records.ledger), for `ledger:` expectations.
LEDGER_FIGURES = ("charges", "double_charges", "duplicate_attempts", "charged_without_order",
                  "unmatched_charges", "confirmed_orders", "pending_orders",
                  "pending_unaccounted", "fallback_responses", "double_charged_refs",
                  "confirmed_without_charge", "pending_not_queued", "queued_not_pending",
                  "queued_without_order", "duplicate_order_refs")

_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values. The latency expectations judge by it,
    and the window summaries (lab.verdict.results) report by it, so the two agree."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# ---------------------------------------------------------------- judging


class Verdict(NamedTuple):
    """An expectation checked: did it hold, the measured figure in words, and the number
    compared with its bound (None when nothing was measured)."""

    passed: bool
    measured: str
    value: float | None


class Observed(Protocol):
    """What one variant's run measured, as expectations read it (lab.verdict.judge builds it)."""

    @property
    def ledger(self) -> Mapping[str, int] | None:
        """The run's payment ledger figures; None when none was recorded."""
        ...

    def window_range(self, window: str) -> tuple[float, float]:
        """A window's wall-clock bounds."""
        ...

    def answers(self, window: str) -> Sequence[RequestRecord]:
        """The requests sent in a window that were answered (not the open model's drops)."""
        ...

    def arrivals(self, window: str) -> Sequence[RequestRecord]:
        """Every arrival of a window: the requests sent and the open model's drops."""
        ...

    def samples_in(self, window: str, service: str) -> Sequence[Sample]:
        """A service's /health + /metrics samples taken in a window."""
        ...

    def samples_of(self, service: str) -> Sequence[Sample]:
        """Every sample of a service, whatever the window."""
        ...


# ---------------------------------------------------------------- the kinds

#: Every key an expectation may have, whatever its kind, in the order their value errors
#: are reported (`while_` is `while`'s Python name, also accepted).
KEY_ORDER = ("window", "status", "reason", "count", "rate", "retry_after", "p50", "p99",
             "health", "metric", "service", "max", "min", "increase", "while", "episodes",
             "ledger", "note")
KEYS = frozenset(KEY_ORDER) | {"while_"}

#: A test on the keys given (a value other than None or false), and the sentence for it.
_Rule = tuple[Callable[[frozenset[str]], bool], str]


def _any(*keys: str) -> Callable[[frozenset[str]], bool]:
    return lambda given: not given.isdisjoint(keys)


def _none(*keys: str) -> Callable[[frozenset[str]], bool]:
    return lambda given: given.isdisjoint(keys)


_NEEDS_WINDOW: _Rule = (_none("window"), "required field 'window' is missing")
_NO_SERVICE: _Rule = (_any("service"), "'service' goes with 'metric' or 'health'")
_REASON = "'reason' narrows a 'status' expectation"
_NO_REASON: _Rule = (_any("reason"), _REASON)
_REASON_NEEDS_STATUS: _Rule = (lambda g: "reason" in g and "status" not in g, _REASON)
_NO_STATS: _Rule = (_any("max", "min", "increase"), "'max'/'min'/'increase' go with 'metric'")
_NO_WHILE: _Rule = (_any("while", "while_", "episodes"),
                    "'while' and 'episodes' go with 'metric' and 'increase'")


class Expectation(BaseModel):
    """One claim about the run, checked against what was measured.

    Exactly one subject: a status/class share or count (`StatusExpectation`), a latency
    percentile (`LatencyExpectation`), /health samples (`HealthExpectation`), a sampled
    metric (`MetricExpectation`), or a figure of the run's payment ledger
    (`LedgerExpectation`). `Expectation.model_validate` picks the kind, as a scenario's
    `expect:` list does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: The tag the discriminator gives this kind.
    kind: ClassVar[str] = ""
    #: Checked in order on the keys given, before the fields are parsed: a key this kind
    #: does not take (or a missing one) is refused with the sentence that says why.
    rules: ClassVar[tuple[_Rule, ...]] = ()

    note: str | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _keys_fit_the_kind(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Value errors first (this kind's fields, and a bad value under a key only another
        kind takes), in key order; then the keys given against the kind's rules, which
        name a missing key or say where a misplaced one belongs."""
        if not isinstance(data, dict):
            return handler(data)
        own_keys = cls._own_keys()
        # None is "not given", as it was when every key was optional.
        own = {k: v for k, v in data.items()
               if k not in KEYS or (k in own_keys and v is not None)}
        errors: list[Any] = []
        model = None
        try:
            model = handler(own)
        except ValidationError as exc:  # a missing field is the rules' to name, in their words
            errors = [e for e in exc.errors() if e["type"] != "missing"]
        for key, value in data.items():  # another kind's key: a bad value is still named
            if key in KEYS and key not in own_keys and value is not None:
                try:
                    _key_type(key).validate_python(value)
                except ValidationError as exc:
                    errors += [{**e, "loc": (key, *e["loc"])} for e in exc.errors()]
        if errors:
            errors.sort(key=lambda e: KEY_ORDER.index(e["loc"][0])
                        if e["loc"] and e["loc"][0] in KEY_ORDER else len(KEY_ORDER))
            raise ValidationError.from_exception_data(cls.__name__, errors)
        given = frozenset(k for k, v in data.items()
                          if k in KEYS and v is not None and v is not False)
        if {"count", "rate"} <= given:
            raise ValueError("give either 'count' or 'rate', not both")
        for test, why in cls.rules:
            if test(given):
                raise ValueError(why)
        assert model is not None, "a kind's rules name every field it requires"
        return model

    @classmethod
    def _own_keys(cls) -> set[str]:
        return set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """On `Expectation` itself: the kind the keys name, as in a scenario file."""
        if cls is Expectation:
            return _ANY_EXPECTATION.validate_python(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    if not TYPE_CHECKING:  # typed code asks the kind (isinstance); duck-typed readers may not

        def __getattr__(self, item: str) -> Any:
            """A key another kind takes reads as unset on this one (None; `retry_after`
            False), as it did when every expectation was one wide model."""
            if item in KEYS:
                return False if item == "retry_after" else None
            return super().__getattr__(item)

    @property
    def text(self) -> str:
        """The expectation as a sentence, for tables and results."""
        raise NotImplementedError

    def check(self, observed: Observed) -> Verdict:
        """This claim judged against what the run observed."""
        raise NotImplementedError

    def value_bound(self) -> Bound | None:
        """The bound the verdict's numeric value was compared with (None when the value
        is not compared with one, e.g. `retry_after` alone)."""
        return None


class _Windowed(Expectation):
    window: WindowName

    @property
    def where(self) -> str:
        return f"[{self.window}]"


class _Amount(_Windowed):
    """A count or a share of what a window holds."""

    count: CountBound | None = None
    rate: RateBound | None = None

    def value_bound(self) -> Bound | None:
        return self.count if self.count is not None else self.rate

    def amount_text(self) -> str:
        if self.count is not None:
            return f"count {self.count}"
        return f"share {self.rate}"

    def amount(self, hits: int, total: int) -> Verdict:
        """A count or share of hits. An empty window fails every bound, `count: "== 0"`
        included: it measured nothing, so it cannot vouch for anything."""
        if total == 0:
            return Verdict(False, "no requests in the window", 0.0)
        if self.count is not None:
            return Verdict(self.count.holds(hits), f"{hits} of {total}", float(hits))
        assert self.rate is not None
        share = hits / total
        return Verdict(self.rate.holds(share), f"{share * 100:.1f}% ({hits} of {total})", share)


class StatusExpectation(_Amount):
    """A share or count of a status (or class) in a window, and/or that every such answer
    carries Retry-After.

    With an upper bound above zero (`rate: "<= 40%"`, `count: "< 50"`) it is also an
    *allowance*: in its window, the requests it selects are judged by it and left out of
    the mitigation's built-in honest line (see lab.verdict.judge.honest_verdict). A lying 200 is
    never allowed that way. Naming a 4xx code (`429`) makes those answers honest for the
    honest line, in this expectation's window. `status: dropped` counts the open model's
    arrivals dropped at the in-flight cap, out of every arrival of the window. `reason`
    narrows what is counted, never what it is counted out of.
    """

    kind: ClassVar[str] = "status"
    rules: ClassVar[tuple[_Rule, ...]] = (
        _NEEDS_WINDOW, _NO_SERVICE, _REASON_NEEDS_STATUS, _NO_STATS, _NO_WHILE,
        (_none("status"), "expected one of: 'status' with 'count'/'rate'/'retry_after', "
                          "'p50'/'p99', 'health' with 'count'/'rate', or 'metric' with "
                          "'max'/'min'"),
        (_none("count", "rate", "retry_after"),
         "a 'status' expectation needs 'count', 'rate' or 'retry_after: true'"),
    )

    status: StatusSelector
    #: Only responses whose problem+json `reason` is this (e.g. breaker_open).
    reason: str | None = Field(None, pattern=r"^[a-z0-9_]+$")
    retry_after: bool = False

    @property
    def selector(self) -> str:
        return f"{self.status} ({self.reason})" if self.reason else self.status

    @property
    def is_allowance(self) -> bool:
        """A count/share with an upper bound above zero: 'this many may still fail'."""
        bound = self.value_bound()
        return bound is not None and bound.op in ("<=", "<") and bound.value > 0

    def selects(self, r: RequestRecord) -> bool:
        return matches(self.status, r.status, r.cls) and self.reason in (None, r.reason)

    @property
    def text(self) -> str:
        parts = []
        if self.count is not None or self.rate is not None:
            parts.append(f"{self.selector} {self.amount_text()}")
        if self.retry_after:
            parts.append(f"every {self.status} carries Retry-After")
        return f"{self.where} " + "; ".join(parts)

    def check(self, observed: Observed) -> Verdict:
        window = (observed.arrivals(self.window) if self.status == "dropped"
                  else observed.answers(self.window))
        if not window:
            return Verdict(False, "no requests in the window", None)
        hits = [r for r in window if self.selects(r)]
        parts: list[str] = []
        passed = True
        value: float | None = None
        if self.count is not None or self.rate is not None:
            ok, measured, value = self.amount(len(hits), len(window))
            passed &= ok
            parts.append(measured)
        if self.retry_after:
            with_header = sum(1 for r in hits if r.retry_after)
            passed &= with_header == len(hits)
            parts.append(f"Retry-After on {with_header} of {len(hits)}")
        return Verdict(passed, "; ".join(parts), value)


class LatencyExpectation(_Windowed):
    """A latency percentile (`p50` or `p99`) in a window, of every answer or of a status."""

    kind: ClassVar[str] = "latency"
    rules: ClassVar[tuple[_Rule, ...]] = (
        _NEEDS_WINDOW, _NO_SERVICE, _REASON_NEEDS_STATUS, _NO_STATS, _NO_WHILE,
        (_any("count", "rate"), "give a latency bound (p50/p99) or a count/rate, not both"),
        (lambda g: {"p50", "p99"} <= g,
         "give one percentile per expectation: 'p50' or 'p99' (write two expectations "
         "for both)"),
        (_any("retry_after"), "'retry_after' goes with a 'status' expectation, not a latency"),
    )

    status: StatusSelector | None = None
    reason: str | None = Field(None, pattern=r"^[a-z0-9_]+$")
    p50: LatencyBound | None = None
    p99: LatencyBound | None = None

    def percentile(self) -> tuple[int, Bound]:
        """(50 | 99, its bound): exactly one is given (the rules refuse both)."""
        if self.p50 is not None:
            return 50, self.p50
        assert self.p99 is not None  # the discriminator chose this kind for one of them
        return 99, self.p99

    def value_bound(self) -> Bound | None:
        return self.percentile()[1]

    @property
    def text(self) -> str:
        q, bound = self.percentile()
        status = f"{self.status} ({self.reason})" if self.reason else self.status
        of = f" of {status}" if self.status else ""
        return f"{self.where} p{q} latency{of} {bound}"

    def check(self, observed: Observed) -> Verdict:
        window = _with_reason(observed.answers(self.window), self.reason)
        if self.status is not None:
            window = [r for r in window if matches(self.status, r.status, r.cls)]
        q, bound = self.percentile()
        value = percentile([r.latency_ms for r in window], q)
        if value is None:
            return Verdict(False, "no requests in the window", None)
        return Verdict(bound.holds(value), f"p{q} {value:.0f} ms over {len(window)}", value)


#: Whose /health or /metrics: checkout (default), router, proxy, payments.
Service = Literal["checkout", "router", "proxy", "payments"]


class HealthExpectation(_Amount):
    """A share or count of a service's /health samples in a window that answered a status."""

    kind: ClassVar[str] = "health"
    rules: ClassVar[tuple[_Rule, ...]] = (
        _NEEDS_WINDOW, _NO_REASON, _NO_STATS, _NO_WHILE,
        (_any("status", "p50", "p99", "retry_after"),
         "a 'health' expectation takes only 'count' or 'rate'"),
        (_none("count", "rate"), "a 'health' expectation needs 'count' or 'rate'"),
    )

    health: HealthSelector
    service: Service | None = None

    @property
    def text(self) -> str:
        return f"{self.where} {_whose(self.service)}/health answered {self.health} " \
               f"{self.amount_text()}"

    def check(self, observed: Observed) -> Verdict:
        samples = observed.samples_in(self.window, self.service or "checkout")
        if not samples:
            return Verdict(False, "no /health samples in the window", None)
        hits = sum(1 for s in samples if health_matches(self.health, s.health))
        passed, measured, value = self.amount(hits, len(samples))
        return Verdict(passed, f"{measured} samples", value)


class MetricExpectation(_Windowed):
    """The `max` or `min` of a sampled metric in a window, or how much a counter rose
    (`increase`), optionally only while a checkout condition held (`while`)."""

    kind: ClassVar[str] = "metric"
    rules: ClassVar[tuple[_Rule, ...]] = (
        _NEEDS_WINDOW, _NO_REASON,
        (_any("status", "health", "count", "rate", "p50", "p99", "retry_after"),
         "a 'metric' expectation takes only 'max', 'min' or 'increase'"),
        (lambda g: len(g & {"max", "min", "increase"}) != 1,
         "a 'metric' expectation needs exactly one of 'max', 'min' or 'increase'"),
        (lambda g: not g.isdisjoint({"while", "while_"}) and "increase" not in g,
         "'while' goes with 'increase'"),
        (lambda g: "episodes" in g and g.isdisjoint({"while", "while_"}),
         "'episodes' goes with 'while'"),
    )

    metric: str = Field(pattern=_METRIC_NAME)
    service: Service | None = None
    max: NumberBound | None = None
    min: NumberBound | None = None
    #: How much a counter rose: from the last sample before the window to the last in it.
    increase: NumberBound | None = None
    #: Count only seconds when a checkout metric met this, e.g. 'checkout_breaker_open >= 1'.
    while_: MetricCondition | None = Field(None, alias="while")
    #: A checkout counter that rises each time the `while` condition starts to hold (e.g.
    #: checkout_breaker_opened). Two samples a second apart cannot see the condition end
    #: and hold again between them; with this counter, intervals in which it rose are
    #: left out, so only time within one unbroken episode counts.
    episodes: str | None = Field(None, pattern=_METRIC_NAME)

    def metric_stat(self) -> tuple[str, Bound]:
        """('max' | 'min' | 'increase', its bound)."""
        for stat, bound in (("max", self.max), ("min", self.min), ("increase", self.increase)):
            if bound is not None:
                return stat, bound
        raise AssertionError("validated: exactly one of max, min, increase")

    def value_bound(self) -> Bound | None:
        return self.metric_stat()[1]

    @property
    def text(self) -> str:
        stat, limit = self.metric_stat()
        during = f" while {self.while_}" if self.while_ is not None else ""
        return f"{self.where} {stat} of {_whose(self.service)}{self.metric}{during} {limit}"

    def check(self, observed: Observed) -> Verdict:
        service = self.service or "checkout"
        if self.increase is not None:
            return self._increase(observed, self.increase, service)
        samples = observed.samples_in(self.window, service)
        values = [s.metrics[self.metric] for s in samples if self.metric in s.metrics]
        if not values:
            return Verdict(False, f"{self.metric} was never sampled in the window", None)
        stat, bound = self.metric_stat()
        value = max(values) if stat == "max" else min(values)
        return Verdict(bound.holds(value), f"{stat} {value:g} over {len(values)} samples", value)

    def _increase(self, observed: Observed, increase: Bound, service: str) -> Verdict:
        """How much a counter rose, per instance, summed over the service's instances.

        Each instance's rise is the sum of its consecutive sample-to-sample rises, and a
        fall is a restart (the counter began again from zero), as Prometheus' `increase`
        reads it: an instance that missed a sampling round, or one that started or
        stopped inside the window, cannot make the sum fall, so it is never negative.
        Without `while`: from each instance's last sample *before* the window (so a rise
        right at the window's start, such as a recompute at injection, counts) to its last
        sample in it. With `while`: only between consecutive rounds in the window in which
        the condition held on a checkout instance — and, with `episodes`, in which that
        episode counter did not rise (the condition did not end and start again between
        the two samples).
        """
        target = [s for s in observed.samples_of(service) if self.metric in s.metrics]
        start_t, end_t = observed.window_range(self.window)
        series = _by_instance(target, self.metric)
        inside_rounds = sorted({s.round for s in target if start_t <= s.t < end_t})
        cond = self.while_
        if cond is None:
            if not inside_rounds:
                return Verdict(False, f"{self.metric} was never sampled in the window", None)
            value, spans = 0.0, []
            for points in series.values():
                span = [p for p in points if p[1] < end_t]
                before = [p for p in span if p[1] < start_t]
                inside = [p for p in span if p[1] >= start_t]
                if inside:
                    judged = [*before[-1:], *inside]
                    value += _rise(judged)
                    spans.append((judged[0][2], judged[-1][2]))
            n = len(inside_rounds)
            samples = f"{n} sample{'s' if n != 1 else ''}"
            where = (f"{spans[0][0]:g} → {spans[0][1]:g}; {samples}" if len(spans) == 1
                     else f"over {len(spans)} instances; {samples}")
            return Verdict(increase.holds(value), f"increase {value:g} ({where})", value)
        if len(inside_rounds) < 2:
            return Verdict(False, f"{self.metric} was sampled fewer than twice in the window",
                           None)
        checkout = observed.samples_of("checkout")
        held = {s.round for s in checkout
                if cond.metric in s.metrics and cond.bound.holds(s.metrics[cond.metric])}
        episode = _per_round(checkout, self.episodes) if self.episodes else {}
        when = {s.round: s.t for s in target}
        at = {(inst, r): v for inst, points in series.items() for r, _, v in points}
        value, seconds, broken = 0.0, 0.0, 0
        for a, b in itertools.pairwise(inside_rounds):
            if a not in held or b not in held:
                continue
            if self.episodes and (a not in episode or b not in episode
                                  or episode[b] != episode[a]):
                broken += 1
                continue
            for inst in series:
                if (inst, a) in at and (inst, b) in at:
                    value += _rise([(a, 0.0, at[inst, a]), (b, 0.0, at[inst, b])])
            seconds += when[b] - when[a]
        left_out = (f" ({broken} interval{'s' if broken != 1 else ''} left out: "
                    f"{self.episodes} rose or was not sampled)") if broken else ""
        if seconds == 0:
            return Verdict(False, f"{cond} never held for two samples in a row{left_out}", None)
        return Verdict(increase.holds(value),
                       f"rose by {value:g} during {seconds:.0f} s while {cond}{left_out}", value)


class LedgerExpectation(Expectation):
    """A figure of the run's payment ledger, counted over the whole run (no window)."""

    kind: ClassVar[str] = "ledger"
    rules: ClassVar[tuple[_Rule, ...]] = (
        (_any("window"), "a 'ledger' figure is counted over the whole run: no 'window'"),
        (lambda g: bool(g - {"ledger", "count", "note"}) or "count" not in g,
         "a 'ledger' expectation takes only 'count'"),
    )

    ledger: Literal[LEDGER_FIGURES]  # type: ignore[valid-type]
    count: CountBound

    def value_bound(self) -> Bound | None:
        return self.count

    @property
    def text(self) -> str:
        return f"[run] ledger {self.ledger} {self.count}"

    def check(self, observed: Observed) -> Verdict:
        ledger = observed.ledger or {}
        if self.ledger not in ledger:
            return Verdict(False, "no payment ledger was recorded for this run", None)
        value = ledger[self.ledger]
        return Verdict(self.count.holds(value), f"{value}", float(value))


def _whose(service: str | None) -> str:
    return f"{service} " if service and service != "checkout" else ""


def _with_reason(records: Sequence[RequestRecord], reason: str | None) -> Sequence[RequestRecord]:
    return records if reason is None else [r for r in records if r.reason == reason]


_Point = tuple[int, float, float]  # (round, time, value)


def _by_instance(samples: Iterable[Sample], metric: str) -> dict[str, list[_Point]]:
    """(round, time, value) of a metric per instance, in time order."""
    out: dict[str, list[_Point]] = {}
    for s in sorted(samples, key=lambda s: s.t):
        if metric in s.metrics:
            out.setdefault(s.instance, []).append((s.round, s.t, s.metrics[metric]))
    return out


def _rise(points: Sequence[_Point]) -> float:
    """A counter's rise across consecutive samples of one instance; a fall is a restart
    from zero, so the new value is all rise."""
    total = 0.0
    for (_, _, a), (_, _, b) in itertools.pairwise(points):
        total += b - a if b >= a else b
    return total


def _per_round(samples: Iterable[Sample], metric: str) -> dict[int, float]:
    """A metric summed over the instances sampled in each round."""
    out: dict[int, float] = {}
    for s in samples:
        if metric in s.metrics:
            out[s.round] = out.get(s.round, 0.0) + s.metrics[metric]
    return out


# ---------------------------------------------------------------- the union

KINDS: tuple[type[Expectation], ...] = (LedgerExpectation, MetricExpectation, HealthExpectation,
                                        LatencyExpectation, StatusExpectation)


@functools.cache
def _key_type(key: str) -> TypeAdapter[Any]:
    """How the first kind that takes `key` parses its value."""
    for kind in KINDS:
        for name, f in kind.model_fields.items():
            if key in (name, f.alias):
                form: Any = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
                return TypeAdapter(form)
    raise KeyError(key)


def _kind_of(data: Any) -> str | None:
    """The kind an expectation's keys name, first match in this order: ledger, metric,
    health, p50/p99, else status (which says what is missing when nothing is named)."""
    if isinstance(data, Expectation):
        return data.kind
    if not isinstance(data, dict):
        return None

    def given(key: str) -> bool:
        return data.get(key) is not None

    if given("ledger"):
        return "ledger"
    if given("metric"):
        return "metric"
    if given("health"):
        return "health"
    if given("p50") or given("p99"):
        return "latency"
    return "status"


AnyExpectation = Annotated[
    Annotated[LedgerExpectation, Tag("ledger")]
    | Annotated[MetricExpectation, Tag("metric")]
    | Annotated[HealthExpectation, Tag("health")]
    | Annotated[LatencyExpectation, Tag("latency")]
    | Annotated[StatusExpectation, Tag("status")],
    Discriminator(_kind_of, custom_error_type="expectation_type",
                  custom_error_message="Input should be a valid dictionary or instance of "
                                       "Expectation"),
]
_ANY_EXPECTATION: TypeAdapter[Expectation] = TypeAdapter(AnyExpectation)
