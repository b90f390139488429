"""Typed models for scenario files, and the loader that validates them.

A scenario file is the lab's main interface, so every mistake in one must come back as
a sentence naming the file, the field path and what was expected — before anything
starts. Pydantic does the structural work; the small value types here (durations,
bounds, windows, status selectors) parse the compact strings people write in YAML.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lab.errors import ScenarioError
from lab.faults.registry import params_problems, stack_problems
from lab.load.arrivals import DEFAULT_MAX_IN_FLIGHT
from lab.physics import SLOW_PATHS, PhysicsSpec
from lab.services.checkout.switches import SWITCHES, ConfigError, read_switches, unknown_variable
from lab.units import RATE_EXAMPLES, ByteSize, Duration, format_size, parse_rate

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

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
            return Bound(op, number, "%")
        if kind == "latency":
            if unit == "s":
                number *= 1000
            elif unit == "%":
                raise ValueError(f"a latency takes 'ms' or 's', got {value!r}")
            return Bound(op, number, "ms")
        if unit:
            raise ValueError(f"a {kind} takes no unit, got {value!r}; expected {examples}")
        return Bound(op, number, "")

    return BeforeValidator(parse)


CountBound = Annotated[Bound, _bound_parser("count")]
RateBound = Annotated[Bound, _bound_parser("rate")]
LatencyBound = Annotated[Bound, _bound_parser("latency")]
NumberBound = Annotated[Bound, _bound_parser("number")]

# Response classes a request log entry can fall in (see lab.load.classify).
STATUS_CLASSES = ("2xx", "4xx", "5xx", "server_errors", "other_5xx", "lying_200", "fallback",
                  "timeout", "error")
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

# Figures of a run's payment ledger (lab.ledger), for `ledger:` expectations.
LEDGER_FIGURES = ("charges", "double_charges", "duplicate_attempts", "charged_without_order",
                  "unmatched_charges", "confirmed_orders", "pending_orders",
                  "pending_unaccounted", "fallback_responses", "double_charged_refs",
                  "confirmed_without_charge", "pending_not_queued", "queued_not_pending",
                  "queued_without_order", "duplicate_order_refs")


def window_offset(window: str) -> tuple[str, float]:
    """'after+5s' → ('after', 5.0)."""
    m = _WINDOW_RE.fullmatch(window)
    assert m is not None  # validated at load time
    return m.group(1), float(m.group(2) or 0)


def _env_value(value: Any) -> str:
    """Config values in YAML may be numbers or booleans; the service reads strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError("expected a string, number or boolean")


EnvValue = Annotated[str, BeforeValidator(_env_value)]
_ENV_KEY = r"^[A-Z][A-Z0-9_]*$"

# ---------------------------------------------------------------- models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedSpec(_Strict):
    """How much data the stack seeds; the seq scan's cost grows with it."""

    carts: int = Field(30000, ge=1, le=5_000_000)
    items_per_cart: int = Field(10, ge=1, le=100)


class RouterSpec(_Strict):
    """The router's active health checks, with HAProxy's meaning: check `health_path`
    every `inter`; out of rotation after `fall` failures in a row, back after `rise` passes."""

    health_path: str = Field("/health", pattern=r"^/[^\s]*$")
    inter: Duration = 0.5
    fall: int = Field(2, ge=1, le=100)
    rise: int = Field(2, ge=1, le=100)

    @field_validator("inter")
    @classmethod
    def _sane_inter(cls, v: float) -> float:
        if not 0.01 <= v <= 60:
            raise ValueError("expected an interval between 10ms and 60s")
        return v


DATA_VOLUME_MIN = 1 << 20
DATA_VOLUME_MAX = 1 << 30


class DataVolumeSpec(_Strict):
    """A size-limited filesystem for each checkout instance's DATA_DIR (receipts, its log)."""

    size: ByteSize

    @field_validator("size")
    @classmethod
    def _sensible(cls, v: int) -> int:
        if not DATA_VOLUME_MIN <= v <= DATA_VOLUME_MAX:
            raise ValueError(
                f"expected a size from {format_size(DATA_VOLUME_MIN)} to "
                f"{format_size(DATA_VOLUME_MAX)}, e.g. '8MiB'; got {v} bytes"
            )
        return v


class StackSpec(_Strict):
    instances: int = Field(1, ge=1, le=4, description="checkout instances behind the router")
    config: dict[Annotated[str, Field(pattern=_ENV_KEY)], EnvValue] = Field(default_factory=dict)
    seed: SeedSpec = Field(default_factory=SeedSpec)
    router: RouterSpec = Field(default_factory=RouterSpec)
    data_volume: DataVolumeSpec | None = None


REQUEST_KINDS = ("checkout", "health", "catalog")


class Endpoint(_Strict):
    """One kind of request the simulated users send, and how often relative to the others."""

    request: Literal["checkout", "health", "catalog"]
    weight: int = Field(1, ge=1, le=1000)


CALIBRATED = "calibrated"


def _rate_or_calibrated(value: Any) -> float | str:
    if value == CALIBRATED:
        return CALIBRATED
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; or 'calibrated' (sized on this machine from the "
                         "scenario's physics)") from None


LoadRate = Annotated[float | str, BeforeValidator(_rate_or_calibrated)]


class LoadSpec(_Strict):
    """How the load arrives: closed loop (`users` + `wait`: each user waits for its answer
    before its next request) or an open model (`rate`: arrivals on a schedule, whatever
    the service does, up to `max_in_flight`; see lab.load.arrivals). Exactly one of
    `users` or `rate`."""

    users: int | None = Field(None, ge=1, le=1000, description="closed loop: Locust users")
    spawn_rate: float | None = Field(None, ge=0.1, le=1000, description="users started per second")
    rate: LoadRate | None = Field(
        None, description=f"open model: arrivals per second ({RATE_EXAMPLES}), or "
        "'calibrated': sized before the load from the scenario's `physics`")
    arrivals: Literal["poisson", "even"] = Field(
        "poisson", description="open model: Poisson (seeded by the scenario's seed) or even")
    max_in_flight: int = Field(
        DEFAULT_MAX_IN_FLIGHT, ge=1, le=10000,
        description="open model: the cap on requests in flight; an arrival beyond it is dropped")
    duration: Duration = Field(description="load window length")
    client_timeout: Duration = 5.0
    wait: Duration = Field(0.0, description="think time between a user's requests")
    endpoints: list[Endpoint] = Field(min_length=1)

    @property
    def open_model(self) -> bool:
        return self.rate is not None

    @property
    def calibrated(self) -> bool:
        """The rate (and the in-flight cap) come from lab.calibrate, before the load."""
        return self.rate == CALIBRATED

    @property
    def rate_per_s(self) -> float:
        """The open model's arrivals per second (after calibration, when calibrated)."""
        assert isinstance(self.rate, float), f"no numeric arrival rate: {self.rate!r}"
        return self.rate

    def sized(self, rate_per_s: float, max_in_flight: int) -> LoadSpec:
        """This load with a calibrated rate and cap filled in."""
        return self.model_copy(update={"rate": float(rate_per_s), "max_in_flight": max_in_flight})

    @model_validator(mode="after")
    def _one_model(self) -> LoadSpec:
        given = self.model_fields_set
        if self.users is not None and self.rate is not None:
            raise ValueError(
                "give either 'users' (closed loop: each user waits for its answer) or 'rate' "
                "(open model: arrivals per second, whatever the service does), not both")
        if self.users is None and self.rate is None:
            raise ValueError(
                "expected 'users' (closed loop, with 'spawn_rate') or 'rate' (open model, "
                "e.g. 'rate: 200/s')")
        if self.users is not None:
            if self.spawn_rate is None:
                raise ValueError("'spawn_rate' is required with 'users' (users started per "
                                 "second)")
            for name in ("arrivals", "max_in_flight"):
                if name in given:
                    raise ValueError(f"'{name}' belongs to the open model ('rate'); closed-loop "
                                     "'users' take 'spawn_rate' and 'wait'")
        else:
            for name, why in (("spawn_rate", "there are no users to start"),
                              ("wait", "arrivals do not wait for earlier answers")):
                if name in given:
                    raise ValueError(f"'{name}' belongs to closed-loop 'users'; with 'rate' "
                                     f"{why}")
        return self

    @field_validator("duration")
    @classmethod
    def _positive_duration(cls, v: float) -> float:
        if v < 5:
            raise ValueError("expected at least 5s of load")
        return v

    @field_validator("client_timeout")
    @classmethod
    def _positive_timeout(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("expected a positive client timeout, e.g. '5s'")
        return v


class FaultSpec(_Strict):
    kind: str
    at: Duration
    until: Duration
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> FaultSpec:
        if self.until <= self.at:
            raise ValueError(f"'until' ({self.until:g}s) must be after 'at' ({self.at:g}s)")
        return self


class Expectation(_Strict):
    """One claim about the run, checked against what was measured.

    Exactly one subject: a status/class share or count, a latency percentile, /health
    samples, a sampled metric, or a figure of the run's payment ledger.

    A status expectation with an upper bound above zero (`rate: "<= 40%"`, `count: "< 50"`)
    is also an *allowance*: in its window, the requests it selects are judged by it and
    left out of the mitigation's built-in honest line (see lab.expect.honest_verdict).
    A lying 200 is never allowed that way. A status expectation naming `4xx` or a 4xx code
    makes those answers honest for the honest line.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    window: WindowName | None = None
    status: StatusSelector | None = None
    #: Only responses whose problem+json `reason` is this (e.g. breaker_open).
    reason: str | None = Field(None, pattern=r"^[a-z0-9_]+$")
    count: CountBound | None = None
    rate: RateBound | None = None
    retry_after: bool = False
    p50: LatencyBound | None = None
    p99: LatencyBound | None = None
    health: StatusSelector | None = None
    metric: str | None = Field(None, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    #: Whose /health or /metrics: checkout (default), router, proxy, payments.
    service: Literal["checkout", "router", "proxy", "payments"] | None = None
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
    episodes: str | None = Field(None, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    ledger: Literal[LEDGER_FIGURES] | None = None  # type: ignore[valid-type]
    note: str | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> Expectation:
        latency = self.p50 is not None or self.p99 is not None
        amount = self.count is not None or self.rate is not None
        if self.count is not None and self.rate is not None:
            raise ValueError("give either 'count' or 'rate', not both")
        stats = [b for b in (self.max, self.min, self.increase) if b is not None]
        if self.ledger is not None:
            if self.window is not None:
                raise ValueError("a 'ledger' figure is counted over the whole run: no 'window'")
            if (self.status or self.health or self.metric or self.rate or latency or stats
                    or self.retry_after or self.count is None):
                raise ValueError("a 'ledger' expectation takes only 'count'")
            return self
        if self.window is None:
            raise ValueError("required field 'window' is missing")
        if self.service is not None and self.metric is None and self.health is None:
            raise ValueError("'service' goes with 'metric' or 'health'")
        if self.reason is not None and (self.metric or self.health or self.status is None):
            raise ValueError("'reason' narrows a 'status' expectation")
        if self.metric is not None:
            if self.status or self.health or amount or latency or self.retry_after:
                raise ValueError("a 'metric' expectation takes only 'max', 'min' or 'increase'")
            if len(stats) != 1:
                raise ValueError(
                    "a 'metric' expectation needs exactly one of 'max', 'min' or 'increase'")
            if self.while_ is not None and self.increase is None:
                raise ValueError("'while' goes with 'increase'")
            if self.episodes is not None and self.while_ is None:
                raise ValueError("'episodes' goes with 'while'")
            return self
        if stats:
            raise ValueError("'max'/'min'/'increase' go with 'metric'")
        if self.while_ is not None or self.episodes is not None:
            raise ValueError("'while' and 'episodes' go with 'metric' and 'increase'")
        if self.health is not None:
            if self.status or latency or self.retry_after:
                raise ValueError("a 'health' expectation takes only 'count' or 'rate'")
            if not amount:
                raise ValueError("a 'health' expectation needs 'count' or 'rate'")
            return self
        if latency:
            if amount:
                raise ValueError("give a latency bound (p50/p99) or a count/rate, not both")
            return self
        if self.status is None:
            raise ValueError(
                "expected one of: 'status' with 'count'/'rate'/'retry_after', "
                "'p50'/'p99', 'health' with 'count'/'rate', or 'metric' with 'max'/'min'"
            )
        if not amount and not self.retry_after:
            raise ValueError("a 'status' expectation needs 'count', 'rate' or 'retry_after: true'")
        return self

    @property
    def text(self) -> str:
        """The expectation as a sentence, for tables and results."""
        if self.ledger is not None:
            return f"[run] ledger {self.ledger} {self.count}"
        where = f"[{self.window}]"
        whose = f"{self.service} " if self.service and self.service != "checkout" else ""
        if self.metric is not None:
            stat, limit = next((n, b) for n, b in (("max", self.max), ("min", self.min),
                                                     ("increase", self.increase))
                               if b is not None)
            during = f" while {self.while_}" if self.while_ is not None else ""
            return f"{where} {stat} of {whose}{self.metric}{during} {limit}"
        if self.health is not None:
            return f"{where} {whose}/health answered {self.health} {self._amount_text()}"
        status = f"{self.status} ({self.reason})" if self.reason else self.status
        if self.p50 is not None or self.p99 is not None:
            which = "p50" if self.p50 is not None else "p99"
            bound = self.p50 if self.p50 is not None else self.p99
            of = f" of {status}" if self.status else ""
            return f"{where} {which} latency{of} {bound}"
        parts = []
        if self.count is not None or self.rate is not None:
            parts.append(f"{status} {self._amount_text()}")
        if self.retry_after:
            parts.append(f"every {self.status} carries Retry-After")
        return f"{where} " + "; ".join(parts)

    def metric_stat(self) -> tuple[str, Bound]:
        """('max' | 'min' | 'increase', its bound) of a metric expectation."""
        for stat, bound in (("max", self.max), ("min", self.min), ("increase", self.increase)):
            if bound is not None:
                return stat, bound
        raise ValueError("not a metric expectation")

    def _amount_text(self) -> str:
        if self.count is not None:
            return f"count {self.count}"
        return f"share {self.rate}"


class Variant(_Strict):
    """One way to run the scenario: the incident (`baseline`) or a mitigation.

    A mitigation is also judged by a built-in line: every answer from the fault's start
    to the end of the load is honest (2xx, 503 with Retry-After, an expected 4xx, or left
    to an allowance — see Expectation). A variant that exists to show a problem (a control,
    an anti-pattern) sets `shows_problem` and is judged by its own expectations only, as
    the baseline always is.
    """

    description: str = ""
    #: A control or an anti-pattern, not a mitigation: no built-in honest line.
    shows_problem: bool = False
    config: dict[Annotated[str, Field(pattern=_ENV_KEY)], EnvValue] = Field(default_factory=dict)
    router: RouterSpec | None = Field(None, description="replaces stack.router for this variant")
    fault: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the fault's params for this variant"
    )
    expect: list[Expectation] = Field(min_length=1)


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    seed: int = Field(1, description="seeds every random choice, so a run can be repeated")
    stack: StackSpec = Field(default_factory=StackSpec)
    #: What the incident needs in its own terms; the load is sized from it (lab.physics).
    physics: PhysicsSpec | None = None
    load: LoadSpec
    fault: FaultSpec
    variants: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")], Variant]

    @model_validator(mode="after")
    def _coherent(self) -> Scenario:
        if "baseline" not in self.variants:
            raise ValueError(
                "expected a 'baseline' variant: the incident as it happened, which must "
                "reproduce the 500s before any mitigation means anything"
            )
        if self.load.calibrated and self.physics is None:
            raise ValueError("load.rate is 'calibrated' but the scenario has no 'physics' "
                             "section to size it from")
        if self.physics is not None:
            if not self.load.calibrated:
                raise ValueError("a scenario with 'physics' sizes its load from it: set "
                                 "load.rate to 'calibrated'")
            endpoint = SLOW_PATHS[self.physics.slow_path].endpoint
            if endpoint not in {e.request for e in self.load.endpoints}:
                raise ValueError(f"physics.slow_path {self.physics.slow_path!r} runs on "
                                 f"'{endpoint}' requests, which load.endpoints never sends")
            if "max_in_flight" in self.load.model_fields_set and self.physics.longest_wait:
                raise ValueError("give either load.max_in_flight or physics.longest_wait "
                                 "(which sizes the cap), not both")
        if self.fault.until >= self.load.duration:
            raise ValueError(
                f"fault.until ({self.fault.until:g}s) must be before the end of the load "
                f"({self.load.duration:g}s), or the 'after' window is empty"
            )
        return self

    def variant_env(self, variant: str) -> dict[str, str]:
        """The checkout environment of one variant: the stack's config, then its overrides."""
        return {**self.stack.config, **self.variants[variant].config}

    def variant_router(self, variant: str) -> RouterSpec:
        return self.variants[variant].router or self.stack.router

    def variant_fault_params(self, variant: str) -> dict[str, Any]:
        return {**self.fault.params, **self.variants[variant].fault}

    def with_data_scale(self, scale: float) -> Scenario:
        """This scenario with its data set scaled (carts × scale, at least 1): how the lab
        stands in for a machine that runs the slow path faster."""
        carts = max(1, round(self.stack.seed.carts * scale))
        seed = self.stack.seed.model_copy(update={"carts": carts})
        return self.model_copy(update={"stack": self.stack.model_copy(update={"seed": seed})})


# ---------------------------------------------------------------- loading


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _describe(error: Any) -> str:
    """One pydantic error → 'field.path: what was expected'."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    msg: str = error["msg"]
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; see README 'Writing a scenario')"
    elif error["type"] == "missing":
        msg = "required field is missing"
    elif error["type"] == "literal_error":
        msg = f"expected {msg.removeprefix('Input should be ')}, got {error.get('input')!r}"
    return f"{_location(loc)}: {msg}"


def parse_scenario(data: Any, source: str) -> Scenario:
    """Validate already-parsed YAML data; `source` names the file in errors."""
    if not isinstance(data, dict):
        raise ScenarioError(source, ["(top level): expected a mapping of scenario fields"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, [_describe(e) for e in exc.errors()]) from None


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping: PyYAML silently keeps the
    last, so a variant with `DB_POOL_MAX` twice would run with whichever came second."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it itself
                continue
            if first is not None:
                raise _DuplicateKey(None, None, f"duplicate key {key!r} (first at line "
                                    f"{first + 1}); YAML would keep only the last",
                                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_scenario_file(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except _DuplicateKey as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ScenarioError(str(path), [f"{where}{exc.problem}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(str(path), [f"{where}not valid YAML ({problem})"]) from None
    scenario = parse_scenario(data, str(path))
    problems = []
    if scenario.name != path.stem:
        problems.append(f"name: expected {path.stem!r} (the file's name), got {scenario.name!r}")
    problems += params_problems(scenario.fault.kind, scenario.fault.params, "fault.params")
    problems += stack_problems(scenario.fault.kind, scenario.stack.data_volume is not None)
    problems += _data_dir_problems(scenario)
    problems += _switch_problems(scenario)
    if not problems:
        for name in scenario.variants:
            problems += params_problems(
                scenario.fault.kind, scenario.variant_fault_params(name), f"variants.{name}.fault"
            )
    if problems:
        raise ScenarioError(str(path), problems)
    return scenario


def _switch_problems(scenario: Scenario) -> list[str]:
    """Every checkout switch a scenario sets must be one the service reads, with a value it
    accepts, judged by the service's own table: a misspelt mitigation would otherwise run
    as the baseline, and a bad value would surface only after Postgres had started."""
    configs = [("stack.config", scenario.stack.config)] + [
        (f"variants.{name}.config", v.config) for name, v in scenario.variants.items()
    ]
    problems = []
    for where, config in configs:
        for var, value in config.items():
            switch = SWITCHES.get(var)
            if switch is None:
                problems.append(f"{where}.{var}: {unknown_variable(var)}")
            elif switch.set_by_lab is not None:
                problems.append(f"{where}.{var}: not a switch ({switch.set_by_lab}); remove it")
            else:
                try:
                    switch.read({var: value}, on_host=False)
                except ConfigError as exc:
                    problems.append(f"{where}.{var}: {exc.detail}")
    if problems:
        return problems
    from_stack: dict[str, list[str]] = {}  # one line per stack-level problem, not per variant
    for name, variant in scenario.variants.items():  # the rules between switches
        try:
            read_switches(scenario.variant_env(name), on_host=False, user_only=True)
        except ConfigError as exc:
            if exc.var in variant.config:
                problems.append(f"variants.{name}.config.{exc.var}: {exc.detail}")
            else:
                from_stack.setdefault(f"stack.config.{exc.var}: {exc.detail}", []).append(name)
    problems += [f"{line} (in variant{'s' if len(names) > 1 else ''} {', '.join(names)})"
                 for line, names in from_stack.items()]
    return problems


def _data_dir_problems(scenario: Scenario) -> list[str]:
    """With a data volume the lab sets DATA_DIR itself; a config that also sets it is a
    mistake that would write outside the size-limited filesystem."""
    if scenario.stack.data_volume is None:
        return []
    configs = [("stack.config", scenario.stack.config)] + [
        (f"variants.{name}.config", v.config) for name, v in scenario.variants.items()
    ]
    return [
        f"{where}.DATA_DIR: set by stack.data_volume (the lab mounts the volume and points "
        "DATA_DIR at it); remove it"
        for where, config in configs
        if "DATA_DIR" in config
    ]


def scenario_paths(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def find_scenario(name_or_path: str, directory: Path = SCENARIO_DIR) -> Path:
    """A scenario by name (in scenarios/) or by path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.exists():
            raise ScenarioError(name_or_path, ["no such file"])
        return candidate
    path = directory / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in scenario_paths(directory)) or "none"
        raise ScenarioError(str(path), [f"no scenario named {name_or_path!r} (known: {known})"])
    return path
