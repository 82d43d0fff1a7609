"""Server memory per idle TLS connection: a command line over ``bufkit bench``.

Run from the repository root::

    python benchmarks/tls_idle_rss.py --connections 1000
    python benchmarks/tls_idle_rss.py --connections 1000 --server bufkit-selectors

The servers, the client and the RSS reading are those of the idle
scenario's TLS rows (``bufkit bench --only idle``, module
``bufkit.bench._tls_idle``): each server runs in its own process; this
process opens the connections, completes each handshake and echoes one
message, waits until the server is idle and reads its resident set size from
``/proc``. The figure is (RSS with the idle connections - RSS before any) per
connection. The raw ``ssl.SSLSocket`` floor always runs, so the targets can
be judged. Not a test: figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bufkit.bench._tls_idle import (  # noqa: E402
    EXTRA_SERVERS,
    FLOOR,
    SERVERS,
    tls_idle_rows,
    verdicts,
)


def print_rows(rows: list[dict[str, Any]]) -> None:
    """Print one line per server: KiB per idle TLS connection, or why skipped."""
    print(f"Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}")
    for row in rows:
        if "skipped" in row:
            print(f"{row['server']:>22}: skipped ({row['skipped']})")
            continue
        pool = row["pool_bytes_idle"]
        print(
            f"{row['server']:>22}: {row['rss_per_conn'] / 1024:7.1f} KiB per idle "
            f"TLS connection ({row['connections']} connections"
            f"{'' if pool is None else f', pool bytes idle {pool}'})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the servers and print one line each, then the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument(
        "--server",
        action="append",
        choices=SERVERS + EXTRA_SERVERS,
        help="measure only this server (repeatable; the floor always runs)",
    )
    args = parser.parse_args(argv)
    servers: tuple[str, ...] = SERVERS
    if args.server:
        wanted = set(args.server) | {FLOOR}
        servers = tuple(s for s in SERVERS + EXTRA_SERVERS if s in wanted)
    rows = tls_idle_rows(args.connections, servers)
    print_rows(rows)
    for line in verdicts(rows):
        print(f"target {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
