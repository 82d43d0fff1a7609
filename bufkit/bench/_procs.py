"""The bench's child processes, and the guarantee that none outlives it.

Every child (contender servers, load clients, ``strace``) is started in a
session of its own, so a Ctrl-C in the terminal reaches only the bench, which
then ends its children itself; every child is recorded in a
:class:`Children` registry that ends them all (``quit`` on the control line,
then ``SIGTERM`` and ``SIGKILL`` to the process group) from a ``finally``
block and from :mod:`atexit`. A server also ends by itself when its stdin
closes, which covers a bench killed with ``SIGKILL``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import IO, Any, Final

__all__ = ["BenchError", "Child", "Children", "cpu_seconds", "open_fds"]

_TERM_GRACE: Final = 2.0
#: The Linux clock id of a process's CPU clock is built from its pid (the
#: kernel's MAKE_PROCESS_CPUCLOCK with CPUCLOCK_SCHED): user + system time in
#: nanoseconds, where ``/proc/PID/stat`` counts in 10 ms ticks.
_CPUCLOCK_SCHED: Final = 2


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds of process ``pid`` (all threads).

    Read from the process's CPU clock where Linux offers it (nanoseconds),
    else from ``/proc/PID/stat`` (clock ticks), else from psutil.

    Raises:
        BenchError: there is no process ``pid``.
    """
    try:
        return time.clock_gettime((~pid << 3) | _CPUCLOCK_SCHED)
    except (OSError, OverflowError, AttributeError):
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except FileNotFoundError as exc:
        raise BenchError(f"process {pid} is gone") from exc
    except OSError:
        return _psutil_cpu(pid)


def _psutil_cpu(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error as exc:
        raise BenchError(f"process {pid} is gone ({exc})") from exc
    return float(times.user + times.system)


def open_fds(pid: int) -> int | None:
    """Return how many descriptors process ``pid`` has open (None: unknown)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class BenchError(Exception):
    """A child misbehaved: it crashed, timed out or reported an error."""


class Child:
    """One child process with line-based control over its stdin and stdout."""

    def __init__(self, argv: Sequence[str], *, name: str) -> None:
        self.name = name
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._buffer = b""
        self._lines: list[str] = []

    @property
    def pid(self) -> int:
        """The child's process id (and process group id)."""
        return self.proc.pid

    def alive(self) -> bool:
        """Return whether the child still runs."""
        return self.proc.poll() is None

    def send(self, line: str) -> None:
        """Write one control line to the child's stdin."""
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            raise BenchError(f"{self.name}: control line is closed")
        try:
            stdin.write(f"{line}\n".encode())
            stdin.flush()
        except OSError as exc:
            raise BenchError(
                f"{self.name} is gone ({exc}){self.stderr_tail()}"
            ) from exc

    def expect(self, *tags: str, timeout: float) -> tuple[str, Any]:
        """Wait for the next line tagged with one of ``tags``; return (tag, payload).

        Raises:
            BenchError: the child exited, timed out or printed ``ERROR``.
        """
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            tag, _, rest = line.partition(" ")
            if tag in tags:
                payload = json.loads(rest) if rest.startswith(("{", "[")) else rest
                return tag, payload
            if tag in ("ERROR", "SKIP"):
                raise BenchError(f"{self.name}: {tag} {rest}")

    def request(self, line: str, tag: str, *, timeout: float = 10.0) -> Any:
        """Send ``line`` and return the payload of the reply tagged ``tag``."""
        self.send(line)
        return self.expect(tag, timeout=timeout)[1]

    def _next_line(self, deadline: float) -> str:
        stdout = self.proc.stdout
        assert stdout is not None
        while not self._lines:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name} timed out{self.stderr_tail()}")
            ready, _, _ = select.select([stdout], [], [], min(left, 0.5))
            if not ready:
                continue
            data = os.read(stdout.fileno(), 65536)
            if not data:
                self.proc.wait(timeout=5)
                status = self.proc.returncode
                raise BenchError(f"{self.name} exited ({status}){self.stderr_tail()}")
            parts = (self._buffer + data).split(b"\n")
            self._buffer = parts.pop()
            self._lines.extend(part.decode(errors="replace") for part in parts)
        return self._lines.pop(0)

    def stderr_tail(self, limit: int = 400) -> str:
        """Return the end of the child's stderr, for error messages."""
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        lines = [line for line in text.splitlines() if line.strip()]
        return f": {' | '.join(lines[-3:])[-limit:]}" if lines else ""

    def end(self, *, quit_line: str | None = "quit") -> None:
        """End the child: polite line, close stdin, SIGTERM, SIGKILL; reap it."""
        if self.alive() and quit_line is not None:
            with contextlib.suppress(BenchError):
                self.send(quit_line)
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        for sig, wait in ((None, _TERM_GRACE), (signal.SIGTERM, _TERM_GRACE)):
            if sig is not None:
                self._signal_group(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
                break
        else:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        self._signal_group(signal.SIGKILL)  # leftovers of the group, if any
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


class Children:
    """Every child the bench started; :meth:`end_all` ends what is left."""

    def __init__(self) -> None:
        self._children: list[Child] = []
        atexit.register(self.end_all)

    def start(self, argv: Sequence[str], *, name: str) -> Child:
        """Start and record a child."""
        child = Child(argv, name=name)
        self._children.append(child)
        return child

    def start_python(self, module: str, *args: str, name: str) -> Child:
        """Start ``python -m module args...`` with this interpreter."""
        return self.start([sys.executable, "-m", module, *args], name=name)

    def end(self, child: Child, *, quit_line: str | None = "quit") -> None:
        """End one child and forget it."""
        child.end(quit_line=quit_line)
        if child in self._children:
            self._children.remove(child)

    def end_all(self) -> None:
        """End every child still recorded (idempotent)."""
        while self._children:
            self.end(self._children[-1])
        atexit.unregister(self.end_all)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.end_all()
