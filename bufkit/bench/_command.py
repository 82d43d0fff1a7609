"""``bufkit bench``: the subcommand, its options and its progress display."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bufkit.bench._config import SCENARIOS, BenchConfig

__all__ = ["add_parser", "run_command", "tls_idle_servers"]

_EPILOG = """\
Each contender is a server in its own process; a load client runs in another.
The echo scenario also runs TLS cells (1 and 64 connections x 64 B, 16 KiB,
64 KiB over TLS): by default with the contenders of the TLS targets alone
(asyncio ssl=, uvloop ssl=, bufkit-selectors, bufkit-stream-uvloop), with
--full or --contender with every named contender that speaks TLS (the asyncio
drop-in bufkit-asyncio, both Twisted TLS stacks and the other bufkit streams).
The idle scenario ends with TLS rows (300 idle TLS connections per server:
asyncio, uvloop, Twisted's own TLS, bufkit-selectors, bufkit-twisted and the
raw ssl.SSLSocket floor; --contender keeps the named ones and the floor).
Throughput cells run in interleaved rounds and report the median and range of
the server's CPU per message; targets whose rounds disagree by more than their
margin are "unsettled". Contenders whose module, optional dependency or C
compiler is missing are skipped with a reason. Install everything with:
pip install 'bufkit[bench]'.
"""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to the ``bufkit`` command."""
    parser = subparsers.add_parser(
        "bench",
        help="run the side-by-side benchmark suite (quick by default)",
        description="Measure bufkit against asyncio, uvloop, Twisted and a C epoll "
        "server, side by side.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="1k and 10k idle, 3 fanout cells, longer windows, 5 rounds, every "
        "TLS contender in the TLS echo cells",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every scenario in seconds with 2 connections: checks the setup, "
        "its figures mean nothing",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        metavar="SCENARIO",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--contender",
        action="append",
        metavar="NAME",
        help="run only this contender (repeatable; default: all); the TLS echo "
        "cells then measure every named contender that speaks TLS",
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument(
        "--plot", metavar="FILE.png", help="draw the figures (matplotlib: .png, .svg)"
    )
    parser.add_argument(
        "--markdown", metavar="FILE", help="write the tables as Markdown"
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="measuring window of each round of a throughput cell",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="interleaved rounds per throughput cell (default 3, with --full 5)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        action="append",
        metavar="N",
        help="idle connection count (repeatable; default 1000, with --full 1000 10000)",
    )
    parser.add_argument(
        "--no-strace", action="store_true", help="do not count syscalls with strace"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the contenders and whether they run"
    )
    parser.set_defaults(handler=run_command)
    return parser


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Return the run's configuration from the parsed options."""
    import attrs

    if args.smoke:
        config = BenchConfig.smoke()
    else:
        config = BenchConfig.full() if args.full else BenchConfig.quick()
    changes: dict[str, Any] = {}
    if args.only:
        changes["scenarios"] = tuple(s for s in SCENARIOS if s in args.only)
    if args.contender:
        changes["contenders"] = tuple(args.contender)
        changes["tls_contenders"] = None
    if args.duration is not None:
        changes["duration"] = args.duration
    if args.rounds is not None:
        changes["rounds"] = max(1, args.rounds)
    if args.connections:
        changes["idle_connections"] = tuple(args.connections)
    if args.no_strace:
        changes["strace"] = False
    return attrs.evolve(config, **changes)


def _list_contenders() -> int:
    from bufkit.bench import _contenders

    for contender in _contenders.CONTENDERS:
        reason = _contenders.skip_reason(contender)
        status = "ready" if reason is None else f"skipped: {reason}"
        print(f"{contender.name:22} {contender.label:38} {status}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run ``bufkit bench`` with parsed ``args``; return the exit status."""
    if args.list:
        return _list_contenders()
    try:
        from rich.console import Console
    except ImportError:
        print(
            "bufkit bench needs the bench extra: pip install 'bufkit[bench]'",
            file=sys.stderr,
        )
        return 2
    from bufkit.bench import _contenders

    known = {c.name for c in _contenders.CONTENDERS}
    unknown = sorted(set(args.contender or ()) - known)
    if unknown:
        print(
            f"unknown contender {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}",
            file=sys.stderr,
        )
        return 2
    config = config_from_args(args)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    try:
        report = execute(config, console)
    except KeyboardInterrupt:
        console.print("[red]interrupted: every server and client was ended[/red]")
        return 130
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
        console.print(f"figures written to {args.json}")
    if args.markdown:
        from bufkit.bench._markdown import to_markdown

        command = (
            " ".join(["bufkit", *sys.argv[1:]]) if sys.argv[1:] else "bufkit bench"
        )
        with open(args.markdown, "w", encoding="utf-8") as file:
            file.write(to_markdown(report, command))
        console.print(f"tables written to {args.markdown}")
    if args.plot:
        from bufkit.bench._plot import plot

        plot(report, args.plot)
        console.print(f"plot written to {args.plot}")
    return 0


def execute(config: BenchConfig, console: Any) -> dict[str, Any]:
    """Run the bench with a progress display on ``console``; print the tables."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    from bufkit.bench._report import render
    from bufkit.bench._runner import run
    from bufkit.bench._targets import evaluate
    from bufkit.bench._tls_idle import CONNECTIONS

    columns = (
        TextColumn("[bold]{task.fields[scenario]:>7}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with RichProgress(*columns, console=console, transient=False) as bars:
        tasks: dict[str, Any] = {}

        def progress(scenario: str, description: str, done: int, total: int) -> None:
            if scenario not in tasks:
                tasks[scenario] = bars.add_task(
                    description, total=total, scenario=scenario
                )
            bars.update(
                tasks[scenario], description=description, completed=done, total=total
            )

        report = run(config, progress)
    report["targets"] = evaluate(report["scenarios"])
    render(report, console)
    if "idle" in config.scenarios:
        count = min(max(config.idle_connections), CONNECTIONS)
        report["tls_idle"] = _tls_idle(console, count, config.contenders)
    return report


def tls_idle_servers(contenders: tuple[str, ...] | None) -> tuple[str, ...]:
    """The TLS idle servers for ``--contender`` names (the floor always runs)."""
    from bufkit.bench._tls_idle import EXTRA_SERVERS, FLOOR, SERVERS

    if contenders is None:
        return SERVERS
    return tuple(
        name for name in SERVERS + EXTRA_SERVERS if name == FLOOR or name in contenders
    )


def _tls_idle(
    console: Any, count: int, contenders: tuple[str, ...] | None
) -> dict[str, Any]:
    """Measure and print the idle scenario's TLS rows and their targets."""
    from bufkit.bench._tls_idle import tls_idle_rows, verdicts

    console.print(f"TLS idle: {count} connections per server ...")
    rows = tls_idle_rows(count, tls_idle_servers(contenders))
    for row in rows:
        if "skipped" in row:
            console.print(f"  {row['server']:18} skipped: {row['skipped']}")
        else:
            pool = row["pool_bytes_idle"]
            console.print(
                f"  {row['server']:18} {row['rss_per_conn'] / 1024:8.1f} KiB RSS "
                f"per idle TLS connection, pool bytes idle "
                f"{'n/a' if pool is None else pool}"
            )
    found = verdicts(rows)
    for line in found:
        console.print(f"  target {line}")
    return {"connections": count, "rows": rows, "verdicts": found}
