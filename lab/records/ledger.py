"""The run's payment ledger: what the gateway charged against what the shop recorded.
Pure figures (read by the results and `lab report`); lab.records.ledger_collector reads them
off a stack.

Collected once, after the load stopped and before teardown, from the database (every
order with its `order_ref` and status, the capture queue's refs), the gateway stub (its
charges per order reference) and the client-side request log (fallback answers the users
got). The figures come from a join on the order reference, each the size of a set the join
builds: nothing is subtracted and clamped, so an inconsistency cannot net out against
another one and read as the passing 0. The figures:

  charges                  charges the gateway created
  double_charges           charges beyond the first for the same order_ref: what retries
                           without an idempotency key cause
  double_charged_refs      order refs charged more than once
  duplicate_attempts       attempts the gateway answered with an earlier charge (same key):
                           retries that were *not* charged twice (the gateway's counter)
  confirmed_orders         orders confirmed
  unmatched_charges        charges that are not the one charge of a confirmed order: zero
                           means every charge is exactly one confirmed order
  charged_without_order    refs charged but neither a confirmed order nor queued for capture:
                           the customer was told it failed and paid anyway
  confirmed_without_charge confirmed orders whose ref the gateway never charged
  pending_orders           orders accepted as payment pending (the fallback)
  pending_not_queued       pending orders missing from the capture queue: never captured
  queued_not_pending       capture entries whose order is not pending (e.g. confirmed, so
                           already charged: capturing it would charge twice)
  queued_without_order     capture entries whose ref is on no order
  duplicate_order_refs     refs carried by more than one order (the join cannot tell them apart)
  fallback_responses       payment-pending answers the users received
  pending_unaccounted      fallback_responses minus the pending orders in the capture queue,
                           signed: the client log carries no ref, so this is the one figure
                           that cannot be a join. > 0: answers no queued order accounts for;
                           < 0: queued pending orders whose answer no user received
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

CONFIRMED = "CONFIRMED"
PAYMENT_PENDING = "PAYMENT_PENDING"

# Figures that are 0 in a consistent ledger whatever the variant did (the terminal line
# shows each one that is not), with how the report names them.
INCONSISTENCIES: dict[str, str] = {
    "charged_without_order": "charged without an order",
    "confirmed_without_charge": "confirmed orders never charged",
    "pending_not_queued": "pending orders missing from the capture queue",
    "queued_not_pending": "capture entries for orders that are not pending",
    "queued_without_order": "capture entries with no order",
    "duplicate_order_refs": "refs on more than one order",
}


class Order(NamedTuple):
    id: int
    ref: str | None  # NULL for an order written without a gateway: it joins to nothing
    status: str


def figures(
    charged: Mapping[str, int],
    duplicate_attempts: int,
    orders: Sequence[Order],
    queued: Sequence[str],
    fallback_responses: int,
) -> dict[str, int]:
    """The join on the order reference: `charged` is the gateway's charges per ref,
    `queued` the capture queue's refs, `fallback_responses` the client's pending answers."""
    confirmed = {o for o in orders if o.status == CONFIRMED}
    pending = {o for o in orders if o.status == PAYMENT_PENDING}
    orders_per_ref = Counter(o.ref for o in orders if o.ref is not None)
    refs_of = set(orders_per_ref)
    confirmed_refs = {o.ref for o in confirmed if o.ref is not None}
    pending_refs = {o.ref for o in pending if o.ref is not None}
    queue = set(queued)
    # Every charge, named (ref, n-th charge of that ref).
    charges = {(ref, i) for ref, n in charged.items() for i in range(n)}
    pending_queued = {o for o in pending if o.ref in queue}
    return {
        "charges": len(charges),
        "double_charges": len({c for c in charges if c[1] > 0}),
        "double_charged_refs": len({ref for ref, n in charged.items() if n > 1}),
        "duplicate_attempts": duplicate_attempts,
        "confirmed_orders": len(confirmed),
        "unmatched_charges": len({c for c in charges if c[1] > 0 or c[0] not in confirmed_refs}),
        "charged_without_order": len(set(charged) - confirmed_refs - queue),
        "confirmed_without_charge": len({o for o in confirmed if o.ref not in charged}),
        "pending_orders": len(pending),
        "pending_not_queued": len(pending - pending_queued),
        "queued_not_pending": len((queue & refs_of) - pending_refs),
        "queued_without_order": len(queue - refs_of),
        "duplicate_order_refs": len({ref for ref, n in orders_per_ref.items() if n > 1}),
        "fallback_responses": fallback_responses,
        "pending_unaccounted": fallback_responses - len(pending_queued),
    }


def inconsistencies(ledger: Mapping[str, int], skip: Collection[str] = ()) -> list[str]:
    """Each nonzero inconsistency of a ledger but those in `skip` (already shown), in words,
    for the terminal's ledger line. A ledger saved before a figure existed lacks it."""
    out = [f"{ledger[name]} {words}" for name, words in INCONSISTENCIES.items()
           if name not in skip and ledger.get(name)]
    gap = ledger.get("pending_unaccounted", 0)
    if gap > 0:
        out.append(f"{gap} more payment-pending answers than pending orders in the capture queue")
    elif gap < 0:
        out.append(f"{-gap} more pending orders in the capture queue than payment-pending "
                   "answers users received")
    return out
