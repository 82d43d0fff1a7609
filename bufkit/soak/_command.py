"""``bufkit soak`` and ``python -m bufkit.soak``: choose targets and a profile, run.

Theory of operation: each target is a server command line (see
``bufkit.soak._target``); the soak runs the scenarios of
``bufkit.soak._scenarios`` against each target in turn, prints one line per
scenario as it ends, then a summary, and exits 1 if any scenario found a
problem (2 for a usage error). Everything runs on 127.0.0.1 and ends by itself.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Final

from bufkit.soak import _tls
from bufkit.soak._scenarios import PROFILES, Result, Soak, Target
from bufkit.soak._server import target_argv

__all__ = ["TARGETS", "add_parser", "main", "run"]


def _serve(
    protocol: str, workers: int, *, tls: bool = False
) -> Callable[[int | None], list[str]]:
    extra = ["--workers", str(workers)] if workers > 1 else []

    def argv(nofile: int | None) -> list[str]:
        args = [protocol, "--port", "0", "-q", *extra]
        cert = _tls.certificate() if tls else None
        if cert is not None:
            args += ["--tls-cert", str(cert.cert), "--tls-key", str(cert.key)]
            args += ["--tls-handshake-timeout", str(_tls.HANDSHAKE_TIMEOUT)]
        return target_argv("serve", *args, nofile=nofile)

    return argv


def _aio(mode: str) -> Callable[[int | None], list[str]]:
    def argv(nofile: int | None) -> list[str]:
        return target_argv(mode, nofile=nofile)

    return argv


_ASYNCIO_EMFILE: Final = (
    "asyncio's own listener (loop.create_server) retries accept after EMFILE "
    "up to `backlog` times per event, logging a traceback and scheduling a "
    "retry each time (seen on CPython 3.11)"
)


def _targets() -> dict[str, Target]:
    kinds = {"echo": "echo", "discard": "discard", "fanout": "fanout"}
    kinds["line-echo"] = "line"
    found: dict[str, Target] = {}
    for protocol, kind in kinds.items():
        name = f"serve-{protocol}"
        found[name] = Target(name, kind, _serve(protocol, 1))
        found[f"{name}-w2"] = Target(f"{name}-w2", kind, _serve(protocol, 2), 2)
    for workers, suffix in ((1, ""), (2, "-w2")):
        name = f"serve-echo-tls{suffix}"
        argv = _serve("echo", workers, tls=True)
        found[name] = Target(name, "echo", argv, workers, tls=True)
    found["aio-stream"] = Target("aio-stream", "echo", _aio("aio-stream"))
    found["aio-pooled"] = Target(
        "aio-pooled", "echo", _aio("aio-pooled"), known={"fd-flood": _ASYNCIO_EMFILE}
    )
    return found


TARGETS: Final = _targets()
"""Every server the soak knows, by name."""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add the ``soak`` subcommand to the ``bufkit`` command."""
    parser = subparsers.add_parser(
        "soak",
        help="run the soak and fault suite against the reference servers",
        description="Start each chosen server in a subprocess and run the soak "
        "scenarios against it on 127.0.0.1; exit 1 on any loss, leak, spin or "
        "unbounded growth.",
    )
    _arguments(parser)
    parser.set_defaults(handler=run)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        action="append",
        choices=[*TARGETS, "all"],
        help="a server to soak (repeat for several; default: all)",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="short")
    parser.add_argument("--seed", type=int, default=None, help="random seed")


def run(args: argparse.Namespace) -> int:
    """Soak the chosen targets; return 0 if every scenario held, else 1."""
    names = args.server or ["all"]
    targets = list(TARGETS.values()) if "all" in names else [TARGETS[n] for n in names]
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    profile = PROFILES[args.profile]
    _say(f"bufkit soak: profile {profile.name}, seed {seed}, {len(targets)} servers")
    started = time.monotonic()
    results: list[Result] = []
    for target in targets:
        soak = Soak(target, profile, random.Random(f"{seed}-{target.name}"), say=_say)
        results += soak.run()
    failed = [r for r in results if not r.ok]
    known = [r for r in results if r.ok and r.problems]
    took = time.monotonic() - started
    _say(
        f"bufkit soak: {len(results)} scenarios, {len(failed)} failed, "
        f"{len(known)} known, {took:.0f} s (seed {seed})"
    )
    return 1 if failed else 0


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bufkit.soak``: the same as ``bufkit soak``."""
    parser = argparse.ArgumentParser(
        prog="python -m bufkit.soak", description="bufkit's soak and fault suite"
    )
    _arguments(parser)
    return run(parser.parse_args(argv))
