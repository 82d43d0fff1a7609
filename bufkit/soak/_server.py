"""A server under soak: a subprocess, its listening lines and its statistics.

Theory of operation: the server runs in a session of its own (so its workers
can be found and ended as one process group) with stdout read by a thread
into a list, so the soak never blocks on a quiet server. ``stats()`` sends
SIGUSR1 and waits for one statistics line per worker, then sums them. The
server is always ended: :meth:`ServerProcess.close` sends SIGKILL to the
group if it still runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO, Final

import attrs

__all__ = ["ServerError", "ServerProcess", "Stats"]

_LISTENING: Final = re.compile(r"pid (\d+) listening on (.+):(\d+)$")
_STATS: Final = re.compile(r"pid (\d+) (connections=.*)$")
_FIELD: Final = re.compile(r"(\w+)=(-?\d+)")


class ServerError(Exception):
    """The server did not start, report or stop as it should."""


@attrs.frozen
class Stats:
    """A server's statistics, summed over its workers."""

    connections: int
    queued_bytes: int
    pool_bytes_in_use: int


class ServerProcess:
    """One server subprocess that prints ``bufkit serve``'s lines.

    Args:
        argv: The command line.
        workers: How many "listening" lines (and statistics lines) to expect.
    """

    def __init__(self, argv: Sequence[str], *, workers: int = 1) -> None:
        self.workers = workers
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0

    @property
    def pid(self) -> int:
        """The server's (or supervisor's) pid, also its process group."""
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait_lines(
        self, pattern: re.Pattern[str], start: int, count: int, timeout: float
    ) -> list[re.Match[str]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for ln in self.lines[start:] if (m := pattern.search(ln))]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (
                    self.proc.poll() is not None and not self._reader.is_alive()
                ):
                    raise ServerError(
                        f"expected {count} line(s) like {pattern.pattern!r}; "
                        f"got {self.lines[start:][-5:]}; stderr: {self.stderr()[-500:]}"
                    )
                self._cond.wait(min(left, 0.1))

    def wait_listening(self, timeout: float = 20) -> int:
        """Wait for every worker's "listening" line; return the port."""
        found = self._wait_lines(_LISTENING, 0, self.workers, timeout)
        ports = {int(m.group(3)) for m in found}
        if len(ports) != 1:
            raise ServerError(f"workers listen on several ports: {sorted(ports)}")
        self.port = ports.pop()
        return self.port

    def stats(self, timeout: float = 10) -> Stats | None:
        """Ask for statistics (SIGUSR1); ``None`` where the platform has none."""
        if not hasattr(signal, "SIGUSR1"):
            return None
        with self._cond:
            start = len(self.lines)
        self.proc.send_signal(signal.SIGUSR1)
        found = self._wait_lines(_STATS, start, self.workers, timeout)
        latest = {m.group(1): dict(_FIELD.findall(m.group(2))) for m in found}
        return Stats(
            connections=sum(int(f["connections"]) for f in latest.values()),
            queued_bytes=sum(int(f["queued_bytes"]) for f in latest.values()),
            pool_bytes_in_use=sum(int(f["pool_bytes_in_use"]) for f in latest.values()),
        )

    def stop(self, sig: int, timeout: float = 10) -> int | None:
        """Send ``sig``; return the exit status, or ``None`` if it did not exit."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def alive(self) -> bool:
        """Whether the server process still runs."""
        return self.proc.poll() is None

    def stderr(self) -> str:
        """Everything the server wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def close(self) -> None:
        """End the server and its whole process group, whatever state it is in."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._reader.join(5)
        self._stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def target_argv(kind: str, *args: str, nofile: int | None = None) -> list[str]:
    """The command line that runs a soak target (see ``bufkit.soak._target``)."""
    argv = [sys.executable, "-m", "bufkit.soak._target"]
    if nofile is not None:
        argv += ["--nofile", str(nofile)]
    return [*argv, kind, *args]
