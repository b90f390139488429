"""Stability over repeated runs (`lab run --repeat N`, `pytest --lab-repeat N`).

One run of a variant says whether it held once; this module says how often it held and
how close it came to failing: per variant the pass rate (k of N), per expectation the
min / median / max of what it measured and the margin of the worst run to its bound.
Pure (no I/O, no printing), so the CLI, the pytest plugin and the reports all agree on
what a margin is. The JSON form is documented in docs/results.md ("stability").
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.scenario.models import Bound, Expectation, Scenario
from lab.verdict.results import ExpectationResult, RunError, RunResults, VariantResult

#: One display unit per bound unit, used when a bound's limit is 0 and a margin cannot be
#: compared relative to it (1 pp for rates, 1 ms, 1 for counts and metrics).
_UNIT_SCALE = {"%": 0.01, "ms": 1.0, "": 1.0}


def value_bound(exp: Expectation) -> Bound | None:
    """The bound an expectation's numeric `value` was compared with (None when the value
    is not compared with one, e.g. `retry_after` alone)."""
    return exp.value_bound()


def margin(bound: Bound, values: Sequence[float]) -> float | None:
    """How far the worst value stayed from the bound, in the value's units.

    Positive: room to spare; negative: a run crossed it; 0 for an `==` bound met exactly.
    For `>=`/`>` the worst value is the smallest, for `<=`/`<` the largest; for `==` it is
    the one furthest off, so its margin is never positive.
    """
    if not values:
        return None
    if bound.op in (">=", ">"):
        return min(values) - bound.value
    if bound.op in ("<=", "<"):
        return bound.value - max(values)
    return -max(abs(v - bound.value) for v in values)


def _num(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_value(value: float | None, unit: str) -> str:
    """A measured value in its bound's units: '87.3%', '1480 ms', '54'."""
    if value is None:
        return "-"
    if unit == "%":
        return f"{_num(value * 100, 1)}%"
    if unit == "ms":
        return f"{_num(value, 0 if abs(value) >= 10 else 1)} ms"
    return _num(value, 2)


def format_margin(m: float | None, unit: str) -> str:
    """A margin with its sign, rates in percentage points: '+5.2 pp', '-350 ms', '+3'."""
    if m is None:
        return "-"
    if unit == "%":
        text, suffix = _num(m * 100, 1), " pp"
    elif unit == "ms":
        text, suffix = _num(m, 0 if abs(m) >= 10 else 1), " ms"
    else:
        text, suffix = _num(m, 2), ""
    sign = "" if text == "0" or text.startswith("-") else "+"
    return f"{sign}{text}{suffix}"


@dataclass(frozen=True)
class ExpectationStability:
    """One expectation over N runs. Values of rates are fractions, as in the verdicts."""

    text: str
    runs: int
    passes: int
    values: tuple[float | None, ...]  # per run, in run order; None: the run measured nothing
    bound: Bound | None

    @property
    def measured(self) -> list[float]:
        return [v for v in self.values if v is not None]

    @property
    def unmeasured(self) -> int:
        return sum(1 for v in self.values if v is None)

    @property
    def unit(self) -> str:
        return self.bound.unit if self.bound is not None else ""

    @property
    def min(self) -> float | None:
        return min(self.measured) if self.measured else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.measured) if self.measured else None

    @property
    def max(self) -> float | None:
        return max(self.measured) if self.measured else None

    @property
    def margin(self) -> float | None:
        """The worst measured run's distance to the bound (runs that measured nothing are
        counted in `passes`, not here). None, not a margin to spare, when a run failed
        although every measured value was inside the bound (it measured nothing, or
        failed on another part of the claim): the room is not there."""
        if self.bound is None:
            return None
        m = margin(self.bound, self.measured)
        if m is not None and m > 0 and self.passes < self.runs:
            return None
        return m

    def tightness(self) -> float:
        """The margin relative to the bound's limit, so a p99 bound and a share can be
        ranked together; +inf when there is no slack to speak of (no numeric bound, or an
        `==` bound met exactly every time)."""
        m = self.margin
        if m is None or self.bound is None or (self.bound.op == "==" and m == 0):
            return math.inf
        scale = abs(self.bound.value) or _UNIT_SCALE.get(self.unit, 1.0)
        return m / scale

    def to_json(self) -> dict[str, Any]:
        b = self.bound
        return {
            "text": self.text,
            "runs": self.runs,
            "passes": self.passes,
            "bound": None if b is None else {"op": b.op, "limit": b.value, "unit": b.unit,
                                             "text": str(b)},
            "values": list(self.values),
            "unmeasured": self.unmeasured,
            "min": self.min,
            "median": self.median,
            "max": self.max,
            "margin": self.margin,
            "shown": {
                "min": format_value(self.min, self.unit),
                "median": format_value(self.median, self.unit),
                "max": format_value(self.max, self.unit),
                "margin": format_margin(self.margin, self.unit),
            },
        }


@dataclass(frozen=True)
class VariantStability:
    """One variant over N runs: how many passed, and each expectation's spread."""

    scenario: str
    variant: str
    run_ids: tuple[str, ...]
    passed: tuple[bool, ...]  # per run, in run order (runs that broke off last)
    expectations: tuple[ExpectationStability, ...]
    #: Runs whose experiment did not happen as designed (neither passed nor failed).
    inconclusive: int = 0
    #: Runs that broke off with an error (no verdict; counted as not passed).
    errored: int = 0

    @property
    def runs(self) -> int:
        return len(self.passed)

    @property
    def passes(self) -> int:
        return sum(self.passed)

    @property
    def tightest(self) -> ExpectationStability | None:
        """The expectation closest to failing: fewest passing runs, then the smallest
        margin relative to its limit. None when every run passed and no expectation has a
        margin to rank (only exact `==` bounds and the fault's evidence)."""
        if not self.expectations:
            return None
        best = min(self.expectations, key=lambda e: (e.passes, e.tightness()))
        if best.passes == best.runs and best.tightness() == math.inf:
            return None
        return best

    def to_json(self) -> dict[str, Any]:
        tight = self.tightest
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "runs": self.runs,
            "passes": self.passes,
            "pass_rate": self.passes / self.runs if self.runs else None,
            "run_ids": list(self.run_ids),
            "passed": list(self.passed),
            "inconclusive": self.inconclusive,
            "errored": self.errored,
            "tightest": None if tight is None else {
                "text": tight.text, "passes": tight.passes,
                "margin": tight.margin,
                "shown": format_margin(tight.margin, tight.unit)},
            "expectations": [e.to_json() for e in self.expectations],
        }


def variant_stability(
    runs: Sequence[VariantResult], expectations: Sequence[Expectation], errored: int = 0,
) -> VariantStability:
    """Aggregate N runs of one variant; `expectations` (the variant's, from its file)
    give each verdict's bound. Verdicts without one (the fault's evidence) get a pass
    count and their values' spread, but no margin."""
    if not runs:
        raise ValueError("no runs to aggregate")
    first = runs[0]
    width = len(first.expectations)
    if any(len(r.expectations) != width for r in runs):
        raise ValueError(f"{first.scenario}/{first.name}: runs have different expectations")
    # By text, not position: the runner may add verdicts of its own (the fault's evidence).
    by_text = {e.text: e for e in expectations}
    out = []
    for i in range(width):
        column: list[ExpectationResult] = [r.expectations[i] for r in runs]
        text = column[0].text
        if any(e.text != text for e in column):
            raise ValueError(f"{first.scenario}/{first.name}: runs have different expectations")
        exp = by_text.get(text)
        bound = value_bound(exp) if exp is not None else None
        out.append(ExpectationStability(
            text=text,
            runs=len(runs),
            passes=sum(1 for e in column if e.passed),
            values=tuple(e.value for e in column),
            bound=bound,
        ))
    return VariantStability(
        scenario=first.scenario,
        variant=first.name,
        run_ids=tuple(r.run_id for r in runs),
        passed=(*(r.passed for r in runs), *([False] * errored)),
        expectations=tuple(out),
        inconclusive=sum(1 for r in runs if r.inconclusive),
        errored=errored,
    )


def summarize(
    variants: Sequence[VariantResult], scenarios: Mapping[str, Scenario],
    errors: Sequence[RunError] = (),
) -> list[VariantStability]:
    """Every variant's runs grouped (in order of first appearance) and aggregated; a run
    that broke off (`errors`) counts as one that did not pass."""
    groups: dict[tuple[str, str], list[VariantResult]] = {}
    for v in variants:
        groups.setdefault((v.scenario, v.name), []).append(v)
    broke = Counter((e.scenario, e.variant) for e in errors)
    return [
        variant_stability(runs, scenarios[s].variants[name].expect, broke[s, name])
        for (s, name), runs in groups.items()
    ]


def stability_json(repeat: int, stats: Sequence[VariantStability]) -> dict[str, Any]:
    return {"repeat": repeat, "variants": [s.to_json() for s in stats]}


def results_json(
    results: RunResults, scenarios: Mapping[str, Scenario], repeat: int
) -> dict[str, Any]:
    """The results document; with repeat > 1 it also carries the `stability` section
    (every run stays in `variants`, in the order it ran)."""
    doc = results.to_json()
    if repeat > 1:
        doc["stability"] = stability_json(
            repeat, summarize(results.variants, scenarios, results.errors))
    return doc
