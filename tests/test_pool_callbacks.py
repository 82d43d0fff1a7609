"""BufferPool release callbacks: one-shot wake-ups for readers refused a buffer."""

from __future__ import annotations

import gc
import logging
import threading
import weakref

import pytest

from bufkit import BufferPool, PoolExhausted


def _full_pool() -> tuple[BufferPool, object]:
    """A pool of one 1 KiB chunk, lent: the next acquire is refused."""
    pool = BufferPool(size_classes=[1024], slab_size=1024, max_bytes=1024)
    return pool, pool.acquire(1)


def test_callback_runs_once_after_the_next_release() -> None:
    """A callback waits for a release, runs once, and is then forgotten."""
    pool = BufferPool()
    calls: list[str] = []
    buf = pool.acquire(1)
    pool.add_release_callback(lambda: calls.append("room"))
    assert calls == []
    other = pool.acquire(1)
    assert calls == []  # acquires do not run it
    buf.release()
    assert calls == ["room"]
    other.release()
    assert calls == ["room"]  # one-shot


def test_callback_can_acquire_the_chunk_just_given_back() -> None:
    """The callback runs after the chunk is back: a full pool lends it again."""
    pool = BufferPool(size_classes=[1024], slab_size=1024, max_bytes=1024)
    held = pool.acquire(1)
    with pytest.raises(PoolExhausted):
        pool.acquire(1)
    got = []
    pool.add_release_callback(lambda: got.append(pool.acquire(1)))
    held.release()
    assert len(got) == 1
    assert not got[0].released
    got[0].release()
    assert pool.stats().buffers_in_use == 0


def test_callbacks_run_in_order_and_once_each() -> None:
    """Callbacks run in the order added; one added twice runs once."""
    pool = BufferPool()
    calls: list[int] = []

    def first() -> None:
        calls.append(1)

    def second() -> None:
        calls.append(2)

    pool.add_release_callback(first)
    pool.add_release_callback(second)
    pool.add_release_callback(first)
    pool.acquire(1).release()
    assert calls == [1, 2]


def test_remove_forgets_a_callback_and_ignores_strangers() -> None:
    """A removed callback does not run; removing an unknown one is no error."""
    pool = BufferPool()
    calls: list[str] = []

    def wake() -> None:
        calls.append("woken")

    pool.add_release_callback(wake)
    pool.remove_release_callback(wake)
    pool.remove_release_callback(wake)
    pool.remove_release_callback(lambda: None)
    pool.acquire(1).release()
    assert calls == []


class _Reader:
    """Something that waits for room the way a connection does."""

    def __init__(self) -> None:
        self.woken = 0

    def resume(self) -> None:
        self.woken += 1


def test_removed_bound_method_does_not_pin_its_object() -> None:
    """An object that removes its bound method is freed by reference counting."""
    pool, held = _full_pool()
    reader = _Reader()
    pool.add_release_callback(reader.resume)
    gone = weakref.ref(reader)
    pool.remove_release_callback(reader.resume)  # a new but equal bound method
    gc.disable()
    try:
        del reader
        assert gone() is None
    finally:
        gc.enable()
    held.release()  # type: ignore[attr-defined]


def test_registered_bound_method_keeps_its_object_until_it_runs() -> None:
    """While registered, the callback is held; after it runs the pool lets go."""
    pool, held = _full_pool()
    reader = _Reader()
    pool.add_release_callback(reader.resume)
    gone = weakref.ref(reader)
    del reader
    assert gone() is not None
    held.release()  # type: ignore[attr-defined]
    assert gone() is None


def test_raising_callback_is_logged_once_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A callback that raises is logged once; the release and the rest go on."""
    pool = BufferPool()
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("callback bug")

    pool.add_release_callback(broken)
    pool.add_release_callback(lambda: calls.append("after"))
    buf = pool.acquire(1)
    with caplog.at_level(logging.ERROR, logger="bufkit.pool"):
        buf.release()
    assert buf.released
    assert calls == ["after"]
    records = [r for r in caplog.records if r.name == "bufkit.pool"]
    assert len(records) == 1
    assert "release callback" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert pool.stats().buffers_in_use == 0
    pool.acquire(1).release()  # forgotten: not logged again
    assert len([r for r in caplog.records if r.name == "bufkit.pool"]) == 1


def test_callbacks_run_outside_the_lock() -> None:
    """Another thread can use the pool while a callback runs."""
    pool = BufferPool()
    finished: list[bool] = []

    def use_from_another_thread() -> None:
        worker = threading.Thread(
            target=lambda: finished.append(pool.acquire(1).released is False)
        )
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "the pool's lock was held during the callback"

    pool.add_release_callback(use_from_another_thread)
    pool.acquire(1).release()
    assert finished == [True]


def test_callback_added_during_callbacks_waits_for_the_next_release() -> None:
    """A callback that registers again runs on the following release, not now."""
    pool = BufferPool()
    calls: list[int] = []

    def again() -> None:
        calls.append(len(calls))
        pool.add_release_callback(again)

    pool.add_release_callback(again)
    pool.acquire(1).release()
    assert calls == [0]
    pool.acquire(1).release()
    assert calls == [0, 1]
    pool.remove_release_callback(again)


@pytest.mark.parametrize(
    ("pool", "size"),
    [(BufferPool(poison=True), 1), (BufferPool(fallback="heap"), 100000)],
    ids=["lease", "heap"],
)
def test_heap_and_debug_releases_run_callbacks(pool: BufferPool, size: int) -> None:
    """Leases of debug pools and heap buffers wake callbacks when given back."""
    calls: list[str] = []
    buf = pool.acquire(size)
    pool.add_release_callback(lambda: calls.append("room"))
    buf.release()
    assert calls == ["room"]


def test_non_callable_is_refused() -> None:
    """add_release_callback() names a non-callable and registers nothing."""
    pool = BufferPool()
    with pytest.raises(TypeError, match="callback must be callable, not 5"):
        pool.add_release_callback(5)  # type: ignore[arg-type]
    pool.acquire(1).release()  # nothing registered: nothing raised
