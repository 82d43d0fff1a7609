"""The pytest plugin of :mod:`bufkit.testing` (entry point ``pytest11: bufkit``).

Theory of operation: fixtures are *factories* (``make_fake_socket()`` ...),
so they are safe inside ``@given`` tests, where a function-scoped fixture is
created once and shared by every example. Each factory remembers the fakes it
made on the test item; when the test fails, the report gains a section with
the transcript of the last ones, like ``strace`` output for the fakes. The
``--bufkit-seed`` option fixes the seed of the seeded-random mode (the
``bufkit_random`` fixture) and of :func:`bufkit.testing.check_sender` and
:func:`bufkit.testing.check_receiver`. The module imports no Hypothesis.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from typing import Any

import pytest

from bufkit.testing import _config
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._hostile_asyncio import HostileTransport
from bufkit.testing._hybrid import HybridSocket, hybrid_socketpair
from bufkit.testing._pair import fake_socketpair
from bufkit.testing._selector import FakeSelector

__all__ = [
    "bufkit_random",
    "bufkit_seed",
    "make_fake_selector",
    "make_fake_socket",
    "make_fake_socketpair",
    "make_hostile_transport",
    "make_hostile_twisted_transport",
    "make_hybrid_socketpair",
]

_MADE = pytest.StashKey[list[FakeSocket | HybridSocket]]()
_OPENED = pytest.StashKey[list[HybridSocket]]()
_current: pytest.Item | None = None
_SHOWN = 4  # transcripts shown for a failed test


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--bufkit-seed``."""
    group = parser.getgroup("bufkit", "bufkit.testing fake sockets")
    group.addoption(
        "--bufkit-seed",
        type=int,
        default=None,
        help="seed for bufkit's seeded-random schedules and conformance checks",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Apply ``--bufkit-seed`` to the conformance checks."""
    _config.seed = config.getoption("--bufkit-seed", default=None)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Forget the seed."""
    _config.seed = None


def pytest_report_header(config: pytest.Config) -> str | None:
    """Show the fixed seed, if any."""
    seed = config.getoption("--bufkit-seed", default=None)
    return None if seed is None else f"bufkit: --bufkit-seed={seed}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the transcripts of the fakes a failed test made."""
    report = yield
    if not report.failed:
        return report
    made = item.stash.get(_MADE, [])
    if made:
        text = "\n\n".join(f"{sock!r}\n{sock.transcript()}" for sock in made[-_SHOWN:])
        report.sections.append(("bufkit fake socket calls", text))
    for name, value in getattr(item, "user_properties", ()):
        if name == "bufkit_seed":
            report.sections.append(("bufkit seed", f"rerun with --bufkit-seed={value}"))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Know which test the factories work for; close its hybrids after it."""
    global _current
    _current = item
    try:
        return (yield)
    finally:
        _current = None
        for sock in item.stash.get(_OPENED, []):
            sock.close()


def _made(sock: FakeSocket | HybridSocket) -> None:
    if _current is not None:
        made = _current.stash.setdefault(_MADE, [])
        made.append(sock)
        del made[:-_SHOWN]
        if isinstance(sock, HybridSocket):
            _current.stash.setdefault(_OPENED, []).append(sock)


# The factories are session-scoped: Hypothesis refuses function-scoped
# fixtures in @given tests, and a factory has no per-test state to reset.


@pytest.fixture(scope="session")
def make_fake_socket() -> Callable[..., FakeSocket]:
    """A factory of :class:`~bufkit.testing.FakeSocket` (same arguments)."""

    def make(*args: Any, **kwargs: Any) -> FakeSocket:
        sock = FakeSocket(*args, **kwargs)
        _made(sock)
        return sock

    return make


@pytest.fixture(scope="session")
def make_fake_socketpair() -> Callable[..., tuple[FakeSocket, FakeSocket]]:
    """A factory of :func:`~bufkit.testing.fake_socketpair` (same arguments)."""

    def make(*args: Any, **kwargs: Any) -> tuple[FakeSocket, FakeSocket]:
        pair = fake_socketpair(*args, **kwargs)
        for sock in pair:
            _made(sock)
        return pair

    return make


@pytest.fixture(scope="session")
def make_hybrid_socketpair() -> Callable[..., tuple[HybridSocket, HybridSocket]]:
    """A factory of :func:`~bufkit.testing.hybrid_socketpair`.

    The sockets are closed when the test that made them ends.
    """

    def make(*args: Any, **kwargs: Any) -> tuple[HybridSocket, HybridSocket]:
        pair = hybrid_socketpair(*args, **kwargs)
        for sock in pair:
            _made(sock)
        return pair

    return make


@pytest.fixture(scope="session")
def make_fake_selector() -> Callable[..., FakeSelector]:
    """A factory of :class:`~bufkit.testing.FakeSelector` (same arguments)."""
    return FakeSelector


@pytest.fixture(scope="session")
def make_hostile_transport() -> Callable[..., HostileTransport]:
    """A factory of :class:`~bufkit.testing.HostileTransport` (same arguments)."""
    return HostileTransport


@pytest.fixture(scope="session")
def make_hostile_twisted_transport() -> Callable[..., Any]:
    """A factory of :class:`~bufkit.testing.twisted.HostileTwistedTransport`."""
    from bufkit.testing.twisted import HostileTwistedTransport

    return HostileTwistedTransport


@pytest.fixture
def bufkit_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this test: ``--bufkit-seed``, or a fresh one (shown on failure)."""
    seed = request.config.getoption("--bufkit-seed", default=None)
    if seed is None:
        seed = random.randrange(2**32)
    request.node.user_properties.append(("bufkit_seed", seed))
    return int(seed)


@pytest.fixture
def bufkit_random(bufkit_seed: int) -> random.Random:
    """A :class:`random.Random` seeded with :func:`bufkit_seed`."""
    return random.Random(bufkit_seed)
