"""The TLS side of ``check_sender`` and ``check_receiver`` (``tls=True``).

Theory of operation: the code under test gets a :class:`FakeTLSSocket`, one
end of a :func:`memory_socketpair` whose cuts and would-blocks come from a
:class:`TLSLink`; the check plays the peer on the other end (a real TLS
endpoint in memory, with a certificate of its own) and an event loop that
sees only the stream, as a selector would: readable when ciphertext, end of
file or a reset waits in the stream, writable unless the stream is clogged.
Decrypted bytes held in ``pending()`` make no event. Each round the peer
steps its handshake, reads what arrived and sends what is left; then the
code under test gets the events it asked for. The sender is the client
(its first ``send`` raises ``SSLWantReadError``: the handshake has begun),
the receiver the server (a clogged stream makes a receive raise
``SSLWantWriteError``). The verdict compares the plaintext out with the
plaintext in (docs/design.md invariant 7). Cost: a TLS handshake and
O(bytes) encryption per example.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Final, final

import attrs

from bufkit.testing._errors import BusyLoopError, CheckFailed
from bufkit.testing._ledger import Ledger
from bufkit.testing._recvcheck import MakeTLSReceiver, Receiver
from bufkit.testing._sendcheck import Sender
from bufkit.testing._tls_fake import FakeTLSSocket, memory_socketpair

__all__ = ["TLSLink", "check_tls_receiver_example", "check_tls_sender_example"]

_IDLE_LIMIT: Final = 64  # rounds without progress; would-blocks are drawn at random
_ROUNDS: Final = 10_000
_SHOWN: Final = 40
_HOST: Final = "bufkit.test"
# A self-signed certificate for the check's own peer (valid until 9999):
# it protects nothing, it only lets a real handshake run in memory.
_PEM: Final = """\
-----BEGIN CERTIFICATE-----
MIIBWzCCAQGgAwIBAgIUOrIczHiGvr+H9J23YlrFqJ4xvyMwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLYnVma2l0LnRlc3QwIBcNMDAwMTAxMDAwMDAwWhgPOTk5OTEy
MzEyMzU5NTlaMBYxFDASBgNVBAMMC2J1ZmtpdC50ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEEVvtM9ir9KCiFiBAjkkLBw8sg3WWIxlU3uhan9JfZs5j0Arp
apEWP9ODLk0Yg0uSgdGVIn5t6QlKad7Vwe7ieaMrMCkwFgYDVR0RBA8wDYILYnVm
a2l0LnRlc3QwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAlv7M
b/Ushmexw5q47agXfFSjK3e3fl/ErkDskzknTKQCIE3lwtlpG9F7rmBZfZwCo99b
woeGsKQPyY7x+S1egAdp
-----END CERTIFICATE-----
"""
_KEY: Final = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQguku4karIlpba3Mqd
wkzESp6qnwIS+5CJ46te/gnfJGmhRANCAAQRW+0z2Kv0oKIWIECOSQsHDyyDdZYj
GVTe6Fqf0l9mzmPQCulqkRY/04MuTRiDS5KB0ZUifm3pCUpp3tXB7uJ5
-----END PRIVATE KEY-----
"""


@final
@attrs.frozen(repr=False)
class TLSLink:
    """The hostile stream under one TLS example: what a failing run prints.

    Attributes:
        seed: the seed of every cut and would-block.
        max_send: the most bytes one send on the stream accepts.
        max_recv: the most bytes one receive from the stream returns.
        block_rate: the chance that a stream call would block anyway.
        clogged: for this many rounds of the loop, the code under test's
            stream refuses every send (a full kernel buffer).
        reset_after: reset the stream (the peer's
            :meth:`~FakeTLSSocket.drop_mid_record`) once this many bytes of
            ciphertext have crossed it, wherever a record stands; the code
            under test must let the ``ConnectionResetError`` or
            ``BrokenPipeError`` reach its caller (``None``: no reset).
    """

    seed: int = 0
    max_send: int = 4096
    max_recv: int = 4096
    block_rate: float = 0.0
    clogged: int = 0
    reset_after: int | None = None

    def __repr__(self) -> str:
        """The call that builds it, naming only what differs from the defaults."""
        given = [
            f"{field.name}={getattr(self, field.name)!r}"
            for field in attrs.fields(TLSLink)
            if getattr(self, field.name) != field.default
        ]
        return f"TLSLink({', '.join(given)})"


_PLAIN: Final = TLSLink()


@functools.cache
def _contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The peer's and the code under test's contexts (server, client)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "peer.pem")
        with open(path, "w", encoding="ascii") as f:
            f.write(_PEM + _KEY)
        server.load_cert_chain(path)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=_PEM)
    return server, client


@final
class _Loop:
    """The peer and a selector's view of the stream, one round at a time."""

    def __init__(self, link: TLSLink, *, user_is_server: bool) -> None:
        server_ctx, client_ctx = _contexts()
        a, b = memory_socketpair(
            link.seed,
            max_send=link.max_send,
            max_recv=link.max_recv,
            block_rate=link.block_rate,
        )
        self.user = FakeTLSSocket(
            a,
            server_ctx if user_is_server else client_ctx,
            server_side=user_is_server,
            server_hostname=None if user_is_server else _HOST,
            busy_limit=2,
        )
        self.peer = FakeTLSSocket(
            b,
            client_ctx if user_is_server else server_ctx,
            server_side=not user_is_server,
            server_hostname=_HOST if user_is_server else None,
        )
        self.clogged = link.clogged
        self.reset_after = link.reset_after
        self.error: OSError | None = None  # the reset, once it reached the caller
        a.send_blocked = link.clogged > 0
        self.received = bytearray()  # plaintext the peer read
        self.outgoing = b""  # plaintext the peer still has to send
        self.closing = False  # send close_notify once outgoing is sent

    def progress(self) -> tuple[int, ...]:
        """Counters that move whenever anything happens on the link."""
        a, b = self.user.stream, self.peer.stream
        return len(a.sent), len(b.sent), len(a.inbox), len(b.inbox)

    @property
    def was_reset(self) -> bool:
        """Whether the peer dropped the stream."""
        return self.peer.stream.closed

    def step_peer(self) -> None:
        """Let the peer handshake, read everything, and send what it has."""
        if self.was_reset:
            return
        if (
            self.reset_after is not None
            and sum(self.progress()[:2]) >= self.reset_after
        ):
            self.peer.drop_mid_record()
            return
        while True:  # the peer takes in all the stream holds
            try:
                self.peer.do_handshake()
                break
            except ssl.SSLWantReadError:
                if not self.peer.stream.inbox:
                    return  # not connected yet: nothing to read, send or close
            except ssl.SSLWantWriteError:
                return
        buf = bytearray(16384)
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLWantWriteError, OSError):
            while n := self.peer.recv_into(buf):
                self.received += buf[:n]
        if self.outgoing:
            with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLWantWriteError):
                self.outgoing = self.outgoing[self.peer.send(self.outgoing) :]
        elif self.closing and self.peer.flush() and self._user_drained():
            self.closing = False
            self.peer.close_notify()
        self.peer.flush()

    def _user_drained(self) -> bool:
        """Whether the code under test has read all it was sent.

        The peer waits for that before it closes, as a peer waiting for an
        answer would: a receiver that leaves bytes in the TLS layer stalls.
        """
        return not self.user.stream.inbox and not self.user.buffered()

    def round(self, handler: Any, *, reads: bool) -> bool:
        """One iteration of the loop; whether anything moved.

        ``reads``: whether ``handler`` wants readability unless its
        ``wants_readable`` says otherwise.
        """
        before = self.progress()
        self.step_peer()
        self.user.stream.send_blocked = self.clogged > 0
        self.clogged -= 1
        if not self.user.stream.send_blocked:
            with contextlib.suppress(OSError):  # after a reset, the kernel drops it
                self.user.flush()  # the kernel drains its send buffer
        readable = self.user.stream.readable()
        if readable and getattr(handler, "wants_readable", reads):
            self.user.mark_waited()
            handler.on_readable()
        writable = not self.user.stream.send_blocked
        if writable and getattr(handler, "wants_writable", False):
            self.user.mark_waited()
            handler.on_writable()
        return self.progress() != before


def _name(error: OSError) -> str:
    """The error, without OpenSSL's source line for TLS's own errors."""
    return type(error).__name__ if isinstance(error, ssl.SSLError) else repr(error)


def _hint(error: OSError) -> str:
    if isinstance(error, ssl.SSLWantReadError):
        return (
            "over TLS, SSLWantReadError means 'wait until the socket is "
            "readable, then call again' (the handshake needs the peer's bytes)"
        )
    if isinstance(error, ssl.SSLWantWriteError):
        return "over TLS, SSLWantWriteError means 'wait until writable, then retry'"
    return "the fake raised no such error"


def _guarded(loop: _Loop, who: str, play: Callable[[], str | None]) -> str | None:
    """Run ``play``; judge the socket errors and busy loops that come out."""
    try:
        problem = play()
    except OSError as exc:
        if not (loop.was_reset and isinstance(exc, ConnectionError)):
            return f"{_name(exc)} escaped from the {who}: {_hint(exc)}"
        loop.error = exc  # the reset reached the caller, as it must
        return None
    except BusyLoopError as exc:
        return f"the {who} {exc}: a busy loop"
    return _swallowed(loop, who) or problem


def _swallowed(loop: _Loop, who: str) -> str | None:
    """The first reset error a call raised, if none reached the caller."""
    if loop.error is not None:
        return None
    for i, call in enumerate(loop.user.calls):
        op, _, outcome = call.partition(" = ")
        if outcome in ("ConnectionResetError", "BrokenPipeError"):
            return (
                f"the {who} swallowed {outcome} raised by {op} (call #{i}): "
                "socket errors must reach the caller"
            )
    return None


def _raise_if(
    problem: str | None, check: str, call: Callable[[], str], sock: FakeTLSSocket
) -> None:
    """Raise the report of ``problem``, if any: verdict, call, transcript."""
    __tracebackhide__ = True
    if not problem:
        return
    lines = [f"{i:4d}  {line}" for i, line in enumerate(sock.calls)]
    if len(lines) > _SHOWN:
        lines[: len(lines) - _SHOWN] = [f"... {len(lines) - _SHOWN} earlier lines"]
    raise CheckFailed(
        f"{check}: {problem}\n\nreproduce with:\n    {call()}\n\n"
        "fake TLS socket calls:\n" + "\n".join(lines)
    )


def check_tls_sender_example(
    make_sender: Callable[[FakeTLSSocket], Sender],
    messages: Sequence[bytes],
    tls: TLSLink = _PLAIN,
    *,
    writable_after: Sequence[bool] = (),
) -> FakeTLSSocket:
    """Run one example of ``check_sender(..., tls=True)``; a failure prints this call.

    Your sender is the client end of a TLS connection in memory: its first
    ``send`` raises ``SSLWantReadError`` (the handshake has begun and needs
    the peer's answer). Besides :class:`~bufkit.testing.Sender`'s members it
    may have a ``wants_readable`` property and an ``on_readable()`` method:
    while ``wants_readable`` is true and the stream is readable, the loop
    calls ``on_readable()``.

    Args:
        make_sender: builds your sender around the :class:`FakeTLSSocket`.
        messages: the messages to write, in order.
        tls: the hostile stream under the TLS records.
        writable_after: for message ``i``, whether one round of the loop
            (the events asked for) runs right after writing it.

    Returns:
        The fake TLS socket, for further assertions.

    Raises:
        CheckFailed: with the verdict, this call to reproduce it, and a
            transcript of the fake's calls.
    """
    __tracebackhide__ = True
    loop = _Loop(tls, user_is_server=False)
    ledger = Ledger()

    def play() -> str | None:
        sender = make_sender(loop.user)
        for i, message in enumerate(messages):
            ledger.expect(message)
            sender.write(message)
            if i < len(writable_after) and writable_after[i]:
                loop.round(sender, reads=False)
        return _drain(loop, sender, ledger)

    problem = _guarded(loop, "sender", play)
    if problem is None:
        loop.step_peer()
        problem = ledger.verdict(bytes(loop.received), complete=not loop.was_reset)
    _raise_if(
        problem,
        "check_sender",
        lambda: (
            f"check_tls_sender_example(make_sender, messages={list(messages)!r}, "
            f"tls={tls!r}, writable_after={list(writable_after)!r})"
        ),
        loop.user,
    )
    return loop.user


def _drain(loop: _Loop, sender: Sender, ledger: Ledger) -> str | None:
    idle = 0
    for _ in range(_ROUNDS):
        wants = getattr(sender, "wants_writable", False) or getattr(
            sender, "wants_readable", False
        )
        if not wants and len(loop.received) == len(ledger.expected):
            return None
        idle = 0 if loop.round(sender, reads=False) else idle + 1
        if idle >= _IDLE_LIMIT:
            break
    unsent = len(ledger.expected) - len(loop.received)
    if unsent <= 0 or loop.was_reset:  # the reset dropped what the kernel held
        return None
    return (
        f"the sender stalled with {unsent} bytes undelivered: after "
        "SSLWantReadError, ask for readability (the handshake goes on when the "
        "peer's bytes arrive) and send again when readable"
    )


def check_tls_receiver_example(
    make_receiver: MakeTLSReceiver,
    messages: Sequence[bytes],
    tls: TLSLink = _PLAIN,
    *,
    encode: Callable[[bytes], bytes] | None = None,
) -> FakeTLSSocket:
    """Run one example of ``check_receiver(..., tls=True)``; a failure prints this call.

    Your receiver is the server end of a TLS connection in memory; the peer
    sends the encoded messages, then TLS's close alert (a receive returns 0).
    The loop calls ``on_readable()`` while the stream is readable, as a
    selector sees it: decrypted bytes waiting in ``pending()`` make no event.
    Besides :class:`~bufkit.testing.Receiver`'s members it may have a
    ``wants_writable`` property and an ``on_writable()`` method, called while
    ``wants_writable`` is true and the stream is writable.

    Args:
        make_receiver: builds your receiver from the :class:`FakeTLSSocket`,
            an ``on_message`` and an ``on_eof`` callback.
        messages: the messages the peer sends.
        tls: the hostile stream under the TLS records.
        encode: how a message is framed (``None``: a plain byte stream).

    Returns:
        The fake TLS socket, for further assertions.

    Raises:
        CheckFailed: with the verdict, this call to reproduce it, and a
            transcript of the fake's calls.
    """
    __tracebackhide__ = True
    loop = _Loop(tls, user_is_server=True)
    loop.outgoing = b"".join(encode(m) if encode else m for m in messages)
    loop.closing = True
    got: list[bytes] = []
    eofs: list[int] = []  # how many messages had come out at each on_eof

    def play() -> str | None:
        receiver = make_receiver(loop.user, got.append, lambda: eofs.append(len(got)))
        return _receive(loop, receiver, eofs)

    problem = _guarded(loop, "receiver", play)
    _raise_if(
        problem or _judge_received(loop, messages, got, eofs, encode),
        "check_receiver",
        lambda: (
            f"check_tls_receiver_example(make_receiver, messages={list(messages)!r}, "
            f"tls={tls!r}, encode={'None' if encode is None else 'encode'})"
        ),
        loop.user,
    )
    return loop.user


def _receive(loop: _Loop, receiver: Receiver, eofs: list[int]) -> str | None:
    idle = 0
    while not eofs:
        idle = 0 if loop.round(receiver, reads=True) else idle + 1
        if idle < _IDLE_LIMIT:
            continue
        held = loop.user.buffered()
        if held and not loop.user.stream.readable():
            return (
                f"the receiver stalled with {held} bytes read from the socket "
                "but not returned (pending() and unread records): a selector "
                "cannot see them, so waiting for readability waits forever; "
                "keep calling recv until SSLWantReadError"
            )
        return (
            f"the receiver stalled: nothing moved for {_IDLE_LIMIT} rounds of the loop"
        )
    if getattr(receiver, "wants_readable", True):
        loop.round(receiver, reads=True)
    return None


def _judge_received(
    loop: _Loop,
    messages: Sequence[bytes],
    got: list[bytes],
    eofs: list[int],
    encode: Callable[[bytes], bytes] | None,
) -> str | None:
    ended = any(
        c.startswith("recv_into") and c.endswith(" = 0") for c in loop.user.calls
    )
    if eofs and not ended:
        wants = [c for c in loop.user.calls if c.endswith("SSLWantWriteError")]
        hint = (
            f" (recv_into raised SSLWantWriteError: {_hint(ssl.SSLWantWriteError())})"
            if wants
            else ""
        )
        return f"on_eof was called though the stream never ended{hint}"
    if len(eofs) > 1:
        return f"on_eof was called {len(eofs)} times"
    complete = not loop.was_reset
    if encode is None:
        verdict = Ledger(messages).verdict(b"".join(got), complete=complete)
        return None if verdict is None else "received data: " + verdict
    expected = list(messages) if complete else list(messages)[: len(got)]
    if got != expected:
        return f"messages came out as {got!r}, expected {list(messages)!r}"
    return None
