"""What a run observed, as value types with no heavy imports (samples, the ledger), and
the collectors that read them off a live stack (sampler, ledger collector)."""
