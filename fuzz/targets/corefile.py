"""Fuzz target: Corefile text through the parser (kdns.corefile) and every plugin's setup
(kdns.plan.build_plan), as kdns does at start and on reload.

Input: the Corefile's bytes (decoded as UTF-8, undecodable bytes replaced, as a file read with
errors would be). `{$VAR}` placeholders see an empty environment, so a run does not depend on the
machine's. Setup is pure (no sockets; plugins start later), but it reads files a Corefile names, so
the target runs in the repository's root, where zones/ and demo/ give `file`, `hosts`, `import` and
`kubernetes { manifests }` something real to read.

What must hold: the input is a Corefile whose plugins all set up, or a CorefileError rendered as
CoreDNS renders it, `FILE:LINE - Error during parsing: …`, pointing at a line of the Corefile (or of
a file it imports). Any other exception is a `Finding`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path

from kdns import plugins as registry
from kdns.corefile import CorefileError, parse_corefile
from kdns.plan import build_plan
from kdns.server.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
FILE = "Corefile"
_RENDERED = re.compile(r"(?s)(?P<file>.+?):(?P<line>[1-9][0-9]*) - Error during parsing: .+")


class Finding(AssertionError):
    """An input that broke the rule in the module docstring."""


_runtime: Runtime | None = None


def prepare() -> None:
    """A real Runtime as the plugins' controller (never started: no listeners, no sockets). Every
    plugin module is imported here, while fuzz.run has coverage instrumentation on."""
    global _runtime
    if _runtime is None:
        logging.disable(logging.CRITICAL)  # plugins' set-up warnings: thousands a second
        for name in registry.implemented_in_order():
            registry.setup_function(name)
        asyncio.set_event_loop(asyncio.new_event_loop())
        _runtime = Runtime(FILE, build_plan)
        os.chdir(ROOT)


def one_input(data: bytes) -> None:
    prepare()
    assert _runtime is not None
    text = data.decode("utf-8", errors="replace")
    try:
        # The Runtime's own `shared`, as every reload of a real process passes it: plugins keep
        # process-wide state there (prometheus and reload register their load observers once).
        build_plan(parse_corefile(text, FILE, env={}), _runtime, _runtime.shared, 53)
    except CorefileError as e:
        check_error(e, text)


def check_error(e: CorefileError, text: str) -> None:
    rendered = _RENDERED.fullmatch(str(e))
    if rendered is None:
        raise Finding(f"not FILE:LINE - Error during parsing: …: {e!s}") from e
    if rendered["file"] == FILE and int(rendered["line"]) > text.count("\n") + 1:
        raise Finding(f"line {rendered['line']} is past the end of a {text.count(chr(10)) + 1}-line Corefile")
