"""Every bug in the gallery is caught with its verdict; the correct code passes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bufkit.testing import CheckFailed, gallery

BUGS = [*gallery.SENDER_BUGS, *gallery.RECEIVER_BUGS]


def test_the_gallery_holds_thirty_bugs_of_distinct_kinds() -> None:
    """At least 30 buggy implementations, each a different class."""
    assert len(BUGS) >= 30
    assert len({entry.make for entry in BUGS}) == len(BUGS)
    assert all(entry.verdict for entry in BUGS)


@pytest.mark.parametrize("entry", BUGS, ids=lambda entry: entry.name)
def test_each_bug_is_caught_with_its_verdict(
    entry: gallery.Entry, record_property: Callable[[str, object], None]
) -> None:
    """The check on default settings raises ``CheckFailed`` naming the bug."""
    start = time.perf_counter()
    with pytest.raises(CheckFailed, match=entry.verdict) as info:
        gallery.run(entry)
    record_property("seconds", round(time.perf_counter() - start, 3))
    assert "reproduce with:" in str(info.value)


@pytest.mark.parametrize("entry", gallery.CORRECT, ids=lambda entry: entry.name)
def test_correct_implementations_pass(entry: gallery.Entry) -> None:
    """The correct senders and receivers pass their checks."""
    gallery.run(entry)


def test_verdict_returns_the_first_line() -> None:
    """``verdict`` gives the first line of the report, and "" for correct code."""
    assert gallery.verdict(gallery.SENDER_BUGS[0]) == (
        "check_sender: message[0] lost its last 1 byte (call #0: send accepted 1 of "
        "2 bytes and the rest was never offered again while the sender did not ask "
        "for write readiness: is the return value ignored?)"
    )
    assert gallery.verdict(gallery.CORRECT[2]) == ""
