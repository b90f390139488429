"""Run events: what the run loop and a variant's lifecycle announce, for whoever listens.

On the pattern of Locust's `EventHook` (locust/event.py): a hook keeps its listeners in
the order they were added and calls them in that order with `fire`; `add_listener`
returns the listener, so it can be used as a decorator. Two differences, both chosen:

- **Typed, one payload.** Locust fires keyword arguments; here a hook carries one payload
  type (`EventHook[Progress]`), so mypy checks every listener and every `fire`.
- **A listener's exception propagates** (Locust logs it and carries on). The listeners
  here are the CLI's progress line and its JSON writer, and the pytest plugin's record of
  each run: a results file that could not be written must stop the run as it did before
  these events existed, not scroll past in a log. The listeners after the one that raised
  are not called for that event.

The runner never prints: `lab.cli` subscribes its progress line and its JSON writer,
`lab.run.pytest_plugin` its record of each run. Standard library only at run time (the
payload types are imported for type checking), so importing it costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from lab.scenario.models import Scenario
    from lab.verdict.results import RunResults, Skipped, VariantResult

T = TypeVar("T")


class EventHook(Generic[T]):
    """Listeners of one kind of event, called in the order they were added."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[T], None]] = []

    def add_listener(self, listener: Callable[[T], None]) -> Callable[[T], None]:
        self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[[T], None]) -> None:
        """Raises ValueError if it was not listening (as list.remove does)."""
        self._listeners.remove(listener)

    def fire(self, payload: T) -> None:
        # Over a copy, so a listener may add or remove listeners while the event fires.
        for listener in tuple(self._listeners):
            listener(payload)


@dataclass(frozen=True)
class Progress:
    """Where a variant's run is: each phase as it begins, then once a second while the
    load runs (the runner never prints; the CLI shows this)."""

    scenario: str
    variant: str
    index: int  # 1-based position of the variant in this run
    count: int
    phase: str  # starting | before | fault | after | stopping | done
    elapsed_s: float = 0.0
    remaining_s: float = 0.0
    last_second: dict[str, int] = field(default_factory=dict)
    total_requests: int = 0


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class Run:
    """One run of one variant, as the run loop numbers it."""

    scenario: Scenario
    variant: str
    index: int  # 1-based position of the variant among those that run (skipped ones not counted)
    count: int  # how many variants run
    run: int  # 1-based: this variant's runs follow each other (`--repeat`)
    repeat: int


@dataclass(frozen=True)
class VariantDone:
    """A run of a variant finished; `results` holds every run so far, this one included."""

    run: Run
    result: VariantResult
    results: RunResults


@dataclass(frozen=True)
class RunFailed:
    """A run of a variant broke off with `error`; `results` names it in `errors`."""

    run: Run
    error: Exception
    results: RunResults


@dataclass
class RunEvents:
    """Every hook of a run, in the order they fire for one run of a variant.

    `skipped` fires while the loop checks the plan, before anything runs.
    """

    skipped: EventHook[Skipped] = field(default_factory=EventHook)
    started: EventHook[Run] = field(default_factory=EventHook)
    progress: EventHook[Progress] = field(default_factory=EventHook)
    variant_done: EventHook[VariantDone] = field(default_factory=EventHook)
    #: A run broke off (refused, or the machinery failed); it is in `results.errors`.
    run_failed: EventHook[RunFailed] = field(default_factory=EventHook)

    @classmethod
    def of(cls, progress: RunEvents | ProgressFn | None) -> RunEvents:
        """The bundle itself, or a new one whose `progress` calls the given callback."""
        if isinstance(progress, RunEvents):
            return progress
        events = cls()
        if progress is not None:
            events.progress.add_listener(progress)
        return events
