"""``bufkit bench``: tiny runs of every scenario, output, and cleanup."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import psutil
import pytest
from rich.console import Console

from bufkit._cli import main
from bufkit.bench import _contenders
from bufkit.bench._config import BenchConfig, echo_window
from bufkit.bench._markdown import to_markdown
from bufkit.bench._plot import plot
from bufkit.bench._report import NOT_MEASURED, grid, render, targets_grid
from bufkit.bench._runner import run
from bufkit.bench._scenarios import parse_strace, saturation
from bufkit.bench._targets import evaluate

pytestmark = pytest.mark.timeout(60)

SMOKE_CONTENDERS = ("asyncio", "bufkit-selectors")


def _quiet(*args: object) -> None:
    """Ignore progress."""


def _gone(pid: int) -> bool:
    """Whether no process ``pid`` runs (a zombie counts as gone)."""
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return True
    return bool(status == psutil.STATUS_ZOMBIE)


def _refused(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _bench_children() -> list[psutil.Process]:
    """This process's children that belong to the bench."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("bufkit.bench" in part for part in child.cmdline()):
                found.append(child)
    return found


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One smoke run of every scenario (2 connections, fractions of a second)."""
    config = attrs.evolve(BenchConfig.smoke(), contenders=SMOKE_CONTENDERS)
    return run(config, _quiet)


def test_every_scenario_has_rows(report: dict[str, Any]) -> None:
    """A smoke run yields figures for each scenario from plain asyncio."""
    scenarios = report["scenarios"]
    assert set(scenarios) == {"idle", "echo", "fanout", "micro"}
    for name in ("idle", "echo", "fanout"):
        rows = [r for r in scenarios[name] if r["contender"] == "asyncio"]
        assert rows, name
        assert all("error" not in r for r in rows), rows
    idle = scenarios["idle"][0]
    assert idle["connections"] == 2
    echo = next(r for r in scenarios["echo"] if r["contender"] == "asyncio")
    assert echo["mb_per_s"] > 0
    assert echo["saturated"] in ("server", "client", "both", "neither")
    fanout = next(r for r in scenarios["fanout"] if r["contender"] == "asyncio")
    assert fanout["responses_per_s"] > 0
    assert "syscall_note" in fanout


def test_report_is_json(report: dict[str, Any]) -> None:
    """The report round-trips through JSON and lists every contender asked for."""
    again = json.loads(json.dumps(report))
    assert [c["name"] for c in again["contenders"]] == list(SMOKE_CONTENDERS)
    assert again["environment"]["python"]
    for contender in again["contenders"]:
        assert contender["status"] in ("ran", "skipped", "failed")
        if contender["status"] != "ran":
            assert contender["reason"]


def test_servers_and_ports_are_gone(report: dict[str, Any]) -> None:
    """After a run, every server process has ended and every port is closed."""
    ran = [c for c in report["contenders"] if c["status"] == "ran"]
    assert ran
    for contender in ran:
        assert _gone(contender["pid"])
        assert all(_refused(port) for port in contender["ports"])
    assert _bench_children() == []


def test_render_and_targets(report: dict[str, Any]) -> None:
    """The tables print, with ratios to asyncio, and targets evaluate."""
    report = report | {"targets": evaluate(report["scenarios"])}
    out = io.StringIO()
    render(report, Console(file=out, width=200))
    text = out.getvalue()
    assert "Echo throughput" in text
    assert "1.00x" in text
    assert "ratios" in text.lower()


def test_markdown(report: dict[str, Any]) -> None:
    """``--markdown`` gives one pipe table per scenario, with the command."""
    text = to_markdown(report, "bufkit bench --smoke")
    assert text.startswith("Command: `bufkit bench --smoke`")
    assert text.count("| contender |") == 3
    assert "| benchmark |" in text


def test_plot(report: dict[str, Any], tmp_path: Path) -> None:
    """``--plot`` writes a PNG."""
    path = tmp_path / "bench.png"
    plot(report, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``bufkit bench --smoke --only micro --json FILE`` writes parseable JSON."""
    path = tmp_path / "bench.json"
    assert main(["bench", "--smoke", "--only", "micro", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert list(data["scenarios"]) == ["micro"]
    assert {c["status"] for c in data["contenders"]} <= {"not run", "skipped"}
    assert "figures written" in capsys.readouterr().out


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    """``bufkit bench --list`` names every contender and why one would skip."""
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for contender in _contenders.CONTENDERS:
        assert contender.name in out


def test_unknown_contender(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown contender name is rejected before anything starts."""
    assert main(["bench", "--contender", "nope"]) == 2
    assert "unknown contender nope" in capsys.readouterr().err


def test_missing_dependency_is_skipped_with_reason() -> None:
    """A contender whose module is missing is skipped with a one-line reason."""
    ghost = _contenders.Contender("ghost", "ghost", "bufkit", ("bufkit_no_such_mod",))
    reason = _contenders.skip_reason(ghost)
    assert reason is not None
    assert "bufkit_no_such_mod" in reason
    assert "\n" not in reason
    assert _contenders.skip_reason(_contenders.by_name("asyncio")) is None


def test_server_reports_skip() -> None:
    """A server process for a contender it cannot start says SKIP and exits 3."""
    out = subprocess.run(
        [sys.executable, "-m", "bufkit.bench._server", "bufkit-no-such"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 3
    assert out.stdout.startswith("SKIP ")


def test_crashed_contender_is_reported_and_cleaned_up() -> None:
    """A server killed mid-run gets error rows; the others finish; none is left."""
    killed: list[int] = []

    def progress(scenario: str, description: str, done: int, total: int) -> None:
        if scenario == "echo" and not killed:
            for child in _bench_children():
                if "asyncio-buffered" in child.cmdline():
                    child.kill()
                    child.wait(5)
                    killed.append(child.pid)

    config = attrs.evolve(
        BenchConfig.smoke(),
        contenders=("asyncio", "asyncio-buffered"),
        scenarios=("idle", "echo"),
    )
    result = run(config, progress)
    assert killed
    statuses = {c["name"]: c for c in result["contenders"]}
    assert statuses["asyncio-buffered"]["status"] == "failed"
    assert statuses["asyncio"]["status"] == "ran"
    echo = {r["contender"]: r for r in result["scenarios"]["echo"]}
    assert "error" in echo["asyncio-buffered"]
    assert "error" not in echo["asyncio"]
    assert _bench_children() == []


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_ends_every_child() -> None:
    """Ctrl-C during a run ends every server and client, and exits 130."""
    bench = subprocess.Popen(
        [
            *(sys.executable, "-m", "bufkit", "bench", "--smoke"),
            *("--contender", "asyncio", "--only", "echo", "--no-strace"),
            # A long window: the run is surely still going when Ctrl-C comes.
            *("--duration", "30"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # A shell without job control starts background jobs with SIGINT
        # ignored, and the child would inherit that: give it the default.
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 20
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and not children:
            with contextlib.suppress(psutil.Error):
                children = [
                    c
                    for c in psutil.Process(bench.pid).children(recursive=True)
                    if "bufkit.bench._server" in c.cmdline()
                ]
            time.sleep(0.05)
        assert children, "the server never started"
        time.sleep(0.3)
        bench.send_signal(signal.SIGINT)
        assert bench.wait(timeout=20) == 130
        for child in children:
            assert _gone(child.pid)
    finally:
        if bench.poll() is None:
            os.kill(bench.pid, signal.SIGKILL)
            bench.wait()


def test_parse_strace() -> None:
    """The ``strace -c`` summary table parses into calls per syscall."""
    text = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 52.10    0.001000          10       100           sendmsg
 30.00    0.000600           6       100        12 recvfrom
 17.90    0.000300           3       100           epoll_wait
------ ----------- ----------- --------- --------- ----------------
100.00    0.001900           6       300        12 total
"""
    assert parse_strace(text) == {"sendmsg": 100, "recvfrom": 100, "epoll_wait": 100}


def test_saturation_and_window() -> None:
    """Saturation names the busy side; the echo window bounds bytes in flight."""
    assert saturation(0.97, 0.4) == "server"
    assert saturation(0.3, 0.95) == "client"
    assert saturation(0.9, 0.9) == "both"
    assert saturation(0.3, 0.3) == "neither"
    assert echo_window(1, 64) == 16
    assert echo_window(1, 65536) == 4
    assert echo_window(1000, 65536) == 1


def test_a_missing_figure_says_not_measured() -> None:
    """A figure or ratio the run lacks reads "not measured", never a stand-in."""
    rows: list[dict[str, Any]] = [
        {
            "contender": "asyncio",
            "connections": 10,
            "size": 64,
            "mb_per_s": None,
            "msgs_per_s": 1000.0,
            "server_cpu_s_per_gb": 0.5,
            "saturated": None,
            "server_util": 0.5,
            "client_util": None,
        },
        {
            "contender": "bufkit",
            "connections": 10,
            "size": 64,
            "mb_per_s": 8.0,
            "msgs_per_s": 2000.0,
            "server_cpu_s_per_gb": None,
            "saturated": "server",
            "server_util": 0.97,
            "client_util": 0.4,
        },
    ]
    headers, cells = grid("echo", rows)
    base, ours = (dict(zip(headers, line, strict=False)) for line in cells)
    assert headers.count("x aio") == 2
    assert base["MB/s"] == NOT_MEASURED
    assert base["saturated"] == NOT_MEASURED
    assert base["CPU srv/cli"] == NOT_MEASURED
    assert ours["MB/s"] == "8"
    assert ours["saturated"] == "server"
    assert ours["CPU srv/cli"] == "97%/40%"
    assert ours["srv CPU s/GB"] == NOT_MEASURED
    ratios = [c for h, c in zip(headers, cells[1], strict=True) if h == "x aio"]
    assert ratios == [NOT_MEASURED, NOT_MEASURED]
    assert not any(c in ("-", "None") for line in cells for c in line)


def test_targets_skip_what_was_not_measured_and_state_the_judged_budget() -> None:
    """Targets judge only measured figures; a margin is against the judged budget."""
    fanout = {
        "contender": "bufkit-selectors",
        "connections": 10,
        "responses_per_s": 100.0,
        "send_calls_per_response": 1.0,
        "syscalls_per_response": 3.5,
    }
    echo = [
        {
            "contender": "bufkit-selectors",
            "connections": 1,
            "size": 64,
            "mb_per_s": None,
        },
        {"contender": "asyncio", "connections": 1, "size": 64, "mb_per_s": 5.0},
    ]
    targets = evaluate({"fanout": [fanout], "echo": echo})
    syscalls = [t for t in targets if "syscalls" in t["target"]]
    assert [(t["hit"], t["margin"]) for t in syscalls] == [(True, "1.00x the budget")]
    assert not any(t["target"].startswith("echo") for t in targets)


def test_plot_leaves_an_unmeasured_echo_cell_empty(tmp_path: Path) -> None:
    """An echo cell without a figure draws no bar instead of a made-up zero."""
    echo = [
        {"contender": "asyncio", "connections": 1, "size": 64, "mb_per_s": 5.0},
        {"contender": "asyncio", "connections": 1, "size": 4096, "mb_per_s": None},
        {
            "contender": "bufkit-selectors",
            "connections": 1,
            "size": 64,
            "mb_per_s": 9.0,
        },
    ]
    report = {"scenarios": {"echo": echo}, "environment": {"date": "today"}}
    path = tmp_path / "echo.png"
    plot(report, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_reported_ratio_is_neither_hit_nor_missed() -> None:
    """The drain ratio to ``del buf[:n]`` is reported; only linearity is judged."""
    micro = [
        {"name": f"drain {mib} MiB, 1 write, per 64 KiB call", "bufkit_ns": ns}
        | {"ratio": ratio}
        for mib, ns, ratio in ((4, 1000.0, 0.7), (64, 1100.0, 0.2))
    ]
    targets = evaluate({"micro": micro})
    judged = {t["target"]: t["hit"] for t in targets}
    assert judged == {
        "queue drain linear, 1 write (cost per call, 4 -> 64 MiB)": True,
        "queue drain vs bytearray + del at 64 MiB, 1 write": None,
    }
    _headers, cells = targets_grid(targets)
    assert [line[3] for line in cells] == ["hit", "reported"]
