"""`{metric, increase}`: how much a counter grew over a window, summed over instances."""

from __future__ import annotations

from lab.records.samples import Sample
from lab.scenario.models import Expectation
from lab.verdict.judge import evaluate
from lab.verdict.results import Windows

W = Windows(load_start=1000.0, fault_start=1010.0, fault_end=1020.0, load_end=1030.0)
M = "checkout_catalog_cache_recomputes_total"


def exp(bound: str, window: str = "fault") -> Expectation:
    return Expectation.model_validate({"window": window, "metric": M, "increase": bound})


def series(instance: str, values: dict[float, float]) -> list[Sample]:
    # Samples taken together share a round, as the sampler numbers them.
    return [Sample(t, instance, "200", {M: v}, round=int(t)) for t, v in values.items()]


def test_increase_counts_from_the_last_sample_before_the_window() -> None:
    # 1 before; the recompute happened between 1009.5 and the first sample inside.
    samples = series("checkout-1", {1008.5: 1, 1009.5: 1, 1010.5: 2, 1015.5: 2, 1021.5: 9})
    r = evaluate(exp("== 1"), [], samples, W)
    assert (r.passed, r.value, r.measured) == (True, 1.0, "increase 1 (1 → 2; 2 samples)")
    r = evaluate(exp(">= 20"), [], samples, W)
    assert (r.passed, r.value) == (False, 1.0)


def test_increase_without_an_earlier_sample_starts_inside_the_window() -> None:
    samples = series("checkout-1", {1010.5: 5, 1019.5: 53})
    r = evaluate(exp(">= 20"), [], samples, W)
    assert (r.passed, r.value) == (True, 48.0)


def test_increase_is_summed_per_instance() -> None:
    samples = (series("checkout-1", {1009.0: 10, 1012.0: 12})
               + series("checkout-2", {1009.0: 100, 1012.0: 103}))
    r = evaluate(exp("== 5"), [], samples, W)
    # Per instance, then summed: 10 → 12 and 100 → 103.
    assert (r.passed, r.measured) == (True, "increase 5 (over 2 instances; 1 sample)")


def test_an_instance_missing_a_round_cannot_make_the_increase_negative() -> None:
    # Summed per round, checkout-2 missing from the last round read 110 → 12: -98. Per
    # instance, each one's own samples: 10 → 12 and 100 → 103 (its last in the window).
    samples = (series("checkout-1", {1009.0: 10, 1012.0: 11, 1014.0: 12})
               + series("checkout-2", {1009.0: 100, 1012.0: 103}))
    r = evaluate(exp("<= 10"), [], samples, W)
    assert (r.passed, r.value) == (True, 5.0)


def test_a_restarted_counter_counts_its_new_value_as_rise() -> None:
    samples = series("checkout-1", {1009.0: 50, 1011.0: 52, 1013.0: 3, 1015.0: 4})
    r = evaluate(exp("== 6"), [], samples, W)
    assert (r.passed, r.value) == (True, 6.0)  # 50 → 52 (+2), restart to 3 (+3), → 4 (+1)


def test_increase_never_sampled_fails_with_a_reason() -> None:
    r = evaluate(exp("== 0"), [], series("checkout-1", {1001.0: 1}), W)
    assert (r.passed, r.measured) == (False, f"{M} was never sampled in the window")
