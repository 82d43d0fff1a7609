"""One measurement of one contender: the idle, echo and fanout cells.

Each function drives a load client (:mod:`bufkit.bench._client`) against a
running contender server and returns one result row (a JSON-ready dict).
The echo and fanout cells measure one *round*: the client's bytes over its
measuring window, and the server's CPU time (user + system, read from
outside the server) over the same window, bounded by the same two marks.
The runner interleaves several rounds across the contenders and
:func:`summarise` turns them into medians and ranges. The headline figure is
the server's CPU per message (and per GB): on loopback, the bytes per second
of a latency-bound cell measure the scheduler as much as the server.
"""

from __future__ import annotations

import contextlib
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
from bufkit.bench._procs import BenchError, Child, Children, cpu_seconds, open_fds
from bufkit.bench._stats import spread
from bufkit.bench._wire import FANOUT_RESPONSE, ServerStats

__all__ = [
    "Loader",
    "Server",
    "echo_cell",
    "fanout_cell",
    "idle_cell",
    "measure_round",
    "parse_strace",
    "saturation",
    "summarise",
    "syscall_cell",
]

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
    tls_port: int | None = None  #: TLS echo, if the server offers it

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


class Loader:
    """The run's load client: one process that runs one job after another.

    A failed job ends the process (a reply to the failed job could still be
    on its way); the next job starts a fresh one.
    """

    def __init__(self, children: Children) -> None:
        self._children = children
        self._child: Child | None = None

    def start(self, job: dict[str, Any]) -> Child:
        """Send ``job`` to the client (started if needed); return the client."""
        if self._child is None or not self._child.alive():
            self.reset()
            self._child = self._children.start_python(
                _CLIENT, "serve", name="load client"
            )
        self._child.send(f"job {json.dumps(job)}")
        return self._child

    def reset(self) -> None:
        """End the client process, if any; the next job starts another."""
        if self._child is not None:
            self._children.end(self._child, quit_line="quit")
            self._child = None


def _quiesce(server: Server, fds: int | None, timeout: float = 10.0) -> None:
    """Wait until the server has closed the round's connections."""
    deadline = time.monotonic() + timeout
    while fds is not None and time.monotonic() < deadline:
        now = open_fds(server.child.pid)
        if now is None or now <= fds:
            return
        time.sleep(0.01)


def measure_round(
    server: Server, loader: Loader, config: BenchConfig, job: dict[str, Any]
) -> Row:
    """Run ``job`` against ``server`` for one round; return its raw sample.

    The server's CPU time is read from outside the server
    (:func:`~bufkit.bench._procs.cpu_seconds`) at the two marks that bound
    the client's measuring window, so it covers exactly that window.
    """
    pid = server.child.pid
    fds = open_fds(pid)
    client = loader.start(job)
    try:
        client.expect("CONNECTED", timeout=60 + job["connections"] / 100)
        time.sleep(config.warmup)
        cpu0, mark0 = cpu_seconds(pid), client.request("mark", "MARK")
        time.sleep(config.duration)
        cpu1, mark1 = cpu_seconds(pid), client.request("mark", "MARK")
        client.request("stop", "RESULT", timeout=30)
    except BenchError:
        loader.reset()
        raise
    _quiesce(server, fds)
    moved = mark1["bytes"] - mark0["bytes"]
    if moved <= 0:
        raise BenchError(f"{server.name} moved no bytes in {config.duration} s")
    return {
        "seconds": mark1["t"] - mark0["t"],
        "bytes": moved,
        "server_cpu": cpu1 - cpu0,
        "client_cpu": mark1["cpu"] - mark0["cpu"],
    }


def saturation(server_util: float, client_util: float) -> str:
    """Say which side ran out of CPU (one core each): server, client, both, neither."""
    server_busy = server_util >= SATURATED
    client_busy = client_util >= SATURATED
    if server_busy and client_busy:
        return "both"
    if server_busy or client_busy:
        return "server" if server_busy else "client"
    return "neither"


def _figures(sample: Row, unit_bytes: int) -> dict[str, float]:
    """One round's figures; ``unit_bytes`` is a message's or a response's size."""
    seconds, moved, cpu = sample["seconds"], sample["bytes"], sample["server_cpu"]
    units = moved / unit_bytes
    return {
        "server_cpu_us_per_unit": cpu / units * 1e6,
        "server_cpu_s_per_gb": cpu / moved * 1e9,
        "mb_per_s": moved / seconds / 1e6,
        "units_per_s": units / seconds,
        "server_util": cpu / seconds,
        "client_util": sample["client_cpu"] / seconds,
    }


#: How the generic figures of :func:`_figures` are named in each scenario.
_NAMES: Final = {
    "echo": {
        "server_cpu_us_per_unit": "server_cpu_us_per_msg",
        "units_per_s": "msgs_per_s",
    },
    "tls-echo": {
        "server_cpu_us_per_unit": "server_cpu_us_per_msg",
        "units_per_s": "msgs_per_s",
    },
    "fanout": {
        "server_cpu_us_per_unit": "server_cpu_us_per_response",
        "units_per_s": "responses_per_s",
    },
}


def summarise(scenario: str, row: Row) -> Row:
    """Add the median and range (min-max) of every figure over ``row["samples"]``.

    Each figure ``f`` gets ``f`` (the median) and ``f_range`` ([min, max]).
    """
    unit = FANOUT_RESPONSE if scenario == "fanout" else row["size"]
    per_round = [_figures(sample, unit) for sample in row["samples"]]
    out = dict(row, rounds=len(per_round))
    for key in per_round[0]:
        name = _NAMES[scenario].get(key, key)
        summary = spread([figures[key] for figures in per_round])
        out[name] = summary.median
        out[f"{name}_range"] = [summary.low, summary.high]
    out["saturated"] = saturation(out["server_util"], out["client_util"])
    return out


def echo_cell(
    server: Server,
    loader: Loader,
    config: BenchConfig,
    connections: int,
    size: int,
    *,
    cafile: str | None = None,
) -> Row:
    """One round of ``size``-byte messages streamed over ``connections``.

    With ``cafile`` (the certificate the server's TLS echo presents), the
    round runs over TLS against the server's TLS echo port; each round opens
    fresh connections, and the handshakes end before the warm-up starts.
    """
    window = echo_window(connections, size)
    tls = cafile is not None
    if tls and server.tls_port is None:
        raise BenchError(f"{server.name} serves no TLS echo")
    job: dict[str, Any] = {
        "mode": "echo",
        "port": server.tls_port if tls else server.echo_port,
        "connections": connections,
        "size": size,
        "window": window,
    }
    if tls:
        job["cafile"] = cafile
    return {
        "contender": server.name,
        "connections": connections,
        "size": size,
        "window": window,
        "tls": tls,
        "samples": [measure_round(server, loader, config, job)],
    }


def fanout_cell(
    server: Server, loader: Loader, config: BenchConfig, connections: int
) -> Row:
    """One round of fanout requests (32 writes of 100 bytes each answer one)."""
    job = {
        "mode": "fanout",
        "port": server.fanout_port,
        "connections": connections,
        "window": config.fanout_window,
    }
    return {
        "contender": server.name,
        "connections": connections,
        "window": config.fanout_window,
        "samples": [measure_round(server, loader, config, job)],
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
