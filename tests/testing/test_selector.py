"""The fake selector reports readiness from the fakes' schedules."""

from __future__ import annotations

import selectors

import pytest

from bufkit.testing import (
    Accept,
    BusyLoopError,
    DeadlockError,
    Deliver,
    Eof,
    FakeSelector,
    FakeSocket,
    SendStep,
    Spurious,
    StepBudgetExceeded,
    WouldBlock,
    fake_socketpair,
    gallery,
)

R, W = selectors.EVENT_READ, selectors.EVENT_WRITE


def _events(sel: FakeSelector, timeout: float | None = 0) -> list[tuple[object, int]]:
    return [(key.fileobj, events) for key, events in sel.select(timeout)]


def test_register_modify_unregister() -> None:
    """Registration follows the ``selectors`` contract."""
    sel = FakeSelector()
    sock = FakeSocket()
    key = sel.register(sock, R, "data")
    assert key.fd == sock.fileno()
    assert key.data == "data"
    assert sel.get_key(sock) is key
    with pytest.raises(KeyError):
        sel.register(sock, R)
    assert sel.modify(sock, W).events == W
    assert sel.unregister(sock).events == W
    with pytest.raises(KeyError):
        sel.unregister(sock)
    with pytest.raises(ValueError, match="invalid events"):
        sel.register(sock, 0)
    assert len(sel.get_map()) == 0
    sel.close()


def test_readable_when_data_or_eof_is_due() -> None:
    """A fake is readable when its next receive returns at once."""
    sel = FakeSelector()
    data = FakeSocket(recv=[Deliver(b"x")])
    eof = FakeSocket(recv=[Eof()])
    idle = FakeSocket()
    for sock in (data, eof, idle):
        sel.register(sock, R)
    assert _events(sel) == [(data, R), (eof, R)]


def test_writable_per_schedule() -> None:
    """A fake is writable unless its next send step would block."""
    sel = FakeSelector()
    ok = FakeSocket(send=[Accept(1)])
    blocked = FakeSocket(send=[], after_send="block")
    sel.register(ok, W)
    sel.register(blocked, W)
    assert _events(sel) == [(ok, W)]


def test_would_block_withholds_readiness_for_one_round() -> None:
    """Each ``WouldBlock()`` step withholds readiness for one select round."""
    sel = FakeSelector()
    sock = FakeSocket(send=[WouldBlock(), WouldBlock(), Accept(3)])
    sel.register(sock, W)
    assert _events(sel) == []
    assert _events(sel) == []
    assert _events(sel) == [(sock, W)]
    assert sock.send(b"abcd") == 3


def test_select_without_timeout_waits_through_withheld_rounds() -> None:
    """``select(None)`` runs rounds until the fake becomes ready."""
    sel = FakeSelector()
    sock = FakeSocket(recv=[WouldBlock(), WouldBlock(), Deliver(b"hi")])
    sel.register(sock, R)
    assert _events(sel, None) == [(sock, R)]
    assert sel.rounds == 3
    assert sock.recv(5) == b"hi"


def test_spurious_readiness_lies() -> None:
    """``Spurious()`` is reported ready, then the call raises ``EAGAIN``."""
    sel = FakeSelector()
    sock = FakeSocket(send=[Spurious(), Accept(1)], recv=[Spurious(), Deliver(b"x")])
    sel.register(sock, R | W)
    assert _events(sel) == [(sock, R | W)]
    with pytest.raises(BlockingIOError):
        sock.send(b"ab")
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    assert _events(sel) == [(sock, R | W)]
    assert sock.recv(1) == b"x"


def test_deadlock_is_reported() -> None:
    """``select(None)`` with nothing that can become ready raises."""
    sel = FakeSelector()
    sel.register(FakeSocket(), R)
    with pytest.raises(DeadlockError):
        sel.select()
    assert sel.select(0.5) == []


def test_busy_loop_on_writable_is_reported() -> None:
    """Writable reported again and again with no send is a busy loop."""
    sel = FakeSelector(busy_limit=5)
    sel.register(FakeSocket(), W)
    for _ in range(5):
        sel.select(0)
    with pytest.raises(BusyLoopError, match="armed with nothing to write"):
        sel.select(0)


def test_unread_readable_data_is_reported() -> None:
    """Readable reported again and again with no receive is reported."""
    sel = FakeSelector(busy_limit=3)
    sel.register(FakeSocket(recv=[Deliver(b"x")]), R)
    for _ in range(3):
        sel.select(0)
    with pytest.raises(BusyLoopError, match="never read"):
        sel.select(0)


def test_step_budget() -> None:
    """More selects than ``step_budget`` raise."""
    sel = FakeSelector(step_budget=2)
    sel.select(0)
    sel.select(0)
    with pytest.raises(StepBudgetExceeded):
        sel.select(0)


def test_foreign_objects_are_never_ready() -> None:
    """A registered object that is not a fake is never reported."""
    sel = FakeSelector()
    sel.register(12345, R)
    assert sel.select(0) == []


def _echo_loop(server_send: list[SendStep]) -> bytes:
    """Run a selector-driven echo between two fakes; return what came back."""
    client, server = fake_socketpair(b_send=server_send)
    sel = FakeSelector(step_budget=10_000)
    writer = gallery.GatherSender(server)
    sel.register(server, R)
    payload = bytes(range(256)) * 40
    client.sendall(payload)
    client.shutdown(1)
    echoed = bytearray()
    done = False
    while not done or writer.wants_writable:
        for key, events in sel.select(None):
            if events & R:
                data = server.recv(1000)
                if data:
                    writer.write(data)
                else:
                    done = True
                    sel.modify(server, W)
            if events & W:
                writer.on_writable()
            want = (0 if done else R) | (W if writer.wants_writable else 0)
            if want:
                sel.modify(key.fileobj, want)
            else:
                sel.unregister(key.fileobj)
        while True:
            try:
                echoed += client.recv(65536)
            except BlockingIOError:
                break
    return bytes(echoed) if echoed == payload else b"mismatch"


def test_a_whole_selector_loop_runs_deterministically() -> None:
    """An echo loop over fakes under withheld readiness echoes every byte."""
    schedule: list[SendStep] = [Accept(7), WouldBlock(), WouldBlock(), Accept(500)]
    schedule *= 20
    assert _echo_loop(schedule) == _echo_loop(schedule) != b"mismatch"


def test_re_arming_with_modify_is_still_a_busy_loop() -> None:
    """``modify`` keeps the busy-loop count: re-arming each round is caught."""
    sel = FakeSelector(busy_limit=3)
    sock = FakeSocket()
    sel.register(sock, W)
    for _ in range(3):
        sel.select(0)
        sel.modify(sock, W, "again")
    assert sel.get_key(sock).data == "again"
    with pytest.raises(BusyLoopError):
        sel.select(0)
    with pytest.raises(ValueError, match="invalid events"):
        sel.modify(sock, 0)
