#!/bin/sh
# Issue #12's benchmark (kdns in a living cluster, next to knotd) on a fresh machine: creates .venv
# (make venv) when missing, then bench/churn.py installs dnsperf and knot (make debs, as root).
# Usage: bench/churn.sh [--kdns-root DIR]... [--seconds 20] ...   (bench/churn.sh --help for all)
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || make venv
exec .venv/bin/python -m bench.churn "$@"
