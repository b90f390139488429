"""Typed models for scenario files (stack, load, fault, variants); lab.scenario.loader
reads a file into them.

A scenario file is the lab's main interface, so every mistake in one must come back as
a sentence naming the file, the field path and what was expected — before anything
starts. Pydantic does the structural work; the small value types (durations and sizes
in lab.scenario.units; bounds, windows and status selectors in
lab.scenario.expectations) parse the compact strings people write in YAML. What a
variant expects is lab.scenario.expectations' (one model per kind of claim);
`Expectation`, `Bound`, `LEDGER_FIGURES` and `window_offset` are re-exported here.
The optional `drill:` section is what `lab drill` needs to grade a participant: the
incident class to name, and hints from vague to specific.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from lab.errors import UnknownVariant, shown_path
from lab.load.arrivals import DEFAULT_MAX_IN_FLIGHT
from lab.scenario.expectations import LEDGER_FIGURES as LEDGER_FIGURES
from lab.scenario.expectations import AnyExpectation, LatencyExpectation
from lab.scenario.expectations import Bound as Bound
from lab.scenario.expectations import Expectation as Expectation
from lab.scenario.expectations import window_offset as window_offset
from lab.scenario.physics import PhysicsSpec, slow_path_of
from lab.scenario.units import (
    RATE_EXAMPLES,
    RATE_SCHEMA,
    ByteSize,
    Duration,
    format_size,
    parse_rate,
)

# ---------------------------------------------------------------- small value types


def _env_value(value: Any) -> str:
    """Config values in YAML may be numbers or booleans; the service reads strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError("expected a string, number or boolean")


EnvValue = Annotated[str, BeforeValidator(_env_value),
                     WithJsonSchema({"type": ["string", "number", "boolean"]})]
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


EnvKey = Annotated[str, Field(pattern=_ENV_KEY)]
_PATH = r"^/[^\s]*$"
_COMPOSE_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
#: In a command, the interpreter the lab runs under (its virtualenv's python).
PYTHON_PLACEHOLDER = "{python}"


class ProcessSpec(_Strict):
    """A process the lab starts for the user's stack: its command (run from the scenario
    file's folder; `{python}` is the lab's own interpreter), the variable it takes its port
    from, and the path that answers 200 once it is up."""

    command: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description="argv; relative paths are from the scenario file's folder")
    port_env: EnvKey = Field(description="the variable the lab sets to the port it gives")
    health: str = Field("/health", pattern=_PATH, description="answers 200 once it is up")
    env: dict[EnvKey, EnvValue] = Field(default_factory=dict)
    ready_timeout: Duration = 30.0
    host_env: EnvKey | None = Field(
        None, description="a variable the lab sets to the address to listen on (127.0.0.1 "
        "as a local process, 0.0.0.0 in a container on the lab's network)")
    compose_service: str | None = Field(
        None, pattern=_COMPOSE_NAME, description="on the docker backend: the service of "
        "`stack.compose.file` whose image, command and environment this runs")


class ErrorLogSpec(_Strict):
    """How the user's service logs an unhandled error, one line each on stderr: a regular
    expression with a named group `exception` (and optionally `frame`, where it happened,
    and `message`), so a run's 500s are grouped by signature as the sample's are."""

    pattern: str = Field(min_length=1, description="e.g. 'unhandled (?P<exception>\\w+) "
                         "on (?P<frame>\\S+ \\S+): (?P<message>.*)'")

    @field_validator("pattern")
    @classmethod
    def _names_the_exception(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if "exception" not in compiled.groupindex:
            raise ValueError("expected a named group (?P<exception>…) for the error's type")
        unknown = set(compiled.groupindex) - {"exception", "frame", "message"}
        if unknown:
            raise ValueError(f"unknown group(s) {', '.join(sorted(unknown))}: the groups are "
                             "exception, frame and message")
        return v


class ServiceSpec(ProcessSpec):
    """The user's service under test, in place of the sample shop (`stack.instances` of it
    behind the lab's router)."""

    instance_env: EnvKey | None = Field(
        None, description="a variable the lab sets to each instance's name")
    error_log: ErrorLogSpec | None = Field(
        None, description="how it logs an unhandled error on stderr (the report's "
        "`server log` line)")


class DatabaseSpec(_Strict):
    """A Postgres the lab starts for the user's service: a fresh server set up from the
    user's SQL files (schema, then seed), built once and cached like the sample's data set,
    its URL handed to the service in `url_env`."""

    url_env: EnvKey = "DATABASE_URL"
    sql: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="SQL files run in order, from the scenario's folder")


class DependencySpec(_Strict):
    """A service the user's service calls. The lab starts it (`command`) or reaches it at
    `url`, puts its fault proxy in front, and hands the service the proxy's URL in
    `url_env`."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    url_env: EnvKey
    command: list[Annotated[str, Field(min_length=1)]] | None = None
    port_env: EnvKey | None = None
    health: str = Field("/health", pattern=_PATH)
    env: dict[EnvKey, EnvValue] = Field(default_factory=dict)
    ready_timeout: Duration = 30.0
    url: str | None = Field(None, pattern=r"^http://[^\s/]+(:[0-9]+)?/?$")
    allow_remote: bool = Field(
        False, description="allow a `url` on another host than 127.0.0.1 (said explicitly)")
    host_env: EnvKey | None = Field(
        None, description="a variable the lab sets to the address to listen on")
    compose_service: str | None = Field(
        None, pattern=_COMPOSE_NAME,
        description="on the docker backend: the service of `stack.compose.file` it runs")

    @model_validator(mode="after")
    def _started_or_reached(self) -> DependencySpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either `command` (the lab starts it) or `url` (it runs "
                             "already), not both or neither")
        if self.command is not None and self.port_env is None:
            raise ValueError("`port_env` is needed with `command`: the variable the lab "
                             "sets to the port it gives the dependency")
        if self.url is not None and not self.allow_remote:
            host = self.url.removeprefix("http://").split("/")[0].rsplit(":", 1)[0]
            if host not in ("127.0.0.1", "localhost"):
                raise ValueError(f"url: {host} is not this machine; the lab only talks to "
                                 "127.0.0.1 unless you say `allow_remote: true`")
        return self


class ComposeSpec(_Strict):
    """The user's compose file, for the docker backend: the lab builds and reads it with
    the machine's own Compose (never writes it) and runs the services the scenario names
    from it (`compose_service`) on a network of its own, with its own database and fault
    proxies wired in."""

    file: str = Field(min_length=1, description="from the scenario file's folder")


class StackSpec(_Strict):
    instances: int = Field(1, ge=1, le=4, description="service instances behind the router")
    config: dict[EnvKey, EnvValue] = Field(default_factory=dict)
    seed: SeedSpec = Field(default_factory=SeedSpec)
    router: RouterSpec = Field(default_factory=RouterSpec)
    data_volume: DataVolumeSpec | None = None
    service: ServiceSpec | None = Field(
        None, description="the user's own service (absent: the sample shop)")
    database: DatabaseSpec | None = None
    dependencies: list[DependencySpec] = Field(default_factory=list)
    compose: ComposeSpec | None = None

    @model_validator(mode="after")
    def _own_parts_need_own_service(self) -> StackSpec:
        if self.service is None and (self.database is not None or self.dependencies
                                     or self.compose is not None):
            raise ValueError("`database`, `dependencies` and `compose` describe the user's "
                             "own service: declare it in `service` too")
        if self.service is not None and self.data_volume is not None:
            raise ValueError("data_volume: not yet available for your own service")
        names = [d.name for d in self.dependencies]
        if len(names) != len(set(names)):
            raise ValueError("dependencies: each needs its own name")
        return self


class RequestSpec(_Strict):
    """A request of the user's own (`request:` as a mapping): method, path, JSON body and
    headers. In the body and headers `{uuid}` becomes a fresh id per request (an idempotency
    key), and a string `{int:A:B}` a random integer from A to B. What a real success carries
    (`requires`) makes a 2xx without it a failure, as the sample's contracts do."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=_PATH)
    json_body: Any = Field(None, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)
    requires: list[str] = Field(default_factory=list,
                                description="JSON members a real 2xx carries, not null")
    expects_json: bool = Field(True, description="a real 2xx is a JSON object")
    lies_when: dict[str, list[str | int | bool]] = Field(
        default_factory=dict, description="a 2xx whose JSON member has one of these values "
        "admits the operation failed: a lying 200 (e.g. {status: [failed]})")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Endpoint(_Strict):
    """One kind of request the simulated users send, and how often relative to the others:
    one of the sample shop's by name, or the user's own."""

    request: Annotated[
        Annotated[Literal["checkout", "health", "catalog"], Tag("sample")]
        | Annotated[RequestSpec, Tag("own")],
        Discriminator(lambda v: "own" if isinstance(v, dict | RequestSpec) else "sample"),
    ]
    weight: int = Field(1, ge=1, le=1000)

    @property
    def name(self) -> str:
        return self.request if isinstance(self.request, str) else self.request.name


CALIBRATED = "calibrated"


def _rate_or_calibrated(value: Any) -> float | str:
    if value == CALIBRATED:
        return CALIBRATED
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; or 'calibrated' (sized on this machine from the "
                         "scenario's physics)") from None


LoadRate = Annotated[float | str, BeforeValidator(_rate_or_calibrated), WithJsonSchema({
    "anyOf": [RATE_SCHEMA, {"const": CALIBRATED, "description": "sized on this machine from "
                                                                 "the scenario's physics"}]})]


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
    workers: int | Literal["auto"] = Field(
        "auto", description="load-generator processes: a number, or 'auto' (as many as "
        "the rate needs, lab.load.ceiling); more than one runs Locust's master and workers")

    remote_workers: int = Field(
        0, ge=0, le=256, description="workers that join from other machines (`lab worker "
        "--master HOST:PORT`); usually given on the command line: lab run --remote-workers N")
    master: str | None = Field(
        None, pattern=r"^[A-Za-z0-9.:\[\]-]+:[0-9]{1,5}$",
        description="HOST:PORT the Locust master listens on for remote workers (default "
        "127.0.0.1 and a free port); usually lab run --master")

    @property
    def master_address(self) -> tuple[str, int | None]:
        if self.master is None:
            return "127.0.0.1", None
        host, _, port = self.master.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("workers")
    @classmethod
    def _sane_workers(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 64:
            raise ValueError("expected 'auto' or a number of workers from 1 to 64")
        return v

    @property
    def worker_count(self) -> int:
        """The workers as decided before the load (`with_workers`); 1 until then."""
        return self.workers if isinstance(self.workers, int) else 1

    def with_workers(self, n: int) -> LoadSpec:
        return self.model_copy(update={"workers": n})

    @property
    def open_model(self) -> bool:
        return self.rate is not None

    @property
    def calibrated(self) -> bool:
        """The rate (and the in-flight cap) come from lab.load.calibrate, before the load."""
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


class Variant(_Strict):
    """One way to run the scenario: the incident (`baseline`) or a mitigation.

    A mitigation is also judged by a built-in line: every answer from the fault's start
    to the end of the load is honest (2xx, 503 with Retry-After, an expected 4xx, or left
    to an allowance — see lab.scenario.expectations.StatusExpectation). A variant that exists to
    show a problem (a control, an anti-pattern) sets `shows_problem` and is judged by its
    own expectations only, as the baseline always is.
    """

    description: str = ""
    #: A control or an anti-pattern, not a mitigation: no built-in honest line.
    shows_problem: bool = False
    config: dict[Annotated[str, Field(pattern=_ENV_KEY)], EnvValue] = Field(default_factory=dict)
    router: RouterSpec | None = Field(None, description="replaces stack.router for this variant")
    fault: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the fault's params for this variant"
    )
    expect: list[AnyExpectation] = Field(min_length=1)


MAX_HINTS = 5
#: The least of a window an offset ('after+5s') may leave to judge.
MIN_WINDOW_S = 1.0
_NAME = r"^[a-z0-9][a-z0-9-]*$"


def _hint(value: Any) -> str:
    """A hint is read aloud to a participant: blank ones would cost points for nothing."""
    if not isinstance(value, str):
        raise ValueError("expected a hint as text")
    text = " ".join(value.split())
    if not text:
        raise ValueError("expected a non-empty hint")
    return text


class DrillSpec(_Strict):
    """What a graded drill needs from the scenario: the incident class a participant must
    name in `diagnose`, and hints ordered from vague (a layer to look at) to specific (the
    last one nearly names the fix), each costing points when asked for."""

    cause: str | None = Field(
        None, description="the incident class to diagnose (default: the scenario's name)")
    hints: list[Annotated[str, BeforeValidator(_hint)]] | None = Field(
        None, description=f"1 to {MAX_HINTS} hints, from vague to specific")
    summary: str | None = Field(None, min_length=1, description="one line for the debrief")

    @field_validator("cause")
    @classmethod
    def _cause_like_a_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(_NAME, v):
            raise ValueError("expected an incident class written like a scenario's name "
                             f"(lowercase letters, digits, dashes: 'pool-exhaustion'), got {v!r}")
        return v

    @field_validator("hints")
    @classmethod
    def _hint_count(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not 1 <= len(v) <= MAX_HINTS:
            raise ValueError(f"expected 1 to {MAX_HINTS} hints, from vague to specific; "
                             f"got {len(v)}")
        return v


def _switches_vs_baseline(config: dict[str, str], variants: dict[str, Variant],
                          variant: str) -> dict[str, str]:
    """A variant's checkout environment minus what the baseline already runs with."""
    base = {**config, **variants["baseline"].config}
    return {k: v for k, v in {**config, **variants[variant].config}.items()
            if base.get(k) != v}


def _fix_switches(config: dict[str, str], variants: dict[str, Variant]) -> list[str]:
    """Every switch the mitigations set (not the baseline, not the controls and
    anti-patterns that only show a problem), in the file's order."""
    keys: dict[str, None] = {}
    for name, variant in variants.items():
        if name != "baseline" and not variant.shows_problem:
            keys.update(dict.fromkeys(_switches_vs_baseline(config, variants, name)))
    return list(keys)


def _default_hints(switches: list[str]) -> list[str]:
    """Hints for a scenario without its own: the three layers in order, then the switches
    its mitigations set (the only layer-free thing the scenario itself says)."""
    hints = [
        "Start with what users see: which classes of answer appeared when the trouble "
        "began, and on which requests?",
        "Then what the app logged: the error signature (exception and frame) that came "
        "with the failures points at the layer that broke.",
        "Then what the infrastructure shows: pool, breaker, disk and cache metrics of the "
        "checkout instances; the cause is usually there, the stack trace is the symptom.",
    ]
    if switches:
        hints.append("The scenario's mitigations set " + ", ".join(switches) + ".")
    return hints


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    seed: int = Field(1, description="seeds every random choice, so a run can be repeated")
    stack: StackSpec = Field(default_factory=StackSpec)
    #: What the incident needs in its own terms; the load is sized from it (lab.scenario.physics).
    physics: PhysicsSpec | None = None
    load: LoadSpec
    fault: FaultSpec
    variants: dict[Annotated[str, Field(pattern=_NAME)], Variant]
    #: For `lab drill`: the incident class to diagnose and the hints (optional).
    drill: DrillSpec | None = None
    #: The file it was read from (validation context `source`), for messages that name it.
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_source(self, info: ValidationInfo) -> Scenario:
        """lab.scenario.loader passes the file as context, so a later lookup by name can say
        which file lacks the variant."""
        if isinstance(info.context, dict) and isinstance(info.context.get("source"), str):
            self._source = info.context["source"]
        return self

    @property
    def source(self) -> str | None:
        """The scenario file as read (None for a scenario not read from a file)."""
        return self._source

    def require_variants(self, *names: str) -> None:
        """The one check of variant names against this scenario, made before anything
        starts: an UnknownVariant (exit 2) naming the file, the names it lacks and the ones
        it has."""
        unknown = [n for n in names if n not in self.variants]
        if unknown:
            where = shown_path(self._source) if self._source else f"scenario {self.name!r}"
            raise UnknownVariant(where, unknown, list(self.variants))

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
            if self.stack.service is not None and isinstance(self.physics.slow_path, str):
                raise ValueError(f"physics.slow_path: '{self.physics.slow_path}' is the sample "
                                 "shop's; state your own (endpoint, query, args, pool)")
            path = slow_path_of(self.physics.slow_path)
            endpoint = path.endpoint
            if endpoint not in {e.name for e in self.load.endpoints}:
                raise ValueError(f"physics.slow_path {path.name!r} runs on "
                                 f"'{endpoint}' requests, which load.endpoints never sends")
            if "max_in_flight" in self.load.model_fields_set and self.physics.longest_wait:
                raise ValueError("give either load.max_in_flight or physics.longest_wait "
                                 "(which sizes the cap), not both")
        if self.fault.until >= self.load.duration:
            raise ValueError(
                f"fault.until ({self.fault.until:g}s) must be before the end of the load "
                f"({self.load.duration:g}s), or the 'after' window is empty"
            )
        self._windows_leave_time()
        self._cap_admits_latency_claims()
        return self

    def _cap_admits_latency_claims(self) -> None:
        """A mitigation that answers as fast as it claims must never meet the load
        generator's in-flight cap: dropped arrivals fail it. The cap (capacity ×
        longest_wait) over the rate (fault_demand × capacity) holds longest_wait ÷
        fault_demand seconds of arrivals, so by Little's law a variant claiming answers
        within more than that is refused here, not failed by the lab's own cap."""
        physics = self.physics
        if physics is None or physics.longest_wait is None:
            return
        held_s = physics.longest_wait / physics.fault_demand
        for name, variant in self.variants.items():
            if name == "baseline" or variant.shows_problem:
                continue
            for i, e in enumerate(variant.expect):
                if not isinstance(e, LatencyExpectation):
                    continue
                bound = e.percentile()[1]
                base, _ = window_offset(e.window)
                if base == "before" or bound.op not in ("<=", "<"):
                    continue
                if bound.value / 1000.0 > held_s + 1e-9:
                    raise ValueError(
                        f"variants.{name}.expect.{i}: claims answers {bound} in the {base} "
                        f"window, but the in-flight cap holds {held_s:g}s of arrivals "
                        f"(physics.longest_wait {physics.longest_wait:g}s ÷ fault_demand "
                        f"{physics.fault_demand:g}), so answers that honest would be dropped "
                        f"at the cap and fail the variant; expected physics.longest_wait of "
                        f"at least {bound.value / 1000.0 * physics.fault_demand:g}s (or a "
                        f"tighter claim)")

    def _windows_leave_time(self) -> None:
        """A window offset ('after+5s') must leave at least MIN_WINDOW_S of its window, or
        the expectation would judge a window clamped to nothing — and fail only once the
        run is over."""
        lengths = {"before": self.fault.at, "fault": self.fault.until - self.fault.at,
                   "after": self.load.duration - self.fault.until}
        for name, variant in self.variants.items():
            for i, e in enumerate(variant.expect):
                window = getattr(e, "window", None)
                if not window:
                    continue
                base, offset = window_offset(window)
                left = lengths[base] - offset
                if offset and left < MIN_WINDOW_S:
                    raise ValueError(
                        f"variants.{name}.expect.{i}.window: '{window}' starts "
                        f"{offset:g}s into the {base} window, which lasts "
                        f"{lengths[base]:g}s, so it leaves {max(left, 0):g}s to judge; "
                        f"expected an offset of at most {lengths[base] - MIN_WINDOW_S:g}s "
                        "(or a longer window)")

    @field_validator("drill")
    @classmethod
    def _hints_keep_the_fix_for_last(cls, v: DrillSpec | None,
                                     info: ValidationInfo) -> DrillSpec | None:
        """Only the last hint may name a mitigation's switch: an earlier one would give the
        answer away for the price of a vague hint."""
        stack, variants = info.data.get("stack"), info.data.get("variants")
        if v is None or not v.hints or stack is None or not variants or (
                "baseline" not in variants):
            return v  # nothing to check, or a problem reported on its own field
        switches = _fix_switches(stack.config, variants)
        for i, hint in enumerate(v.hints[:-1]):
            named = [k for k in switches if re.search(rf"\b{k}\b", hint)]
            if named:
                raise ValueError(
                    f"hint {i + 1} of {len(v.hints)} names {', '.join(named)}, a switch a "
                    "mitigation sets; only the last hint may name the fix")
        return v

    def variant_env(self, variant: str) -> dict[str, str]:
        """The checkout environment of one variant: the stack's config, then its overrides."""
        return {**self.stack.config, **self.variants[variant].config}

    def mitigation_switches(self, variant: str) -> dict[str, str]:
        """The variant's checkout config that differs from the baseline's: what a
        participant would set with `mitigate K=V`. A variant that changes the router or the
        fault instead (a root fix, a readiness gate's health path) needs more than this."""
        self.require_variants(variant)
        return _switches_vs_baseline(self.stack.config, self.variants, variant)

    def drill_cause(self) -> str:
        """The incident class a participant must name: scenarios are the classes unless
        one says otherwise."""
        if self.drill is not None and self.drill.cause is not None:
            return self.drill.cause
        return self.name

    def drill_hints(self) -> list[str]:
        """The scenario's hints, or generic ones that walk the three layers."""
        if self.drill is not None and self.drill.hints:
            return list(self.drill.hints)
        return _default_hints(_fix_switches(self.stack.config, self.variants))

    def drill_summary(self) -> str:
        """One line for the debrief: the drill's own, else the title."""
        if self.drill is not None and self.drill.summary is not None:
            return self.drill.summary
        return self.title

    def service_variables(self) -> list[str]:
        """The variables a user's own service is configured by in this scenario (its
        `env`, `stack.config`, every variant's `config`): what a drill's `mitigate` may
        set on it."""
        service = self.stack.service
        names = set(service.env) if service is not None else set()
        names |= set(self.stack.config)
        for v in self.variants.values():
            names |= set(v.config)
        return sorted(names)

    @property
    def error_log_pattern(self) -> str | None:
        """How the service under test logs an unhandled error (None: the sample's JSON
        lines, or a service of the user's that declared none)."""
        service = self.stack.service
        return service.error_log.pattern if service and service.error_log else None

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
