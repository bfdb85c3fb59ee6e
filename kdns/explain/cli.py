"""`kdns explain NAME [TYPE] [-n NAMESPACE] [--json] [--server URL | -conf FILE]`.

Asks a running kdns (its `explain` directive, http://127.0.0.1:8053 by default: the address it
takes inside its own Pod, as with `kubectl exec`), or builds the configuration of `-conf FILE`
here, syncing the cluster itself through the API or from `manifests` (kdns.explain.offline).
Exit status: 0 the name has an answer, 1 it has none (NXDOMAIN, NODATA, a failure), 2 the
question could not be explained (bad arguments, no server, a bad Corefile).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from kdns.corefile import CorefileError
from kdns.explain.core import ExplainError, explain, parse_qtype
from kdns.explain.text import render
from kdns.log import setup_logging
from kdns.plugins.explain import DEFAULT_ADDRESS, PATH

DEFAULT_SERVER = f"http://{DEFAULT_ADDRESS}"
# Each name asked may wait for forward's 5 s deadline, and a short name is up to four names.
HTTP_TIMEOUT = 60.0
ANSWERED, UNANSWERED, FAILED = 0, 1, 2


class _Failed(Exception):
    """Nothing to explain; the message says why (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kdns explain",
        description="Explain the answer to a DNS name: the reply, and why (docs/debugging.md).",
        allow_abbrev=False,
    )
    p.add_argument("name", help="the name, e.g. web.default.svc.cluster.local, or web with -n")
    p.add_argument("type", nargs="?", default="A", help="query type (default A)")
    p.add_argument("-n", "--namespace", help="ask as a Pod in NAMESPACE does: through its search path")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--server", metavar="URL", help=f"a running kdns's `explain` ({DEFAULT_SERVER})")
    source.add_argument(
        "-conf", "--conf", metavar="FILE", help="build the answer here from this Corefile, no server needed"
    )
    p.add_argument(
        "-dns.port", "--dns.port", dest="port", type=int, default=53, metavar="N",
        help="with -conf: the port of server blocks without one (53)",
    )  # fmt: skip
    return p


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        parse_qtype(args.type)  # a bad type is a usage error, before any server is asked
        data = _offline(args) if args.conf else _online(args)
    except (ExplainError, _Failed) as e:
        print(f"kdns explain: {e}", file=sys.stderr)
        return FAILED
    try:
        print(json.dumps(data, indent=2) if args.json else render(data), end="\n" if args.json else "")
        sys.stdout.flush()
    except BrokenPipeError:  # `kdns explain … | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return ANSWERED if data["answered_by"] else UNANSWERED


def _online(args: argparse.Namespace) -> dict[str, Any]:
    base = args.server or DEFAULT_SERVER
    if "://" not in base:
        base = "http://" + base
    url = base.rstrip("/") + ("" if base.rstrip("/").endswith(PATH) else PATH)
    params = {"name": args.name, "type": args.type}
    if args.namespace:
        params["namespace"] = args.namespace
    try:
        with urllib.request.urlopen(f"{url}?{urllib.parse.urlencode(params)}", timeout=HTTP_TIMEOUT) as r:
            data: dict[str, Any] = json.load(r)
            return data
    except urllib.error.HTTPError as e:
        raise _Failed(f"{url}: {_error_of(e)}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _Failed(
            f"cannot reach {url} ({reason}): is the `explain` directive in the Corefile? Or explain "
            "without a server: -conf FILE (it syncs the cluster itself; not inside the DNS Pod)"
        ) from None


def _error_of(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.load(e)["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {e.code} {e.reason}"


def _offline(args: argparse.Namespace) -> dict[str, Any]:
    from kdns.cli import load_corefile  # the server's entry point imports this module's caller
    from kdns.explain.offline import OfflineServer

    setup_logging(logging.WARNING)  # the plugins' own lines (query logs…) would drown the answer
    try:
        server = OfflineServer(load_corefile(args.conf, args.port), args.conf, args.port)
    except CorefileError as e:
        raise _Failed(str(e)) from None

    async def run() -> dict[str, Any]:
        try:
            await server.start()
            found = await explain(server, args.name, parse_qtype(args.type), args.namespace)
        except OSError as e:  # a zone file or manifest that cannot be read, an API that cannot be reached
            raise _Failed(str(e)) from None
        finally:
            await server.stop()
        return dataclasses.asdict(found)

    return asyncio.run(run())
