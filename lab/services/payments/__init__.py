"""A payment gateway stub: charges a token, honours `Idempotency-Key`, counts everything.

Stands in for the third-party gateway the checkout calls. What the lab needs from it is
the ledger: how many charges were really created, for how many distinct checkouts, and
how many retried attempts were answered with the original charge instead of a new one.
"""
