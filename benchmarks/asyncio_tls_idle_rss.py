"""Server memory per idle TLS connection: bufkit's asyncio drop-in vs asyncio's ssl=.

Run from the repository root::

    python benchmarks/asyncio_tls_idle_rss.py --connections 2000

The same unmodified ``asyncio.Protocol`` echo is served four ways, each in
its own process: ``loop.create_server(ssl=)`` and
``bufkit.adapters.asyncio.create_server(ssl=)``, on the default loop and on
uvloop. The client, connection opening and RSS reading are those of
``benchmarks/tls_idle_rss.py``. Not a test: figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import cast

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from benchmarks import tls_idle_rss  # noqa: E402


class EchoProtocol(asyncio.Protocol):
    """An unmodified asyncio echo protocol."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass

    def data_received(self, data: bytes) -> None:
        """Send ``data`` back."""
        self.transport.write(data)


def _serve(name: str, folder: Path, port_file: Path) -> None:
    from bufkit.adapters.asyncio import create_server

    ctx = tls_idle_rss._server_context(folder)

    async def main() -> None:
        if name.startswith("bufkit"):
            bserver = await create_server(EchoProtocol, "127.0.0.1", 0, ssl=ctx)
            port = bserver.sockets[0].getsockname()[1]
        else:
            loop = asyncio.get_running_loop()
            aserver = await loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=ctx)
            port = aserver.sockets[0].getsockname()[1]
        port_file.write_text(str(port))
        await asyncio.Event().wait()

    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if "uvloop" in name:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


NAMES = ("asyncio-ssl", "bufkit-asyncio", "uvloop-ssl", "bufkit-uvloop")


def main() -> None:
    """Measure every server and print one line each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--serve")
    parser.add_argument("--folder")
    args = parser.parse_args()
    tls_idle_rss._raise_nofile()
    if args.serve:
        folder = Path(args.folder)
        _serve(args.serve, folder, folder / f"{args.serve}.port")
        return
    from tests._tls import self_signed

    for name in NAMES:
        tls_idle_rss.SERVERS[name] = functools.partial(_serve, name)
    tls_idle_rss.__file__ = __file__  # the servers run from this script
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        self_signed(folder)
        for name in NAMES:
            per = tls_idle_rss.measure(name, folder, args.connections)
            print(f"{name:>15}: {per:7.1f} KiB per idle TLS connection")


if __name__ == "__main__":
    main()
