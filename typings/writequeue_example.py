"""WriteQueue as a user types it: checked by ``mypy --strict``, never run."""

from __future__ import annotations

import array
import socket
import ssl
from typing import assert_type

import bufkit
from bufkit.testing import FakeSocket


def done(exc: BaseException | None) -> None:
    """A completion callback."""


def no_arguments() -> None:
    """Not a completion callback: it takes no exception."""


def use(sock: socket.socket, tls: ssl.SSLSocket, pool: bufkit.BufferPool) -> None:
    """Every public method, with the types it returns."""
    queue = bufkit.WriteQueue(
        high_water=65536,
        low_water=16384,
        on_pause=lambda: None,
        on_resume=lambda: None,
        write_spin=16,
        name="conn",
    )
    queue.write(b"bytes", done)
    queue.write(bytearray(b"copied"))
    queue.write(memoryview(b"view"), copy=False)
    queue.write(array.array("i", [1, 2, 3]))
    queue.write(pool.acquire(2048), done, nbytes=100)
    queue.writelines([b"a", bytearray(b"b"), pool.acquire(10)], done)
    assert_type(queue.buffers(), list[memoryview])
    assert_type(queue.buffers(max_count=16), list[memoryview])
    queue.advance(3)
    assert_type(queue.flush(sock), bool)
    assert_type(queue.flush(tls), bool)
    assert_type(queue.flush(FakeSocket()), bool)
    assert_type(queue.pending, int)
    assert_type(queue.paused, bool)
    assert_type(queue.state, bufkit.QueueState)
    assert_type(queue.state is bufkit.QueueState.CLOSING, bool)
    assert_type(queue.high_water, int)
    assert_type(queue.low_water, int)
    assert_type(queue.held_bytes, int)
    len(queue)  # type: ignore[arg-type]
    assert_type(bool(queue), bool)
    queue.close()
    queue.fail(ConnectionResetError())


def rejected(queue: bufkit.WriteQueue) -> None:
    """Calls the type checker refuses."""
    queue.write("str")  # type: ignore[arg-type]
    queue.write(b"x", no_arguments)  # type: ignore[arg-type]
    queue.writelines(["a", "b"])  # type: ignore[list-item]
    queue.flush(object())  # type: ignore[arg-type]
    queue.advance(1.5)  # type: ignore[arg-type]
    queue.buffers(max_count="2")  # type: ignore[arg-type]
    queue.write(b"x", nbytes=1.0)  # type: ignore[arg-type]
    queue.fail("reason")  # type: ignore[arg-type]
    queue.high_water = 1  # type: ignore[misc]
    bufkit.WriteQueue(on_pause=done)  # type: ignore[arg-type]
    queue.pending = 3  # type: ignore[misc]
    bufkit.WriteQueue(64)  # type: ignore[call-arg]
    bufkit.WriteQueue(write_spin=1.5)  # type: ignore[arg-type]
