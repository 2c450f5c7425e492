"""Speed benchmarks: ratios measured within one run (never wall-clock asserts)."""
