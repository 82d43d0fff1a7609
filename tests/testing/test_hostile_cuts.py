"""Cuttings, their strategies, the hostile fixtures, a failure as pytest shows it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from bufkit.testing import (
    Cutting,
    CuttingError,
    HostileTransport,
    Pause,
    backpressure_schedules,
    cuttings,
)
from bufkit.testing.twisted import (
    HostileTwistedTransport,
)

pytest_plugins = ["pytester"]


@given(st.data())
def test_drawn_cuttings_fit_their_conversation(data: st.DataObject) -> None:
    """Every drawn cutting validates and cuts the input into non-empty chunks."""
    payload = data.draw(st.binary(max_size=40))
    cutting = data.draw(cuttings(len(payload), max_cuts=5, hints=True, lose=True))
    cutting.validate(len(payload))
    chunks = cutting.chunks(payload)
    assert all(chunks)
    assert len(chunks) <= 6
    end = len(payload) if cutting.lost_at is None else cutting.lost_at
    assert b"".join(chunks) == payload[:end]


@given(backpressure_schedules(max_pauses=4, max_write=5, max_hold=2))
def test_backpressure_schedules_are_ordered_and_bounded(
    pauses: tuple[Pause, ...],
) -> None:
    """Pauses come in write order, one per write, within the bounds."""
    writes = [p.at_write for p in pauses]
    assert writes == sorted(set(writes))
    assert all(0 <= p.at_write <= 5 and 0 <= p.hold <= 2 for p in pauses)


def test_cuttings_shrink_to_no_hostility() -> None:
    """The simplest cutting is the whole input at once, without pauses."""
    assert find(cuttings(10, hints=True, lose=True), lambda c: True) == Cutting()


def test_cuttings_shrink_to_the_smallest_cut() -> None:
    """A cutting that must cut shrinks to one cut, at offset 1."""
    smallest = find(cuttings(10), lambda c: bool(c.cuts))
    assert smallest == Cutting(cuts=(1,))


def test_one_byte_input_has_no_cut_points() -> None:
    """A one-byte input cannot be cut."""
    assert find(cuttings(1, pauses=False), lambda c: True) == Cutting()


@pytest.mark.parametrize(
    ("cutting", "message"),
    [
        (Cutting(cuts=(0,)), "cut 0 is not inside the 4-byte input"),
        (Cutting(cuts=(4,)), "cut 4 is not inside the 4-byte input"),
        (Cutting(lost_at=5), "lost_at 5 is outside the 4-byte input"),
        (Cutting(pauses=(Pause(-1),)), "Pause(at_write=-1, hold=1) has a negative"),
        (Cutting(pauses=(Pause(0, -2),)), "Pause(at_write=0, hold=-2) has a negative"),
    ],
)
def test_cutting_that_does_not_fit_is_refused(cutting: Cutting, message: str) -> None:
    """``validate`` raises CuttingError (a ValueError) naming the value."""
    with pytest.raises(
        CuttingError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        cutting.validate(4)
    assert issubclass(CuttingError, ValueError)


def test_chunks_stop_at_lost_at() -> None:
    """Cut points after ``lost_at`` are ignored; the chunks end there."""
    assert Cutting(cuts=(1, 3), lost_at=2).chunks(b"abcd") == [b"a", b"b"]
    assert Cutting(lost_at=0).chunks(b"abcd") == []


def test_repr_leaves_out_defaults() -> None:
    """The repr is the shortest constructor call that rebuilds the cutting."""
    cutting = Cutting(cuts=[2, 5], pauses=[Pause(1)])
    assert repr(cutting) == "Cutting(cuts=(2, 5), pauses=(Pause(at_write=1, hold=1),))"
    assert repr(Cutting()) == "Cutting()"
    assert eval(repr(cutting)) == cutting


def test_describe_lists_points_chunks_and_pauses() -> None:
    """``describe`` shows the cut points, the chunks and the pauses."""
    text = Cutting(cuts=(1,), pauses=(Pause(0, 0),), lost_at=3).describe(b"abcd")
    assert text.splitlines() == [
        "cut points: [1]",
        "chunks: [b'a', b'bc']",
        "backpressure: [Pause(at_write=0, hold=0)]",
        "connection lost after 3 bytes",
    ]


def test_hostile_fixtures(
    make_hostile_transport: Callable[..., HostileTransport],
    make_hostile_twisted_transport: Callable[..., Any],
) -> None:
    """The plugin's factories build the hostile transports."""
    transport = make_hostile_transport(extra={"peername": ("::1", 1, 0, 0)})
    assert transport.get_extra_info("peername") == ("::1", 1, 0, 0)
    assert isinstance(make_hostile_twisted_transport(), HostileTwistedTransport)


def test_failure_in_pytest_shows_the_report_not_the_toolkit(
    pytester: pytest.Pytester,
) -> None:
    """A failing check prints the report; toolkit frames stay out of the traceback."""
    pytester.makepyfile(
        """
        import asyncio
        from bufkit.testing import check_protocol

        class Upper(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.transport.write(data.strip().upper() + b"\\n")

        def test_upper():
            check_protocol(Upper, [b"ab\\n", b"cd\\n"], seed=0)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "smallest hostile cutting found:" in output
    assert "Cutting(cuts=(1,))" in output
    assert "_hostile_core.py" not in output
    assert "_hostile_asyncio.py" not in output
