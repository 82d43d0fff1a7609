"""A contender's server process: ``python -m bufkit.bench._server NAME``.

It listens on two ephemeral ports of 127.0.0.1 (echo and fanout, see
:mod:`bufkit.bench._wire`), a third for TLS echo with ``--tls CERT KEY``,
prints ``READY {"pid", "echo", "fanout", "tls", "tls_note"}`` (or
``SKIP reason`` and exits 3), and then runs the contender's loop in the main
thread while a daemon thread answers control lines on stdin. The control
thread ends the process with ``os._exit`` on ``quit`` or when stdin closes, so
a server never outlives the bench that started it, however that bench ended.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Final

from bufkit.bench._certs import CertFiles
from bufkit.bench._wire import (
    ContenderUnavailable,
    Served,
    dump_line,
    raise_nofile_limit,
    snapshot,
)

__all__ = ["main", "start"]

SKIP_STATUS: Final = 3


def _peer(name: str) -> Callable[[str, CertFiles | None], Served]:
    from bufkit.bench import _peers

    if name == "twisted":
        return _peers.serve_twisted
    uvloop = name == "uvloop"
    buffered = name == "asyncio-buffered"
    return lambda host, tls: _peers.serve_asyncio(
        host, use_uvloop=uvloop, buffered=buffered, tls=tls
    )


def start(name: str, host: str, tls: CertFiles | None = None) -> Served:
    """Start contender ``name``'s servers on ``host``; they listen on return.

    With ``tls``, a contender that speaks TLS also serves TLS echo.

    Raises:
        ContenderUnavailable: the contender cannot run here (with the reason).
    """
    if name in ("asyncio", "asyncio-buffered", "uvloop", "twisted"):
        return _peer(name)(host, tls)
    from bufkit.bench import _ours

    return _ours.serve(name, host, tls)


def _control(served: Served) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            stats = snapshot(served.pool_bytes(), served.buffer_bytes())
            os.write(1, dump_line("STATS", stats.to_json()).encode())
        elif command == "quit":
            break
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one contender's server until told to quit; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bufkit.bench._server")
    parser.add_argument("contender")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args(argv)
    raise_nofile_limit()
    tls = None if args.tls is None else CertFiles(*args.tls)
    try:
        served = start(args.contender, args.host, tls)
    except (ContenderUnavailable, ImportError) as exc:
        os.write(1, f"SKIP {exc}\n".encode())
        return SKIP_STATUS
    ready = {
        "pid": os.getpid(),
        "echo": served.echo_port,
        "fanout": served.fanout_port,
        "tls": served.tls_port,
        "tls_note": served.tls_note,
    }
    os.write(1, dump_line("READY", ready).encode())
    threading.Thread(target=_control, args=(served,), daemon=True).start()
    served.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
