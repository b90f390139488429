"""`{metric, increase}`: how much a counter grew over a window, summed over instances."""

from __future__ import annotations

from lab.expect import evaluate
from lab.results import Windows
from lab.sampler import Sample
from lab.scenario import Expectation

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
    # Summed per sampling round: 10 + 100 before the window, 12 + 103 in it.
    assert (r.passed, r.measured) == (True, "increase 5 (110 → 115; 1 sample)")


def test_increase_never_sampled_fails_with_a_reason() -> None:
    r = evaluate(exp("== 0"), [], series("checkout-1", {1001.0: 1}), W)
    assert (r.passed, r.measured) == (False, f"{M} was never sampled in the window")
