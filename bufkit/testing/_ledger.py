"""The byte ledger: what should have reached the peer, and verdicts in user terms.

Theory of operation: a :class:`Ledger` holds the messages the code under test
was asked to send. Given what the peer really received (a fake's ``wire``), it
finds the first divergence and explains it in the terms of the messages:
"message[3] lost its last 7 bytes", "bytes 4096-4100 sent twice", "byte 12 of
message[0] is 0x41, expected 0x42". This is docs/design.md invariant 1 stated
for the user. Cost: O(bytes) per verdict, plus a bounded search for a
duplicate or a gap at the divergence.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Ledger", "common_prefix"]

_PROBE: Final = 32  # bytes used to find where the wire resumes after a gap
_MAX_TRIES: Final = 64  # candidate repeats examined at a divergence


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@final
class Ledger:
    """The messages that should reach the peer, in order.

    Args:
        messages: the messages written so far; add more with :meth:`expect`.
    """

    def __init__(self, messages: Iterable[Buffer] = ()) -> None:
        self._messages: list[bytes] = []
        self._ends: list[int] = []
        for message in messages:
            self.expect(message)

    def expect(self, message: Buffer) -> None:
        """Record that ``message`` was written after the previous ones."""
        data = bytes(message)
        self._messages.append(data)
        self._ends.append((self._ends[-1] if self._ends else 0) + len(data))

    @property
    def messages(self) -> tuple[bytes, ...]:
        """The messages written, in order."""
        return tuple(self._messages)

    @property
    def expected(self) -> bytes:
        """The bytes the peer should receive: the messages concatenated."""
        return b"".join(self._messages)

    def locate(self, offset: int) -> tuple[int, int]:
        """Return ``(index, offset in message)`` of the stream byte at ``offset``.

        Empty messages own no byte; an offset at or past the end maps to
        ``(len(messages), offset - total)``.
        """
        index = bisect.bisect_right(self._ends, offset)
        start = self._ends[index - 1] if index else 0
        return index, offset - start

    def verdict(self, wire: bytes, *, complete: bool = True) -> str | None:
        """Explain how ``wire`` differs from the expected bytes, or ``None``.

        Args:
            wire: the bytes the peer received, in order.
            complete: whether every message should have arrived; if not, a
                ``wire`` that is a prefix of the expected bytes is fine.

        Returns:
            One sentence naming the first problem, in terms of the messages,
            or ``None`` if ``wire`` is right.
        """
        expected = self.expected
        common = common_prefix(wire, expected)
        if common == len(wire) == len(expected):
            return None
        if common == len(wire):
            return None if not complete else self._missing(common, len(expected))
        if common == len(expected):
            dup = _duplicate(wire, expected, common)
            if dup:
                return self._twice(common - dup, common)
            extra = len(wire) - common
            return f"{_plural(extra, 'byte')} after the last message were never written"
        return self._diverged(wire, expected, common)

    def _diverged(self, wire: bytes, expected: bytes, at: int) -> str:
        dup = _duplicate(wire, expected, at)
        if dup:
            return self._twice(at - dup, at)
        probe = wire[at : at + _PROBE]
        resume = expected.find(probe, at + 1)
        whole_rest = at + len(probe) == len(wire)
        if resume > at and (len(probe) > 3 or whole_rest):
            return self._missing(at, resume, then="; the bytes after it did arrive")
        index, offset = self.locate(at)
        return (
            f"byte {offset} of message[{index}] (stream offset {at}) is "
            f"{wire[at]:#04x}, expected {expected[at]:#04x}: the data was corrupted"
        )

    def _twice(self, start: int, end: int) -> str:
        first, _ = self.locate(start)
        last, _ = self.locate(end - 1)
        where = (
            f"message[{first}]" if first == last else f"messages[{first}:{last + 1}]"
        )
        return f"bytes {start}-{end - 1} ({where}) were sent twice"

    def _missing(self, start: int, end: int, then: str = "") -> str:
        """Describe the lost stream bytes ``start:end`` message by message."""
        parts = []
        index = self.locate(start)[0]
        while index < len(self._messages):
            begin = self._ends[index - 1] if index else 0
            if begin >= end:
                break
            lo, hi = max(start, begin) - begin, min(end, self._ends[index]) - begin
            parts.append(self._loss(index, lo, hi))
            index += 1
        described = "; ".join(p for p in parts if p) or f"bytes {start}-{end - 1} lost"
        return described + then

    def _loss(self, index: int, lo: int, hi: int) -> str:
        size = len(self._messages[index])
        if hi <= lo:
            return ""
        if lo == 0 and hi == size:
            return f"message[{index}] ({_plural(size, 'byte')}) never arrived"
        if hi == size:
            return f"message[{index}] lost its last {_plural(hi - lo, 'byte')}"
        return (
            f"message[{index}] lost {_plural(hi - lo, 'byte')} at offset {lo} "
            f"(of {size})"
        )


def common_prefix(a: bytes, b: bytes) -> int:
    """Return the length of the longest common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _duplicate(wire: bytes, expected: bytes, at: int) -> int:
    """Length of a tail of ``expected[:at]`` repeated at ``wire[at:]``, or 0.

    The wire must resume with ``expected[at:]`` right after the repeat.
    """
    probe = expected[at : at + _PROBE]
    if not probe:
        length = len(wire) - at
        return length if length <= at and wire[at:] == expected[at - length : at] else 0
    pos = wire.find(probe, at + 1)
    for _ in range(_MAX_TRIES):
        length = pos - at
        if pos < 0 or length > at:
            break
        if wire[at:pos] == expected[at - length : at]:
            return length
        pos = wire.find(probe, pos + 1)
    return 0
