"""Verdicts are pinned: each gallery bug gets exactly its sentence, and more cases."""

from __future__ import annotations

import errno
import inspect

import pytest

from bufkit.testing import (
    IOV_MAX,
    Accept,
    AcceptAll,
    AcceptAllBut,
    CheckFailed,
    Deliver,
    Eof,
    Fail,
    FakeSocket,
    Interrupt,
    RecvStep,
    WouldBlock,
    check_receiver,
    check_receiver_example,
    check_sender,
    check_sender_example,
    gallery,
)

VERDICTS = {
    "IgnoresReturnValue": (
        "check_sender: message[0] lost its last 1 byte (call #0: send accepted "
        "1 of 2 bytes and the rest was never offered again while the sender did"
        " not ask for write readiness: is the return value ignored?)"
    ),
    "IgnoresSendmsgReturnValue": (
        "check_sender: message[0] lost its last 1 byte (call #0: sendmsg "
        "accepted 1 of 2 bytes and the rest was never offered again while the "
        "sender did not ask for write readiness: is the return value ignored?)"
    ),
    "ResendsWholeBuffer": (
        "check_sender: bytes 0-0 (message[0]) were sent twice (call #0: sendmsg"
        " accepted 1 of 2 bytes and the rest was never offered again: is the "
        "return value ignored?)"
    ),
    "PopsBeforeSending": (
        "check_sender: message[0] (1 byte) never arrived (bytes went missing at"
        " EAGAIN, call #0: was a buffer taken off the queue before it was "
        "sent?)"
    ),
    "SwapsQueueBeforeSending": (
        "check_sender: message[0] (1 byte) never arrived (bytes went missing at"
        " EAGAIN, call #0: was a buffer taken off the queue before it was "
        "sent?)"
    ),
    "ArmsOnlyAfterEagain": (
        "check_sender: message[0] lost its last 1 byte (the sender stopped with"
        " 1 bytes unsent and did not ask for write readiness, yet sent them "
        "when woken up anyway: write interest was never armed)"
    ),
    "NeverArms": (
        "check_sender: message[0] (1 byte) never arrived (the sender stopped "
        "with 1 bytes unsent and did not ask for write readiness, yet sent them"
        " when woken up anyway: write interest was never armed)"
    ),
    "StaysArmed": (
        "check_sender: the sender still asks for write readiness with nothing "
        "left to send: a busy loop on writable (the loop wakes it forever)"
    ),
    "SpinsOnEagain": (
        "check_sender: the sender retried once right after EAGAIN without "
        "waiting for readiness: a busy loop"
    ),
    "RetriesTwiceAfterEagain": (
        "check_sender: the sender retried once right after EAGAIN without "
        "waiting for readiness: a busy loop"
    ),
    "SendsWhileWaiting": (
        "check_sender: the sender retried once right after EAGAIN without "
        "waiting for readiness: a busy loop"
    ),
    "GathersPastIovMax": (
        "check_sender: call #1 passed 1025 buffers to sendmsg, more than "
        "IOV_MAX (1024): the kernel refuses that with EMSGSIZE"
    ),
    "NoFlowControl": (
        "check_sender: unbounded buffering: 301 bytes were buffered while the "
        "peer was clogged, more than max_buffered=300, and the producer was not"
        " paused: pause it at a high-water mark (and expose it as `paused`)"
    ),
    "PausesTooLate": (
        "check_sender: unbounded buffering: 301 bytes were buffered while the "
        "peer was clogged, more than max_buffered=300, and the producer was not"
        " paused: pause it at a high-water mark (and expose it as `paused`)"
    ),
    "SwallowsReset": (
        "check_sender: the sender swallowed ECONNRESET raised by sendmsg (call "
        "#0): socket errors must reach the caller"
    ),
    "SwallowsBrokenPipe": (
        "check_sender: the sender swallowed EPIPE raised by sendmsg (call #0): "
        "socket errors must reach the caller"
    ),
    "LetsEagainEscape": (
        "check_sender: BlockingIOError(11, 'Resource temporarily unavailable "
        "(fake sendmsg: would block)') escaped from the sender: EAGAIN means "
        "'wait for readiness', not failure"
    ),
    "UsesSendall": (
        "check_sender: BlockingIOError(11, 'Resource temporarily unavailable "
        "(fake send: would block)') escaped from the sender: EAGAIN means 'wait"
        " for readiness', not failure"
    ),
    "SpinsOnEmptyWrite": (
        "check_sender: no progress: 1000 calls in a row moved no byte, used no "
        "scheduled step and waited for nothing (the last: sendmsg([1 buffers, 0"
        " bytes]) = 0); a loop that retries them spins forever"
    ),
    "RetriesAfterReset": (
        "check_sender: no progress: 1000 calls in a row moved no byte, used no "
        "scheduled step and waited for nothing (the last: sendmsg([1 buffers, 1"
        " bytes]) = -1 EPIPE); a loop that retries them spins forever"
    ),
    "SendsNothingOnWritable": (
        "check_sender: on_writable was called 3 times with 1 bytes unsent and "
        "sent nothing: a busy loop on writable"
    ),
    "RequeuesAtTheBackOnEagain": (
        "check_sender: byte 0 of message[0] (stream offset 0) is 0x64, expected"
        " 0x61: the data was corrupted (bytes went missing at EAGAIN, call #0: "
        "was a buffer taken off the queue before it was sent?)"
    ),
    "DropsGatherTailAfterCut": (
        "check_sender: message[1] (1 byte) never arrived (the sender stopped "
        "with 1 bytes unsent, did not ask for write readiness and sent nothing "
        "when woken up anyway: were the bytes dropped?)"
    ),
    "ClearsQueueAtABoundary": (
        "check_sender: message[1] (1 byte) never arrived (call #1: sendmsg "
        "accepted 1 of 2 bytes and the rest was never offered again while the "
        "sender did not ask for write readiness: is the return value ignored?)"
    ),
    "ClosesOnEagain": (
        "check_sender: message[0] (1 byte) never arrived (bytes went missing at"
        " EAGAIN, call #0: was a buffer taken off the queue before it was "
        "sent?)"
    ),
    "OneRecvOneMessage": (
        "check_receiver: message[0] came out as b'\\x00', expected b'\\x00\\x00' "
        "(1 sent, 2 came out); one recv is not one message: the stream was cut "
        "at other points, so buffer until a whole frame has arrived"
    ),
    "DropsPartialLine": (
        "check_receiver: message[0] came out as b'\\x00', expected b'\\x00\\x00' "
        "(1 sent, 1 came out); one recv is not one message: the stream was cut "
        "at other points, so buffer until a whole frame has arrived"
    ),
    "OneLinePerEvent": (
        "check_receiver: message[1] b'\\x00\\x00' never came out (2 sent, 1 came "
        "out); one recv is not one message: the stream was cut at other points,"
        " so buffer until a whole frame has arrived"
    ),
    "SearchesOnlyTheNewChunk": (
        "check_receiver: message[1] b'\\x00\\x00' never came out (2 sent, 1 came "
        "out); one recv is not one message: the stream was cut at other points,"
        " so buffer until a whole frame has arrived"
    ),
    "AssumesWholeHeader": (
        "check_receiver: message[0] came out as b'', expected b'ab' (1 sent, 1 "
        "came out); one recv is not one message: the stream was cut at other "
        "points, so buffer until a whole frame has arrived"
    ),
    "SwallowsReceiveReset": (
        "check_receiver: the receiver swallowed ECONNRESET: socket errors must "
        "reach the caller"
    ),
    "ReportsEofTwice": (
        "check_receiver: recv returned 0 (end of file) but on_eof was called 2 times"
    ),
    "NeverReportsEof": (
        "check_receiver: recv returned 0 (end of file) but on_eof was called 0 times"
    ),
    "ShortReadIsEof": (
        "check_receiver: on_eof was called though recv never returned 0"
    ),
    "DropsLastChunk": (
        "check_receiver: received data: message[0] lost its last 1 byte"
    ),
    "EofBeforeLastChunk": (
        "check_receiver: on_message was called after on_eof: 1 of 2 messages "
        "came out after end of file was reported"
    ),
    "InventsData": (
        "check_receiver: received data: 3 bytes after the last message were "
        "never written"
    ),
    "IgnoresReadiness": (
        "check_receiver: on_readable was called 3 times while readable and "
        "received nothing: the loop would spin forever"
    ),
    "LetsRecvEagainEscape": (
        "check_receiver: BlockingIOError(11, 'Resource temporarily unavailable "
        "(fake recv: would block)') escaped from the receiver: EAGAIN means "
        "'wait for readiness', not failure"
    ),
    "SpinsOnRecvEagain": (
        "check_receiver: the receiver retried once right after EAGAIN without "
        "waiting for readiness: a busy loop"
    ),
    "RetriesRecvTwice": (
        "check_receiver: the receiver retried once right after EAGAIN without "
        "waiting for readiness: a busy loop"
    ),
    "SpinsAtEof": (
        "check_receiver: no progress: 1000 calls in a row moved no byte, used "
        "no scheduled step and waited for nothing (the last: recv(7) = 0); a "
        "loop that retries them spins forever"
    ),
    "KeepsTheView": (
        "check_receiver: received data: byte 0 of message[0] (stream offset 0) "
        "is 0x62, expected 0x61: the data was corrupted"
    ),
    "WantReadIsFatal": (
        "check_sender: SSLWantReadError escaped from the sender: over TLS, "
        "SSLWantReadError means 'wait until the socket is readable, then call "
        "again' (the handshake needs the peer's bytes)"
    ),
    "SpinsOnWantRead": (
        "check_sender: the sender called send right after SSLWantReadError "
        "without waiting for readiness (3 times): a busy loop"
    ),
    "ReadsOncePerEvent": (
        "check_receiver: the receiver stalled with 16403 bytes read from the "
        "socket but not returned (pending() and unread records): a selector "
        "cannot see them, so waiting for readability waits forever; keep "
        "calling recv until SSLWantReadError"
    ),
    "WantWriteIsEof": (
        "check_receiver: on_eof was called though the stream never ended "
        "(recv_into raised SSLWantWriteError: over TLS, SSLWantWriteError "
        "means 'wait until writable, then retry')"
    ),
}


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_each_gallery_verdict_is_pinned(name: str) -> None:
    """With the seed fixed, the first line of the report is exactly this."""
    assert gallery.verdict(gallery.find(name)) == VERDICTS[name]


def _report(run: object) -> str:
    with pytest.raises(CheckFailed) as info:
        run()  # type: ignore[operator]
    return str(info.value)


def test_a_sender_report_in_full() -> None:
    """Verdict, reproduction and transcript, exactly."""
    report = _report(
        lambda: check_sender_example(
            gallery.IgnoresReturnValue, [b"abc", b"de"], [Accept(2), WouldBlock()]
        )
    )
    assert report == (
        "check_sender: message[0] lost its last 1 byte; the bytes after it did "
        "arrive (call #0: send accepted 2 of 3 bytes and the rest was never "
        "offered again: is the return value ignored?)\n\nreproduce with:\n"
        "    check_sender_example(make_sender, messages=[b'abc', b'de'], "
        "schedule=[Accept(2), WouldBlock()], "
        "writable_after=[], burst=False)\n\nfake socket calls:\n"
        "   0  send(3) = 2    # Accept(2)\n"
        "   1  send(2) = -1 EAGAIN    # WouldBlock()\n"
        "   2  send(2) = 2"
    )


def test_a_receiver_report_in_full() -> None:
    """Verdict, reproduction and transcript, exactly."""
    report = _report(
        lambda: check_receiver_example(
            gallery.ReportsEofTwice, [b"ab"], [Deliver(b"ab"), Eof()]
        )
    )
    assert report == (
        "check_receiver: recv returned 0 (end of file) but on_eof was called 2 "
        "times\n\nreproduce with:\n    check_receiver_example(make_receiver, "
        "messages=[b'ab'], schedule=[Deliver(b'ab'), Eof()], encode=None)\n\n"
        "fake socket calls:\n"
        "   0  recv(7) = 2    # Deliver(b'ab')\n"
        "   1  recv(7) = 0    # Eof()\n"
        "   2  recv(7) = 0"
    )


def test_repeated_calls_fold_into_one_line() -> None:
    """A run of identical calls is one line that counts the others."""
    report = _report(lambda: check_sender_example(gallery.SpinsOnEmptyWrite, [b""], []))
    assert report.endswith(
        "fake socket calls:\n"
        "   0  sendmsg([1 buffers, 0 bytes]) = 0    (and 999 more times, the same)"
    )


def test_retries_are_counted() -> None:
    """Two retries right after EAGAIN are reported as two."""
    report = _report(
        lambda: check_sender_example(
            gallery.RetriesTwiceAfterEagain, [b"abc"], [WouldBlock()] * 3
        )
    )
    assert report.startswith(
        "check_sender: the sender retried 2 times right after EAGAIN without "
        "waiting for readiness: a busy loop\n"
    )


def test_a_receiver_that_retries_twice_is_counted() -> None:
    """The receiver's retries are counted too."""
    report = _report(
        lambda: check_receiver_example(
            gallery.RetriesRecvTwice,
            [b"a"],
            [WouldBlock()] * 3 + [Deliver(b"a"), Eof()],
        )
    )
    assert report.startswith(
        "check_receiver: the receiver retried 2 times right after EAGAIN without "
        "waiting for readiness: a busy loop\n"
    )


def test_a_swallowed_reset_followed_by_a_later_error() -> None:
    """Only the first error may reach the caller: a later one names the first."""
    report = _report(
        lambda: check_sender_example(
            gallery.SwallowsReset, [b"ab", b"cd"], [Accept(1), Fail(errno.ECONNRESET)]
        )
    )
    assert report.startswith(
        "check_sender: the sender swallowed ECONNRESET raised by sendmsg (call #1): "
        "socket errors must reach the caller (only a later BrokenPipeError(32, "
        "'Broken pipe (fake sendmsg: cannot send)') did)\n"
    )


def test_an_error_that_reaches_the_caller_after_a_clean_prefix_passes() -> None:
    """A sender that raises the reset it got passes, with the prefix on the wire."""
    sock = check_sender_example(
        gallery.GatherSender, [b"abc", b"def"], [Accept(4), Fail(errno.ECONNRESET)]
    )
    assert sock.wire == b"abc"


def test_flow_control_is_judged_before_each_write() -> None:
    """Above the limit and not paused: caught, with the bytes buffered."""
    report = _report(
        lambda: check_sender_example(
            gallery.NoFlowControl,
            [b"x" * 100] * 5,
            [WouldBlock()] * 10,
            writable_after=[True] * 5,
            max_buffered=250,
        )
    )
    assert report.startswith(
        "check_sender: unbounded buffering: 300 bytes were buffered while the peer "
        "was clogged, more than max_buffered=250, and the producer was not paused"
    )


def test_a_paused_sender_is_woken_until_it_resumes() -> None:
    """While paused, the check delivers writable events instead of writes."""
    sock = check_sender_example(
        gallery.PausingSender,
        [b"x" * 200] * 3,
        [WouldBlock(), Accept(100), WouldBlock(), AcceptAll()],
        max_buffered=300,
    )
    assert sock.wire == b"x" * 600


def test_exactly_at_the_limit_is_not_over_it() -> None:
    """Buffering exactly ``max_buffered`` bytes unpaused is allowed."""
    sock = check_sender_example(
        gallery.NoFlowControl,
        [b"x" * 150] * 3,
        [WouldBlock()] * 4,
        writable_after=[True] * 3,
        max_buffered=300,
    )
    assert sock.wire == b"x" * 450


def test_a_sender_armed_with_nothing_left_is_a_busy_loop() -> None:
    """Write interest kept with nothing to send is named."""
    report = _report(lambda: check_sender_example(gallery.StaysArmed, [b"a"], []))
    assert report.startswith(
        "check_sender: the sender still asks for write readiness with nothing left "
        "to send: a busy loop on writable (the loop wakes it forever)\n"
    )


def test_the_check_returns_the_fake_of_a_passing_example() -> None:
    """A passing example gives back its fake, calls and all."""
    sock = check_sender_example(gallery.GatherSender, [b"ab", b"c"], [Accept(1)])
    assert isinstance(sock, FakeSocket)
    assert [str(call) for call in sock.calls] == [
        "sendmsg([1 buffers, 2 bytes]) = 1    # Accept(1)",
        "sendmsg([1 buffers, 1 bytes]) = 1",
        "sendmsg([1 buffers, 1 bytes]) = 1",
    ]


def test_data_after_end_of_file_is_counted() -> None:
    """Messages handed on after ``on_eof`` are counted in the verdict."""
    report = _report(
        lambda: check_receiver_example(
            gallery.EofBeforeLastChunk, [b"ab"], [Deliver(b"a"), Deliver(b"b"), Eof()]
        )
    )
    assert report.startswith(
        "check_receiver: on_message was called after on_eof: 1 of 2 messages came "
        "out after end of file was reported\n"
    )


class _PausedForever(gallery.PausingSender):
    """Paused from its first write on; notes the calls made before each write."""

    def __init__(self, sock: FakeSocket) -> None:
        super().__init__(sock)
        self.calls_at_write: list[int] = []

    def write(self, data: bytes) -> None:
        self.calls_at_write.append(self.sock.call_count)
        super().write(data)

    @property
    def paused(self) -> bool:
        return bool(self.calls_at_write)


def test_a_paused_sender_gets_writable_events_not_writes() -> None:
    """While paused, up to 300 writable events come before the next write."""
    senders: list[_PausedForever] = []

    def make(sock: FakeSocket) -> _PausedForever:
        senders.append(_PausedForever(sock))
        return senders[-1]

    sock = check_sender_example(
        make, [b"a", b"b"], [WouldBlock()] * 1000, max_buffered=0
    )
    assert senders[0].calls_at_write == [0, 301]
    assert sock.wire == b"ab"


def test_a_resumed_sender_is_written_to_at_once() -> None:
    """A sender that resumes gets the next write right after the event."""
    senders: list[_PausedForever] = []

    class Resumes(_PausedForever):
        @property
        def paused(self) -> bool:
            return bool(self.pending)

    def make(sock: FakeSocket) -> _PausedForever:
        senders.append(Resumes(sock))
        return senders[-1]

    check_sender_example(
        make, [b"a", b"b"], [WouldBlock(), WouldBlock()], max_buffered=0
    )
    assert senders[0].calls_at_write == [0, 3]


def test_an_error_the_fake_never_raised_is_named() -> None:
    """An ``OSError`` the sender made up is not blamed on the socket."""

    class MakesUpErrors(gallery.GatherSender):
        def write(self, data: bytes) -> None:
            raise ConnectionAbortedError(errno.ECONNABORTED, "made up")

    report = _report(lambda: check_sender_example(MakesUpErrors, [b"a"], []))
    assert report.startswith(
        "check_sender: ConnectionAbortedError(103, 'made up') escaped from the "
        "sender: the fake raised no such error\n"
    )


def test_no_chunking_hint_when_the_stream_was_not_cut() -> None:
    """Whole frames in whole reads: the verdict does not blame the chunking."""

    class Echoes(gallery.LineReceiver):
        def received(self, data: bytes) -> None:
            super().received(data)
            self.on_message(b"extra")

    report = _report(
        lambda: check_receiver_example(
            Echoes, [b"a"], [Deliver(b"a\n"), Eof()], encode=lambda m: m + b"\n"
        )
    )
    assert report.startswith(
        "check_receiver: message b'extra' came out after the last one was sent: "
        "invented (1 sent, 2 came out)\n"
    )


def test_a_spin_on_eagain_is_stopped_by_the_busy_limit() -> None:
    """Past the busy limit the fake stops the loop; the verdict drops its transcript."""
    report = _report(
        lambda: check_sender_example(gallery.SpinsOnEagain, [b"a"], [WouldBlock()] * 9)
    )
    assert report.startswith(
        "check_sender: sendmsg retried right after EAGAIN without waiting for "
        "readiness (3 times)\n\nreproduce with:\n"
    )


def test_an_escaped_eintr_is_named_exactly() -> None:
    """``EINTR`` that escapes gets its own hint."""
    report = _report(
        lambda: check_sender_example(gallery.GatherSender, [b"abc"], [Interrupt()])
    )
    assert report.startswith(
        "check_sender: InterruptedError(4, 'Interrupted system call (fake sendmsg: "
        "scheduled Interrupt())') escaped from the sender: EINTR means 'retry the "
        "call'\n"
    )


def test_invented_bytes_get_no_hint() -> None:
    """Bytes never written are named, with nothing else to say."""

    class AddsAByte(gallery.GatherSender):
        def write(self, data: bytes) -> None:
            super().write(data + b"!")

    report = _report(lambda: check_sender_example(AddsAByte, [b"a"], []))
    assert report.startswith(
        "check_sender: 1 byte after the last message were never written\n"
    )


def test_a_sender_that_fails_when_woken_up_unasked_dropped_its_bytes() -> None:
    """The probe for kept bytes treats an error as 'nothing was kept'."""

    class DropsAndComplains(gallery.IgnoresReturnValue):
        def on_writable(self) -> None:
            if not self.pending:
                raise RuntimeError("woken up with nothing to send")
            super().on_writable()

    report = _report(
        lambda: check_sender_example(
            DropsAndComplains, [b"ab", b"cd"], [AcceptAllBut(1)]
        )
    )
    assert report.startswith(
        "check_sender: message[0] lost its last 1 byte; the bytes after it did "
        "arrive (call #0: send accepted 1 of 2 bytes and the rest was never offered "
        "again: is the return value ignored?)\n"
    )
    report = _report(
        lambda: check_sender_example(DropsAndComplains, [b"ab"], [AcceptAllBut(1)])
    )
    assert "(call #0: send accepted 1 of 2 bytes" in report


def test_a_transcript_folds_only_runs_of_equal_calls() -> None:
    """Different calls keep their lines; the run after them is folded."""
    report = _report(
        lambda: check_receiver_example(
            gallery.SpinsAtEof, [b"ab"], [Deliver(b"ab"), Eof()]
        )
    )
    assert report.endswith(
        "fake socket calls:\n"
        "   0  recv(7) = 2    # Deliver(b'ab')\n"
        "   1  recv(7) = 0    # Eof()\n"
        "   2  recv(7) = 0    (and 999 more times, the same)"
    )


def test_the_step_budget_is_twenty_thousand_calls() -> None:
    """A sender that keeps making progress forever is stopped at 20000 calls."""

    class Repeats(gallery.GatherSender):
        def write(self, data: bytes) -> None:
            while True:
                self.sock.send(data)

    report = _report(lambda: check_sender_example(Repeats, [b"a"], []))
    assert report.startswith(
        "check_sender: the code under test made more than 20000 calls on "
    )
    steps: list[RecvStep] = [Deliver(b"a")] * 20_001
    report = _report(
        lambda: check_receiver_example(gallery.StreamReceiver, [b"a" * 20_001], steps)
    )
    assert report.startswith(
        "check_receiver: the code under test made more than 20000 calls on "
    )


def test_a_receiver_spin_on_eagain_is_stopped_by_the_busy_limit() -> None:
    """Past two retries the fake stops a spinning receiver."""
    report = _report(
        lambda: check_receiver_example(
            gallery.SpinsOnRecvEagain, [], [WouldBlock()] * 9 + [Eof()]
        )
    )
    assert report.startswith(
        "check_receiver: recv retried right after EAGAIN without waiting for "
        "readiness (3 times)\n"
    )


def test_a_receiver_report_names_its_encode() -> None:
    """The reproduction passes ``encode`` when the check had one."""
    report = _report(
        lambda: check_receiver_example(
            gallery.OneRecvOneMessage,
            [b"ab"],
            [Deliver(b"a"), Deliver(b"b\n"), Eof()],
            encode=lambda m: m + b"\n",
        )
    )
    assert "schedule=[Deliver(b'a'), Deliver(b'b\\n'), Eof()], encode=encode)\n" in (
        report
    )


def test_idle_events_are_counted_from_the_last_progress() -> None:
    """Three events that move nothing, after one that did, make the verdict."""
    events: list[int] = []

    class ReadsOnce(gallery.StreamReceiver):
        def on_readable(self) -> None:
            events.append(self.sock.call_count)
            if not events[:-1]:
                self.on_message(self.sock.recv(1))

    report = _report(
        lambda: check_receiver_example(ReadsOnce, [b"ab"], [Deliver(b"ab"), Eof()])
    )
    assert report.startswith("check_receiver: on_readable was called 3 times")
    assert events == [0, 1, 1, 1]

    writable: list[int] = []

    class SendsOnce(gallery.GatherSender):
        def write(self, data: bytes) -> None:
            waiting = bool(self.pending)
            self.pending.append(memoryview(data))
            if not waiting:
                gallery.GatherSender.on_writable(self)

        def on_writable(self) -> None:
            writable.append(self.sock.call_count)
            if len(writable) == 1:
                super().on_writable()

    report = _report(
        lambda: check_sender_example(
            SendsOnce,
            [b"ab", b"cd"],
            [AcceptAll(), WouldBlock(), Accept(1), WouldBlock()],
        )
    )
    assert report.startswith(
        "check_sender: on_writable was called 3 times with 1 bytes unsent"
    )
    assert writable == [2, 4, 4, 4]
    writable.clear()
    report = _report(
        lambda: check_sender_example(SendsOnce, [b"ab"], [WouldBlock(), WouldBlock()])
    )
    assert writable == [1, 2, 2, 2]


def test_wants_readable_false_gets_no_event_after_end_of_file() -> None:
    """A receiver that says it stopped reading is not woken at end of file."""

    class Unregisters(gallery.ReportsEofTwice):
        @property
        def wants_readable(self) -> bool:
            return not self.done

    check_receiver_example(Unregisters, [b"ab"], [Deliver(b"ab"), Eof()])
    with pytest.raises(CheckFailed, match="on_eof was called 2 times"):
        check_receiver_example(
            gallery.ReportsEofTwice, [b"ab"], [Deliver(b"ab"), Eof()]
        )


def test_end_of_file_reported_early_while_reading_on() -> None:
    """A receiver that reports end of file too soon, and reads on, is named."""

    class EarlyEof(gallery.StreamReceiver):
        def on_readable(self) -> None:
            self.on_eof()
            self.on_message(self.sock.recv(10))

    report = _report(lambda: check_receiver_example(EarlyEof, [b"a"], [Deliver(b"a")]))
    assert report.startswith(
        "check_receiver: on_eof was called though recv never returned 0\n"
    )


def test_each_write_starts_a_fresh_count_of_calls_without_progress() -> None:
    """A thousand empty writes, one call each, are not a loop."""

    class SendsEmptyWrites(gallery.GatherSender):
        def write(self, data: bytes) -> None:
            if data:
                super().write(data)
            else:
                self.sock.sendmsg([data])

    sock = check_sender_example(SendsEmptyWrites, [b""] * 1001 + [b"a"], [])
    assert sock.wire == b"a"


def test_writable_events_come_right_after_the_writes_that_ask_for_them() -> None:
    """``writable_after[i]`` is the event after message ``i``, burst or not."""
    seen: list[str] = []

    class Records(gallery.GatherSender):
        def write(self, data: bytes) -> None:
            seen.append(f"write {data!r}")
            waiting = bool(self.pending)
            self.pending.append(memoryview(data))
            if not waiting:
                gallery.GatherSender.on_writable(self)

        def on_writable(self) -> None:
            seen.append("writable")
            super().on_writable()

    check_sender_example(
        Records, [b"a", b"b"], [WouldBlock()], writable_after=[True, False]
    )
    assert seen[:3] == ["write b'a'", "writable", "write b'b'"]
    seen.clear()
    check_sender_example(
        Records, [b"a", b"b"], [WouldBlock()], writable_after=[True], burst=True
    )
    assert seen[IOV_MAX : IOV_MAX + 4] == [
        f"write {bytes([IOV_MAX % 256])!r}",
        "write b'a'",
        "writable",
        "write b'b'",
    ]


def test_the_fake_gets_the_checks_iov_max() -> None:
    """A gather of ``iov_max + 1`` buffers is refused at the limit given."""
    report = _report(
        lambda: check_sender_example(
            gallery.GathersPastIovMax, [], [WouldBlock()], burst=True, iov_max=3
        )
    )
    assert report.startswith(
        "check_sender: call #1 passed 4 buffers to sendmsg, more than IOV_MAX (3): "
        "the kernel refuses that with EMSGSIZE\n"
    )


def test_documented_defaults_of_the_checks() -> None:
    """The defaults the reference documents."""
    receiver = inspect.signature(check_receiver).parameters
    assert receiver["max_chunks"].default == 16
    assert receiver["faults"].default == (errno.ECONNRESET,)
    assert receiver["interrupts"].default is False
    sender = inspect.signature(check_sender).parameters
    assert sender["max_message"].default == 256
    assert sender["max_messages"].default == 8
    assert sender["faults"].default == (errno.ECONNRESET, errno.EPIPE)


def test_a_long_transcript_keeps_its_last_forty_lines() -> None:
    """Earlier lines are counted in one line at the top."""
    steps: list[RecvStep] = [Deliver(bytes([i])) for i in range(45)]
    report = _report(
        lambda: check_receiver_example(
            gallery.InventsData, [bytes(range(45))], [*steps, Eof()]
        )
    )
    transcript = report.partition("fake socket calls:\n")[2].splitlines()
    assert len(transcript) == 41
    assert transcript[:2] == [
        "... 6 earlier lines",
        "   6  recv(7) = 1    # Deliver(b'\\x06')",
    ]
    assert transcript[-1] == "  45  recv(7) = 0    # Eof()"
    report = _report(
        lambda: check_receiver_example(
            gallery.InventsData, [bytes(range(39))], [*steps[:39], Eof()]
        )
    )
    assert report.partition("fake socket calls:\n")[2].startswith("   0  recv(7) = 1")


def test_idle_events_from_the_start_are_counted() -> None:
    """Code that never moves a byte gets exactly three events."""
    events: list[str] = []

    class Idle(gallery.IgnoresReadiness):
        def on_readable(self) -> None:
            events.append("readable")

    class Lazy(gallery.SendsNothingOnWritable):
        def on_writable(self) -> None:
            events.append("writable")

    with pytest.raises(CheckFailed, match="on_readable was called 3 times"):
        check_receiver_example(Idle, [b"a"], [Deliver(b"a"), Eof()])
    with pytest.raises(CheckFailed, match="on_writable was called 3 times"):
        check_sender_example(Lazy, [b"a"], [WouldBlock()])
    assert events == ["readable"] * 3 + ["writable"] * 4  # one from its write


def test_check_sender_passes_its_options_on() -> None:
    """``seed`` fixes the draw; ``interrupts`` draws EINTR steps."""
    seen: list[tuple[object, ...]] = []

    def make(sock: FakeSocket) -> gallery.GatherSender:
        seen.append(sock.send_schedule)
        return gallery.GatherSender(sock)

    with pytest.raises(CheckFailed, match="EINTR means 'retry the call'"):
        check_sender(make, interrupts=True, faults=(), seed=1, max_examples=100)
    assert any(Interrupt() in run for run in seen)
    runs = []
    for seed in (5, 5, 6):
        seen.clear()
        check_sender(make, max_examples=10, seed=seed)
        runs.append(list(seen))
    assert runs[0] == runs[1] != runs[2]


def test_a_write_may_make_999_calls_that_move_nothing() -> None:
    """The no-progress limit counts from each write: 999 pass, 1000 do not."""

    class Stutters(gallery.GatherSender):
        repeats = 0

        def write(self, data: bytes) -> None:
            if data:
                super().write(data)
            for _ in range(self.repeats):
                self.sock.sendmsg([data[:0]])

    class Stutters999(Stutters):
        repeats = 999

    class Stutters1000(Stutters):
        repeats = 1000

    assert check_sender_example(Stutters999, [b"a", b""], []).wire == b"a"
    with pytest.raises(CheckFailed, match="no progress: 1000 calls in a row"):
        check_sender_example(Stutters1000, [b"a", b""], [])


def test_the_clogged_peer_example_uses_the_largest_messages() -> None:
    """By default the check writes 8 messages of 256 bytes to a clogged peer."""
    examples: list[list[int]] = []

    class Records(gallery.GatherSender):
        def __init__(self, sock: FakeSocket) -> None:
            super().__init__(sock)
            examples.append([])

        def write(self, data: bytes) -> None:
            examples[-1].append(len(data))
            super().write(data)

    check_sender(Records, max_examples=1, seed=0)
    assert [256] * 8 in examples
