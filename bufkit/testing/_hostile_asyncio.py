"""A hostile asyncio transport, and ``check_protocol`` for your asyncio protocols.

Theory of operation: :class:`HostileTransport` is an :class:`asyncio.Transport`
that never touches a socket. It records every write, ``write_eof``, ``close``
and ``abort``, answers ``get_extra_info`` like a TCP transport, honours
``pause_reading``, and, following a :class:`~bufkit.testing.Cutting`, calls
``pause_writing`` from inside one of your writes and ``resume_writing`` a few
deliveries later. :func:`run_protocol` plays a conversation through it: the
input cut at the cutting's points (down to one byte per ``data_received``, or
through ``get_buffer``/``buffer_updated`` with the cutting's size hints and
short fills for a :class:`asyncio.BufferedProtocol`), then EOF or a lost
connection. No event loop runs unless asked (``loop=True``): then each run
happens inside a fresh loop, which turns between deliveries.
:func:`check_protocol` asserts that the protocol's output does not depend on
the cutting, and reports the smallest cutting that changes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, final

from bufkit.testing._hostile_core import (
    Outcome,
    Wire,
    check_example,
    check_search,
    drive,
    prepare,
    run_plain,
)
from bufkit.testing._hostile_cuts import Cutting, _pieces

__all__ = [
    "HostileTransport",
    "check_protocol",
    "check_protocol_example",
    "run_protocol",
]

_HIGH: Final = 65536
_LOW: Final = 16384
_SETTLE: Final = 4  # loop turns between deliveries when a loop runs

DEFAULT_EXTRA: Final[Mapping[str, object]] = {
    "peername": ("127.0.0.1", 50123),
    "sockname": ("127.0.0.1", 8000),
    "socket": None,
    "sslcontext": None,
    "ssl_object": None,
    "peercert": None,
    "cipher": None,
    "compression": None,
}

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


@final
class HostileTransport(asyncio.Transport):
    """An asyncio transport that records writes and pushes back on a schedule.

    Built by :func:`run_protocol`; you may also build one and call the
    protocol's callbacks yourself.

    Args:
        cutting: the backpressure schedule to apply (its cut points are used
            by :func:`run_protocol`, not here).
        respects_backpressure: flag a write made while writing is paused.
        extra: answers of :meth:`get_extra_info`, on top of TCP-like defaults
            (``peername``, ``sockname``, ``socket=None`` ...).
    """

    def __init__(
        self,
        cutting: Cutting | None = None,
        *,
        respects_backpressure: bool = False,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        self._info = {**DEFAULT_EXTRA, **(extra or {})}
        self._wire = Wire(
            cutting or Cutting(), respects_backpressure=respects_backpressure
        )
        self._protocol: asyncio.BaseProtocol | None = None
        self._limits = (_LOW, _HIGH)

    # What the protocol sees.

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Answer like a TCP transport (see ``extra``)."""
        return self._info.get(name, default)

    def is_closing(self) -> bool:
        """Whether the protocol closed or aborted, or the connection was lost."""
        return self._wire.closing or self._wire.lost

    def close(self) -> None:
        """Record ``close()``: no more data is delivered."""
        self._wire.close("close()")

    def abort(self) -> None:
        """Record ``abort()``: no more data is delivered."""
        self._wire.close("abort()")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Record ``data``; maybe pause writing from inside this call.

        Raises:
            TypeError: if ``data`` is not bytes-like, like asyncio.
            RuntimeError: after ``write_eof()``, like asyncio.
        """
        self._wire.write(self._checked(data))

    def writelines(
        self, list_of_data: Iterable[bytes | bytearray | memoryview]
    ) -> None:
        """Record the buffers as one write."""
        self._wire.write(b"".join(self._checked(d) for d in list_of_data), "writelines")

    def _checked(self, data: object) -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            kind = type(data).__name__
            raise TypeError(f"data argument must be a bytes-like object, not {kind!r}")
        if self._wire.eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        return bytes(data)

    def write_eof(self) -> None:
        """Record the half-close."""
        self._wire.note("write_eof()")
        self._wire.eof_written = True

    def can_write_eof(self) -> bool:
        """Always true, like TCP."""
        return True

    def pause_reading(self) -> None:
        """Stop delivering data until :meth:`resume_reading`."""
        self._wire.note("pause_reading()")
        self._wire.reading_paused = True

    def resume_reading(self) -> None:
        """Deliver data again."""
        self._wire.note("resume_reading()")
        self._wire.reading_paused = False

    def is_reading(self) -> bool:
        """Whether data is being delivered."""
        return not (self._wire.reading_paused or self.is_closing())

    def set_write_buffer_limits(
        self, high: int | None = None, low: int | None = None
    ) -> None:
        """Record the limits (the cutting decides when to pause)."""
        high = _HIGH if high is None else high
        self._limits = (high // 4 if low is None else low, high)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The ``(low, high)`` limits last set."""
        return self._limits

    def get_write_buffer_size(self) -> int:
        """Above the high-water mark while paused, else zero."""
        return self._limits[1] + 1 if self._wire.write_paused else 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Switch protocols: the pauses of the cutting now go to ``protocol``."""
        self._protocol = protocol
        wire = self._wire
        wire.pause_name, wire.resume_name = "pause_writing", "resume_writing"
        wire.on_pause, wire.on_resume = protocol.pause_writing, protocol.resume_writing

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The current protocol.

        Raises:
            RuntimeError: before a protocol was set.
        """
        if self._protocol is None:
            raise RuntimeError("no protocol was set on this HostileTransport")
        return self._protocol

    # What the toolkit reads.

    @property
    def calls(self) -> list[str]:
        """The transcript so far, one call a line."""
        return list(self._wire.calls)

    def outcome(self) -> Outcome:
        """What the protocol did so far."""
        return self._wire.outcome()


class _AsyncioAdapter:
    """Delivers to an asyncio protocol through a :class:`HostileTransport`."""

    def __init__(
        self, transport: HostileTransport, protocol: asyncio.BaseProtocol
    ) -> None:
        self.transport = transport
        self.wire = transport._wire
        self.protocol = protocol
        transport.set_protocol(protocol)
        self._hints: Iterator[int] = iter(self.wire.cutting.hints)

    def start(self) -> None:
        self.wire.note("connection_made(transport)")
        self.wire.guard(
            "connection_made", self.protocol.connection_made, self.transport
        )

    def deliver(self, chunk: bytes) -> None:
        protocol = self.protocol
        if isinstance(protocol, asyncio.BufferedProtocol):
            self._fill(protocol, chunk)
        elif isinstance(protocol, asyncio.Protocol):
            self.wire.note(f"data_received({chunk!r})")
            self.wire.guard("data_received", protocol.data_received, chunk)

    def _fill(self, protocol: asyncio.BufferedProtocol, chunk: bytes) -> None:
        wire, view = self.wire, memoryview(chunk)
        while view and not wire.closing:
            hint = next(self._hints, -1)
            buf = wire.guard("get_buffer", protocol.get_buffer, hint)
            if buf is None:
                return
            target = memoryview(buf).cast("B")  # type: ignore[arg-type]
            if not target:
                wire.guard("get_buffer", _empty_buffer)
                return
            n = min(len(target), len(view))
            target[:n] = view[:n]
            wire.note(f"get_buffer({hint}) -> {len(target)} bytes; buffer_updated({n})")
            wire.guard("buffer_updated", protocol.buffer_updated, n)
            view = view[n:]

    def eof(self) -> None:
        wire, protocol = self.wire, self.protocol
        wire.note("eof_received()")
        keep_open = None
        if isinstance(protocol, asyncio.Protocol | asyncio.BufferedProtocol):
            keep_open = wire.guard("eof_received", protocol.eof_received)
        if not keep_open:
            wire.close(
                "close() (by the transport: eof_received returned a false value)"
            )

    def lose(self, exc: BaseException | None) -> None:
        self.wire.note(f"connection_lost({exc!r})")
        self.wire.guard("connection_lost", self.protocol.connection_lost, exc)

    def poll(self) -> None:
        pass


def _empty_buffer() -> None:
    raise RuntimeError("get_buffer() returned an empty buffer")


def _play(
    factory: ProtocolFactory,
    data: bytes,
    cutting: Cutting,
    *,
    eof: bool,
    respects_backpressure: bool,
    extra: Mapping[str, object] | None,
) -> tuple[HostileTransport, Iterator[None]]:
    transport = HostileTransport(
        cutting, respects_backpressure=respects_backpressure, extra=extra
    )
    adapter = _AsyncioAdapter(transport, factory())
    return transport, drive(transport._wire, adapter, cutting.chunks(data), eof=eof)


async def _settle_through(steps: Iterator[None]) -> None:
    for _ in steps:
        for _ in range(_SETTLE):
            await asyncio.sleep(0)


def run_protocol(
    factory: ProtocolFactory,
    conversation: bytes | Sequence[bytes],
    cutting: Cutting | None = None,
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
    loop: bool = False,
    extra: Mapping[str, object] | None = None,
) -> Outcome:
    """Play ``conversation`` into a new protocol through a hostile transport.

    Args:
        factory: makes the protocol (a class or a function without arguments).
        conversation: the inbound bytes, or the messages the peer sends.
        cutting: how to cut them and when to push back (default: one
            delivery, no backpressure).
        eof: end with ``eof_received()`` (otherwise the input just stops).
        respects_backpressure: flag writes made while writing is paused.
        loop: run inside a fresh event loop that turns between deliveries,
            for protocols that need a running loop.
        extra: extra answers of ``get_extra_info``.

    Returns:
        What the protocol did, with the transcript of the run.

    Raises:
        CuttingError: if the cutting does not fit the conversation.
    """
    __tracebackhide__ = True
    data, cutting = prepare(conversation, cutting)
    if loop:

        async def play() -> Outcome:
            transport, steps = _play(
                factory,
                data,
                cutting,
                eof=eof,
                respects_backpressure=respects_backpressure,
                extra=extra,
            )
            await _settle_through(steps)
            return transport.outcome()

        return asyncio.run(play())
    transport = HostileTransport(
        cutting, respects_backpressure=respects_backpressure, extra=extra
    )
    run_plain(
        transport._wire, _AsyncioAdapter(transport, factory()), data, cutting, eof=eof
    )
    return transport.outcome()


def check_protocol(
    factory: ProtocolFactory,
    conversation: bytes | Sequence[bytes],
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
    lose_connection: bool = False,
    loop: bool = False,
    extra: Mapping[str, object] | None = None,
    max_examples: int = 500,
    seed: int | None = None,
) -> None:
    """Check that an asyncio protocol behaves the same however its input is cut.

    The reference run delivers each message of ``conversation`` in one
    ``data_received`` with no backpressure. Hypothesis then draws cuttings
    (cut points down to one byte, pauses of writing at your writes,
    ``get_buffer`` hints for a :class:`asyncio.BufferedProtocol`, and, if
    asked, a lost connection) and compares what the protocol wrote, how it
    ended and what it raised. A difference is a bug in the protocol.

    Args:
        factory: makes a fresh protocol for each run.
        conversation: the inbound bytes, or the messages the peer sends.
        eof: end the conversation with ``eof_received()``.
        respects_backpressure: the protocol promises not to write between
            ``pause_writing()`` and ``resume_writing()``; a write there fails.
        lose_connection: also lose the connection at drawn points (compared
            with a reference run that loses it at the same byte).
        loop: run each example inside a fresh event loop.
        extra: extra answers of ``get_extra_info``.
        max_examples: how many cuttings Hypothesis draws.
        seed: fix Hypothesis' seed (default: ``--bufkit-seed`` or random).

    Raises:
        CheckFailed: with the problem, the conversation, the smallest cutting
            that shows it, the reference and hostile outputs where they
            differ, a call that reproduces it, and the hostile transcript.
    """
    __tracebackhide__ = True
    pieces = _pieces(conversation)
    options = {"eof": eof, "respects_backpressure": respects_backpressure, "loop": loop}
    check_search(
        "check_protocol",
        "factory",
        _runner(factory, pieces, options, extra),
        pieces,
        options,
        max_examples=max_examples,
        seed=seed,
        lose_connection=lose_connection,
        hints=isinstance(factory(), asyncio.BufferedProtocol),
    )


def check_protocol_example(
    factory: ProtocolFactory,
    conversation: bytes | Sequence[bytes],
    cutting: Cutting,
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
    loop: bool = False,
    extra: Mapping[str, object] | None = None,
) -> Outcome:
    """Judge one cutting as :func:`check_protocol` does (to reproduce a failure).

    Args:
        factory: makes a fresh protocol for each run.
        conversation: the inbound bytes, or the messages the peer sends.
        cutting: the cutting to judge.
        eof: end the conversation with ``eof_received()``.
        respects_backpressure: flag writes made while writing is paused.
        loop: run inside a fresh event loop.
        extra: extra answers of ``get_extra_info``.

    Returns:
        The hostile run's outcome, when it matches the reference.

    Raises:
        CheckFailed: as :func:`check_protocol`.
        CuttingError: if the cutting does not fit the conversation.
    """
    __tracebackhide__ = True
    pieces = _pieces(conversation)
    options = {"eof": eof, "respects_backpressure": respects_backpressure, "loop": loop}
    return check_example(
        "check_protocol",
        "factory",
        _runner(factory, pieces, options, extra),
        pieces,
        cutting,
        options,
    )


def _runner(
    factory: ProtocolFactory,
    pieces: list[bytes],
    options: Mapping[str, bool],
    extra: Mapping[str, object] | None,
) -> Callable[[Cutting], Outcome]:
    def run(cutting: Cutting) -> Outcome:
        return run_protocol(
            factory,
            pieces,
            cutting,
            eof=options["eof"],
            respects_backpressure=options["respects_backpressure"],
            loop=options["loop"],
            extra=extra,
        )

    return run
