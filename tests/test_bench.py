"""``bufkit bench``: tiny runs of every scenario, output, and cleanup."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
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
from bufkit.bench import _contenders, _native
from bufkit.bench._config import BenchConfig, echo_window
from bufkit.bench._markdown import to_markdown
from bufkit.bench._plot import plot
from bufkit.bench._procs import BenchError, cpu_seconds
from bufkit.bench._report import NOT_MEASURED, grid, render, targets_grid
from bufkit.bench._runner import run
from bufkit.bench._scenarios import parse_strace, saturation, summarise
from bufkit.bench._stats import judge, paired_ratios, spread
from bufkit.bench._targets import evaluate
from bufkit.bench._wire import ContenderUnavailable

pytestmark = pytest.mark.timeout(60)

SMOKE_CONTENDERS = ("asyncio", "bufkit-selectors", "c-epoll")
#: The progress calls of the smoke run: (scenario, description).
PROGRESS: list[tuple[str, str]] = []


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


def _record(scenario: str, description: str, done: int, total: int) -> None:
    """Keep the progress calls of the smoke run."""
    PROGRESS.append((scenario, description))


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One smoke run of every scenario (2 connections, fractions of a second)."""
    config = attrs.evolve(BenchConfig.smoke(), contenders=SMOKE_CONTENDERS)
    PROGRESS.clear()
    return run(config, _record)


def test_every_scenario_has_rows(report: dict[str, Any]) -> None:
    """A smoke run yields figures for each scenario from plain asyncio."""
    scenarios = report["scenarios"]
    assert set(scenarios) == {"idle", "echo", "tls-echo", "fanout", "micro"}
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


def test_smoke_runs_tls_echo_cells_for_the_tls_contenders(
    report: dict[str, Any],
) -> None:
    """TLS echo rows come from asyncio ssl= and bufkit-selectors, not the C server."""
    rows = report["scenarios"]["tls-echo"]
    assert [r["contender"] for r in rows] == ["asyncio", "bufkit-selectors"]
    for row in rows:
        assert "error" not in row, row
        assert row["tls"] is True
        assert (row["connections"], row["size"]) == (2, 4096)
        assert row["rounds"] == 3
        low, high = row["server_cpu_s_per_gb_range"]
        assert 0 < low <= row["server_cpu_s_per_gb"] <= high
        assert row["mb_per_s"] > 0
    plain = next(r for r in report["scenarios"]["echo"] if r["contender"] == "asyncio")
    assert plain["tls"] is False
    judged = {t["target"] for t in evaluate(report["scenarios"])}
    assert "TLS echo server CPU per GB <= asyncio ssl= (TLS, 2 conn x 4 KiB)" in judged


def test_tls_echo_contenders_default_to_the_targets_full_to_all() -> None:
    """The default TLS echo measures the targets' contenders; --full every TLS one."""
    from bufkit.bench._config import TLS_TARGET_CONTENDERS
    from bufkit.bench._runner import tls_contenders

    every = [c.name for c in _contenders.CONTENDERS]
    assert tls_contenders(BenchConfig.quick(), every) == list(TLS_TARGET_CONTENDERS)
    full = tls_contenders(BenchConfig.full(), every)
    assert full == [
        "asyncio",
        "uvloop",
        "twisted",
        "bufkit-selectors",
        "bufkit-stream",
        "bufkit-stream-uvloop",
        "bufkit-twisted",
        "bufkit-asyncio",
    ]
    only_plain = attrs.evolve(BenchConfig.full(), scenarios=("idle", "fanout"))
    assert tls_contenders(only_plain, every) == []
    assert [c.name for c in _contenders.CONTENDERS if c.tls_only] == ["bufkit-asyncio"]


def test_naming_contenders_measures_each_in_the_tls_echo_cells() -> None:
    """--contender lifts the default TLS selection: named TLS contenders all run."""
    import argparse

    from bufkit.bench._command import add_parser, config_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--contender", "bufkit-asyncio"])
    config = config_from_args(args)
    assert config.contenders == ("bufkit-asyncio",)
    assert config.tls_contenders is None
    assert config_from_args(parser.parse_args(["bench"])).tls_contenders == (
        "asyncio",
        "uvloop",
        "bufkit-selectors",
        "bufkit-stream-uvloop",
    )


def test_tls_echo_targets_judge_cpu_per_gb_and_throughput() -> None:
    """TLS echo: CPU per GB at most and throughput at least the peer's ssl=."""

    def row(name: str, size: int, *cpu: float, seconds: float = 1.0) -> dict[str, Any]:
        rounds = [s | {"seconds": seconds} for s in _rounds(*cpu)]
        base = {"contender": name, "connections": 64, "size": size, "tls": True}
        return base | {"samples": rounds}

    cells = [
        # CPU ratios 0.8, 0.9, 0.85 (hit); throughput ratios 1.25 (hit).
        row("asyncio", 16384, 1.0, 1.0, 1.0, seconds=1.25),
        row("bufkit-selectors", 16384, 0.8, 0.9, 0.85),
        # CPU ratios 1.9 (missed); throughput ratios 0.5 (missed).
        row("uvloop", 65536, 1.0, 1.0, 1.0),
        row("bufkit-stream-uvloop", 65536, 1.9, 1.9, 1.9, seconds=2.0),
        # A contender outside the pairs is not judged.
        row("bufkit-twisted", 16384, 0.1, 0.1, 0.1),
    ]
    targets = evaluate({"tls-echo": cells})
    found = {t["target"]: (t["contender"], t["verdict"]) for t in targets}
    assert found == {
        "TLS echo server CPU per GB <= asyncio ssl= (TLS, 64 conn x 16 KiB)": (
            "bufkit-selectors",
            "hit",
        ),
        "TLS echo throughput >= asyncio ssl= (TLS, 64 conn x 16 KiB)": (
            "bufkit-selectors",
            "hit",
        ),
        "TLS echo server CPU per GB <= uvloop ssl= (TLS, 64 conn x 64 KiB)": (
            "bufkit-stream-uvloop",
            "missed",
        ),
        "TLS echo throughput >= uvloop ssl= (TLS, 64 conn x 64 KiB)": (
            "bufkit-stream-uvloop",
            "missed",
        ),
    }
    measured = {t["target"]: t["measured"] for t in targets}
    key = "TLS echo throughput >= uvloop ssl= (TLS, 64 conn x 64 KiB)"
    assert measured[key] == "0.50x uvloop ssl= (0.50-0.50)"


def test_tls_echo_rows_render_with_ratios_to_asyncio_ssl() -> None:
    """The TLS echo table shows CPU per GB as a multiple of asyncio ssl='s."""
    rows = [
        summarise(
            "tls-echo",
            {
                "contender": name,
                "connections": 1,
                "size": 65536,
                "tls": True,
                "samples": _rounds(cpu, cpu, cpu),
            },
        )
        for name, cpu in (("asyncio", 1.0), ("bufkit-selectors", 2.0))
    ]
    headers, cells = grid("tls-echo", rows)
    per_gb = headers.index("srv s/GB")
    assert headers[per_gb + 1] == "x aio"
    assert cells[1][per_gb + 1] == "2.00x"
    assert rows[1]["server_cpu_s_per_gb"] == pytest.approx(2000.0)


def test_throughput_cells_carry_cpu_per_message_and_rounds(
    report: dict[str, Any],
) -> None:
    """Echo and fanout rows have server CPU per message/GB: median, range, rounds."""
    echo = next(r for r in report["scenarios"]["echo"] if r["contender"] == "asyncio")
    fanout = next(
        r for r in report["scenarios"]["fanout"] if r["contender"] == "asyncio"
    )
    for row, per_unit in (
        (echo, "server_cpu_us_per_msg"),
        (fanout, "server_cpu_us_per_response"),
    ):
        assert row["rounds"] == 3
        assert len(row["samples"]) == 3
        for key in (per_unit, "server_cpu_s_per_gb"):
            low, high = row[f"{key}_range"]
            assert 0 < low <= row[key] <= high
        assert all(s["bytes"] > 0 and s["server_cpu"] > 0 for s in row["samples"])


def test_rounds_are_interleaved_round_robin(report: dict[str, Any]) -> None:
    """Each round measures every contender once; the next round starts one later."""
    ran = [c["name"] for c in report["contenders"] if c["status"] == "ran"]
    assert len(ran) >= 2
    echo = [d for scenario, d in PROGRESS if scenario == "echo" and d != "done"]
    order = [d.split(":")[0] for d in echo]
    rounds = [d.rsplit("(", 1)[1].rstrip(")") for d in echo]
    n = len(ran)
    assert order[:n] == ran
    assert order[n : 2 * n] == ran[1:] + ran[:1]
    assert rounds == [f"{r}/3" for r in (1, 2, 3) for _ in range(n)]


def test_c_server_is_built_or_skipped_with_a_reason(report: dict[str, Any]) -> None:
    """With ``cc`` the C server runs and serves every cell; without, a reason."""
    status = next(c for c in report["contenders"] if c["name"] == "c-epoll")
    if shutil.which("cc") is None:
        assert status["status"] == "skipped"
        assert "cc" in status["reason"]
        return
    assert status["status"] == "ran", status
    for scenario in ("idle", "echo", "fanout"):
        rows = [r for r in report["scenarios"][scenario] if r["contender"] == "c-epoll"]
        assert rows
        assert all("error" not in r for r in rows), rows
    headers, _ = grid("echo", report["scenarios"]["echo"])
    assert headers.count("x C") == 2


def test_c_server_skip_names_the_missing_compiler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without ``cc`` on PATH the C contender is skipped, and the reason says so."""
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = _contenders.skip_reason(_contenders.by_name("c-epoll"))
    assert reason == "no C compiler (cc) on PATH"
    with pytest.raises(ContenderUnavailable, match="no C compiler"):
        _native.build()


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
    render(report, Console(file=out, width=250))
    text = out.getvalue()
    assert "Echo: server CPU per message" in text
    assert "srv µs/msg" in text
    assert "1.00x" in text
    assert "ratios" in text.lower()


def test_markdown(report: dict[str, Any]) -> None:
    """``--markdown`` gives one pipe table per scenario, with the command."""
    text = to_markdown(report, "bufkit bench --smoke")
    assert text.startswith("Command: `bufkit bench --smoke`")
    assert text.count("| contender |") == 4  # idle, echo, TLS echo, fanout
    assert "**TLS echo: server CPU per message and per GB" in text
    assert "| benchmark |" in text
    assert "| srv µs/msg | x aio | x C | range |" in text
    assert "3 rounds of 0.1 s" in text


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
            "server_cpu_us_per_msg": 4.0,
            "server_cpu_us_per_msg_range": [3.5, 4.5],
            "server_cpu_s_per_gb": 62.5,
            "mb_per_s": None,
            "msgs_per_s": 1000.0,
            "saturated": None,
            "server_util": 0.5,
            "client_util": None,
        },
        {
            "contender": "bufkit",
            "connections": 10,
            "size": 64,
            "server_cpu_us_per_msg": None,
            "server_cpu_s_per_gb": None,
            "mb_per_s": 8.0,
            "msgs_per_s": 2000.0,
            "saturated": "server",
            "server_util": 0.97,
            "client_util": 0.4,
        },
    ]
    headers, cells = grid("echo", rows)
    base, ours = (dict(zip(headers, line, strict=False)) for line in cells)
    assert headers.count("x aio") == 2
    assert "x C" not in headers  # no C server among the rows
    assert base["srv µs/msg"] == "4.00"
    assert base["range"] == "3.50-4.50"
    assert base["MB/s"] == NOT_MEASURED
    assert base["saturated"] == NOT_MEASURED
    assert base["CPU srv/cli"] == NOT_MEASURED
    assert ours["MB/s"] == "8"
    assert ours["saturated"] == "server"
    assert ours["CPU srv/cli"] == "97%/40%"
    assert ours["srv µs/msg"] == NOT_MEASURED
    assert ours["range"] == NOT_MEASURED
    assert ours["srv s/GB"] == NOT_MEASURED
    ratios = [c for h, c in zip(headers, cells[1], strict=True) if h == "x aio"]
    assert ratios == [NOT_MEASURED, NOT_MEASURED]
    assert not any(c in ("-", "None") for line in cells for c in line)


def test_ratios_to_the_c_server() -> None:
    """With the C server in the rows, each judged figure reads as a multiple of C's."""
    rows = [
        {"contender": name, "connections": 1, "size": 64, "mb_per_s": mb}
        | {"server_cpu_us_per_msg": us, "msgs_per_s": 1.0}
        for name, us, mb in (
            ("asyncio", 8.0, 10.0),
            ("c-epoll", 2.0, 40.0),
            ("bufkit", 6.0, 20.0),
        )
    ]
    headers, cells = grid("echo", rows)
    ours = cells[2]
    pairs = [(h, c) for h, c in zip(headers, ours, strict=True) if h.startswith("x ")]
    # srv µs/msg: 6/8 and 6/2; MB/s: 20/10 and 20/40.
    assert pairs == [
        ("x aio", "0.75x"),
        ("x C", "3.00x"),
        ("x aio", "2.00x"),
        ("x C", "0.50x"),
    ]


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
        {"contender": "bufkit-selectors", "connections": 1, "size": 64},
        {"contender": "asyncio", "connections": 1, "size": 64, "samples": []},
    ]
    targets = evaluate({"fanout": [fanout], "echo": echo})
    syscalls = [t for t in targets if "syscalls" in t["target"]]
    assert [(t["hit"], t["margin"]) for t in syscalls] == [(True, "1.00x the budget")]
    assert not any(t["target"].startswith("echo") for t in targets)


def test_plot_leaves_an_unmeasured_echo_cell_empty(tmp_path: Path) -> None:
    """An echo cell without a figure draws no bar instead of a made-up zero."""
    echo = [
        {"contender": "asyncio", "connections": 1, "size": 64}
        | {"server_cpu_us_per_msg": 5.0, "server_cpu_us_per_msg_range": [4.0, 6.0]},
        {"contender": "asyncio", "connections": 1, "size": 4096}
        | {"server_cpu_us_per_msg": None},
        {"contender": "bufkit-selectors", "connections": 1, "size": 64}
        | {"server_cpu_us_per_msg": 9.0},
    ]
    report = {"scenarios": {"echo": echo}, "environment": {"date": "today"}}
    path = tmp_path / "echo.png"
    plot(report, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_spread_is_median_and_range() -> None:
    """A spread is the median of the rounds and their min and max."""
    assert spread([3.0, 1.0, 2.0]) == spread([1.0, 2.0, 3.0])
    s = spread([3.0, 1.0, 2.0])
    assert (s.median, s.low, s.high, s.width) == (2.0, 1.0, 3.0, 2.0)
    assert spread([4.0, 1.0, 2.0, 3.0]).median == 2.5
    with pytest.raises(ValueError, match="no rounds"):
        spread([])


def test_paired_ratios_divide_round_by_round() -> None:
    """Round i of one contender is divided by round i of the other."""
    # Round 2 ran on a busier machine for both: the ratio stays put.
    assert paired_ratios([0.9, 1.8, 0.95], [1.0, 2.0, 1.0]) == [0.9, 0.9, 0.95]
    assert paired_ratios([1.0, 2.0], [0.0, 4.0]) == [0.5]


@pytest.mark.parametrize(
    ("values", "threshold", "better", "verdict", "margin"),
    [
        # Every round below 1.0, close together: hit.
        ([0.80, 0.82, 0.85], 1.0, "lower", "hit", 0.18),
        # Every round above, close together: missed.
        ([1.30, 1.25, 1.35], 1.0, "lower", "missed", 0.30),
        # Three runs of one cell that read 0.59x, 1.12x and 1.82x: the range
        # (1.23) dwarfs the median's margin (0.12).
        ([0.59, 1.12, 1.82], 1.0, "lower", "unsettled", 0.12),
        # Below the target in every round, but the rounds lie further apart
        # (0.45) than the median lies from the target (0.10).
        ([0.50, 0.90, 0.95], 1.0, "lower", "unsettled", 0.10),
        # Higher is better: 4.0 against 3.5, rounds 0.3 apart.
        ([4.0, 4.2, 3.9], 3.5, "higher", "hit", 0.5),
        ([3.0, 3.1, 2.9], 3.5, "higher", "missed", 0.5),
        # One round exactly on the target: met, and nothing to disagree.
        ([1.0], 1.0, "lower", "hit", 0.0),
    ],
)
def test_judge_hit_missed_unsettled(
    values: list[float], threshold: float, better: Any, verdict: str, margin: float
) -> None:
    """A target is hit or missed on its median unless the range outgrows the margin."""
    judged = judge(values, threshold, better)
    assert judged.verdict == verdict
    assert judged.margin == pytest.approx(margin)


def _rounds(*cpu: float) -> list[dict[str, float]]:
    """Rounds moving 1 MB in 1 s each, with the given server CPU seconds."""
    return [
        {"seconds": 1.0, "bytes": 1e6, "server_cpu": c, "client_cpu": 0.5} for c in cpu
    ]


def test_echo_targets_judge_cpu_per_message_round_by_round() -> None:
    """Echo targets compare server CPU per message in paired rounds, with verdicts."""

    def row(name: str, size: int, *cpu: float) -> dict[str, Any]:
        base = {"contender": name, "connections": 1, "size": size}
        return base | {"samples": _rounds(*cpu)}

    cells = [
        # Round 2 is slower for both: the paired ratios are 0.9, 0.9, 0.95.
        row("asyncio", 64, 1.0, 2.0, 1.0),
        row("bufkit-selectors", 64, 0.9, 1.8, 0.95),
        # Ratios 1.2, 1.25, 1.3: missed.
        row("asyncio", 4096, 1.0, 1.0, 1.0),
        row("bufkit-selectors", 4096, 1.2, 1.25, 1.3),
        # Ratios 0.6, 1.1, 1.8: unsettled.
        row("asyncio", 65536, 1.0, 1.0, 1.0),
        row("bufkit-selectors", 65536, 0.6, 1.1, 1.8),
    ]
    targets = evaluate({"echo": cells})
    found = {t["target"]: (t["verdict"], t["hit"], t["measured"]) for t in targets}
    assert found == {
        "echo server CPU per message <= asyncio (1 conn x 64 B)": (
            "hit",
            True,
            "0.90x asyncio (0.90-0.95)",
        ),
        "echo server CPU per message <= asyncio (1 conn x 4 KiB)": (
            "missed",
            False,
            "1.25x asyncio (1.20-1.30)",
        ),
        "echo server CPU per message <= asyncio (1 conn x 64 KiB)": (
            "unsettled",
            None,
            "1.10x asyncio (0.60-1.80)",
        ),
    }
    _headers, lines = targets_grid(targets)
    assert [line[3] for line in lines] == ["hit", "MISSED", "unsettled"]


def test_fanout_targets_judge_cpu_per_response() -> None:
    """Fanout CPU targets: at or below Twisted's, and asyncio's at least 3.5x ours."""
    rows = [
        {"contender": name, "connections": 16, "samples": _rounds(*cpu)}
        for name, cpu in (
            ("asyncio", (1.0, 1.0, 1.0)),
            ("twisted", (0.2, 0.2, 0.2)),
            ("bufkit-stream", (0.16, 0.17, 0.18)),
        )
    ]
    targets = {t["target"]: t["verdict"] for t in evaluate({"fanout": rows})}
    # Ours / Twisted: 0.80, 0.85, 0.90 (margin 0.15, width 0.10): hit.
    # Asyncio / ours: 6.25, 5.88, 5.56 (margin 2.38, width 0.69): hit.
    assert targets == {
        "fanout server CPU per response <= Twisted (16 conns)": "hit",
        "fanout: asyncio's server CPU per response >= 3.5x ours (16 conns)": "hit",
    }


def test_fanout_targets_are_judged_at_every_connection_count() -> None:
    """With several fanout cells (``--full``), each connection count is judged."""
    rows = [
        {"contender": name, "connections": conns, "samples": _rounds(*cpu)}
        for conns in (1, 256)
        for name, cpu in (
            ("asyncio", (1.0, 1.0, 1.0)),
            # 1 conn: asyncio / ours = 2.0 each round; 256 conns: 4.0.
            ("bufkit-selectors", (0.5, 0.5, 0.5) if conns == 1 else (0.25,) * 3),
        )
    ]
    targets = {t["target"]: t["verdict"] for t in evaluate({"fanout": rows})}
    assert targets == {
        "fanout: asyncio's server CPU per response >= 3.5x ours (1 conns)": "missed",
        "fanout: asyncio's server CPU per response >= 3.5x ours (256 conns)": "hit",
    }


def test_summarise_takes_the_median_and_range_of_each_figure() -> None:
    """A cell's figures are the medians of its rounds, with min-max ranges."""
    samples = [
        {"seconds": 1.0, "bytes": 1_000_000, "server_cpu": 0.5, "client_cpu": 0.4},
        {"seconds": 1.0, "bytes": 2_000_000, "server_cpu": 0.6, "client_cpu": 0.5},
        {"seconds": 2.0, "bytes": 2_000_000, "server_cpu": 1.0, "client_cpu": 0.8},
    ]
    row = summarise("echo", {"contender": "x", "size": 1000, "samples": samples})
    # Per round: 1,000 / 2,000 / 2,000 messages; 500 / 300 / 500 µs each.
    assert row["rounds"] == 3
    assert row["server_cpu_us_per_msg"] == pytest.approx(500.0)
    assert row["server_cpu_us_per_msg_range"] == pytest.approx([300.0, 500.0])
    assert row["server_cpu_s_per_gb"] == pytest.approx(500.0)
    assert row["mb_per_s"] == pytest.approx(1.0)
    assert row["mb_per_s_range"] == pytest.approx([1.0, 2.0])
    assert row["msgs_per_s"] == pytest.approx(1000.0)
    assert row["server_util"] == pytest.approx(0.5)
    assert row["client_util"] == pytest.approx(0.4)
    assert row["saturated"] == "neither"
    fanout = summarise("fanout", {"contender": "x", "samples": samples[:1]})
    # 1,000,000 bytes are 312.5 responses of 3,200 bytes: 1,600 µs each.
    assert fanout["server_cpu_us_per_response"] == pytest.approx(1600.0)
    assert fanout["responses_per_s"] == pytest.approx(312.5)


def test_cpu_seconds_reads_a_process_from_outside() -> None:
    """The CPU clock of a process read by pid agrees with its own; a gone one raises."""
    before = time.process_time()
    measured = cpu_seconds(os.getpid())
    after = time.process_time()
    assert before <= measured <= after
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(BenchError, match=str(child.pid)):
        cpu_seconds(child.pid)


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


def test_tls_idle_rows_measure_every_server_or_say_why_not() -> None:
    """Each TLS idle row has a figure per connection or a skip reason."""
    from bufkit.bench._tls_idle import SERVERS, tls_idle_rows

    assert SERVERS == (
        "bufkit-selectors",
        "raw-sslsocket",
        "asyncio",
        "uvloop",
        "twisted",
        "bufkit-twisted",
    )
    rows = tls_idle_rows(3)
    assert [r["server"] for r in rows] == list(SERVERS)
    for row in rows:
        assert ("rss_per_conn" in row) != ("skipped" in row), row
    by_name = {r["server"]: r for r in rows}
    for ours in ("bufkit-selectors", "bufkit-twisted"):
        assert by_name[ours]["connections"] == 3
        assert by_name[ours]["pool_bytes_idle"] == 0  # bufkit reports its pool
    assert by_name["twisted"]["pool_bytes_idle"] is None  # pyOpenSSL's own TLS


def test_tls_idle_servers_follow_the_named_contenders() -> None:
    """--contender keeps the named TLS idle servers and always the raw floor."""
    from bufkit.bench._command import tls_idle_servers
    from bufkit.bench._tls_idle import SERVERS

    assert tls_idle_servers(None) == SERVERS
    assert tls_idle_servers(("twisted", "bufkit-asyncio", "c-epoll")) == (
        "raw-sslsocket",
        "twisted",
        "bufkit-asyncio",
    )


def test_tls_idle_verdicts_compare_rows_of_the_same_run() -> None:
    """The TLS idle targets say met or MISSED with the ratio to each row."""
    from bufkit.bench._tls_idle import verdicts

    rows = [
        {"server": "bufkit-selectors", "rss_per_conn": 13312, "pool_bytes_idle": 0},
        {"server": "raw-sslsocket", "rss_per_conn": 10240},
        {"server": "asyncio", "rss_per_conn": 204800},
        {"server": "uvloop", "rss_per_conn": 12288},
        {"server": "twisted", "rss_per_conn": 20480},
        {"server": "bufkit-twisted", "rss_per_conn": 15360},
    ]
    assert verdicts(rows) == [
        "MISSED: within 1.2x of the raw SSLSocket floor (1.30x)",
        "met: at most 0.1x of asyncio ssl= (0.065x)",
        "MISSED: below uvloop ssl= (13.0 vs 12.0 KiB)",
        "reported: bufkit-twisted vs Twisted's own TLS (0.75x)",
        "met: pool bytes held by idle TLS connections 0 (0 bytes)",
    ]
