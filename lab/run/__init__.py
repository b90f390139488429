"""Running variants: one variant's experiment, the run loop, its events, the pytest
plugin, conditions and the benchmarks."""
