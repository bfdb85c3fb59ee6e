"""Fuzzing kdns: targets, corpus and runners (fuzz/README.md)."""
