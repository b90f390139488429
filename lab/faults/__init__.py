"""Faults: what breaks the stack, the evidence each one records, and its revert."""
