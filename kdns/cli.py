"""Command line in CoreDNS's shape (Go-style single-dash flags), start-up and signals.

kubeadm's Deployment passes `-conf /etc/coredns/Corefile` as args, so these flags are the contract.
One subcommand beside them, `kdns explain …` (kdns/explain/cli.py); any other bare word is an error.
Signals as CoreDNS (docs/dns-contract.md §19): TERM/INT graceful (a second INT forces), QUIT
immediate, USR1 reload, HUP ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from kdns import __version__
from kdns import plugins as registry
from kdns.corefile import Corefile, CorefileError, parse_corefile, parse_file
from kdns.log import core_logger, setup_logging
from kdns.plan import build_plan
from kdns.server.runtime import Runtime, banner

DEFAULT_COREFILE = "Corefile"
# CoreDNS's built-in configuration when no Corefile exists: answer with the client's address.
_FALLBACK_COREFILE = ".:{port} {{\n    whoami\n    log\n}}\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kdns", description="Cluster DNS for Kubernetes (CoreDNS-compatible CLI)", allow_abbrev=False
    )
    p.add_argument(
        "-conf",
        "--conf",
        default=DEFAULT_COREFILE,
        metavar="FILE",
        help="Corefile to load ('stdin' reads standard input); default ./Corefile",
    )
    p.add_argument(
        "-dns.port",
        "--dns.port",
        "-p",
        dest="port",
        type=int,
        default=53,
        metavar="N",
        help="default port for server blocks without one (53)",
    )
    p.add_argument("-quiet", "--quiet", action="store_true", help="no start-up banner")
    p.add_argument("-pidfile", "--pidfile", default="", metavar="FILE", help="write the process ID here")
    p.add_argument(
        "-plugins", "--plugins", action="store_true", help="list plugins in execution order and exit"
    )
    p.add_argument("-version", "--version", action="store_true", help="print the version and exit")
    p.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    return p


def load_corefile(path: str, port: int) -> Corefile:
    if path == "stdin":
        return parse_corefile(sys.stdin.read(), "stdin")
    if path == DEFAULT_COREFILE and not os.path.exists(path):
        return parse_corefile(_FALLBACK_COREFILE.format(port=port), "<built-in>")
    return parse_file(path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["explain"]:  # the one subcommand; CoreDNS's flags never take a bare word first
        from kdns.explain.cli import main as explain

        return explain(argv[1:])
    args = _parser().parse_args(argv)
    setup_logging()
    log = core_logger()
    if args.extra:
        log.error("extra command line arguments: %s", args.extra)
        return 2
    if args.version:
        print(f"kdns-{__version__}\n{sys.platform}, python{sys.version.split()[0]}")
        return 0
    if args.plugins:
        print("Server types:\n  dns\n\nPlugins (execution order):")
        print("\n".join(f"  {name}" for name in registry.implemented_in_order()))
        return 0
    try:
        corefile = load_corefile(args.conf, args.port)
    except CorefileError as e:
        log.error("%s", e)
        return 1
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    _raise_open_file_limit()
    runner: Callable[[Coroutine[Any, Any, int]], int]
    try:
        import uvloop  # optional: the `fast` extra

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    return int(runner(_serve(corefile, args.conf, args.port, args.quiet)))


def _raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one, as Go does at start-up for CoreDNS: each
    TCP client holds a descriptor, and a soft limit of 1024 would refuse connections (EMFILE) before
    the server's own connection cap could replace idle ones."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(corefile: Corefile, path: str, port: int, quiet: bool) -> int:
    log = core_logger()
    runtime = Runtime(path, build_plan, port)
    _install_signal_handlers(runtime)  # before start-up: a SIGTERM while syncing must not kill outright
    try:
        await runtime.start(corefile)
    except CorefileError as e:
        log.error("%s", e)
        await runtime.shutdown()
        return 1
    except OSError as e:
        log.error("listen: %s", e)
        await runtime.shutdown()
        return 1
    if not quiet:
        print(banner(corefile, port, __version__), flush=True)
    await runtime.stopped.wait()
    await runtime.shutdown()
    return runtime.exit_code


def _install_signal_handlers(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            os._exit(1)
        runtime.stopped.set()

    loop.add_signal_handler(signal.SIGTERM, runtime.stopped.set)
    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    loop.add_signal_handler(signal.SIGQUIT, lambda: os._exit(1))
    loop.add_signal_handler(signal.SIGUSR1, runtime.request_reload)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
