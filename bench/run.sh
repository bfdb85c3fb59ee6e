#!/bin/sh
# One command for the issue #4 benchmark on a fresh machine: creates .venv (make venv) when missing,
# then bench/run.py installs dnsperf and knot (make debs, as root) and prints the table.
# Usage: bench/run.sh [--preset full|small] [--seconds 20] ...   (bench/run.sh --help for all)
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || make venv
exec .venv/bin/python -m bench.run "$@"
