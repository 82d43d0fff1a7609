"""The hostile transports' public API, used as a user would: checked, never run."""

from __future__ import annotations

import asyncio
from typing import Any, assert_type

from hypothesis import given
from hypothesis.strategies import SearchStrategy
from twisted.internet.protocol import Protocol
from twisted.protocols.basic import LineReceiver

from bufkit.testing import (
    Cutting,
    HostileStreamWriter,
    HostileTransport,
    Outcome,
    Pause,
    backpressure_schedules,
    check_protocol,
    check_protocol_example,
    check_stream_handler,
    check_stream_handler_example,
    cuttings,
    run_protocol,
    run_stream_handler,
)
from bufkit.testing.twisted import (
    HostileTwistedTransport,
    check_twisted_protocol,
    check_twisted_protocol_example,
    run_twisted_protocol,
)


class Lines(asyncio.Protocol):
    """A user's asyncio protocol."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A user's streams handler."""
    writer.write(await reader.readline())
    await writer.drain()


class Echo(LineReceiver):
    """A user's Twisted protocol."""


def cutting_values() -> None:
    """Cuttings and pauses are typed values."""
    cutting = Cutting(cuts=[1, 2], pauses=[Pause(0, hold=2)], lost_at=3)
    assert_type(cutting.cuts, tuple[int, ...])
    assert_type(cutting.pauses, tuple[Pause, ...])
    assert_type(cutting.lost_at, int | None)
    assert_type(cutting.chunks(b"abcd"), list[bytes])
    assert_type(cutting.describe(b"abcd"), str)
    Cutting(cuts=["1"])  # type: ignore[list-item]
    Pause("0")  # type: ignore[arg-type]


def strategies() -> None:
    """The strategies draw cuttings and backpressure schedules."""
    assert_type(cuttings(10, max_cuts=3, lose=True), SearchStrategy[Cutting])
    assert_type(backpressure_schedules(max_pauses=2), SearchStrategy[tuple[Pause, ...]])

    @given(cuttings(14))
    def test_lines(cutting: Cutting) -> None:
        run_protocol(Lines, b"hello\r\nworld\r\n", cutting)


def asyncio_protocols() -> None:
    """Protocol factories are classes or functions; the outcome is a value."""
    outcome = run_protocol(Lines, [b"a\n", b"b\n"], Cutting(cuts=(1,)), loop=True)
    assert_type(outcome, Outcome)
    assert_type(outcome.output, bytes)
    assert_type(outcome.error, str | None)
    assert_type(outcome.calls, tuple[str, ...])
    assert_type(check_protocol(Lines, b"a\n", respects_backpressure=True), None)
    assert_type(check_protocol_example(lambda: Lines(), b"a\n", Cutting()), Outcome)
    transport = HostileTransport(Cutting(), extra={"peername": ("::1", 1)})
    assert_type(transport, HostileTransport)
    _: asyncio.Transport = transport
    check_protocol(Lines, "text")  # type: ignore[arg-type]
    check_protocol(Lines(), b"")  # type: ignore[arg-type]


def streams() -> None:
    """A streams handler is ``async def handler(reader, writer)``."""
    assert_type(run_stream_handler(handler, b"x\n"), Outcome)
    assert_type(check_stream_handler(handler, [b"x\n"], lose_connection=True), None)
    assert_type(check_stream_handler_example(handler, b"x\n", Cutting()), Outcome)
    writer_class: type[asyncio.StreamWriter] = HostileStreamWriter
    assert writer_class

    def not_async(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass

    run_stream_handler(not_async, b"")  # type: ignore[arg-type]


def twisted() -> None:
    """Twisted protocols run without a reactor."""
    assert_type(run_twisted_protocol(Echo, b"a\r\n"), Outcome)
    assert_type(check_twisted_protocol(Echo, [b"a\r\n"], max_examples=10), None)
    assert_type(check_twisted_protocol_example(Echo, b"a\r\n", Cutting()), Outcome)
    transport = HostileTwistedTransport(Cutting(pauses=(Pause(0),)))
    assert_type(transport.producer, Any)
    factory: type[Protocol] = Echo
    run_twisted_protocol(factory, b"")
    run_twisted_protocol(Lines, b"")  # type: ignore[arg-type]
