"""The hostile how-tos' examples behave as the pages say."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from twisted.internet.protocol import Protocol
from twisted.protocols.basic import LineReceiver

from bufkit.testing import (
    CheckFailed,
    check_protocol,
    check_stream_handler,
)
from bufkit.testing.twisted import (
    check_twisted_protocol,
)

SEED = 0
HELLO = [b"hello\r\n", b"world\r\n"]
COMMANDS = [b"ECHO a\r\n", b"QUIT\r\n", b"ECHO b\r\n"]
SUMS = [b"\x00\x00\x00\x03abc", b"\x00\x00\x00\x01z"]


class DropsTail(asyncio.Protocol):
    """hostile-asyncio.md, section 1: the bug."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for line in data.split(b"\r\n")[:-1]:
            self.transport.write(line.upper() + b"\r\n")


class UpperLines(asyncio.Protocol):
    """hostile-asyncio.md, section 1: the fix."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        for line in lines:
            self.transport.write(line.upper() + b"\r\n")


class PoliteUpperLines(UpperLines):
    """hostile-asyncio.md, section 2: the fix."""

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


def _report(check: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args, seed=SEED, **kwargs)
    return str(info.value)


def test_asyncio_howto() -> None:
    """The tail-dropping bug, the backpressure bug, and both fixes."""
    text = _report(check_protocol, DropsTail, HELLO)
    assert "hostile   output (13 bytes): b'ELLO\\r\\nWORLD\\r\\n'" in text
    check_protocol(UpperLines, HELLO, max_examples=200)
    text = _report(check_protocol, UpperLines, HELLO, respects_backpressure=True)
    assert "Cutting(cuts=(7,), pauses=(Pause(at_write=0, hold=1),))" in text
    check_protocol(
        PoliteUpperLines, HELLO, respects_backpressure=True, max_examples=200
    )


async def sum_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """hostile-streams.md, section 1: the bug."""
    while header := await reader.read(4):
        count = int.from_bytes(header, "big")
        body = await reader.read(count)
        writer.write(str(sum(body)).encode() + b"\n")
        await writer.drain()
    writer.close()


async def sum_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """hostile-streams.md, section 1: the fix."""
    while True:
        try:
            header = await reader.readexactly(4)
        except asyncio.IncompleteReadError:
            break
        body = await reader.readexactly(int.from_bytes(header, "big"))
        writer.write(str(sum(body)).encode() + b"\n")
        await writer.drain()
    writer.close()


async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """hostile-streams.md, section 2: the bug."""
    async for line in reader:
        writer.write(line.upper())
    writer.close()


def test_streams_howto() -> None:
    """``read(n)`` and the missing ``drain()`` are caught; the fix passes."""
    text = _report(check_stream_handler, sum_read, SUMS)
    assert "hostile   output (6 bytes): b'0\\n320\\n'" in text
    check_stream_handler(
        sum_exact, SUMS, respects_backpressure=True, lose_connection=True
    )
    text = _report(
        check_stream_handler, shout, [b"one\n", b"two\n"], respects_backpressure=True
    )
    assert "Cutting(pauses=(Pause(at_write=0, hold=0),))" in text


def _out(protocol: Protocol) -> Any:
    """The transport, untyped (Twisted's interfaces need a mypy plugin)."""
    return protocol.transport


class Commands(Protocol):
    """hostile-twisted.md, section 1: the bug."""

    def dataReceived(self, data: bytes) -> None:
        command, out = data.strip(), _out(self)
        if command == b"QUIT":
            out.loseConnection()
        else:
            out.write(b"OK " + command + b"\r\n")


class LineCommands(LineReceiver):
    """hostile-twisted.md, section 1: the fix."""

    def lineReceived(self, line: bytes) -> None:
        if line == b"QUIT":
            _out(self).loseConnection()
        else:
            self.sendLine(b"OK " + line)  # type: ignore[no-untyped-call]


class Relay(Protocol):
    """hostile-twisted.md, section 2: the bug."""

    def connectionMade(self) -> None:
        _out(self).registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        _out(self).write(data)


class PausingRelay(Relay):
    """hostile-twisted.md, section 2: the fix."""

    def pauseProducing(self) -> None:
        _out(self).pauseProducing()

    def resumeProducing(self) -> None:
        _out(self).resumeProducing()


def test_twisted_howto() -> None:
    """Coalesced commands and a deaf producer are caught; the fixes pass."""
    text = _report(check_twisted_protocol, Commands, COMMANDS)
    assert "  Cutting()\n  cut points: none (the whole input in one delivery)" in text
    assert "hostile   output (25 bytes)" in text
    check_twisted_protocol(LineCommands, COMMANDS, max_examples=300)
    text = _report(
        check_twisted_protocol, Relay, [b"abc", b"def"], respects_backpressure=True
    )
    assert "Cutting(cuts=(1,), pauses=(Pause(at_write=0, hold=1),))" in text
    check_twisted_protocol(
        PausingRelay,
        [b"abc", b"def"],
        respects_backpressure=True,
        lose_connection=True,
        max_examples=200,
    )
