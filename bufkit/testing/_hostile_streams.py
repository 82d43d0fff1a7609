"""Hostile asyncio streams, and ``check_stream_handler`` for streams handlers.

Theory of operation: a handler written for :func:`asyncio.start_server`
(``async def handler(reader, writer)``) gets a real :class:`asyncio.StreamReader`
and a :class:`HostileStreamWriter` (a real :class:`asyncio.StreamWriter` that
records its ``drain()`` calls), both over a
:class:`~bufkit.testing.HostileTransport` and a real
:class:`asyncio.StreamReaderProtocol`, inside a fresh event loop. The
transport feeds the reader one chunk of the cutting at a time and lets the
loop turn until the handler has consumed it, so ``read(n)`` returns what one
chunk holds, down to one byte; a backpressure pause makes ``drain()`` block
until the transport resumes a few deliveries later. After the conversation
the handler is given time to finish; one still running is cancelled and
reported. :func:`check_stream_handler` compares each run with the reference
(each message in one chunk, no backpressure) and reports the smallest
cutting that changes what the handler wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, final

from bufkit.testing._hostile_asyncio import HostileTransport, _AsyncioAdapter
from bufkit.testing._hostile_core import (
    Outcome,
    Wire,
    check_example,
    check_search,
    drain,
    drive,
    prepare,
)
from bufkit.testing._hostile_cuts import Cutting, _pieces

__all__ = [
    "HostileStreamWriter",
    "check_stream_handler",
    "check_stream_handler_example",
    "run_stream_handler",
]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[object]]

_TURNS: Final = 8  # loop turns after each delivery
_MORE_TURNS: Final = 64  # further turns while the reader still holds data
_FINISH_TURNS: Final = 400  # loop turns the handler gets after the conversation
_BUFFER: Final = "_buffer"  # StreamReader's buffer (read to know it was consumed)


@final
class HostileStreamWriter(asyncio.StreamWriter):
    """The :class:`asyncio.StreamWriter` handed to your handler.

    It behaves as asyncio's own (``drain()`` blocks while the transport has
    paused writing) and records each ``drain()`` in the transcript. With
    ``respects_backpressure``, a write made while writing is paused and
    before any ``drain()`` since the pause is flagged.
    """

    def __init__(
        self,
        transport: HostileTransport,
        protocol: asyncio.StreamReaderProtocol,
        reader: asyncio.StreamReader,
        loop: asyncio.AbstractEventLoop,
        *,
        respects_backpressure: bool = False,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._wire: Wire = transport._wire
        self._respects = respects_backpressure
        self._drained = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write through the hostile transport (see the class)."""
        self._flag()
        super().write(data)
        self._drained = not self._wire.write_paused

    def writelines(self, data: object) -> None:
        """Write the buffers through the hostile transport as one write."""
        self._flag()
        super().writelines(data)  # type: ignore[arg-type]
        self._drained = not self._wire.write_paused

    def _flag(self) -> None:
        wire = self._wire
        if self._respects and wire.write_paused and not self._drained:
            wire.problems.append(
                f"write() #{wire.writes} came while writing was paused and before "
                "any `await writer.drain()` since the pause: call drain() after "
                "each write, so a slow peer slows the handler down"
            )

    async def drain(self) -> None:
        """Wait while the transport has paused writing, like asyncio."""
        paused = self._wire.write_paused
        self._wire.note(
            "await drain()" + ("    # blocks: writing is paused" if paused else "")
        )
        self._drained = True
        await super().drain()


def _buffered(reader: asyncio.StreamReader) -> int:
    return len(getattr(reader, _BUFFER, b""))


async def _turn(task: asyncio.Task[None], reader: asyncio.StreamReader) -> None:
    for _ in range(_TURNS):
        await asyncio.sleep(0)
    for _ in range(_MORE_TURNS):
        if task.done() or not _buffered(reader):
            return
        await asyncio.sleep(0)


async def _play(
    handler: Handler,
    data: bytes,
    cutting: Cutting,
    *,
    eof: bool,
    respects_backpressure: bool,
    extra: Mapping[str, object] | None,
    limit: int,
) -> Outcome:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = HostileTransport(cutting, extra=extra)
    wire = transport._wire
    writer = HostileStreamWriter(
        transport, protocol, reader, loop, respects_backpressure=respects_backpressure
    )
    adapter = _AsyncioAdapter(transport, protocol)
    steps = drive(wire, adapter, cutting.chunks(data), eof=eof)
    next(steps)  # connection_made, before the handler runs
    wire.note("handler(reader, writer) starts")
    task: asyncio.Task[None] = loop.create_task(_run(handler, reader, writer, wire))
    for _ in steps:
        await _turn(task, reader)
    await _finish(task, wire, adapter)
    outcome = wire.outcome()
    wire.lost = True  # the transport counts as closed from here: no unclosed warning
    return outcome


async def _run(
    handler: Handler,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    wire: Wire,
) -> None:
    try:
        await handler(reader, writer)
    except Exception as exc:
        wire.fail("handler", exc)
        return
    wire.note("handler returned")


async def _finish(
    task: asyncio.Task[None], wire: Wire, adapter: _AsyncioAdapter
) -> None:
    for _ in range(_FINISH_TURNS):
        drain(wire)  # the input is used up: the peer reads what is left
        if wire.closing and not wire.lost:
            wire.lost = True
            adapter.lose(wire.fatal)
        if task.done():
            return
        await asyncio.sleep(0)
    task.cancel()
    wire.note("-- the handler was still running after the conversation: cancelled")
    if wire.error is None:
        wire.error = "the handler was still running after the conversation"
    await asyncio.gather(task, return_exceptions=True)


def run_stream_handler(
    handler: Handler,
    conversation: bytes | Sequence[bytes],
    cutting: Cutting | None = None,
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
    extra: Mapping[str, object] | None = None,
    limit: int = 2**16,
) -> Outcome:
    """Play ``conversation`` into a streams handler over hostile streams.

    Each run happens inside a fresh event loop (:func:`asyncio.run`): call it
    from synchronous code, not from inside a running loop.

    Args:
        handler: ``async def handler(reader, writer)``, as for
            :func:`asyncio.start_server`.
        conversation: the inbound bytes, or the messages the peer sends.
        cutting: how to cut them and when ``drain()`` blocks (default: one
            delivery, no backpressure).
        eof: end with EOF (``reader.read()`` then returns ``b""``).
        respects_backpressure: flag a write made while paused before any
            ``drain()``.
        extra: extra answers of ``writer.get_extra_info``.
        limit: the reader's buffer limit, as for :func:`asyncio.start_server`.

    Returns:
        What the handler wrote, with the transcript of the run.

    Raises:
        CuttingError: if the cutting does not fit the conversation.
    """
    __tracebackhide__ = True
    data, cutting = prepare(conversation, cutting)
    return asyncio.run(
        _play(
            handler,
            data,
            cutting,
            eof=eof,
            respects_backpressure=respects_backpressure,
            extra=extra,
            limit=limit,
        )
    )


def check_stream_handler(
    handler: Handler,
    conversation: bytes | Sequence[bytes],
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
    lose_connection: bool = False,
    extra: Mapping[str, object] | None = None,
    max_examples: int = 300,
    seed: int | None = None,
) -> None:
    """Check that a streams handler behaves the same however its input is cut.

    The reference run feeds each message of ``conversation`` to the reader in
    one piece with no backpressure. Hypothesis then draws cuttings (chunks
    down to one byte, so ``read(n)`` comes back short; ``drain()`` blocking
    after some of your writes; and, if asked, a lost connection) and compares
    what the handler wrote, how the connection ended and what it raised.

    Args:
        handler: ``async def handler(reader, writer)``.
        conversation: the inbound bytes, or the messages the peer sends.
        eof: end the conversation with EOF.
        respects_backpressure: the handler promises to ``await drain()``
            after each write; a write while paused before any drain fails.
        lose_connection: also lose the connection at drawn points (compared
            with a reference run that loses it at the same byte).
        extra: extra answers of ``writer.get_extra_info``.
        max_examples: how many cuttings Hypothesis draws.
        seed: fix Hypothesis' seed (default: ``--bufkit-seed`` or random).

    Raises:
        CheckFailed: with the problem, the conversation, the smallest cutting
            that shows it, the reference and hostile outputs where they
            differ, a call that reproduces it, and the hostile transcript.
    """
    __tracebackhide__ = True
    pieces = _pieces(conversation)
    options = {"eof": eof, "respects_backpressure": respects_backpressure}
    check_search(
        "check_stream_handler",
        "handler",
        _runner(handler, pieces, options, extra),
        pieces,
        options,
        max_examples=max_examples,
        seed=seed,
        lose_connection=lose_connection,
        subject="handler",
    )


def check_stream_handler_example(
    handler: Handler,
    conversation: bytes | Sequence[bytes],
    cutting: Cutting,
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
    extra: Mapping[str, object] | None = None,
) -> Outcome:
    """Judge one cutting as :func:`check_stream_handler` does.

    Args:
        handler: ``async def handler(reader, writer)``.
        conversation: the inbound bytes, or the messages the peer sends.
        cutting: the cutting to judge.
        eof: end the conversation with EOF.
        respects_backpressure: flag a write while paused before any drain.
        extra: extra answers of ``writer.get_extra_info``.

    Returns:
        The hostile run's outcome, when it matches the reference.

    Raises:
        CheckFailed: as :func:`check_stream_handler`.
        CuttingError: if the cutting does not fit the conversation.
    """
    __tracebackhide__ = True
    pieces = _pieces(conversation)
    options = {"eof": eof, "respects_backpressure": respects_backpressure}
    return check_example(
        "check_stream_handler",
        "handler",
        _runner(handler, pieces, options, extra),
        pieces,
        cutting,
        options,
        subject="handler",
    )


def _runner(
    handler: Handler,
    pieces: list[bytes],
    options: Mapping[str, bool],
    extra: Mapping[str, object] | None,
) -> Callable[[Cutting], Outcome]:
    def run(cutting: Cutting) -> Outcome:
        return run_stream_handler(
            handler,
            pieces,
            cutting,
            eof=options["eof"],
            respects_backpressure=options["respects_backpressure"],
            extra=extra,
        )

    return run
