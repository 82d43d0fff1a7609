"""The soak suite's building blocks, against tiny known-good and known-bad servers."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bufkit.soak import _procfs, _scenarios
from bufkit.soak._client import exchange, expected_reply, payload
from bufkit.soak._scenarios import Profile, Result, Soak, Target, check_after
from bufkit.soak._server import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

_TINY = Path(__file__).with_name("_soak_servers.py")

TINY_PROFILE = Profile(
    name="tiny",
    integrity_conns=4,
    integrity_bytes=32 * 1024,
    slow_conns=4,
    slow_bytes=4 * 1024 * 1024,
    rst_conns=40,
    churn_seconds=0.3,
    flood_conns=60,
    flood_nofile=32,
    garbage_conns=4,
    signal_conns=4,
    rounds=1,
    exchange_timeout=3.0,
)


def _tiny(mode: str) -> Target:
    def argv(nofile: int | None) -> list[str]:
        extra = [] if nofile is None else ["--nofile", str(nofile)]
        return [sys.executable, str(_TINY), mode, *extra]

    return Target(f"tiny-{mode}", "echo", argv)


def _soak(mode: str) -> Soak:
    return Soak(_tiny(mode), TINY_PROFILE, random.Random(mode), say=lambda _: None)


@pytest.fixture
def run_scenario() -> Iterator[Callable[[str, str], Result]]:
    """Run one shared-server scenario of a tiny server, then the leak checks."""
    servers: list[ServerProcess] = []

    def run(mode: str, scenario: str) -> Result:
        soak = _soak(mode)
        server = soak.start()
        servers.append(server)
        before = _procfs.sample(server.pid)
        result = Result(soak.target.name, scenario)
        getattr(soak, scenario.replace("-", "_"))(server, result)
        check_after(server, before, 0, result)
        return result

    yield run
    for server in servers:
        server.close()


@pytest.mark.parametrize("kind", ["echo", "line", "fanout", "discard"])
def test_expected_replies_follow_the_documented_protocols(kind: str) -> None:
    """Each kind's expected reply: echo and line echo it, fanout 3200 per byte."""
    request = payload(kind, 300, random.Random(1))
    reply = expected_reply(kind, request)
    if kind == "line":
        assert request.endswith(b"\n")
    sizes = {"echo": len(request), "line": len(request), "discard": 0}
    assert len(reply) == sizes.get(kind, len(request) * 3200)


@pytest.mark.parametrize("scenario", ["integrity", "churn", "rst-storm", "garbage"])
def test_shared_scenarios_pass_on_a_good_server(
    run_scenario: Callable[[str, str], Result], scenario: str
) -> None:
    """A server that behaves passes every scenario and every leak check."""
    result = run_scenario("good", scenario)
    assert result.ok, result.line()


def test_integrity_fails_on_a_server_that_corrupts_a_byte(
    run_scenario: Callable[[str, str], Result],
) -> None:
    """One flipped bit per reply is a loss the integrity check reports."""
    result = run_scenario("corrupt", "integrity")
    assert not result.ok
    assert "wrong bytes" in " ".join(result.problems)


def test_slow_readers_pass_when_reading_stops_and_fail_when_it_does_not(
    run_scenario: Callable[[str, str], Result],
) -> None:
    """A server that keeps reading for a peer that never reads queues without bound."""
    assert run_scenario("good", "slow-readers").ok
    hoard = run_scenario("hoard", "slow-readers")
    assert any("not read" in p for p in hoard.problems), hoard.line()


def test_a_server_that_never_closes_is_a_leak(
    run_scenario: Callable[[str, str], Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections and descriptors kept after the peers left are reported."""
    monkeypatch.setattr(_scenarios, "SETTLE_TIMEOUT", 1.0)
    result = run_scenario("leak", "integrity")
    assert any("still open" in p for p in result.problems), result.line()
    assert any("descriptors" in p for p in result.problems), result.line()


def test_a_traceback_on_stderr_is_reported(
    run_scenario: Callable[[str, str], Result],
) -> None:
    """Garbage that makes the server print a traceback fails the scenario."""
    result = run_scenario("crash", "garbage")
    assert any("traceback" in p for p in result.problems), result.line()


def test_a_server_that_dies_on_a_reset_is_reported(
    run_scenario: Callable[[str, str], Result],
) -> None:
    """The reset storm notices a server that exits."""
    result = run_scenario("fragile", "rst-storm")
    assert not result.ok


def test_idle_cpu_passes_when_asleep_and_fails_when_spinning() -> None:
    """A loop that polls without sleeping uses a core: the idle check says so."""
    for mode, ok in (("good", True), ("spin", False)):
        soak = _soak(mode)
        with soak.start() as server:
            result = soak.idle(server, 0)
        assert result.ok is ok, result.line()


def test_fd_flood_passes_with_back_off_and_fails_on_an_accept_spin() -> None:
    """Out of descriptors, a server must back off (no spin) and serve again after."""
    assert _soak("good").fd_flood().ok
    spin = _soak("emfile-spin").fd_flood()
    assert any("CPU" in p for p in spin.problems), spin.line()


def test_stop_under_load_passes_and_fails_on_a_server_that_ignores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM ends a good server with status 0; one that ignores it is reported."""
    import signal

    assert _soak("good").stop_under_load(signal.SIGTERM).ok
    monkeypatch.setattr(_scenarios, "STOP_TIMEOUT", 1.0)
    stubborn = _soak("stubborn").stop_under_load(signal.SIGTERM)
    assert any("still running" in p for p in stubborn.problems), stubborn.line()


def test_exchange_checks_every_byte_of_a_real_echo() -> None:
    """The client verifies a real bufkit echo server byte for byte."""
    soak = Soak(
        Target(
            "serve-echo",
            "echo",
            lambda _: [
                sys.executable,
                "-m",
                "bufkit",
                "serve",
                "echo",
                "--port",
                "0",
                "-q",
            ],
        ),
        TINY_PROFILE,
        random.Random(2),
    )
    with soak.start() as server:
        rng = random.Random(3)
        requests = [(r, r) for r in (payload("echo", 100_000, rng), b"", b"x")]
        outcomes = exchange(server.port, requests, rng=rng, chunk_max=7000)
    assert [o.problem for o in outcomes] == [None, None, None]
    assert [o.verified for o in outcomes] == [100_000, 0, 1]


def test_a_very_short_soak_end_to_end() -> None:
    """``python -m bufkit.soak --profile smoke`` runs every scenario and passes."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bufkit.soak",
            "--server",
            "serve-line-echo",
            "--profile",
            "smoke",
            "--seed",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failed" in out.stdout
    for scenario in (
        "integrity",
        "slow-readers",
        "rst-storm",
        "churn",
        "garbage",
        "idle",
        "fd-flood",
        "sigterm-under-load",
        "sigint-under-load",
    ):
        assert f"PASS serve-line-echo {scenario}:" in out.stdout


def test_a_known_problem_is_reported_but_does_not_fail() -> None:
    """A problem listed as known reads KNOWN with its reason; any other is FAIL."""
    known = Result("t", "fd-flood", problems=["spun"], known="a stdlib bug")
    other = Result("t", "churn", problems=["spun"])
    assert known.ok
    assert known.line().startswith("KNOWN t fd-flood:")
    assert "known: a stdlib bug" in known.line()
    assert not other.ok
    assert other.line().startswith("FAIL t churn:")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")
def test_a_very_short_tls_soak_end_to_end() -> None:
    """The TLS target passes integrity, slow readers, plain text and a stalled hello."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bufkit.soak",
            "--server",
            "serve-echo-tls",
            "--profile",
            "smoke",
            "--seed",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failed" in out.stdout
    for scenario in (
        "tls-integrity",
        "tls-slow-readers",
        "tls-plain-text",
        "tls-stalled-handshake",
        "idle",
        "sigterm-under-load",
    ):
        assert f"PASS serve-echo-tls {scenario}:" in out.stdout
    assert "closed=4 " in out.stdout  # every stalled handshake was dropped
