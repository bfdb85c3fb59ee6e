"""Run one fuzz target under atheris (libFuzzer): `python -m fuzz.run TARGET [LIBFUZZER ARGS...]`.

kdns, dnslib and the target are imported with atheris's coverage instrumentation, so libFuzzer
steers towards new branches in them. Everything after TARGET goes to libFuzzer unchanged:
`-seed=N`, `-runs=N`, `-max_total_time=S`, `-artifact_prefix=DIR/`, then corpus directories (new
inputs are written to the first one only). fuzz/campaign.py builds these command lines.
"""

from __future__ import annotations

import importlib
import sys

import atheris

# Packages whose branches count as coverage: ours, and the DNS library behind our messages.
INSTRUMENTED = ["kdns", "dnslib", "fuzz"]


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(f"usage: python -m fuzz.run TARGET [LIBFUZZER ARGS...]; targets: {', '.join(TARGETS)}")
    name = argv[1]
    if name not in TARGETS:
        sys.exit(f"unknown target {name!r}; targets: {', '.join(TARGETS)}")
    with atheris.instrument_imports(include=INSTRUMENTED):
        target = importlib.import_module(f"fuzz.targets.{name}")
        target.prepare()
    atheris.Setup([argv[0], *argv[2:]], target.one_input)
    atheris.Fuzz()


from fuzz.targets import TARGETS  # noqa: E402

if __name__ == "__main__":
    main(sys.argv)
