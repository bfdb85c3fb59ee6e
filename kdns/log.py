"""Logging in CoreDNS's shape: `[INFO] plugin/kubernetes: message` on stderr.

Operators grep for these prefixes (and kind's CI prints them), so the format is part of the contract.
"""

from __future__ import annotations

import logging
import sys

_ROOT = "kdns"


class _CoreDNSFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        scope = record.name[len(_ROOT) + 1 :] if record.name.startswith(_ROOT + ".") else ""
        prefix = f"[{record.levelname}] " + (f"{scope}: " if scope else "")
        text = prefix + record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CoreDNSFormatter())
    root = logging.getLogger(_ROOT)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def plugin_logger(plugin: str) -> logging.Logger:
    """Logger whose lines read `[LEVEL] plugin/<plugin>: …`."""
    return logging.getLogger(f"{_ROOT}.plugin/{plugin}")


def core_logger() -> logging.Logger:
    """Logger for the server itself: `[LEVEL] …` with no plugin prefix."""
    return logging.getLogger(_ROOT)
