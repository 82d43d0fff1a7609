"""Framers: whole frames out of borrowed read views, copying only leftovers.

Theory of operation
-------------------
A framer is a :class:`~bufkit.ReadHandler`: the reader feeds it views into
borrowed buffers that are valid only during ``data_received``. Every frame that
lies entirely inside one view is handed to ``on_frame`` as a slice of that view
(zero copy). Only a frame that spans reads is copied, into a leftover buffer
taken from the pool when the frame starts and released the moment the frame is
complete, so an idle framer holds zero pool bytes (docs/design.md invariant 5)
and a closed or failed framer has given everything back (docs/design.md
invariant 4). Framers hand frames over as views, never as buffers.

Limits come first, on the payload (header and delimiter excluded): a length
header is checked before any of its payload is buffered, and a delimiter
framer refuses a frame as soon as ``max_frame`` plus a delimiter's worth of
bytes went by without one. The leftover follows the bytes received, not the
bytes announced: it starts at the size of the first part received and doubles
as more arrives, so a peer must send bytes to make a framer hold bytes, and
never more than ``max_frame`` payload bytes (plus ``len(delimiter) - 1`` bytes
of a delimiter split across reads). After any error the framer holds nothing
and refuses more data: its byte stream can no longer be trusted.

Cost model: per frame in one view, a ``struct.unpack_from`` (or one regular
expression search of the view, which works on the view without copying it) and
one ``memoryview`` slice. A frame spanning reads is copied once, plus the
doubling copies of its leftover (amortized O(1) per byte), holding the old and
the new buffer only during a copy. A partial length header is kept in a
``bytes`` of at most its size. Figures: docs/reference/framing.md.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import NoReturn, cast, final

from bufkit._argtypes import Checked
from bufkit._framer_base import _Framer, _OnFrame
from bufkit._pool import BufferPool
from bufkit.errors import FrameTooLarge, FramingError

__all__ = ["DelimiterFramer", "LengthPrefixedFramer"]


@final
class LengthPrefixedFramer(_Framer):
    """Frames that start with a length header, such as ``struct`` ``"!I"``.

    ``on_frame`` gets each frame's payload, without its header, as a view valid
    only during the call.

    Args:
        pool: Lends the buffer of a frame that spans reads.
        on_frame: Called with each payload.
        max_frame: The largest payload accepted, in bytes, header excluded; a
            header announcing more raises :class:`~bufkit.FrameTooLarge`
            before anything of the frame is buffered.
        header: A :mod:`struct` format of one integer, such as ``"!I"``
            (4 bytes, big-endian) or ``"<H"``.
        includes_header: Whether the length counts the header's own bytes.
        on_eof: Called by :meth:`eof_received` after a clean end of stream.

    Raises:
        TypeError: ``max_frame`` is not an int, or ``on_frame`` (``on_eof``)
            is not callable.
        ValueError: ``header`` is not a struct format of exactly one integer,
            ``max_frame`` is below 1, or ``max_frame`` is above the pool's
            largest class and the pool has no heap fallback.
    """

    __slots__ = (
        "_extra",
        "_header_part",
        "_hsize",
        "_includes_header",
        "_need",
        "_unpack_from",
        "_valid",
    )

    def __init__(
        self,
        pool: BufferPool,
        on_frame: _OnFrame,
        *,
        max_frame: Checked[int],
        header: Checked[str] = "!I",
        includes_header: Checked[bool] = False,
        on_eof: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(pool, on_frame, max_frame, on_eof)
        layout = _length_struct(header)
        max_frame = self._max_frame
        self._unpack_from = layout.unpack_from
        self._hsize = layout.size
        self._includes_header = includes_header
        # The hot loop checks a header with one range test, and finds the
        # frame's end as header start + extra + length.
        low = self._hsize if includes_header else 0
        self._valid = range(low, low + max_frame + 1)
        self._extra = 0 if includes_header else self._hsize
        self._check_room(max_frame)
        self._header_part = b""
        self._need = 0

    def __repr__(self) -> str:
        return (
            f"<LengthPrefixedFramer max_frame={self._max_frame} "
            f"pending_bytes={self.pending_bytes}>"
        )

    @property
    def pending_bytes(self) -> int:
        """Bytes received of a frame not yet complete, header included."""
        if self._buf is not None:
            return self._hsize + self._filled
        return len(self._header_part)

    def _clear(self) -> None:
        self._header_part = b""

    def _feed(self, view: memoryview) -> None:
        pos = 0
        if self._buf is not None:
            pos = self._fill(view)
        elif self._header_part:
            pos = self._finish_header(view)
        if pos >= 0:
            self._scan(view, pos)

    def _scan(self, view: memoryview, pos: int) -> None:
        """Emit every whole frame from ``pos`` on; keep what is left."""
        end = len(view)
        hsize = self._hsize
        unpack_from = self._unpack_from
        on_frame = self._on_frame
        valid = self._valid
        extra = self._extra
        while end - pos >= hsize:
            (length,) = unpack_from(view, pos)
            if length not in valid:
                self._payload_size(length)  # raises the right error
            start = pos + hsize
            stop = pos + extra + length
            if stop > end:
                self._keep(view, start, stop - start)
                return
            on_frame(view[start:stop])
            pos = stop
        if pos < end:
            self._header_part = bytes(view[pos:])

    def _finish_header(self, view: memoryview) -> int:
        """Complete a split header; return where scanning resumes, or -1."""
        missing = self._hsize - len(self._header_part)
        if len(view) < missing:
            self._header_part += bytes(view)
            return -1
        header = self._header_part + bytes(view[:missing])
        size = self._payload_size(self._unpack_from(header, 0)[0])
        self._header_part = b""
        stop = missing + size
        if stop > len(view):
            self._keep(view, missing, size)
            return -1
        self._on_frame(view[missing:stop])
        return stop

    def _fill(self, view: memoryview) -> int:
        """Add to the pending payload; return where scanning resumes, or -1."""
        buf = self._buf
        assert buf is not None
        filled = self._filled
        take = min(self._need - filled, len(view))
        if filled + take > buf.size:
            buf = self._grow(filled + take, self._need)
        buf.view[filled : filled + take] = view[:take]
        self._filled = filled + take
        if self._filled < self._need:
            return -1
        self._emit_leftover(self._need)
        return take

    def _keep(self, view: memoryview, start: int, size: int) -> None:
        """Copy the start of a ``size``-byte payload into a pool buffer.

        The buffer holds what arrived, not what the header announced: it
        doubles as the payload comes in (:meth:`_fill`), so a peer has to send
        bytes to make the framer hold bytes.
        """
        got = len(view) - start
        self._need = size
        self._filled = 0
        buf = self._grow(max(got, 1), size)
        buf.view[:got] = view[start:]
        self._filled = got

    def _payload_size(self, length: int) -> int:
        """Check a header's length; return the payload size it announces."""
        if self._includes_header:
            if length < self._hsize:
                raise FramingError(
                    f"length {length} is smaller than the {self._hsize}-byte "
                    "header it includes"
                )
            length -= self._hsize
        elif length < 0:
            raise FramingError(f"length {length} is negative")
        if length > self._max_frame:
            raise FrameTooLarge(
                f"frame of {length} bytes exceeds max_frame {self._max_frame}"
            )
        return length


def _length_struct(header: object) -> struct.Struct:
    """Compile ``header``; it must unpack to exactly one integer."""
    try:
        layout = struct.Struct(cast("str", header))  # a wrong type: TypeError
        values = layout.unpack(bytes(layout.size))
    except struct.error as exc:
        error = ValueError(f"header {header!r} is not a struct format: {exc}")
        error.__cause__ = None  # `raise ... from None`, which mypyc ignores
        raise error  # noqa: B904
    if len(values) != 1 or type(values[0]) is not int:
        raise ValueError(f"header {header!r} must hold exactly one integer")
    return layout


def _delimiter_bytes(delimiter: object) -> bytes:
    """A copy of ``delimiter``, any bytes-like object; TypeError naming others."""
    try:
        return bytes(memoryview(cast("bytes", delimiter)))
    except TypeError:
        error = TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
        error.__cause__ = None  # `raise ... from None`, which mypyc ignores
        raise error  # noqa: B904


@final
class DelimiterFramer(_Framer):
    """Frames that end with a delimiter, such as ``b"\\r\\n"``.

    ``on_frame`` gets each frame without its delimiter, as a view valid only
    during the call. A delimiter split across reads is found.

    Args:
        pool: Lends the buffer of a frame that spans reads.
        on_frame: Called with each frame.
        max_frame: The longest frame accepted, in bytes, delimiter excluded:
            ``max_frame`` bytes then the delimiter pass. Once
            ``max_frame + len(delimiter)`` bytes of a frame went by with no
            delimiter among them, :class:`~bufkit.FrameTooLarge` is raised.
        delimiter: The bytes that end a frame.
        on_eof: Called by :meth:`eof_received` after a clean end of stream.

    Raises:
        TypeError: ``delimiter`` is not bytes-like, ``max_frame`` is not an
            int, or ``on_frame`` (``on_eof``) is not callable.
        ValueError: ``delimiter`` is empty, ``max_frame`` is below 1, or
            ``max_frame + len(delimiter) - 1`` is above the pool's largest
            class and the pool has no heap fallback.
    """

    __slots__ = ("_delimiter", "_search")

    def __init__(
        self,
        pool: BufferPool,
        on_frame: _OnFrame,
        *,
        max_frame: Checked[int],
        delimiter: Checked[bytes] = b"\r\n",
        on_eof: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(pool, on_frame, max_frame, on_eof)
        self._delimiter = _delimiter_bytes(delimiter)
        if not self._delimiter:
            raise ValueError("delimiter must not be empty")
        self._search = re.compile(re.escape(self._delimiter)).search
        self._check_room(self._max_frame + len(self._delimiter) - 1)

    def __repr__(self) -> str:
        return (
            f"<DelimiterFramer delimiter={self._delimiter!r} "
            f"max_frame={self._max_frame} pending_bytes={self._filled}>"
        )

    @property
    def delimiter(self) -> bytes:
        """The bytes that end a frame."""
        return self._delimiter

    def _feed(self, view: memoryview) -> None:
        pos = 0 if self._buf is None else self._continue(view)
        if pos >= 0:
            self._scan(view, pos)

    def _scan(self, view: memoryview, pos: int) -> None:
        """Emit every whole frame from ``pos`` on; keep what is left."""
        end = len(view)
        width = self._max_frame + len(self._delimiter)
        search = self._search
        on_frame = self._on_frame
        while pos < end:
            found = search(view, pos, min(end, pos + width))
            if found is None:
                if end - pos >= width:
                    self._refuse(view, pos)
                self._append(view[pos:])
                return
            on_frame(view[pos : found.start()])
            pos = found.end()

    def _continue(self, view: memoryview) -> int:
        """Extend the pending frame; return where scanning resumes, or -1."""
        have = self._filled
        width = len(self._delimiter)
        split = self._split_delimiter(view)
        if split >= 0:
            self._check_length(split)
            self._emit_leftover(split)
            return split + width - have
        limit = self._max_frame + width - have
        found = self._search(view, 0, min(len(view), limit))
        if found is None:
            if len(view) >= limit:
                self._refuse(view, 0, have)
            self._append(view)
            return -1
        self._append(view[: found.start()])
        self._emit_leftover(self._filled)
        return found.end()

    def _split_delimiter(self, view: memoryview) -> int:
        """Where a delimiter that starts in the leftover begins, or -1."""
        buf = self._buf
        assert buf is not None
        have = self._filled
        first = max(0, have - len(self._delimiter) + 1)
        if first == have:
            return -1
        window = bytes(buf.view[first:have]) + bytes(view[: len(self._delimiter) - 1])
        at = window.find(self._delimiter)
        return -1 if at < 0 else first + at

    def _check_length(self, size: int) -> None:
        """Refuse a frame whose payload, delimiter excluded, is ``size`` bytes."""
        if size > self._max_frame:
            raise FrameTooLarge(
                f"frame of {size} bytes exceeds max_frame {self._max_frame}"
            )

    def _refuse(self, view: memoryview, pos: int, have: int = 0) -> NoReturn:
        """Refuse the frame that ``have`` leftover bytes and ``view[pos:]`` start.

        No delimiter ends within ``max_frame + len(delimiter)`` bytes of the
        frame's start, so its payload exceeds ``max_frame``. Its exact size is
        named when the delimiter is further on in this view.
        """
        later = self._search(view, pos)
        if later is not None:
            self._check_length(have + later.start() - pos)
        raise FrameTooLarge(
            f"frame of more than {self._max_frame} bytes exceeds max_frame "
            f"{self._max_frame}: no delimiter in its first "
            f"{self._max_frame + len(self._delimiter)} bytes"
        )

    def _append(self, part: memoryview) -> None:
        """Copy ``part`` to the end of the leftover, growing it if needed."""
        have = self._filled
        need = have + len(part)
        buf = self._buf
        if buf is None or need > buf.size:
            buf = self._grow(need, self._max_frame + len(self._delimiter) - 1)
        buf.view[have:need] = part
        self._filled = need


# Public under the package's name. Set after the classes, not in their bodies:
# a compiled class ignores a __module__ assigned in its body.
for _public in (LengthPrefixedFramer, DelimiterFramer):
    _public.__module__ = "bufkit"
