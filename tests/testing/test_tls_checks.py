"""check_sender and check_receiver over TLS: the fake's waits, the loop, the reports."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from bufkit.testing import (
    BusyLoopError,
    CheckFailed,
    FakeTLSSocket,
    TLSLink,
    check_receiver,
    check_sender,
    check_tls_receiver_example,
    check_tls_sender_example,
    gallery,
    memory_socketpair,
)
from bufkit.testing._tlscheck import _contexts


def _any(make: object) -> Any:
    """A gallery class, whose socket is typed as a FakeSocket, for a TLS check."""
    return make


def _client() -> FakeTLSSocket:
    server_ctx, client_ctx = _contexts()
    a, b = memory_socketpair()
    FakeTLSSocket(b, server_ctx, server_side=True)
    return FakeTLSSocket(
        a, client_ctx, server_side=False, server_hostname="bufkit.test", busy_limit=1
    )


def test_a_send_right_after_want_read_counts_as_a_busy_retry() -> None:
    """Calling again after SSLWantReadError without a wait is counted, then stopped."""
    sock = _client()
    for _ in range(2):
        with pytest.raises(ssl.SSLWantReadError):
            sock.send(b"x")
    assert sock.busy_retries == 1
    with pytest.raises(BusyLoopError, match="right after SSLWantReadError"):
        sock.send(b"x")


def test_a_wait_between_calls_is_no_busy_retry() -> None:
    """mark_waited() between two want-reads: no retry is counted."""
    sock = _client()
    for _ in range(3):
        with pytest.raises(ssl.SSLWantReadError):
            sock.send(b"x")
        sock.mark_waited()
    assert sock.busy_retries == 0
    assert sock.calls == ["send(1) = SSLWantReadError"] * 3


def test_a_clogged_stream_makes_the_first_send_want_write() -> None:
    """Handshake bytes the stream refuses turn the want-read into SSLWantWriteError."""
    sock = _client()
    sock.stream.send_blocked = True
    with pytest.raises(ssl.SSLWantWriteError):
        sock.send(b"x")
    assert not sock.stream.sent


def test_a_tls_sender_report_in_full() -> None:
    """Verdict, the call that reproduces it, and the TLS transcript, exactly."""
    with pytest.raises(CheckFailed) as info:
        check_tls_sender_example(_any(gallery.WantReadIsFatal), [b"ab"])
    assert str(info.value) == (
        "check_sender: SSLWantReadError escaped from the sender: over TLS, "
        "SSLWantReadError means 'wait until the socket is readable, then call "
        "again' (the handshake needs the peer's bytes)\n\n"
        "reproduce with:\n"
        "    check_tls_sender_example(make_sender, messages=[b'ab'], "
        "tls=TLSLink(), writable_after=[])\n\n"
        "fake TLS socket calls:\n"
        "   0  send(2) = SSLWantReadError"
    )


def test_a_tls_sender_delivers_every_byte_through_the_peer() -> None:
    """The correct sender's bytes reach the peer, cut one byte at a time."""
    link = TLSLink(seed=5, max_send=1, max_recv=1, block_rate=0.5, clogged=3)
    sock = check_tls_sender_example(_any(gallery.TLSSender), [b"abc", b"", b"de"], link)
    assert sock.calls[0] in (
        "send(3) = SSLWantReadError",
        "send(3) = SSLWantWriteError",
    )
    assert any(call == "send(2) = 2" for call in sock.calls)


def test_a_plain_receiver_over_tls_is_told_about_want_read() -> None:
    """Code written for TCP lets SSLWantReadError escape: the check names it."""
    with pytest.raises(CheckFailed, match="SSLWantReadError escaped from the receiver"):
        check_tls_receiver_example(_any(gallery.StreamReceiver), [b"ab"])


def test_the_peer_closes_only_after_the_receiver_read_everything() -> None:
    """The correct receiver gets end of file once, after every byte."""
    sock = check_tls_receiver_example(
        _any(gallery.TLSReceiver), [b"x" * 20000], TLSLink(max_recv=100)
    )
    assert sock.calls[-1] == "recv_into(7) = 0"
    assert sum(call.endswith(" = 0") for call in sock.calls) == 1


def test_a_link_shows_only_what_differs_from_the_defaults() -> None:
    """The repr is the call that rebuilds the link, defaults left out."""
    assert repr(TLSLink()) == "TLSLink()"
    link = TLSLink(seed=3, max_recv=1, reset_after=0)
    assert repr(link) == "TLSLink(seed=3, max_recv=1, reset_after=0)"
    assert eval(repr(link)) == link


def test_a_receiver_report_names_its_encode_and_link() -> None:
    """The reproducing call carries the link and says whether encode was given."""
    link = TLSLink(clogged=1)
    with pytest.raises(CheckFailed) as info:
        check_tls_receiver_example(
            _any(gallery.WantWriteIsEof), [b"ab"], link, encode=lambda m: m + b"\n"
        )
    assert (
        "check_tls_receiver_example(make_receiver, messages=[b'ab'], "
        f"tls={link!r}, encode=encode)"
    ) in str(info.value)
    assert "recv_into(7) = SSLWantWriteError" in str(info.value)


def test_the_checks_take_tls_as_an_option() -> None:
    """check_sender(tls=True) and check_receiver(tls=True) pass correct code."""
    check_sender(gallery.TLSSender, tls=True, max_examples=5, seed=1)
    check_receiver(gallery.TLSReceiver, tls=True, max_examples=5, seed=1)


def test_check_receiver_tls_finds_the_pending_stall() -> None:
    """One recv per readable event stalls over TLS, and the check says so."""
    with pytest.raises(CheckFailed, match=r"pending\(\)"):
        check_receiver(gallery.ReadsOncePerEvent, tls=True, max_examples=5)


class _SwallowsReset(gallery.SwallowsReset, gallery.TLSSender):
    """The gallery's reset-swallowing sender, over TLS."""


class _ResetIsEof(gallery.SwallowsReceiveReset, gallery.TLSReceiver):
    """The gallery's receiver that takes a reset for end of file, over TLS."""


MESSAGES = [bytes([65 + i]) * 1000 for i in range(20)]


@pytest.mark.parametrize("reset_after", [0, 500, 3000])
def test_a_reset_that_reaches_the_caller_passes(reset_after: int) -> None:
    """Resets at any point: the correct sender and receiver pass, data a prefix."""
    link = TLSLink(max_send=700, reset_after=reset_after)
    sent = check_tls_sender_example(_any(gallery.TLSSender), MESSAGES, link)
    got = check_tls_receiver_example(_any(gallery.TLSReceiver), MESSAGES, link)
    assert got.calls[-1] == "recv_into(7) = ConnectionResetError"
    assert sent.stream.closed or sent.stream.reset_pending


def test_a_sender_that_swallows_a_reset_is_caught() -> None:
    """The verdict names the error and the call that raised it."""
    with pytest.raises(CheckFailed) as info:
        check_tls_sender_example(
            _any(_SwallowsReset), MESSAGES, TLSLink(max_send=700, reset_after=0)
        )
    assert str(info.value).startswith(
        "check_sender: the sender swallowed ConnectionResetError raised by "
        "send(1000) (call #1): socket errors must reach the caller"
    )


def test_a_receiver_that_takes_a_reset_for_eof_is_caught() -> None:
    """A reset is not an end of file: the receiver swallowed it."""
    with pytest.raises(CheckFailed, match="receiver swallowed ConnectionResetError"):
        check_tls_receiver_example(
            _any(_ResetIsEof), MESSAGES, TLSLink(max_send=700, reset_after=3000)
        )


def test_check_sender_tls_draws_resets() -> None:
    """The Hypothesis search finds a swallowed reset without being told where."""
    with pytest.raises(CheckFailed, match="swallowed"):
        check_sender(_SwallowsReset, tls=True, seed=0)
