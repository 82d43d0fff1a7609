"""The side-by-side benchmark suite behind ``bufkit bench``.

Each contender (bufkit on its own loop and on asyncio, the peers users
would pick instead: plain asyncio, a 64 KiB-per-connection
:class:`asyncio.BufferedProtocol`, uvloop and Twisted, and a small C epoll
server as the machine's limit) runs as a server in a process of its own; an
efficient load client runs in another. Throughput is judged on the server's
CPU per message, over interleaved rounds. Nothing here is
imported by ``import bufkit``: the suite needs the ``bench`` extra
(``pip install 'bufkit[bench]'``).
"""

from __future__ import annotations

__all__: list[str] = []
