"""The hostile asyncio transport and ``check_protocol``: bugs caught, good passes."""

from __future__ import annotations

import asyncio
import re
import struct

import pytest

from bufkit.testing import (
    CheckFailed,
    Cutting,
    CuttingError,
    HostileTransport,
    Pause,
    check_protocol,
    check_protocol_example,
    run_protocol,
)

CONVERSATION = [b"hello\r\n", b"world\r\n", b"bye\r\n"]
SEED = 0  # a fixed search, so each bug is caught on every run


class OneLinePerRead(asyncio.Protocol):
    """The classic bug: each ``data_received`` is taken to be one whole line."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.rstrip(b"\r\n").upper() + b"\r\n")


class LineUpper(asyncio.Protocol):
    """A correct line protocol: buffer, split, keep the tail."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        for line in lines:
            self.transport.write(line.upper() + b"\r\n")


class IgnoresPause(LineUpper):
    """Declares backpressure support but keeps writing when paused."""

    def pause_writing(self) -> None:
        self.paused = True


class HonoursPause(LineUpper):
    """Holds output and stops reading while writing is paused."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.paused = False
        self.held: list[bytes] = []

    def pause_writing(self) -> None:
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        held, self.held = self.held, []
        if held:
            self.transport.writelines(held)
        if not self.paused:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        for line in lines:
            reply = line.upper() + b"\r\n"
            if self.paused:
                self.held.append(reply)
            else:
                self.transport.write(reply)


class LengthPrefixed(asyncio.BufferedProtocol):
    """A correct BufferedProtocol: 2-byte big-endian length, then the payload."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = bytearray(5)
        self.pending = bytearray()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.pending += self.buffer[:nbytes]
        while len(self.pending) >= 2:
            (size,) = struct.unpack_from(">H", self.pending)
            if len(self.pending) < 2 + size:
                return
            self.transport.write(bytes(self.pending[2 : 2 + size][::-1]))
            del self.pending[: 2 + size]


class HeaderInOneFill(LengthPrefixed):
    """Assumes the 2-byte header arrives in one ``buffer_updated``."""

    def buffer_updated(self, nbytes: int) -> None:
        if not self.pending and nbytes < 2:
            self.transport.write(b"?")
            return
        super().buffer_updated(nbytes)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


def test_catches_one_line_per_data_received() -> None:
    """A protocol that assumes one line per read fails, at the smallest cut."""
    with pytest.raises(CheckFailed) as info:
        check_protocol(OneLinePerRead, CONVERSATION, seed=SEED)
    text = str(info.value)
    assert "depends on how its input was cut" in text
    assert "Cutting(cuts=(1,))" in text
    assert "cut points: [1]" in text
    assert "reference output (19 bytes): b'HELLO\\r\\nWORLD\\r\\nBYE\\r\\n'" in text
    assert "hostile   output" in text
    assert "data_received(b'h')" in text


def test_report_reproduces() -> None:
    """The reported call reproduces the failure, and an equal cutting passes."""
    with pytest.raises(CheckFailed) as info:
        check_protocol(OneLinePerRead, CONVERSATION, seed=SEED)
    match = re.search(r"Cutting\(cuts=\(1,\)\)", str(info.value))
    assert match is not None
    with pytest.raises(CheckFailed, match="depends on how its input was cut"):
        check_protocol_example(OneLinePerRead, CONVERSATION, Cutting(cuts=(1,)))
    outcome = check_protocol_example(OneLinePerRead, CONVERSATION, Cutting(cuts=(7,)))
    assert outcome.output == b"HELLO\r\nWORLD\r\nBYE\r\n"


def test_correct_line_protocol_passes_thousands_of_cuttings() -> None:
    """A correct line protocol passes 2,000 cuttings with backpressure."""
    check_protocol(LineUpper, CONVERSATION, max_examples=2000)


def test_honoured_backpressure_passes() -> None:
    """A protocol that holds output while paused passes 1,000 cuttings with losses."""
    check_protocol(
        HonoursPause,
        CONVERSATION,
        respects_backpressure=True,
        lose_connection=True,
        max_examples=1000,
    )


def test_catches_write_while_paused() -> None:
    """A write after ``pause_writing`` fails when backpressure is promised."""
    with pytest.raises(CheckFailed) as info:
        check_protocol(
            IgnoresPause, CONVERSATION, respects_backpressure=True, seed=SEED
        )
    text = str(info.value)
    assert "came while writing was paused" in text
    assert "in a later callback than the one pause_writing() interrupted" in text
    assert "Cutting(cuts=(7,), pauses=(Pause(at_write=0, hold=1),))" in text
    assert "  ^ written while paused, in a later callback" in text
    assert "the outputs are the same" in text


class StopsReading(LineUpper):
    """Finishes the batch it is writing, then stops reading until resumed."""

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


def test_finishing_the_interrupted_callback_is_allowed() -> None:
    """Writes in the callback the pause interrupted are not a violation."""
    check_protocol(StopsReading, CONVERSATION, respects_backpressure=True)


def test_ignored_pause_passes_without_the_promise() -> None:
    """Without ``respects_backpressure``, writing while paused is allowed."""
    check_protocol(IgnoresPause, CONVERSATION, max_examples=200)


def test_buffered_protocol_passes_with_hints_and_short_fills() -> None:
    """A correct BufferedProtocol passes cuttings, size hints and short fills."""
    check_protocol(LengthPrefixed, [_frame(b"abc"), _frame(b""), _frame(b"wxyz")])


def test_catches_header_split_across_fills() -> None:
    """A BufferedProtocol that wants its header in one fill fails at one cut."""
    with pytest.raises(CheckFailed) as info:
        check_protocol(HeaderInOneFill, [_frame(b"abc"), _frame(b"wxyz")], seed=SEED)
    assert "Cutting(cuts=(1,))" in str(info.value)


def test_get_buffer_receives_the_hints_and_fills_short() -> None:
    """``get_buffer`` gets the hints in turn; fills stop at the chunk's end."""
    outcome = run_protocol(
        LengthPrefixed, _frame(b"abcdefgh"), Cutting(cuts=(3,), hints=(7, -1))
    )
    fills = [c for c in outcome.calls if c.startswith("get_buffer")]
    assert fills == [
        "get_buffer(7) -> 5 bytes; buffer_updated(3)",
        "get_buffer(-1) -> 5 bytes; buffer_updated(5)",
        "get_buffer(-1) -> 5 bytes; buffer_updated(2)",
    ]
    assert outcome.output == b"hgfedcba"


class Recorder(asyncio.Protocol):
    """Calls every transport method once, to check what is recorded."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.info = {
            name: transport.get_extra_info(name)
            for name in ("peername", "sockname", "socket", "ssl_object")
        }

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"a")
        self.transport.writelines([b"b", bytearray(b"c"), memoryview(b"d")])

    def eof_received(self) -> bool:
        self.transport.close()
        self.transport.write(b"late")
        return True


def test_records_writes_eof_close_and_drops_late_writes() -> None:
    """Writes, ``writelines`` and ``close`` are recorded; later writes dropped."""
    outcome = run_protocol(Recorder, b"x")
    assert outcome.output == b"abcd"
    assert not outcome.eof_written
    assert outcome.ending == "close()"
    assert outcome.dropped == 4
    assert outcome.calls[-2:] == (
        "  ^ dropped: the connection was closed by close()",
        "connection_lost(None)",
    )


def test_get_extra_info_answers_like_tcp() -> None:
    """``get_extra_info`` gives TCP-like answers, overridable with ``extra``."""
    transport = HostileTransport(extra={"peername": ("10.0.0.1", 1)})
    assert transport.get_extra_info("peername") == ("10.0.0.1", 1)
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
    assert transport.get_extra_info("socket") is None
    assert transport.get_extra_info("nonsense", 5) == 5


class WritesAfterEof(asyncio.Protocol):
    """Writes after ``write_eof``, which asyncio refuses."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write_eof()
        transport.write(b"x")


def test_write_after_write_eof_raises_like_asyncio() -> None:
    """A write after ``write_eof`` raises RuntimeError; the run records it."""
    outcome = run_protocol(WritesAfterEof, b"")
    assert outcome.eof_written
    assert outcome.error is not None
    assert outcome.error.startswith("connection_made raised RuntimeError(")
    assert outcome.ending == "closed after an error"


def test_write_of_str_raises_type_error() -> None:
    """Writing ``str`` raises TypeError naming the type."""
    transport = HostileTransport()
    with pytest.raises(TypeError, match="not 'str'"):
        transport.write("text")  # type: ignore[arg-type]


class KeepsOpen(LineUpper):
    """Keeps the connection half-open after EOF and writes a goodbye."""

    def eof_received(self) -> bool:
        self.transport.write(b"BYE")
        return True


def test_eof_received_true_keeps_the_connection_open() -> None:
    """When ``eof_received`` returns true the transport does not close."""
    outcome = run_protocol(KeepsOpen, b"a\r\n")
    assert outcome.output == b"A\r\nBYE"
    assert outcome.ending == "open"


def test_lost_connection_delivers_connection_lost_with_error() -> None:
    """``lost_at`` stops delivery there and calls ``connection_lost(exc)``."""
    outcome = run_protocol(LineUpper, b"ab\r\ncd\r\n", Cutting(lost_at=5))
    assert outcome.output == b"AB\r\n"
    assert outcome.ending == "lost by the peer"
    assert outcome.calls[-1].startswith("connection_lost(ConnectionResetError(")


def test_pause_comes_inside_the_write_and_resumes_after_hold() -> None:
    """A pause fires inside the chosen write; resume after ``hold`` deliveries."""
    cutting = Cutting(cuts=(4, 8), pauses=(Pause(at_write=0, hold=1),))
    outcome = run_protocol(LineUpper, b"ab\r\ncd\r\nef\r\n", cutting)
    calls = list(outcome.calls)
    pause = calls.index("  -> pause_writing()    # Pause(at_write=0, hold=1)")
    resume = calls.index("  -> resume_writing()")
    assert calls[pause - 1] == "write(b'AB\\r\\n')"
    assert calls[pause + 1 : resume] == [
        "data_received(b'cd\\r\\n')",
        "write(b'CD\\r\\n')",
    ]
    assert calls[resume + 1] == "data_received(b'ef\\r\\n')"


def test_cutting_outside_the_conversation_is_refused() -> None:
    """A cut outside the input raises CuttingError naming it."""
    with pytest.raises(CuttingError, match="cut 9 is not inside the 3-byte input"):
        run_protocol(LineUpper, b"abc", Cutting(cuts=(9,)))


class NeedsLoop(LineUpper):
    """Writes from a loop callback, so it needs a running event loop."""

    def data_received(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(super().data_received, data)


def test_protocol_that_needs_a_loop_runs_with_loop_true() -> None:
    """``loop=True`` runs each example in a fresh loop that turns between reads."""
    check_protocol(NeedsLoop, CONVERSATION, loop=True, max_examples=50)


def test_broken_reference_is_reported_first() -> None:
    """If the uncut run already raises, the check says so and suggests ``loop``."""
    with pytest.raises(CheckFailed, match=r"the reference run .* already fails"):
        check_protocol(NeedsLoop, CONVERSATION)


def test_toolkit_frames_are_hidden() -> None:
    """Every toolkit frame a CheckFailed passes through hides itself from pytest."""
    with pytest.raises(CheckFailed) as info:
        check_protocol(OneLinePerRead, CONVERSATION, seed=SEED)
    frames = [entry.frame for entry in info.traceback[1:]]
    assert frames
    for frame in frames:
        assert frame.f_locals.get("__tracebackhide__") is True, frame.code.name


def test_transport_used_by_hand_pauses_its_protocol() -> None:
    """A transport built by hand pauses the protocol set on it."""
    transport = HostileTransport(Cutting(pauses=(Pause(at_write=0),)))
    protocol = HonoursPause()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"a\r\nb\r\n")
    assert protocol.paused
    assert not transport.is_reading()
    assert transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]
    assert transport.outcome().output == b"A\r\n"
    assert transport.calls[-2:] == [
        "  -> pause_writing()    # Pause(at_write=0, hold=1)",
        "pause_reading()",
    ]


class AbortsOnBang(LineUpper):
    """Aborts on ``!``; raises on ``?``."""

    def data_received(self, data: bytes) -> None:
        if b"?" in data:
            raise ValueError(f"bad input {data!r}")
        if b"!" in data:
            self.transport.abort()
            return
        super().data_received(data)


def test_abort_stops_delivery() -> None:
    """``abort()`` is recorded and nothing more is delivered."""
    outcome = run_protocol(AbortsOnBang, b"a\r\n!b\r\n", Cutting(cuts=(3, 4)))
    assert outcome.ending == "abort()"
    assert outcome.output == b"A\r\n"
    assert "data_received(b'b\\r\\n')" not in outcome.calls
    assert outcome.calls[-1] == "connection_lost(None)"


def test_exception_in_a_callback_closes_with_it() -> None:
    """An exception from ``data_received`` is recorded; ``connection_lost`` gets it."""
    outcome = run_protocol(AbortsOnBang, b"a\r\n?\r\n", Cutting(cuts=(3,)))
    assert (
        outcome.error == "data_received raised ValueError(\"bad input b'?\\\\r\\\\n'\")"
    )
    assert outcome.ending == "closed after an error"
    assert outcome.calls[-1].startswith("connection_lost(ValueError(")


class Moody(LineUpper):
    """Answers differently on its second connection only: not deterministic."""

    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        Moody.made += 1

    def data_received(self, data: bytes) -> None:
        if Moody.made == 2:
            self.transport.write(b"?")
        super().data_received(data)


def test_nondeterministic_protocol_is_named_as_such() -> None:
    """A protocol that changes between identical runs is reported as such."""
    Moody.made = 0
    with pytest.raises(CheckFailed, match="the protocol is not deterministic"):
        check_protocol(Moody, CONVERSATION, seed=SEED, max_examples=50)
