"""What the soak reads about a server from ``/proc``: its processes, memory, fds, CPU.

Theory of operation: a server is a process tree (a ``--workers`` supervisor and
its workers). Each figure is the sum over the tree as it is when read, so a
leak in any worker shows. Linux only: elsewhere every figure is ``None`` and
the checks that need it are skipped (and say so).
"""

from __future__ import annotations

import os
import time
from typing import Final

import attrs

__all__ = [
    "Sample",
    "available",
    "cpu_seconds",
    "group",
    "idle_cpu",
    "sample",
    "tree",
]

_PROC: Final = "/proc"


def available() -> bool:
    """Whether ``/proc`` describes processes here."""
    return os.path.isdir(f"{_PROC}/self/fd")


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state first)."""
    try:
        with open(f"{_PROC}/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree(root: int) -> list[int]:
    """Pids of ``root`` and its live descendants (zombies excluded)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir(_PROC):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root] if _stat(root) is not None else []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def _rss(pid: int) -> int:
    try:
        with open(f"{_PROC}/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"{_PROC}/{pid}/fd"))
    except OSError:
        return 0


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds used so far by ``pids``."""
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@attrs.frozen
class Sample:
    """A server tree's processes, resident memory and open descriptors."""

    processes: int
    rss: int
    fds: int


def sample(root: int) -> Sample:
    """Read the tree of ``root`` now."""
    pids = tree(root)
    return Sample(
        processes=len(pids),
        rss=sum(_rss(pid) for pid in pids),
        fds=sum(_fds(pid) for pid in pids),
    )


def idle_cpu(root: int, seconds: float = 1.0) -> float:
    """CPU seconds per second the tree of ``root`` used over ``seconds``."""
    pids = tree(root)
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return (cpu_seconds(pids) - before) / seconds


def group(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir(_PROC):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                found.append(int(entry))
    return found
