"""What the bench's processes agree on: the protocols and the control lines.

Every contender serves two protocols on two ephemeral ports of 127.0.0.1:

* **echo**: every byte received is sent back;
* **fanout**: every byte received is a request, answered with
  :data:`FANOUT_WRITES` separate writes of :data:`FANOUT_CHUNK` bytes each
  (the "handler makes many small writes" case).

Started with ``--tls CERT KEY``, a contender that speaks TLS also serves
**TLS echo** (echo over TLS) on a third port.

A server process prints one line ``READY {json}`` (its pid and ports) or
``SKIP reason`` on stdout, then answers control lines on stdin: ``stats``
gets ``STATS {json}`` back (see :class:`ServerStats`), ``quit`` or the end of
stdin ends the process at once. A load client prints ``RESULT {json}``.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from typing import Any, Final

import attrs

__all__ = [
    "BACKLOG",
    "FANOUT_CHUNK",
    "FANOUT_RESPONSE",
    "FANOUT_WRITES",
    "ContenderUnavailable",
    "Served",
    "ServerStats",
    "current_rss",
    "dump_line",
    "open_fds",
    "parse_line",
    "raise_nofile_limit",
    "snapshot",
]

FANOUT_WRITES: Final = 32
FANOUT_CHUNK: Final = 100
FANOUT_RESPONSE: Final = FANOUT_WRITES * FANOUT_CHUNK
BACKLOG: Final = 4096


class ContenderUnavailable(Exception):
    """Raised in a server process when its contender cannot run here."""


def _none() -> int | None:
    return None


@attrs.frozen
class Served:
    """A contender's servers, listening, and how to run and inspect them."""

    echo_port: int
    fanout_port: int
    run_forever: Callable[[], object]
    pool_bytes: Callable[[], int | None] = _none
    buffer_bytes: Callable[[], int | None] = _none
    tls_port: int | None = None  #: TLS echo, when asked for and offered
    tls_note: str | None = None  #: why there is no TLS echo


@attrs.frozen
class ServerStats:
    """A server's answer to ``stats``: a snapshot of its process."""

    t: float  #: time.monotonic() when taken
    cpu: float  #: process CPU seconds (user + system, all threads)
    rss: int  #: resident set size in bytes
    fds: int  #: open file descriptors
    pool_bytes: int | None  #: bufkit pool bytes in use (None: no pool)
    buffer_bytes: int | None  #: read-buffer bytes held for connections

    def to_json(self) -> dict[str, Any]:
        """Return the snapshot as a JSON-ready dict."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerStats:
        """Build a snapshot from :meth:`to_json`'s output."""
        return cls(**data)


def dump_line(tag: str, payload: object) -> str:
    """Return the control line ``TAG {json}``."""
    return f"{tag} {json.dumps(payload, separators=(',', ':'))}\n"


def parse_line(line: str) -> tuple[str, str]:
    """Split a control line into its tag and the rest."""
    tag, _, rest = line.strip().partition(" ")
    return tag, rest


def current_rss() -> int:
    """Return this process's resident set size in bytes."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        rss: int = psutil.Process().memory_info().rss
        return rss


def open_fds() -> int:
    """Return how many file descriptors this process has open."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        import psutil

        count: int = psutil.Process().num_fds()
        return count


def snapshot(pool_bytes: int | None, buffer_bytes: int | None) -> ServerStats:
    """Take a :class:`ServerStats` of the calling process."""
    return ServerStats(
        t=time.monotonic(),
        cpu=time.process_time(),
        rss=current_rss(),
        fds=open_fds(),
        pool_bytes=pool_bytes,
        buffer_bytes=buffer_bytes,
    )


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft in (infinite, hard):
        return soft
    new = hard if hard != infinite else max(soft, 1 << 20)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new
