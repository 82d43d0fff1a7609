"""Fresh reactors for tests (never the global one), running one, a collector."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from twisted.internet import protocol
from twisted.python.failure import Failure

T = TypeVar("T")

REACTORS = ("epoll", "asyncio")


@contextmanager
def fresh_reactor(kind: str) -> Iterator[Any]:
    """A new reactor of ``kind`` that is not the global one; closed afterwards."""
    if kind == "epoll":
        from twisted.internet.epollreactor import EPollReactor

        reactor: Any = EPollReactor()
        loop = None
    else:
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor

        loop = asyncio.new_event_loop()
        reactor = AsyncioSelectorReactor(eventloop=loop)
    try:
        yield reactor
    finally:
        waker = getattr(reactor, "waker", None)
        if waker is not None:
            reactor.removeReader(waker)
            waker.connectionLost(None)
        poller = getattr(reactor, "_poller", None)
        if poller is not None:
            poller.close()
        if loop is not None:
            loop.close()


def run(
    reactor: Any, main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 20.0
) -> T:
    """Run ``reactor`` once, until the coroutine ``main()`` ends; return its result.

    A reactor cannot run twice, so each test drives all of its steps from one
    coroutine. The reactor is stopped after ``timeout`` seconds at the latest.
    """
    from twisted.internet import defer
    from twisted.python.failure import Failure

    outcome: list[Any] = []

    def done(result: Any) -> None:
        outcome.append(result)
        if reactor.running:
            reactor.stop()

    def start() -> None:
        defer.ensureDeferred(cast(Any, main())).addBoth(done)

    reactor.callWhenRunning(start)
    timer = reactor.callLater(timeout, reactor.stop)
    reactor.run(installSignalHandlers=False)
    if timer.active():
        timer.cancel()
    if not outcome:
        raise TimeoutError(f"the test did not finish within {timeout} s")
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return cast("T", result)


def sleep(reactor: Any, seconds: float) -> Any:
    """A Deferred that fires after ``seconds`` on ``reactor``."""
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


class Collect(protocol.Protocol):
    """Collects what it receives; records how it ended."""

    transport: Any

    def __init__(self) -> None:
        self.data = b""
        self.reasons: list[Failure] = []

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.reasons.append(reason)
