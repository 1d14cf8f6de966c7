"""Benchmarks: `make bench` prints JSON figures (ratios against baselines measured in the same run)."""
