"""The pytest plugin: factory fixtures, the seed option, transcripts on failure."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bufkit.testing import Accept, FakeSelector, FakeSocket, HybridSocket

pytest_plugins = ["pytester"]


@given(st.integers(1, 5))
def test_factories_are_fresh_in_every_example(
    make_fake_socket: Callable[..., FakeSocket], n: int
) -> None:
    """A factory fixture gives a new fake in each Hypothesis example."""
    sock = make_fake_socket(send=[Accept(n)])
    assert sock.send(b"x" * 10) == n
    assert sock.wire == b"x" * n


def test_pair_selector_and_hybrid_factories(
    make_fake_socketpair: Callable[..., tuple[FakeSocket, FakeSocket]],
    make_fake_selector: Callable[..., FakeSelector],
    make_hybrid_socketpair: Callable[..., tuple[HybridSocket, HybridSocket]],
) -> None:
    """Every factory builds what its namesake builds; hybrids are closed after."""
    a, b = make_fake_socketpair()
    a.send(b"hi")
    assert b.recv(5) == b"hi"
    assert isinstance(make_fake_selector(busy_limit=3), FakeSelector)
    c, d = make_hybrid_socketpair()
    c.send(b"x")
    assert d.real.recv(1) == b"x"


def test_seeded_random(bufkit_seed: int, bufkit_random: random.Random) -> None:
    """``bufkit_random`` is seeded with ``bufkit_seed``."""
    assert bufkit_random.random() == random.Random(bufkit_seed).random()


def test_failure_shows_the_transcript_and_seed(pytester: pytest.Pytester) -> None:
    """A failing test's report shows the fakes' calls and the seed."""
    pytester.makepyfile(
        """
        from bufkit.testing import Accept

        def test_fails(make_fake_socket, bufkit_seed):
            sock = make_fake_socket(send=[Accept(1)])
            sock.send(b"abc")
            assert sock.wire == b"abc"
        """
    )
    result = pytester.runpytest("--bufkit-seed=1234", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*bufkit: --bufkit-seed=1234*",
            "*bufkit fake socket calls*",
            "*send(3) = 1    # Accept(1)*",
            "*rerun with --bufkit-seed=1234*",
        ]
    )


def test_plugin_imports_without_hypothesis() -> None:
    """``bufkit.testing`` and the plugin do not import Hypothesis."""
    code = (
        "import sys, bufkit.testing, bufkit.testing._plugin; "
        "print('hypothesis' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_fault_coverage_appears_in_hypothesis_statistics(
    pytester: pytest.Pytester,
) -> None:
    """Faults a fake showed in a @given test are listed as Hypothesis events."""
    pytester.makepyfile(
        """
        from hypothesis import given, settings, strategies as st
        from bufkit.testing import Accept, FakeSocket, WouldBlock

        @settings(max_examples=5, database=None)
        @given(st.integers(1, 3))
        def test_sends(n):
            sock = FakeSocket(send=[Accept(n), WouldBlock()])
            sock.sendmsg([b"abcd", b"efgh"])
            try:
                sock.send(b"x")
            except BlockingIOError:
                pass
        """
    )
    result = pytester.runpytest(
        "--hypothesis-show-statistics", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*fake socket: EAGAIN on send*",
            "*fake socket: cut inside a gather buffer*",
            "*fake socket: partial send*",
        ]
    )
