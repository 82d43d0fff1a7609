"""Server memory per idle TLS connection: bufkit's asyncio drop-in vs asyncio's ssl=.

Run from the repository root::

    python benchmarks/asyncio_tls_idle_rss.py --connections 2000

The same unmodified ``asyncio.Protocol`` echo is served four ways, each in
its own process: ``loop.create_server(ssl=)`` and
``bufkit.adapters.asyncio.create_server(ssl=)``, on the default loop and on
uvloop. The servers, the client and the RSS reading are those of
``benchmarks/tls_idle_rss.py`` (the idle scenario's TLS rows of ``bufkit
bench``). Not a test: figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from benchmarks import tls_idle_rss  # noqa: E402
from bufkit.bench._tls_idle import tls_idle_rows  # noqa: E402

#: (bufkit's drop-in, the loop's own ssl= it replaces)
PAIRS = (("bufkit-asyncio", "asyncio"), ("bufkit-asyncio-uvloop", "uvloop"))
NAMES = tuple(name for pair in PAIRS for name in reversed(pair))


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every server, print one line each and the drop-in's ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    args = parser.parse_args(argv)
    rows = tls_idle_rows(args.connections, NAMES)
    tls_idle_rss.print_rows(rows)
    per = {r["server"]: r["rss_per_conn"] for r in rows if "rss_per_conn" in r}
    for ours, theirs in PAIRS:
        if ours in per and theirs in per:
            print(f"{ours} / {theirs} ssl=: {per[ours] / per[theirs]:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
