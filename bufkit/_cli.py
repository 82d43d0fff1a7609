"""The ``bufkit`` command line: ``--version``, and the tools' subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bufkit._build import build
from bufkit._version import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``bufkit`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="bufkit",
        description="bufkit: readiness for reads, completion for writes.",
    )
    parser.add_argument(
        "--version", action="version", version=f"bufkit {__version__}, {build()} build"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_subcommands(subparsers)
    return parser


def _add_subcommands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Let each tool add its subcommand; each sets ``handler`` on its args."""
    from bufkit import _serve
    from bufkit.bench import _command as bench
    from bufkit.soak import _command as soak

    bench.add_parser(subparsers)
    _serve.add_parser(subparsers)
    soak.add_parser(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bufkit`` command with ``argv`` and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    status: int = handler(args)
    return status
