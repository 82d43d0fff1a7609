"""TLS as a sans-IO layer between the connection core and its socket.

Theory of operation
-------------------
A :class:`TLSLayer` is an :class:`ssl.SSLObject` over two
:class:`ssl.MemoryBIO` objects, plus, while the kernel refuses some, the queue
of ciphertext on its way to it. The connection core (:class:`bufkit.Connection`,
given ``tls=``) reads and writes plaintext through it as if it were the socket:

* **Reads, the readiness way.** :meth:`TLSLayer.recv_into` is called with the
  reader's pooled buffer, only when the socket is readable. If OpenSSL or the
  incoming BIO holds anything, it first decrypts that straight into the
  buffer (``SSLObject.read(n, buffer)``); else, or when OpenSSL wants more,
  it receives ciphertext *into the same buffer*, copies it into the incoming
  BIO and decrypts. One ``SSLObject.read`` yields one record at most, so the
  whole records already in the BIO are decrypted into the rest of the
  buffer: one protocol call (and one encryption and send of its reply) per
  buffer of ciphertext, not per record. No second buffer is borrowed; the
  protocol sees plaintext views of a pooled buffer that goes back to the
  pool after the call
  (docs/design.md invariants 4 and 5). :meth:`TLSLayer.pending` tells the
  core about decrypted bytes, and whole records, that no selector can see.
* **Writes, completion style.** The core's plaintext write queue flushes into
  :meth:`TLSLayer.sendmsg`, which encrypts :data:`TLS_BATCH` bytes of
  plaintext at a time (one ``SSLObject.write`` and one read of the outgoing
  BIO per record). When no ciphertext was waiting, each batch's records go to
  the kernel at once (one ``send``, or one gather write for several), and the
  next batch follows in the same call while the kernel took them all: a
  short count would end the core's flush and cost a writable event for bytes
  the kernel would take now. Whatever the kernel refused, and every record
  made while some wait, goes to a ciphertext :class:`~bufkit.WriteQueue`
  flushed on writability, so at most a batch waits ahead of the kernel.
  Only plaintext whose ciphertext the kernel accepted is reported "sent". So
  a ``write()`` completion fires when the ciphertext carrying its last byte
  was accepted by the kernel, and the plaintext queue's watermarks keep
  bounding memory (invariants 1, 2 and 6).
* **Idle means empty.** After an event, the incoming BIO holds at most a
  partial record and the outgoing BIO nothing; the ciphertext queue is
  dropped once the kernel took it all. An idle TLS connection holds
  OpenSSL's state and no pool bytes nor Python buffer of bufkit's
  (invariant 7). OpenSSL never shrinks a memory BIO's buffer once grown (and
  frees its own record buffers when empty: CPython sets
  ``SSL_MODE_RELEASE_BUFFERS``), so the outgoing BIO is emptied after every
  record: it keeps one record's capacity at most. Likewise handshake bytes
  enter the incoming BIO 128 bytes at a time, and a later big read of
  ciphertext enters it 8 KiB at a time, records decrypted between steps
  while it surely holds a whole one: it keeps a record and a step's worth.

Handshake, post-handshake messages (session tickets, KeyUpdate), alerts and
``close_notify`` are bytes OpenSSL puts in the outgoing BIO at any time: every
step moves them to the ciphertext queue, and the core sends them in its one
flush per event. Plaintext written before the handshake completed waits in the
plaintext queue (no write interest is armed for it: the handshake needs reads).

The lifecycle is data: :class:`TLSState` and :data:`TLS_TRANSITIONS`.

Cost model: per readable event, one ``recv_into`` and one ``MemoryBIO.write``
per ciphertext read (a few more during the handshake), one ``SSLObject.read``
per record and one protocol call per buffer filled; per flush, one
``SSLObject.write`` and one ``MemoryBIO.read`` per record, and one send.
``read``, ``write`` and ``pending`` are called on the C object behind a stock
``SSLObject``, without a Python frame of the wrapper each.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import ssl
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, cast, final

from bufkit._checks import send_would_block
from bufkit._gather import GATHER_BYTES, send_once
from bufkit._writequeue import WriteQueue
from bufkit.errors import TLSHandshakeError

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from bufkit._protocols import SupportsRecvInto

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "TLSEvent",
    "TLSLayer",
    "TLSState",
    "TLS_BATCH",
    "TLS_TRANSITIONS",
]

TLS_BATCH: Final = 65536
"""Plaintext bytes encrypted ahead of the kernel, at most, per connection."""
_RECORD: Final = 16384  # the largest TLS record's plaintext
_HANDSHAKE_FEED: Final = 128  # ciphertext given to the incoming BIO at once
_FEED: Final = 8192  # the same after the handshake, for big reads
_WHOLE: Final = 16384 + 256 + 5  # BIO bytes that surely complete a record
_READ_ENDS: Final = (ssl.SSLWantReadError, ssl.SSLZeroReturnError)
DEFAULT_HANDSHAKE_TIMEOUT: Final = 60.0
"""Seconds a handshake may take, as asyncio's default."""
DEFAULT_SHUTDOWN_TIMEOUT: Final = 30.0
"""Seconds a graceful close may take to send everything and ``close_notify``."""


class TLSState(enum.Enum):
    """Where a :class:`TLSLayer` is in its life."""

    __module__ = "bufkit"

    HANDSHAKING = "handshaking"
    """The handshake has not completed; plaintext writes wait."""
    OPEN = "open"
    """Plaintext flows both ways."""
    SHUTTING = "shutting"
    """``close_notify`` was queued; nothing more is encrypted."""
    CLOSED = "closed"
    """The connection ended; the layer holds nothing."""


class TLSEvent(enum.Enum):
    """What moves a :class:`TLSLayer` from one state to another."""

    __module__ = "bufkit"

    HANDSHAKE_DONE = "the handshake completed"
    CLOSE_NOTIFY = "close_notify queued"
    CLOSE = "the connection ended"


_T = TLSState
_V = TLSEvent
TLS_TRANSITIONS: Final[Mapping[tuple[TLSState, TLSEvent], TLSState]] = {
    (_T.HANDSHAKING, _V.HANDSHAKE_DONE): _T.OPEN,
    (_T.HANDSHAKING, _V.CLOSE): _T.CLOSED,
    (_T.OPEN, _V.CLOSE_NOTIFY): _T.SHUTTING,
    (_T.OPEN, _V.CLOSE): _T.CLOSED,
    (_T.SHUTTING, _V.CLOSE): _T.CLOSED,
}
"""Every legal ``(state, event) -> state`` change of a :class:`TLSLayer`."""

_HANDSHAKING: Final = _T.HANDSHAKING
# Marks in _stuck: the end of the stream was decrypted and awaits its read;
# a partial record was taken into OpenSSL and the socket may hold the rest.
_ENDED: Final = -2
_RETRY: Final = -3
_OPEN: Final = _T.OPEN


class _Raw(Protocol):
    """What the layer calls on OpenSSL's connection object."""

    def read(self, size: int, buffer: memoryview, /) -> int: ...

    def write(self, data: memoryview, /) -> int: ...

    def pending(self) -> int: ...


_NO_BATCHES: Final[list[list[int]]] = []  # shared while nothing waits: never grown


class _Wire(Protocol):
    """What the layer sends ciphertext to and receives it from."""

    def recv_into(self, buffer: memoryview, /) -> int: ...

    def send(self, data: Buffer, /) -> int: ...


def _move(state: TLSState, event: TLSEvent) -> TLSState:
    try:
        return TLS_TRANSITIONS[state, event]
    except KeyError:
        raise RuntimeError(
            f"illegal transition: {event.name} in state {state.name}"
        ) from None


def _would_block(what: str) -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, what)


def handshake_error(exc: ssl.SSLError | None, message: str = "") -> TLSHandshakeError:
    """Return the :class:`~bufkit.TLSHandshakeError` for ``exc`` (or ``message``)."""
    if exc is None:
        return TLSHandshakeError(errno.ECONNABORTED, message)
    err = TLSHandshakeError(*exc.args)
    err.library, err.reason = exc.library, exc.reason
    exc.__traceback__ = None  # its frames would hold the connection
    err.__cause__ = exc
    return err


@final
class TLSLayer:
    """One connection's TLS: an :class:`ssl.SSLObject` over two memory BIOs.

    Give it to :class:`bufkit.Connection` as ``tls=``; the connection drives
    it (the protocol sees plaintext only). Read the negotiated parameters
    here once :attr:`handshake_done` is true.

    Args:
        context: The :class:`ssl.SSLContext` to use.
        server_side: Whether this end is the server.
        server_hostname: The name to send as SNI and to check the peer's
            certificate against (client side; required when the context
            checks host names).
        session: An :class:`ssl.SSLSession` from an earlier connection to
            resume (client side).
        handshake_timeout: Seconds the handshake may take.
        shutdown_timeout: Seconds a graceful close may take.

    Raises:
        TypeError: ``context`` is not an :class:`ssl.SSLContext`, or a timeout
            is not a number.
        ValueError: A timeout is not positive, or the context refuses the
            arguments (e.g. no ``server_hostname`` while it checks host names).
    """

    __module__ = "bufkit"
    __slots__ = (
        "_acked",
        "_batches",
        "_cipher",
        "_incoming",
        "_obj",
        "_outgoing",
        "_raw",
        "_sock",
        "_state",
        "_stuck",
        "_unacked",
        "_write_blocked",
        "handshake_timeout",
        "shutdown_timeout",
    )

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"context must be an ssl.SSLContext, not {context!r}")
        self.handshake_timeout: float = _check_timeout(
            "handshake_timeout", handshake_timeout
        )
        """Seconds the handshake may take."""
        self.shutdown_timeout: float = _check_timeout(
            "shutdown_timeout", shutdown_timeout
        )
        """Seconds a graceful close may take."""
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
            session=session,
        )
        # The C object behind a stock SSLObject: its read, write and pending
        # are the wrapper's without a Python frame each (a subclass named by
        # the context's sslobject_class keeps its own methods).
        raw: object = self._obj
        if type(raw) is ssl.SSLObject:
            raw = raw._sslobj  # type: ignore[attr-defined]
        self._raw = cast("_Raw", raw)
        # Ciphertext the kernel did not take yet, and one [ciphertext bytes
        # left, plaintext bytes carried] per queued record: both made when
        # something must wait, dropped once drained (an idle layer has none).
        self._cipher: WriteQueue | None = None
        self._batches: list[list[int]] = _NO_BATCHES
        self._sock: _Wire | None = None
        self._state = _HANDSHAKING
        self._stuck = -1  # incoming BIO size known to hold only a partial record
        self._unacked = 0  # plaintext encrypted, its ciphertext not yet sent
        self._acked = 0
        self._write_blocked = False

    # -- connection info ------------------------------------------------------

    @property
    def state(self) -> TLSState:
        """Where the layer is in its life."""
        return self._state

    @property
    def handshake_done(self) -> bool:
        """Whether the handshake completed (and the connection did not end)."""
        return self._state is _OPEN or self._state is _T.SHUTTING

    @property
    def server_side(self) -> bool:
        """Whether this end is the server."""
        return self._obj.server_side

    @property
    def server_hostname(self) -> str | None:
        """The SNI name this client sent.

        A server reads the name it received in ``SSLContext.sni_callback``.
        """
        return self._obj.server_hostname

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The underlying :class:`ssl.SSLObject` (read it, do not drive it)."""
        return self._obj

    @property
    def session(self) -> ssl.SSLSession | None:
        """The TLS session, to resume in a later connection's ``session=``."""
        return self._obj.session

    @property
    def session_reused(self) -> bool:
        """Whether the handshake resumed an earlier session."""
        return self._obj.session_reused

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate, as :meth:`ssl.SSLSocket.getpeercert`."""
        return self._obj.getpeercert(binary_form)

    def selected_alpn_protocol(self) -> str | None:
        """The ALPN protocol both ends agreed on, if any."""
        return self._obj.selected_alpn_protocol()

    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol version, secret bits)`` of the cipher in use."""
        return self._obj.cipher()

    def version(self) -> str | None:
        """The protocol version negotiated, e.g. ``"TLSv1.3"``."""
        return self._obj.version()

    @property
    def cipher_pending(self) -> int:
        """Ciphertext bytes waiting for the kernel."""
        cipher = self._cipher
        return 0 if cipher is None else cipher.pending

    @property
    def writable(self) -> bool:
        """Whether plaintext can be encrypted now (the handshake is done, and
        OpenSSL does not wait for the peer's bytes first)."""
        return self._state is _OPEN and not self._write_blocked

    def __repr__(self) -> str:
        side = "server" if self._obj.server_side else "client"
        return f"<TLSLayer {side} {self._state.value} cipher={self.cipher_pending}>"

    # -- driven by the connection core ---------------------------------------

    def attach(self, sock: SupportsRecvInto) -> None:
        """Use ``sock`` for ciphertext (the connection calls it once).

        ``sock`` needs ``recv_into`` and ``send`` (``sendmsg`` if it has one).
        """
        self._sock = cast("_Wire", sock)

    def begin(self) -> None:
        """Start the handshake: a client queues its ClientHello.

        Raises:
            TLSHandshakeError: OpenSSL refused to start.
        """
        if not self._obj.server_side:
            self._handshake()

    def recv_into(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` with plaintext; 0 at the end of the stream.

        Raises:
            BlockingIOError: No plaintext yet (the socket would block, or the
                bytes were handshake or post-handshake messages).
            TLSHandshakeError: The handshake failed (also an
                :class:`ssl.SSLError`).
            ssl.SSLError: The peer broke the protocol after the handshake.
            OSError: The socket's error, unchanged.
        """
        raw, incoming, sock = self._raw, self._incoming, self._sock
        assert sock is not None, "attach() a socket first"
        if self._stuck == _ENDED:
            return 0
        while True:
            if self._state is _HANDSHAKING:
                self._handshake()
            if self._state is not _HANDSHAKING and (incoming.pending or raw.pending()):
                try:  # _decrypt, its usual case inline
                    got = raw.read(len(buffer), buffer)
                except ssl.SSLError as exc:
                    got = self._read_error(exc)
                else:
                    if self._outgoing.pending:
                        self._collect()
                if (
                    got > 0
                    and got < len(buffer)
                    and (incoming.pending or raw.pending())
                ):
                    return self._fill(raw, buffer, got)
                if got >= 0:
                    return got
            try:
                n = sock.recv_into(buffer)
            except OSError:
                self._stuck = incoming.pending
                raise
            if not n:
                return self._eof()
            self._stuck = -1
            self._write_blocked = False  # a write waiting on a read may go now
            if self._state is _HANDSHAKING:
                self._feed_handshake(buffer, n)
            elif n <= _FEED:
                incoming.write(buffer[:n])
            else:
                got = self._feed(raw, buffer, n)
                if got or self._stuck == _ENDED:
                    if self._stuck == -1 and got < len(buffer):
                        return self._fill(raw, buffer, got)
                    return got

    def pending(self) -> int:
        """Bytes that may be read without the socket being readable.

        Decrypted bytes of the current record, or ciphertext in the incoming
        BIO not yet known to be a partial record.
        """
        held = self._raw.pending()
        if held:
            return held
        stuck = self._stuck
        if stuck <= _ENDED:
            return 1  # the end of the stream to report, or a read to retry
        size = self._incoming.pending
        return 0 if size == stuck else size

    def sendmsg(self, buffers: Iterable[Buffer], /) -> int:
        """Encrypt plaintext, send ciphertext; return plaintext bytes delivered.

        The count covers only plaintext whose ciphertext the kernel accepted;
        the caller offers the rest again next time (bytes already encrypted
        are skipped, not encrypted twice).

        Raises:
            BlockingIOError: No plaintext was delivered (the handshake is not
                done, or the kernel would take no more).
            OSError: The socket's error, unchanged.
        """
        if self._state is not _OPEN:
            raise _would_block("TLS handshake in progress")
        if (
            self._cipher is None
            and not self._acked
            and type(buffers) is list
            and len(buffers) == 1
            and not self._write_blocked
        ):
            view = buffers[0]
            if type(view) is memoryview and 0 < view.nbytes <= _RECORD:
                return self._send_record(view)
        waiting = self._cipher is not None  # else _encrypt sent what it made
        if not self._write_blocked:
            more = self._encrypt(buffers)
            # TLS_BATCH bounds the ciphertext ahead of the kernel, not the
            # plaintext per call: while the kernel took every record, the
            # next batch goes in this call too. A short count would end the
            # caller's flush and cost a writable event (and, above high
            # water, a pause) for bytes the kernel would have taken now.
            while more and not waiting and self._cipher is None:
                more = self._encrypt(buffers)
        if waiting:
            self.flush()
        acked, self._acked = self._acked, 0
        if not acked:
            raise _would_block("ciphertext pending")
        return acked

    def send(self, data: Buffer, /) -> int:
        """:meth:`sendmsg` of one buffer."""
        return self.sendmsg((data,))

    def flush(self) -> bool:
        """Send queued ciphertext; return whether none is left.

        Raises:
            OSError: The socket's error, unchanged.
        """
        cipher = self._cipher
        if cipher is None:
            return True
        before = cipher.pending
        assert self._sock is not None
        try:
            drained = cipher.flush(self._sock)
        finally:
            self._count_sent(before - cipher.pending)
        if drained:  # nothing waits: an idle layer keeps no queue
            self._cipher, self._batches = None, _NO_BATCHES
        return drained

    def close_notify(self) -> None:
        """Queue ``close_notify`` once the handshake is done; nothing after it."""
        if self._state is not _OPEN:
            return
        self._state = _move(_OPEN, _V.CLOSE_NOTIFY)
        # Want-read (the peer's reply, not awaited) or already broken.
        with contextlib.suppress(ssl.SSLError):
            self._obj.unwrap()
        self._collect()

    def close(self) -> None:
        """Drop pending ciphertext; the layer holds nothing afterwards."""
        if self._state is _T.CLOSED:
            return
        self._state = _move(self._state, _V.CLOSE)
        cipher = self._cipher
        self._cipher, self._batches = None, _NO_BATCHES
        if cipher is not None:
            cipher.fail(ConnectionAbortedError(errno.ECONNABORTED, "TLS closed"))
        self._sock = None

    # -- internals ------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            self._collect()
            return
        except ssl.SSLError as exc:
            self._collect()
            self._send_alert()
            raise handshake_error(exc) from exc
        self._state = _move(_HANDSHAKING, _V.HANDSHAKE_DONE)
        self._collect()

    def _feed_handshake(self, buffer: memoryview, n: int) -> None:
        # A memory BIO keeps the capacity of the largest write it was given:
        # a ClientHello or a certificate flight fed whole would stay as dead
        # weight on an idle connection. Fed in small steps, OpenSSL moves each
        # into its own handshake buffers, which it frees once done.
        incoming, start = self._incoming, 0
        while n - start > _HANDSHAKE_FEED and self._state is _HANDSHAKING:
            incoming.write(buffer[start : start + _HANDSHAKE_FEED])
            start += _HANDSHAKE_FEED
            self._handshake()
        incoming.write(buffer[start:n])

    def _feed(self, raw: _Raw, buffer: memoryview, n: int) -> int:
        # A big read of ciphertext enters the incoming BIO _FEED bytes at a
        # time, so the BIO never grows to the whole read. Between steps,
        # while the BIO holds more than a record's worth (so a read cannot
        # stop short on a partial record: no exception to pay for), records
        # are decrypted into the front of the buffer, never past the
        # ciphertext fed so far (buffer[got:fed]): plaintext does not
        # overwrite ciphertext the BIO has not taken yet. The rest is
        # decrypted by _fill once every byte is in. So the BIO holds at most
        # _WHOLE + _FEED bytes. Returns the plaintext count.
        incoming, got, fed = self._incoming, 0, 0
        while n - fed > _FEED and self._stuck == -1:
            incoming.write(buffer[fed : fed + _FEED])
            fed += _FEED
            got = self._decrypt_upto(raw, buffer, got, fed)
        if self._stuck != _ENDED:
            incoming.write(buffer[fed:n])
        if self._outgoing.pending:
            self._collect()
        return got

    def _decrypt_upto(self, raw: _Raw, buffer: memoryview, got: int, end: int) -> int:
        # Records the BIO surely holds whole, into buffer[got:end]; the count.
        incoming = self._incoming
        while got < end and incoming.pending > _WHOLE:  # so no SSLWantReadError
            try:
                more = raw.read(end - got, buffer[got:end])
            except ssl.SSLError as exc:
                if got and not isinstance(exc, _READ_ENDS):
                    self._stuck = _RETRY  # raised again by the next read
                    return got
                more = self._read_error(exc)
            if more <= 0:
                if not more:  # close_notify: nothing after it counts
                    self._stuck = _ENDED
                return got  # or a partial record, now in OpenSSL's hands
            got += more
        return got

    def _decrypt(self, obj: _Raw, buffer: memoryview) -> int:
        # Plaintext count, 0 at the end of the stream, -1 when OpenSSL wants
        # more ciphertext.
        try:
            got = obj.read(len(buffer), buffer)
        except ssl.SSLError as exc:
            return self._read_error(exc)
        if self._outgoing.pending:
            self._collect()
        return got  # 0: the peer's close_notify (ssl reports it so, not raising)

    def _read_error(self, exc: ssl.SSLError) -> int:
        self._collect()  # tickets, KeyUpdate replies, alerts
        if isinstance(exc, ssl.SSLWantReadError):
            return -1
        if isinstance(exc, ssl.SSLZeroReturnError):
            return 0  # close_notify: the peer's end of the stream
        raise exc

    def _fill(self, obj: _Raw, buffer: memoryview, got: int) -> int:
        # One SSLObject.read returns one record at most: decrypt the whole
        # records the incoming BIO already holds into the rest of the buffer,
        # so the protocol gets one call, and its reply one encryption and
        # one send, per read of ciphertext rather than per record.
        incoming, size = self._incoming, len(buffer)
        while got < size and (incoming.pending or obj.pending()):
            try:
                more = self._decrypt(obj, buffer[got:])
            except ssl.SSLError:
                break  # raised again by the next call, after this plaintext
            if more < 0:
                # OpenSSL took a partial record out of the BIO: the socket
                # may hold the rest, so pending() asks for one more read.
                self._stuck = _RETRY
                break
            if not more:
                self._stuck = _ENDED  # the end of the stream, for the next call
                break
            got += more
        return got

    def _eof(self) -> int:
        if self._state is _HANDSHAKING:
            raise handshake_error(
                None, "the peer closed the connection during the TLS handshake"
            )
        self._incoming.write_eof()
        return 0  # an end without close_notify is still the end of the stream

    def _encrypt(self, buffers: Iterable[Buffer]) -> bool:
        # Plaintext already encrypted is still at the front of the caller's
        # buffers: sent but not reported yet, or not sent yet. With nothing
        # waiting, the records are sent here, at once (_send_records).
        # Returns whether the batch filled with plaintext left unencrypted.
        skip = self._unacked + self._acked
        room = TLS_BATCH - self.cipher_pending
        write, outgoing = self._raw.write, self._outgoing
        records: list[bytes] | None = [] if self._cipher is None else None
        plains: list[int] = []
        more = False
        for buf in buffers:
            if room <= 0:
                more = not self._write_blocked
                break
            view = memoryview(buf)
            size = view.nbytes
            if skip >= size:
                skip -= size
                continue
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            start = skip
            skip = 0
            while start < size and room > 0:
                try:
                    n = write(view[start : start + min(_RECORD, room)])
                except ssl.SSLWantReadError:  # renegotiation: wait for a read
                    self._write_blocked = True
                    room = 0
                    break
                start += n
                room -= n
                # Each record leaves the outgoing BIO at once: OpenSSL never
                # gives a memory BIO's buffer back, so it stays one record.
                if records is None:
                    self._queue_cipher(n)
                else:
                    records.append(outgoing.read())
                    plains.append(n)
            if room <= 0 and start < size and not self._write_blocked:
                more = True
        if records:
            self._send_records(records, plains)
        return more

    def _send_record(self, view: memoryview) -> int:
        # The usual reply: one buffer, one record, nothing waiting. The same
        # steps as _encrypt and _send_records, without their loops.
        try:
            n: int = self._raw.write(view)
        except ssl.SSLWantReadError:  # renegotiation: wait for a read
            self._write_blocked = True
            raise _would_block("TLS renegotiation in progress") from None
        data = self._outgoing.read()
        sock = self._sock
        assert sock is not None
        try:
            sent = sock.send(data)
        except OSError as exc:
            if not send_would_block(exc):
                raise
            sent = 0
        if sent == len(data):
            return n
        self._queue_records([data], [n], 0, sent)
        raise _would_block("ciphertext pending")

    def _send_records(self, records: list[bytes], plains: list[int]) -> None:
        # Nothing was waiting: one send (a gather write for several records)
        # straight from here; only what the kernel refused is queued.
        sock = self._sock
        assert sock is not None
        try:
            if len(records) == 1:
                sent = sock.send(records[0])
            else:
                views = [memoryview(record) for record in records]
                total = sum(map(len, views))
                sent = send_once(sock, views, 0, 0, total, GATHER_BYTES)[0]
        except OSError as exc:
            if not send_would_block(exc):
                raise
            sent = 0
        acked = 0
        for index, record in enumerate(records):
            if sent < len(record):
                self._queue_records(records, plains, index, sent)
                break
            sent -= len(record)
            acked += plains[index]
        self._acked += acked

    def _queue_records(
        self, records: list[bytes], plains: list[int], index: int, sent: int
    ) -> None:
        cipher, batches = self._waiting()
        for record, plain in zip(records[index:], plains[index:], strict=True):
            data = memoryview(record)[sent:] if sent else record
            sent = 0
            cipher.write(data)
            batches.append([len(data), plain])
            self._unacked += plain

    def _waiting(self) -> tuple[WriteQueue, list[list[int]]]:
        cipher = self._cipher
        if cipher is None:
            cipher = self._cipher = WriteQueue(high_water=1 << 62, low_water=0)
            self._batches = []
        return cipher, self._batches

    def _collect(self) -> None:
        if self._outgoing.pending:
            self._queue_cipher(0)

    def _queue_cipher(self, plain: int) -> None:
        data = self._outgoing.read()
        if data:
            cipher, batches = self._waiting()
            cipher.write(data)
            batches.append([len(data), plain])
            self._unacked += plain
        elif plain:  # pragma: no cover - OpenSSL always emits a record
            self._acked += plain

    def _count_sent(self, sent: int) -> None:
        batches, acked = self._batches, 0
        while sent:
            batch = batches[0]
            if sent < batch[0]:
                batch[0] -= sent
                break
            sent -= batch[0]
            acked += batch[1]
            del batches[0]
        self._unacked -= acked
        self._acked += acked

    def _send_alert(self) -> None:
        # A failed handshake: tell the peer why, once, if the kernel takes it.
        sock, cipher = self._sock, self._cipher
        if sock is not None and cipher is not None:
            with contextlib.suppress(OSError):
                cipher.flush(sock)


def _check_timeout(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, not {value!r}")
    return float(value)
