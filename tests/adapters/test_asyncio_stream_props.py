"""Invariants 1 to 4 of the readiness stream under drawn sockets and calls."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import bufkit
from bufkit.adapters.asyncio._stream import Connection
from bufkit.testing import FakeSocket
from bufkit.testing.strategies import fault_schedules

from .test_asyncio_stream import ReadinessFake, Recorder

Op = tuple[str, int]

ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["write", "send"]), st.integers(0, 9000)),
        st.tuples(st.sampled_from(["tick", "writable", "drain"]), st.just(0)),
        st.tuples(st.sampled_from(["close", "abort", "write_eof"]), st.just(0)),
    ),
    max_size=25,
)


def payload(i: int, n: int) -> bytes:
    """``n`` bytes that say which write they belong to."""
    return (i.to_bytes(2, "big") * (n // 2 + 1))[:n]


class Run:
    """One drawn scenario and what it observed."""

    def __init__(self, loop: ReadinessFake, sock: FakeSocket, conn: Connection) -> None:
        self.loop, self.sock, self.conn = loop, sock, conn
        self.fd = sock.fileno()
        self.accepted: list[bytes] = []  # payloads the queue took, in order
        self.done: dict[int, list[BaseException | None]] = {}
        self.futures: list[asyncio.Future[None]] = []

    def on_done(self, i: int) -> Any:
        """A completion callback that records every call."""
        return lambda exc: self.done.setdefault(i, []).append(exc)

    def write(self, data: bytes, kind: str) -> None:
        """Write or send, recording whether the queue took it."""
        i = len(self.accepted)
        try:
            if kind == "write":
                self.conn.write(data, self.on_done(i))
            else:
                fut = self.conn.send(data)
                self.futures.append(fut)
                fut.add_done_callback(
                    lambda f: self.done.setdefault(i, []).append(
                        None if f.cancelled() else f.exception()
                    )
                )
        except (bufkit.QueueClosedError, bufkit.QueueFailedError):
            return
        self.accepted.append(data)

    def check_interest(self) -> None:
        """Invariant 3: writable interest only with data left to send."""
        if self.fd in self.loop.writers:
            assert self.conn.pending_bytes > 0


async def scenario(run: Run, steps: list[Op]) -> None:
    """Play the drawn calls, then let everything settle."""
    for n, (op, size) in enumerate(steps):
        if op in ("write", "send"):
            run.write(payload(n, size), op)
        elif op == "tick":
            await asyncio.sleep(0)
        elif op == "writable" and run.fd in run.loop.writers:
            run.loop.writable(run.fd)
        elif op == "drain":
            run.futures.append(asyncio.ensure_future(run.conn.drain()))
        elif op in ("close", "abort", "write_eof"):
            getattr(run.conn, op)()
        await asyncio.sleep(0)
        run.check_interest()
    for _ in range(200):
        await asyncio.sleep(0)
        run.check_interest()
        if run.fd in run.loop.writers:
            run.loop.writable(run.fd)
        elif not run.conn.pending_bytes:
            break
    run.conn.abort()
    await run.conn.wait_closed()
    if run.futures:
        await asyncio.wait(run.futures)


@given(schedule=fault_schedules(max_accept=5000, interrupts=True), steps=ops)
def test_stream_invariants(schedule: list[Any], steps: list[Op]) -> None:
    """Bytes reach the wire once and in order; each completion fires once."""
    pool = bufkit.BufferPool()
    with asyncio.Runner(loop_factory=ReadinessFake) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, ReadinessFake)
        sock = FakeSocket(send=schedule)
        conn = Connection(
            pool, sock, Recorder(), loop=loop, high_water=6000, low_water=2000
        )
        conn._start()
        run = Run(loop, sock, conn)
        runner.run(scenario(run, steps))
    wire = sock.wire
    expected = b"".join(run.accepted)
    assert expected.startswith(wire)  # invariant 1: once, in order, no gaps
    end = 0
    for i, data in enumerate(run.accepted):
        end += len(data)
        outcomes = run.done.get(i, [])
        assert len(outcomes) == 1, (i, outcomes)  # invariant 2: exactly once
        if end <= len(wire) and data:
            assert outcomes == [None]
        if end > len(wire):
            assert isinstance(outcomes[0], OSError)
    for fut in run.futures:
        assert fut.done()
        if not fut.cancelled() and fut.exception() is not None:
            assert isinstance(fut.exception(), OSError)
    faulted = any(getattr(step, "errno", None) for step in schedule)
    if not faulted and not any(op == "abort" for op, _ in steps):
        assert wire == expected
    assert pool.stats().buffers_in_use == 0  # invariant 4
    assert sock.closed
    assert not loop.readers
    assert not loop.writers
