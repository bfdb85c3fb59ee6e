"""Benchmarks run by hand (bench/run.py); see bench/README.md. Not part of `make test`."""
