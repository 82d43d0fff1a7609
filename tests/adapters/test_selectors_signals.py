"""The selectors ``Loop``: signal handlers and callbacks from other threads."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from bufkit import BufferPool
from bufkit.adapters.selectors import Loop
from bufkit.testing import FakeSelector


@pytest.fixture
def loop() -> Iterator[Loop]:
    """A loop closed after the test (which gives signals their handlers back)."""
    made = Loop()
    yield made
    made.close()


def _ours(signum: int, frame: object) -> None:
    """A Python-level handler the loop must put back."""


def test_signal_runs_the_callback_in_the_loop_not_in_the_handler(loop: Loop) -> None:
    """A signal wakes a blocked loop; its callback runs as a loop callback."""
    seen: list[tuple[str, bool]] = []
    loop.add_signal_handler(
        signal.SIGUSR1, lambda tag: seen.append((tag, loop._running)), "usr1"
    )
    os.kill(os.getpid(), signal.SIGUSR1)
    assert seen == []  # the handler itself did nothing
    loop.run_until(lambda: bool(seen), timeout=5)
    assert seen == [("usr1", True)]


def test_a_signal_during_a_lend_lets_the_callback_use_the_pool() -> None:
    """The callback may take the pool's lock: it runs after the lend finishes."""
    pool = BufferPool(size_classes=[16], slab_size=64)
    loop = Loop(pool=pool)
    seen: list[int] = []

    def lend() -> None:
        with pool.acquire(1) as buf:
            seen.append(len(buf.view))

    try:
        loop.add_signal_handler(signal.SIGUSR1, lend)
        with pool._lock:  # as if the signal interrupted a lend
            signal.raise_signal(signal.SIGUSR1)
            assert seen == []  # nothing ran inside the handler
        loop.run_until(lambda: bool(seen), timeout=5)
        assert seen == [16]
        assert pool.stats().buffers_in_use == 0
    finally:
        loop.close()


def test_remove_puts_back_the_earlier_handler(loop: Loop) -> None:
    """Removing (or closing the loop) restores what was there before."""
    previous = signal.signal(signal.SIGUSR2, _ours)
    try:
        loop.add_signal_handler(signal.SIGUSR2, lambda: None)
        assert signal.getsignal(signal.SIGUSR2) is not _ours
        loop.add_signal_handler(signal.SIGUSR2, lambda: None)  # replaces
        assert loop.remove_signal_handler(signal.SIGUSR2) is True
        assert signal.getsignal(signal.SIGUSR2) is _ours
        assert loop.remove_signal_handler(signal.SIGUSR2) is False
        loop.add_signal_handler(signal.SIGUSR2, lambda: None)
        loop.close()
        assert signal.getsignal(signal.SIGUSR2) is _ours
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_the_wakeup_fd_is_given_back(loop: Loop) -> None:
    """The process's wakeup fd is the earlier one once the last handler goes."""
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    ours = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(ours)
    assert ours != before
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.set_wakeup_fd(ours) == ours  # still ours: SIGUSR2 is left
    loop.remove_signal_handler(signal.SIGUSR2)
    assert signal.set_wakeup_fd(before) == before


@pytest.mark.parametrize(
    ("sig", "error", "words"),
    [
        ("SIGUSR1", TypeError, "signal number, got str"),
        (True, TypeError, "got bool"),
        (0, ValueError, "sig 0 is not a valid signal"),
        (10_000, ValueError, "not a valid signal"),
        (int(signal.SIGKILL), RuntimeError, "cannot be caught"),
    ],
)
def test_bad_signals_are_refused_and_change_nothing(
    loop: Loop, sig: object, error: type[Exception], words: str
) -> None:
    """A bad signal is refused by name; no handler or wakeup fd stays behind."""
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    with pytest.raises(error, match=words) as caught:
        loop.add_signal_handler(sig, lambda: None)  # type: ignore[arg-type]
    assert signal.set_wakeup_fd(before) == before
    if error is RuntimeError:  # the OSError that said so is its cause
        assert isinstance(caught.value.__cause__, OSError)
    if error is RuntimeError:  # a valid number: remove finds no handler
        assert loop.remove_signal_handler(sig) is False  # type: ignore[arg-type]


def test_signal_handlers_need_the_main_thread(loop: Loop) -> None:
    """Adding or removing from another thread raises RuntimeError."""
    errors: list[BaseException] = []

    def attempt() -> None:
        for call in (
            lambda: loop.add_signal_handler(signal.SIGUSR1, print),
            lambda: loop.remove_signal_handler(signal.SIGUSR1),
        ):
            try:
                call()
            except RuntimeError as exc:
                errors.append(exc)

    loop.add_signal_handler(signal.SIGUSR1, lambda: None)  # so remove has work
    worker = threading.Thread(target=attempt)
    worker.start()
    worker.join(10)
    assert [str(e) for e in errors] == [
        "signal handlers can only be added in the main thread",
        "signal handlers can only be removed in the main thread",
    ]
    assert loop.remove_signal_handler(signal.SIGUSR1) is True


def test_closed_loop_refuses_signal_handlers_and_threadsafe_calls() -> None:
    """A closed loop takes no new signal handler or thread-safe callback."""
    loop = Loop()
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon_threadsafe(lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_call_soon_threadsafe_wakes_a_blocked_loop(loop: Loop) -> None:
    """Callbacks queued by other threads run in the loop's thread, in order."""
    seen: list[tuple[int, int]] = []
    main = threading.get_ident()

    def produce() -> None:
        for n in range(100):
            loop.call_soon_threadsafe(
                lambda n=n: seen.append((n, threading.get_ident()))
            )

    worker = threading.Thread(target=produce)
    worker.start()
    assert loop.run_until(lambda: len(seen) == 100, timeout=10)
    worker.join(10)
    assert [n for n, _ in seen] == list(range(100))
    assert {ident for _, ident in seen} == {main}


def test_cancelled_threadsafe_callback_does_not_run(loop: Loop) -> None:
    """A handle from call_soon_threadsafe can be cancelled before it runs."""
    seen: list[str] = []
    loop.call_soon_threadsafe(seen.append, "cancelled").cancel()
    loop.call_soon_threadsafe(seen.append, "runs")
    assert loop.run_until(lambda: bool(seen), timeout=5)
    loop.run_once(0)
    assert seen == ["runs"]


def test_call_soon_threadsafe_runs_on_a_fake_selector() -> None:
    """A fake selector never sees the socket pair; the callback still runs."""
    loop = Loop(selector=FakeSelector())
    seen: list[int] = []
    try:
        loop.call_soon_threadsafe(seen.append, 1)
        loop.run_once(0)
        assert seen == [1]
    finally:
        loop.close()
