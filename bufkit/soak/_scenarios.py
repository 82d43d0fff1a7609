"""The soak's scenarios, profiles and thresholds.

Theory of operation: a scenario drives a running server from this process on
127.0.0.1 for a bounded time and returns a :class:`Result`: figures (what
held, with numbers) and problems (what did not). After each scenario on the
shared server, :func:`check_after` waits (bounded) for the server to report
no connection, then compares its open descriptors, resident memory and pool
bytes with the figures taken before: a leak, a dead server or a traceback on
its stderr is a problem. The fd-limit flood and the stop signals run on a
server of their own. Every loop is bounded by a count or a deadline. A TLS
target runs the TLS scenarios of ``bufkit.soak._tls`` on its shared server
(integrity, slow readers, plain text to the TLS port, a stalled handshake),
then the stop signals; the fd-limit flood probes in plain text, so it is not
run on TLS targets.

Thresholds (the docs page lists them): see the ``Final`` constants below.
"""

from __future__ import annotations

import contextlib
import random
import selectors
import signal
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from bufkit.servers import LINE_MAX
from bufkit.soak import _procfs, _tls
from bufkit.soak._client import (
    connect_many,
    exchange,
    expected_reply,
    payload,
    raise_nofile,
    rst_close,
)
from bufkit.soak._server import ServerError, ServerProcess

__all__ = [
    "FD_SLACK",
    "FLOOD_CPU_MAX",
    "IDLE_CPU_MAX",
    "PROFILES",
    "QUEUED_PER_SLOW_READER_MAX",
    "RSS_GROWTH_MAX",
    "RSS_PER_SLOW_READER_MAX",
    "Profile",
    "Result",
    "Soak",
    "Target",
]

KiB: Final = 1024
MiB: Final = 1024 * KiB

FD_SLACK: Final = 2
"""Descriptors a server may hold after a scenario beyond those before it."""
RSS_GROWTH_MAX: Final = 64 * MiB
"""Resident memory a server may gain over one scenario: a gross leak. Python's
allocator keeps much of a scenario's peak (2,000 fanout peers reset at once
peak near 40 MiB), so creeping leaks are caught across rounds instead."""
RSS_ROUND_GROWTH_MAX: Final = 16 * MiB
"""Memory a server may gain from the end of round 1 to the end of the last."""
QUEUED_PER_SLOW_READER_MAX: Final = 64 * KiB + 2 * 64 * KiB + 4 * KiB
"""Bytes queued for one peer that never reads: the high watermark (64 KiB),
two reads of the largest pool class, and one reply's slack."""
RSS_PER_SLOW_READER_MAX: Final = 512 * KiB
"""Resident memory a server may gain per peer that never reads (plus 16 MiB)."""
IDLE_CPU_MAX: Final = 0.05
"""CPU seconds per second an idle server may use (a spinning loop uses 1)."""
FLOOD_CPU_MAX: Final = 0.10
"""CPU seconds per second while more peers connect than it has descriptors."""
SETTLE_TIMEOUT: Final = 10.0
"""Seconds a server gets to close its connections after a scenario."""
STOP_TIMEOUT: Final = 10.0
"""Seconds a server gets to exit after SIGTERM or SIGINT under load."""
RECOVERY_TIMEOUT: Final = 15.0
"""Seconds a server gets to serve again once a flood has gone."""


_Scenario = Callable[[ServerProcess, "Result"], None]


@attrs.frozen
class Profile:
    """How much each scenario does."""

    name: str
    integrity_conns: int
    integrity_bytes: int
    slow_conns: int
    slow_bytes: int
    rst_conns: int
    churn_seconds: float
    flood_conns: int
    flood_nofile: int
    garbage_conns: int
    signal_conns: int
    rounds: int
    exchange_timeout: float = 60.0


PROFILES: Final = {
    "short": Profile(
        name="short",
        integrity_conns=8,
        integrity_bytes=128 * KiB,
        slow_conns=16,
        slow_bytes=4 * MiB,
        rst_conns=100,
        churn_seconds=1.0,
        flood_conns=150,
        flood_nofile=64,
        garbage_conns=12,
        signal_conns=8,
        rounds=1,
    ),
    "long": Profile(
        name="long",
        integrity_conns=64,
        integrity_bytes=4 * MiB,
        slow_conns=128,
        slow_bytes=8 * MiB,
        rst_conns=2000,
        churn_seconds=20.0,
        flood_conns=1000,
        flood_nofile=128,
        garbage_conns=128,
        signal_conns=64,
        rounds=5,
    ),
    "smoke": Profile(
        name="smoke",
        integrity_conns=4,
        integrity_bytes=32 * KiB,
        slow_conns=4,
        slow_bytes=1 * MiB,
        rst_conns=40,
        churn_seconds=0.3,
        flood_conns=60,
        flood_nofile=32,
        garbage_conns=4,
        signal_conns=4,
        rounds=1,
        exchange_timeout=20.0,
    ),
}
"""``short`` (CI, under 2 minutes for every target), ``long``, and ``smoke``
(a few seconds per target: the suite's own end-to-end test)."""


@attrs.frozen
class Target:
    """A server to soak: how to start it and what it answers.

    Args:
        name: Its name on the command line.
        kind: What it answers: ``echo``, ``line``, ``fanout`` or ``discard``.
        argv: The command line, given the ``RLIMIT_NOFILE`` to set (or None).
        workers: Processes that print a "listening" and a statistics line.
        known: Scenario name -> a problem outside bufkit (in the standard
            library, say) that makes it fail: reported as KNOWN, not FAIL.
        tls: Whether it speaks TLS (with the soak's own certificate).
    """

    name: str
    kind: str
    argv: Callable[[int | None], list[str]]
    workers: int = 1
    known: Mapping[str, str] = attrs.field(factory=dict)
    tls: bool = False


@attrs.define
class Result:
    """What one scenario did (figures) and what went wrong (problems)."""

    target: str
    scenario: str
    figures: dict[str, object] = attrs.Factory(dict)
    problems: list[str] = attrs.Factory(list)
    known: str | None = None  # why problems are expected here, if they are

    @property
    def ok(self) -> bool:
        """Whether nothing went wrong (or only what is known to go wrong)."""
        return not self.problems or self.known is not None

    def line(self) -> str:
        """One report line."""
        figures = " ".join(f"{k}={v}" for k, v in self.figures.items())
        verdict = "FAIL" if not self.ok else "KNOWN" if self.problems else "PASS"
        text = f"{verdict} {self.target} {self.scenario}: {figures}"
        for problem in self.problems:
            text += f"\n     problem: {problem}"
        if self.problems and self.known is not None:
            text += f"\n     known: {self.known}"
        return text


def _mib(nbytes: int) -> str:
    return f"{nbytes / MiB:.1f}"


@attrs.define
class Soak:
    """One target under one profile; runs the scenarios and collects results."""

    target: Target
    profile: Profile
    rng: random.Random
    results: list[Result] = attrs.Factory(list)
    say: Callable[[str], object] = print

    # -- running -------------------------------------------------------------

    def run(self) -> list[Result]:
        """Run every scenario; return the results (also reported as they come)."""
        raise_nofile(self.profile.flood_conns + 2 * self.profile.rst_conns + 512)
        if self.target.tls:
            if _tls.certificate() is None:
                self._report(
                    Result(self.target.name, "tls", figures={"skipped": "no openssl"})
                )
                return self.results
            self._shared(self._tls_scenarios())
        else:
            self._shared(self._plain_scenarios())
            self._report(self.fd_flood())
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._report(self.stop_under_load(sig))
        return self.results

    def _report(self, result: Result) -> None:
        result.known = self.target.known.get(result.scenario)
        self.results.append(result)
        self.say(result.line())

    def start(self, nofile: int | None = None) -> ServerProcess:
        """Start the target; wait until it listens."""
        server = ServerProcess(self.target.argv(nofile), workers=self.target.workers)
        try:
            server.wait_listening()
        except BaseException:
            server.close()
            raise
        return server

    def _plain_scenarios(self) -> tuple[tuple[str, _Scenario], ...]:
        return (
            ("integrity", self.integrity),
            ("slow-readers", self.slow_readers),
            ("rst-storm", self.rst_storm),
            ("churn", self.churn),
            ("garbage", self.garbage),
        )

    def _tls_scenarios(self) -> tuple[tuple[str, _Scenario], ...]:
        return (
            ("tls-integrity", self.tls_integrity),
            ("tls-slow-readers", self.tls_slow_readers),
            ("tls-plain-text", self.tls_plain_text),
            ("tls-stalled-handshake", self.tls_stalled_handshake),
        )

    def _shared(self, scenarios: tuple[tuple[str, _Scenario], ...]) -> None:
        with self.start() as server:
            first_round_rss = 0
            for round_ in range(self.profile.rounds):
                for name, scenario in scenarios:
                    before = _procfs.sample(server.pid)
                    errors_before = len(server.stderr())
                    result = Result(self.target.name, name)
                    if self.profile.rounds > 1:
                        result.figures["round"] = round_ + 1
                    started = time.monotonic()
                    try:
                        scenario(server, result)
                    except (OSError, ServerError) as exc:
                        result.problems.append(f"{type(exc).__name__}: {exc}")
                    result.figures["seconds"] = round(time.monotonic() - started, 1)
                    check_after(server, before, errors_before, result)
                    self._report(result)
                if round_ == 0:
                    first_round_rss = _procfs.sample(server.pid).rss
            self._report(self.idle(server, first_round_rss))

    # -- scenarios on the shared server --------------------------------------

    def _requests(self, count: int, cap: int) -> list[tuple[bytes, bytes | None]]:
        kind = self.target.kind
        if kind == "fanout":
            cap = min(cap, 512)  # each byte brings 3,200 back
        out: list[tuple[bytes, bytes | None]] = []
        for _ in range(count):
            request = payload(kind, self.rng.randint(0, cap), self.rng)
            out.append((request, expected_reply(kind, request)))
        return out

    def _probe(self, port: int, timeout: float = 10) -> str | None:
        """One small exchange; return its problem or ``None``."""
        request, expected = self._requests(1, 64)[0]
        outcome = exchange(port, [(request, expected)], rng=self.rng, timeout=timeout)
        return outcome[0].problem

    def integrity(self, server: ServerProcess, result: Result) -> None:
        """Byte-exact replies for random sizes, random chunks, then half-close."""
        requests = self._requests(
            self.profile.integrity_conns, self.profile.integrity_bytes
        )
        outcomes = exchange(
            server.port, requests, rng=self.rng, timeout=self.profile.exchange_timeout
        )
        complete = sum(o.complete for o in outcomes)
        result.figures.update(
            connections=len(outcomes),
            complete=complete,
            bytes_sent=sum(o.sent for o in outcomes),
            bytes_verified=sum(o.verified for o in outcomes),
        )
        for i, outcome in enumerate(outcomes):
            if outcome.problem is not None:
                result.problems.append(f"connection {i}: {outcome.problem}")

    def slow_readers(self, server: ServerProcess, result: Result) -> None:
        """Peers that send and never read: what the server queues stays bounded."""
        count = self.profile.slow_conns
        before = _procfs.sample(server.pid)
        socks = connect_many(server.port, count, rcvbuf=4096)
        try:
            _wait_connected(socks)
            size = 2048 if self.target.kind == "fanout" else self.profile.slow_bytes
            data = payload(self.target.kind, size, self.rng)
            sent = [0] * count
            for _ in range(3):  # the server reads between passes
                for i, sock in enumerate(socks):
                    sent[i] += _send_some(sock, data[sent[i] :])
                time.sleep(0.2)
            try:
                stats = server.stats()
            except ServerError:
                stats = None
                result.problems.append(
                    "no statistics within 10 s of SIGUSR1: the server's loop was "
                    "busy producing for peers that do not read"
                )
            during = _procfs.sample(server.pid)
        finally:
            for sock in socks:
                rst_close(sock)
        result.figures.update(connections=count, bytes_sent=sum(sent))
        growth = during.rss - before.rss
        result.figures["rss_growth_mib"] = _mib(growth)
        if growth > count * RSS_PER_SLOW_READER_MAX + 16 * MiB:
            result.problems.append(f"memory grew {_mib(growth)} MiB for {count} peers")
        if stats is not None:
            result.figures["queued_bytes"] = stats.queued_bytes
            limit = count * QUEUED_PER_SLOW_READER_MAX
            if stats.queued_bytes > limit:
                result.problems.append(
                    f"{stats.queued_bytes} bytes queued for {count} peers that do "
                    f"not read (limit {limit})"
                )

    def rst_storm(self, server: ServerProcess, result: Result) -> None:
        """Connections reset (``SO_LINGER`` 0) before, during and after requests."""
        left = self.profile.rst_conns
        while left > 0:
            batch = connect_many(server.port, min(50, left))
            try:
                if self.rng.random() < 0.7:
                    _wait_connected(batch)
                for sock in batch:
                    if self.rng.random() < 0.5:
                        _send_some(sock, self.rng.randbytes(self.rng.randint(1, 16384)))
            finally:
                for sock in batch:
                    rst_close(sock)
            left -= len(batch)
        result.figures["resets"] = self.profile.rst_conns
        problem = self._probe(server.port)
        if problem is not None:
            result.problems.append(f"no answer after the storm: {problem}")

    def churn(self, server: ServerProcess, result: Result) -> None:
        """Connect, exchange a little, close, as fast as it goes for a while."""
        deadline = time.monotonic() + self.profile.churn_seconds
        done = failed = 0
        while time.monotonic() < deadline:
            outcomes = exchange(
                server.port,
                self._requests(16, 64),
                rng=self.rng,
                timeout=self.profile.exchange_timeout,
            )
            done += len(outcomes)
            bad = [o.problem for o in outcomes if o.problem is not None]
            failed += len(bad)
            if bad and len(result.problems) < 3:
                result.problems.append(f"churn: {bad[0]}")
        result.figures.update(
            connections=done,
            per_second=round(done / self.profile.churn_seconds),
            failed=failed,
        )

    def garbage(self, server: ServerProcess, result: Result) -> None:
        """Random bytes, and for line servers lines over the limit."""
        requests: list[tuple[bytes, bytes | None]] = []
        long_lines = 0
        for i in range(self.profile.garbage_conns):
            if self.target.kind == "line" and i % 2 == 0:
                size = LINE_MAX + 1 + self.rng.randint(0, 4096)
                requests.append((b"g" * size, None))
                long_lines += 1
            else:  # fanout owes 3,200 bytes per byte: keep its reply readable
                cap = 512 if self.target.kind == "fanout" else 64 * KiB
                data = self.rng.randbytes(self.rng.randint(1, cap))
                requests.append((data, None))
        outcomes = exchange(
            server.port, requests, rng=self.rng, timeout=self.profile.exchange_timeout
        )
        closed = sum(o.problem is None or "Error" in o.problem for o in outcomes)
        result.figures.update(
            connections=len(outcomes), over_long_lines=long_lines, closed=closed
        )
        timed_out = sum(o.problem == "timed out" for o in outcomes)
        if timed_out:
            result.problems.append(f"{timed_out} connections never closed")
        problem = self._probe(server.port)
        if problem is not None:
            result.problems.append(f"no answer after the garbage: {problem}")

    # -- TLS scenarios on the shared server ----------------------------------

    def _client_context(self) -> ssl.SSLContext:
        cert = _tls.certificate()
        assert cert is not None  # run() skips TLS targets without one
        return cert.client_context()

    def tls_integrity(self, server: ServerProcess, result: Result) -> None:
        """Byte-exact echo over TLS for random sizes in random chunks."""
        sizes = [
            self.rng.randint(1, self.profile.integrity_bytes)
            for _ in range(self.profile.integrity_conns)
        ]
        payloads = [self.rng.randbytes(size) for size in sizes]
        problems = _tls.echo_many(
            server.port,
            self._client_context(),
            payloads,
            self.rng,
            self.profile.exchange_timeout,
        )
        result.figures.update(
            connections=len(payloads),
            complete=sum(p is None for p in problems),
            bytes_verified=sum(
                len(d) for d, p in zip(payloads, problems, strict=True) if p is None
            ),
        )
        for i, problem in enumerate(problems):
            if problem is not None:
                result.problems.append(f"connection {i}: {problem}")

    def tls_slow_readers(self, server: ServerProcess, result: Result) -> None:
        """TLS peers that handshake, send and never read: bounded queues."""
        count = self.profile.slow_conns
        before = _procfs.sample(server.pid)
        context = self._client_context()
        socks: list[ssl.SSLSocket] = []
        try:
            for _ in range(count):
                raw = socket.socket()
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                raw.settimeout(10)
                raw.connect(("127.0.0.1", server.port))
                socks.append(context.wrap_socket(raw, server_hostname="localhost"))
            data = self.rng.randbytes(self.profile.slow_bytes)
            sent = [0] * count
            for sock in socks:
                sock.setblocking(False)
            for _ in range(3):  # the server reads between passes
                for i, sock in enumerate(socks):
                    sent[i] += _send_some_tls(sock, data[sent[i] :])
                time.sleep(0.2)
            try:
                stats = server.stats()
            except ServerError:
                stats = None
                result.problems.append("no statistics within 10 s of SIGUSR1")
            during = _procfs.sample(server.pid)
        finally:
            for sock in socks:
                rst_close(sock)
        growth = during.rss - before.rss
        result.figures.update(
            connections=count, bytes_sent=sum(sent), rss_growth_mib=_mib(growth)
        )
        if growth > count * RSS_PER_SLOW_READER_MAX + 16 * MiB:
            result.problems.append(f"memory grew {_mib(growth)} MiB for {count} peers")
        if stats is not None:
            result.figures["queued_bytes"] = stats.queued_bytes
            limit = count * QUEUED_PER_SLOW_READER_MAX
            if stats.queued_bytes > limit:
                result.problems.append(
                    f"{stats.queued_bytes} bytes queued for {count} peers that do "
                    f"not read (limit {limit})"
                )

    def tls_plain_text(self, server: ServerProcess, result: Result) -> None:
        """Plain HTTP and random bytes to the TLS port: each closed, then serving."""
        never_closed = 0
        for i in range(self.profile.garbage_conns):
            if i % 2 == 0:
                data = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
            else:
                data = self.rng.randbytes(self.rng.randint(1, 4096))
            with socket.create_connection(("127.0.0.1", server.port), 10) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(data)
                if _tls.wait_closed(sock, self.profile.exchange_timeout) is None:
                    never_closed += 1
        result.figures.update(
            connections=self.profile.garbage_conns, never_closed=never_closed
        )
        if never_closed:
            result.problems.append(f"{never_closed} connections never closed")
        problem = _tls.echo_exchange(
            server.port, self._client_context(), b"probe", self.rng, 10
        )
        if problem is not None:
            result.problems.append(f"no answer after the plain text: {problem}")

    def tls_stalled_handshake(self, server: ServerProcess, result: Result) -> None:
        """Peers that send a ClientHello and stop are dropped at the timeout."""
        hello = _tls.client_hello()
        count = min(self.profile.garbage_conns, 32)
        socks = [
            socket.create_connection(("127.0.0.1", server.port), 10)
            for _ in range(count)
        ]
        limit = _tls.HANDSHAKE_TIMEOUT + 5.0
        delays: list[float] = []
        try:
            for sock in socks:
                sock.sendall(hello)
            for sock in socks:
                delay = _tls.wait_closed(sock, limit)
                if delay is not None:
                    delays.append(delay)
        finally:
            for sock in socks:
                sock.close()
        result.figures.update(
            connections=count,
            closed=len(delays),
            handshake_timeout=_tls.HANDSHAKE_TIMEOUT,
        )
        if len(delays) < count:
            result.problems.append(
                f"{count - len(delays)} stalled handshakes still open {limit} s on"
            )

    def idle(self, server: ServerProcess, first_round_rss: int) -> Result:
        """CPU while idle, and memory growth from round 1 to the last."""
        result = Result(self.target.name, "idle")
        if not _procfs.available():
            result.figures["skipped"] = "no /proc"
            return result
        cpu = _procfs.idle_cpu(server.pid, 1.0)
        result.figures["cpu_per_second"] = round(cpu, 3)
        if cpu > IDLE_CPU_MAX:
            result.problems.append(f"idle server used {cpu:.2f} CPU s per s (spin)")
        if self.profile.rounds > 1:
            growth = _procfs.sample(server.pid).rss - first_round_rss
            result.figures["rss_growth_after_round_1_mib"] = _mib(growth)
            if growth > RSS_ROUND_GROWTH_MAX:
                result.problems.append(f"memory grew {_mib(growth)} MiB after round 1")
        return result

    # -- scenarios on a server of their own ----------------------------------

    def fd_flood(self) -> Result:
        """More peers than the server's ``RLIMIT_NOFILE``: no spin, then recovery."""
        result = Result(self.target.name, "fd-flood")
        nofile = self.profile.flood_nofile
        with self.start(nofile) as server:
            problem = self._probe(server.port)
            if problem is not None:
                result.problems.append(f"no answer before the flood: {problem}")
            before = _procfs.sample(server.pid)
            errors_before = len(server.stderr())
            socks = connect_many(server.port, self.profile.flood_conns)
            try:
                time.sleep(0.5)
                cpu = _procfs.idle_cpu(server.pid, 1.0) if _procfs.available() else 0
            finally:
                for sock in socks:
                    sock.close()
            result.figures.update(
                nofile=nofile, peers=len(socks), cpu_per_second=round(cpu, 3)
            )
            if cpu > FLOOD_CPU_MAX:
                result.problems.append(f"flooded server used {cpu:.2f} CPU s per s")
            deadline = time.monotonic() + RECOVERY_TIMEOUT
            tries = 0
            while True:
                tries += 1
                problem = self._probe(server.port, timeout=2)
                if problem is None or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            result.figures["probes_to_recover"] = tries
            if problem is not None:
                result.problems.append(f"no answer after the flood: {problem}")
            # The flood's log lines (accept failed: EMFILE) are expected.
            check_after(server, before, errors_before, result, tracebacks=False)
        return result

    def stop_under_load(self, sig: int) -> Result:
        """SIGTERM or SIGINT while peers stream: a clean, bounded exit."""
        name = signal.Signals(sig).name
        result = Result(self.target.name, f"{name.lower()}-under-load")
        server = self.start()
        socks: list[socket.socket] = []
        try:
            socks = connect_many(server.port, self.profile.signal_conns)
            _wait_connected(socks)
            data = payload(self.target.kind, 256 * KiB, self.rng)
            sent = sum(_send_some(sock, data) for sock in socks)
            started = time.monotonic()
            status = server.stop(sig, STOP_TIMEOUT)
            took = time.monotonic() - started
            left = _procfs.group(server.pid) if _procfs.available() else []
            result.figures.update(peers=len(socks), bytes_sent=sent, exit_status=status)
            result.figures["exit_seconds"] = round(took, 2)
            if status is None:
                result.problems.append(f"still running {STOP_TIMEOUT} s after {name}")
            elif status != 0:
                result.problems.append(f"exit status {status} after {name}")
            if left:
                result.problems.append(f"processes left after {name}: {left}")
            if "Traceback" in server.stderr():
                result.problems.append(f"traceback on stderr: {server.stderr()[-300:]}")
        finally:
            for sock in socks:
                sock.close()
            server.close()
        return result


def check_after(
    server: ServerProcess,
    before: _procfs.Sample,
    errors_before: int,
    result: Result,
    *,
    tracebacks: bool = True,
) -> None:
    """Wait for the server to drop its connections, then look for leaks."""
    if not server.alive():
        result.problems.append(f"server exited with {server.proc.returncode}")
        return
    deadline = time.monotonic() + SETTLE_TIMEOUT
    try:
        stats = server.stats()
        while stats is not None and stats.connections and time.monotonic() < deadline:
            time.sleep(0.1)
            stats = server.stats()
    except ServerError as exc:
        result.problems.append(f"no statistics: {exc}")
        return
    after = _procfs.sample(server.pid)
    result.figures["fds"] = f"{before.fds}->{after.fds}"
    result.figures["rss_mib"] = f"{_mib(before.rss)}->{_mib(after.rss)}"
    if stats is not None:
        result.figures["pool_bytes_in_use"] = stats.pool_bytes_in_use
        if stats.connections:
            result.problems.append(f"{stats.connections} connections still open")
        if stats.pool_bytes_in_use:
            result.problems.append(f"{stats.pool_bytes_in_use} pool bytes still lent")
    if after.fds > before.fds + FD_SLACK:
        result.problems.append(f"descriptors {before.fds} -> {after.fds}")
    if after.rss - before.rss > RSS_GROWTH_MAX:
        result.problems.append(f"memory grew {_mib(after.rss - before.rss)} MiB")
    errors = server.stderr()[errors_before:]
    if tracebacks and "Traceback" in errors:
        result.problems.append(f"traceback on stderr: {errors[:300]!r}")


def _wait_connected(socks: list[socket.socket], timeout: float = 10) -> None:
    """Wait until every pending connect finished (or the deadline)."""
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_WRITE)
        deadline = time.monotonic() + timeout
        while sel.get_map() and time.monotonic() < deadline:
            for key, _mask in sel.select(0.5):
                sel.unregister(key.fileobj)


def _send_some_tls(sock: ssl.SSLSocket, data: bytes) -> int:
    """Send what a non-blocking TLS socket takes; 0 on any error."""
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + 16384])
    except (OSError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
        pass
    return sent


def _send_some(sock: socket.socket, data: bytes) -> int:
    """Send what the socket takes without blocking; 0 on any error."""
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + 65536])
    except OSError:
        pass
    return sent
