"""The byte ledger explains a wrong wire in terms of the messages."""

from __future__ import annotations

import pytest

from bufkit.testing import Ledger

MESSAGES = [b"hello ", b"brave ", b"", b"new world"]
EXPECTED = b"".join(MESSAGES)


@pytest.fixture
def ledger() -> Ledger:
    """A ledger of four messages, one of them empty."""
    return Ledger(MESSAGES)


def test_the_right_wire_has_no_verdict(ledger: Ledger) -> None:
    """The exact bytes, or a prefix when incomplete is allowed, are fine."""
    assert ledger.verdict(EXPECTED) is None
    assert ledger.verdict(EXPECTED[:8], complete=False) is None
    assert ledger.messages == tuple(MESSAGES)
    assert ledger.expected == EXPECTED


def test_locate_maps_stream_offsets_to_messages(ledger: Ledger) -> None:
    """Offsets map to (message, offset); empty messages own no byte."""
    assert ledger.locate(0) == (0, 0)
    assert ledger.locate(7) == (1, 1)
    assert ledger.locate(12) == (3, 0)
    assert ledger.locate(21) == (4, 0)


@pytest.mark.parametrize(
    ("wire", "verdict"),
    [
        (
            EXPECTED[:8],
            "message[1] lost its last 4 bytes; message[3] (9 bytes) never arrived",
        ),
        (b"", "message[0] (6 bytes) never arrived; message[1] (6 bytes) never"),
        (
            EXPECTED[:14] + EXPECTED[16:],
            "message[3] lost 2 bytes at offset 3 (of 9); the bytes after it did arrive",
        ),
        (EXPECTED[:10] + EXPECTED[7:], "bytes 7-9 (message[1]) were sent twice"),
        (EXPECTED, None),
        (EXPECTED + b"xyz", "3 bytes after the last message were never written"),
        (EXPECTED + EXPECTED[-3:], "bytes 18-20 (message[3]) were sent twice"),
        (EXPECTED[:4] + EXPECTED[2:], "bytes 2-3 (message[0]) were sent twice"),
        (EXPECTED[:8] + EXPECTED[4:], "bytes 4-7 (messages[0:2]) were sent twice"),
        (
            EXPECTED[:3] + b"X" + EXPECTED[4:],
            "byte 3 of message[0] (stream offset 3) is 0x58, expected 0x6c",
        ),
    ],
)
def test_verdicts_name_messages_and_bytes(
    ledger: Ledger, wire: bytes, verdict: str | None
) -> None:
    """Lost, repeated, extra and corrupted bytes are named as such."""
    found = ledger.verdict(wire)
    if verdict is None:
        assert found is None
    else:
        assert found is not None
        assert verdict in found


def test_expect_adds_messages() -> None:
    """Messages can be added one by one."""
    book = Ledger()
    book.expect(b"ab")
    book.expect(bytearray(b"c"))
    assert book.verdict(b"ab") == "message[1] (1 byte) never arrived"
