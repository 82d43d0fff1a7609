"""One measurement of one contender: the idle, echo and fanout cells.

Each function drives a load client (:mod:`bufkit.bench._client`) against a
running contender server and reads the server's own figures over its
control line, and returns one result row (a JSON-ready dict). Rates are
computed from each side's own clock and CPU counters over its own window
(server CPU per second against client bytes per second), so the small skew
between the two windows does not bias them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Final

import attrs

from bufkit.bench._config import BenchConfig, echo_window
from bufkit.bench._procs import BenchError, Child, Children
from bufkit.bench._wire import FANOUT_RESPONSE, ServerStats

__all__ = ["Server", "fanout_cell", "echo_cell", "idle_cell", "parse_strace"]

_CLIENT: Final = "bufkit.bench._client"
SATURATED: Final = 0.85
SEND_CALLS: Final = frozenset(
    {"sendmsg", "sendto", "send", "write", "writev", "sendmmsg"}
)

Row = dict[str, Any]


@attrs.frozen
class Server:
    """A contender's server process, listening."""

    name: str
    child: Child
    echo_port: int
    fanout_port: int

    def stats(self) -> ServerStats:
        """Ask the server for a snapshot of its process."""
        return ServerStats.from_json(self.child.request("stats", "STATS"))


def _client(children: Children, job: dict[str, Any], name: str) -> Child:
    return children.start_python(_CLIENT, json.dumps(job), name=f"client for {name}")


def _warm_up(port: int) -> None:
    """One connection and one byte each way, so lazy setup is not counted."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"w")
        sock.recv(16)


def _wait_fds(
    server: Server, target: int, *, above: bool, timeout: float
) -> ServerStats:
    deadline = time.monotonic() + timeout
    while True:
        stats = server.stats()
        done = stats.fds >= target if above else stats.fds <= target
        if done or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def idle_cell(server: Server, children: Children, connections: int) -> Row:
    """Open ``connections`` idle connections; memory before and after 1 byte each."""
    _warm_up(server.echo_port)
    time.sleep(0.05)
    base = _wait_fds(server, 0, above=False, timeout=0.0)
    job = {"mode": "idle", "port": server.echo_port, "connections": connections}
    client = _client(children, job, server.name)
    try:
        client.expect("CONNECTED", timeout=60 + connections / 200)
        target = base.fds + connections
        idle = _wait_fds(server, target, above=True, timeout=30)
        if idle.fds < target:
            raise BenchError(
                f"{server.name} accepted {idle.fds - base.fds} connections"
            )
        client.request("roundtrip", "ROUNDTRIP", timeout=60 + connections / 100)
        after = server.stats()
    finally:
        children.end(client, quit_line="close")
    closed = _wait_fds(server, base.fds, above=False, timeout=3)
    return {
        "contender": server.name,
        "connections": connections,
        "rss_per_conn": (idle.rss - base.rss) / connections,
        "rss_per_conn_after_rt": (after.rss - base.rss) / connections,
        "pool_bytes_idle": idle.pool_bytes,
        "pool_bytes_after_rt": after.pool_bytes,
        "pool_bytes_closed": closed.pool_bytes,
        "fds_left_open": max(0, closed.fds - base.fds),
        "buffer_bytes_idle": idle.buffer_bytes,
        "buffer_bytes_after_rt": after.buffer_bytes,
    }


def _measure(
    server: Server, client: Child, config: BenchConfig
) -> tuple[float, float, float]:
    """Return (bytes/s, server CPU/s, client CPU/s) of the best sub-window.

    The window is cut into ``config.samples`` parts and the fastest one is
    kept (with its own CPU figures): on a shared machine it is the one least
    disturbed by other work, as in :mod:`timeit`'s best of repeats.
    """
    client.expect("CONNECTED", timeout=60)
    time.sleep(config.warmup)
    marks = [(server.stats(), client.request("mark", "MARK"))]
    for _ in range(config.samples):
        time.sleep(config.duration / config.samples)
        marks.append((server.stats(), client.request("mark", "MARK")))
    best = (0.0, 0.0, 0.0)
    for (s0, m0), (s1, m1) in itertools.pairwise(marks):
        seconds = m1["t"] - m0["t"]
        rate = (m1["bytes"] - m0["bytes"]) / seconds
        if rate >= best[0]:
            server_util = (s1.cpu - s0.cpu) / (s1.t - s0.t)
            best = (rate, server_util, (m1["cpu"] - m0["cpu"]) / seconds)
    return best


def saturation(server_util: float, client_util: float) -> str:
    """Say which side ran out of CPU (one core each): server, client, both, neither."""
    server_busy = server_util >= SATURATED
    client_busy = client_util >= SATURATED
    if server_busy and client_busy:
        return "both"
    if server_busy or client_busy:
        return "server" if server_busy else "client"
    return "neither"


def echo_cell(
    server: Server, children: Children, config: BenchConfig, connections: int, size: int
) -> Row:
    """Stream ``size``-byte messages over ``connections`` connections."""
    window = echo_window(connections, size)
    job = {
        "mode": "echo",
        "port": server.echo_port,
        "connections": connections,
        "size": size,
        "window": window,
    }
    client = _client(children, job, server.name)
    try:
        rate, server_util, client_util = _measure(server, client, config)
    finally:
        children.end(client, quit_line="stop")
    return {
        "contender": server.name,
        "connections": connections,
        "size": size,
        "window": window,
        "mb_per_s": rate / 1e6,
        "msgs_per_s": rate / size,
        "server_cpu_s_per_gb": server_util / rate * 1e9 if rate else None,
        "server_util": server_util,
        "client_util": client_util,
        "saturated": saturation(server_util, client_util),
    }


def fanout_cell(
    server: Server, children: Children, config: BenchConfig, connections: int
) -> Row:
    """Request fanout responses (32 writes of 100 bytes each) over connections."""
    job = {
        "mode": "fanout",
        "port": server.fanout_port,
        "connections": connections,
        "window": config.fanout_window,
    }
    client = _client(children, job, server.name)
    try:
        rate, server_util, client_util = _measure(server, client, config)
    finally:
        children.end(client, quit_line="stop")
    responses = rate / FANOUT_RESPONSE
    return {
        "contender": server.name,
        "connections": connections,
        "window": config.fanout_window,
        "responses_per_s": responses,
        "server_cpu_us_per_response": server_util / responses * 1e6
        if responses
        else None,
        "server_util": server_util,
        "client_util": client_util,
        "saturated": saturation(server_util, client_util),
    }


def syscall_cell(server: Server, children: Children, config: BenchConfig) -> Row:
    """Count the server's syscalls per fanout response with ``strace -c -f``.

    One connection, one request in flight: each response then pays its whole
    cost (wait, read, writes), with no batching across connections.
    """
    strace = shutil.which("strace") if config.strace else None
    row: Row = {"contender": server.name, "syscalls_per_response": None}
    if strace is None:
        reason = "strace not found" if config.strace else "strace disabled"
        return row | {"send_calls_per_response": None, "syscall_note": reason}
    with tempfile.TemporaryDirectory(prefix="bufkit-bench-") as tmp:
        out = os.path.join(tmp, "strace.txt")
        tracer = children.start(
            [strace, "-c", "-f", "-o", out, "-p", str(server.child.pid)],
            name=f"strace of {server.name}",
        )
        try:
            _wait_attached(tracer, out)
            job = {"mode": "fanout", "port": server.fanout_port, "connections": 1}
            client = _client(children, job | {"window": 1}, server.name)
            try:
                client.expect("CONNECTED", timeout=30)
                time.sleep(config.strace_duration)
                client.send("stop")
                total = client.expect("RESULT", timeout=30)[1]["bytes"]
            finally:
                children.end(client, quit_line="stop")
            with contextlib.suppress(ProcessLookupError):
                os.kill(tracer.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                tracer.proc.wait(timeout=10)
        finally:
            children.end(tracer, quit_line=None)
        with open(out, encoding="utf-8", errors="replace") as file:
            counts = parse_strace(file.read())
    responses = total // FANOUT_RESPONSE
    if not counts or not responses:
        return row | {"send_calls_per_response": None, "syscall_note": "strace failed"}
    sends = sum(n for call, n in counts.items() if call in SEND_CALLS)
    return row | {
        "syscalls_per_response": sum(counts.values()) / responses,
        "send_calls_per_response": sends / responses,
        "syscall_note": f"strace -c -f, {responses} responses",
        "syscalls": counts,
    }


def _wait_attached(tracer: Child, out: str) -> None:
    """Give strace time to attach to every thread (it says so on stderr)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and tracer.alive():
        if "attached" in tracer.stderr_tail(10_000):
            time.sleep(0.05)
            return
        time.sleep(0.02)
    if not tracer.alive():
        raise BenchError(f"strace could not attach{tracer.stderr_tail()}")


def parse_strace(text: str) -> dict[str, int]:
    """Return syscall -> calls from the summary table of ``strace -c``."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[0][0].isdigit() or fields[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors,] syscall
        counts[fields[-1]] = int(fields[3])
    return counts
