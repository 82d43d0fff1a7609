"""A whole bench run: start the contenders, run every cell, end everything.

Servers for all contenders are started at once and stay up for the run;
each cell (one scenario at one setting) then runs for every contender back
to back, so that a machine getting noisier mid-run shifts all contenders of
a cell alike and the ratios stay meaningful. Idle memory runs first, while
the servers are fresh. A contender that fails (its server crashed, a client
reported an error) gets an error row for that cell and the run goes on; a
contender whose server is gone is marked failed for the rest of the run.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from bufkit.bench import _contenders, _environment
from bufkit.bench._config import BenchConfig
from bufkit.bench._procs import BenchError, Children
from bufkit.bench._scenarios import (
    Row,
    Server,
    echo_cell,
    fanout_cell,
    idle_cell,
    syscall_cell,
)

__all__ = ["Progress", "run"]

_SERVER: Final = "bufkit.bench._server"
_READY_TIMEOUT: Final = 60.0

#: Progress callback: (scenario, description, steps done, steps in all).
Progress = Callable[[str, str, int, int], object]

Cell = Callable[[Server], Row]


def _start_servers(
    children: Children, names: list[str], statuses: dict[str, dict[str, Any]]
) -> dict[str, Server]:
    started = {
        name: children.start_python(_SERVER, name, name=f"{name} server")
        for name in names
    }
    servers: dict[str, Server] = {}
    for name, child in started.items():
        try:
            tag, payload = child.expect("READY", "SKIP", timeout=_READY_TIMEOUT)
        except BenchError as exc:
            statuses[name] |= {"status": "failed", "reason": str(exc)}
            children.end(child)
            continue
        if tag == "SKIP":
            statuses[name] |= {"status": "skipped", "reason": str(payload)}
            children.end(child)
            continue
        statuses[name] |= {"status": "ran", "pid": payload["pid"]}
        statuses[name] |= {"ports": [payload["echo"], payload["fanout"]]}
        servers[name] = Server(name, child, payload["echo"], payload["fanout"])
    return servers


def _cells(
    config: BenchConfig, children: Children
) -> dict[str, list[tuple[str, Cell]]]:
    """Return each scenario's cells as (description, function of a server)."""

    def idle(n: int) -> Cell:
        return lambda server: idle_cell(server, children, n)

    def echo(c: int, s: int) -> Cell:
        return lambda server: echo_cell(server, children, config, c, s)

    def fanout(c: int) -> Cell:
        return lambda server: fanout_cell(server, children, config, c)

    def syscalls(server: Server) -> Row:
        return syscall_cell(server, children, config)

    return {
        "idle": [(f"{n} idle connections", idle(n)) for n in config.idle_connections],
        "echo": [(f"{c} conn x {_size(s)}", echo(c, s)) for c, s in config.echo_cells],
        "fanout": [(f"{c} conn", fanout(c)) for c in config.fanout_connections]
        + [("syscalls (strace)", syscalls)],
    }


def _size(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def _run_cells(
    scenario: str,
    cells: list[tuple[str, Cell]],
    servers: dict[str, Server],
    statuses: dict[str, dict[str, Any]],
    progress: Progress,
) -> list[Row]:
    rows: list[Row] = []
    total = len(cells) * len(servers)
    done = 0
    names = list(servers)
    for index, (description, cell) in enumerate(cells):
        # Alternate the order from cell to cell, so that a machine getting
        # busier during a run does not always penalise the same contenders.
        order = names[::-1] if index % 2 else names
        cell_rows: dict[str, Row] = {}
        for name in order:
            progress(scenario, f"{name}: {description}", done, total)
            cell_rows[name] = _one(name, description, cell, servers[name], statuses)
            done += 1
        rows.extend(cell_rows[name] for name in names)
    progress(scenario, "done", done, total)
    return rows


def _one(
    name: str,
    description: str,
    cell: Cell,
    server: Server,
    statuses: dict[str, dict[str, Any]],
) -> Row:
    if not server.child.alive():
        reason = f"server exited ({server.child.proc.returncode})"
        statuses[name] |= {"status": "failed", "reason": reason}
        return {"contender": name, "cell": description, "error": reason}
    try:
        return cell(server) | {"cell": description}
    except BenchError as exc:
        return {"contender": name, "cell": description, "error": str(exc)}


def _merge_syscalls(rows: list[Row]) -> list[Row]:
    """Fold the strace rows into the fanout rows of the same contender."""
    traced = {r["contender"]: r for r in rows if r["cell"] == "syscalls (strace)"}
    merged = []
    for row in rows:
        if row["cell"] == "syscalls (strace)":
            continue
        extra = {
            k: v for k, v in traced.get(row["contender"], {}).items() if k != "cell"
        }
        if "error" in extra and "error" not in row:
            extra["syscall_note"] = extra.pop("error")
        merged.append(row | extra)
    return merged


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM end the run like Ctrl-C does (so cleanup runs)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(config: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Run the bench and return its report (JSON-ready)."""
    wanted = config.contenders or tuple(c.name for c in _contenders.CONTENDERS)
    statuses: dict[str, dict[str, Any]] = {}
    runnable = []
    for name in wanted:
        contender = _contenders.by_name(name)
        reason = _contenders.skip_reason(contender)
        statuses[name] = {
            "name": name,
            "label": contender.label,
            "family": contender.family,
            "status": "skipped" if reason else "pending",
            "reason": reason,
        }
        if reason is None:
            runnable.append(name)
    report: dict[str, Any] = {
        "environment": _environment.describe(),
        "config": json.loads(json.dumps(_config_dict(config))),
        "scenarios": {},
    }
    started = time.monotonic()
    with _sigterm_as_interrupt(), Children() as children:
        progress("setup", "starting servers", 0, 1)
        servers = (
            _start_servers(children, runnable, statuses)
            if _needs_servers(config)
            else {}
        )
        progress("setup", "servers ready", 1, 1)
        cells = _cells(config, children)
        for scenario in config.scenarios:
            if scenario == "micro":
                report["scenarios"]["micro"] = _micro(children, config, progress)
                continue
            rows = _run_cells(scenario, cells[scenario], servers, statuses, progress)
            report["scenarios"][scenario] = (
                _merge_syscalls(rows) if scenario == "fanout" else rows
            )
        report["server_pids"] = [s.child.pid for s in servers.values()]
    for status in statuses.values():
        if status["status"] == "pending":  # only micro-benchmarks ran
            status |= {"status": "not run", "reason": "no scenario needed a server"}
    report["contenders"] = list(statuses.values())
    report["seconds"] = time.monotonic() - started
    return report


def _needs_servers(config: BenchConfig) -> bool:
    return any(s != "micro" for s in config.scenarios)


def _config_dict(config: BenchConfig) -> dict[str, Any]:
    import attrs

    return attrs.asdict(config)


def _micro(children: Children, config: BenchConfig, progress: Progress) -> list[Row]:
    progress("micro", "queue and pool micro-benchmarks", 0, 1)
    child = children.start_python(
        "bufkit.bench._micro", json.dumps({"scale": config.micro_scale}), name="micro"
    )
    try:
        tag, payload = child.expect("RESULT", "SKIPPED", timeout=120)
    except BenchError as exc:
        return [{"name": "micro", "error": str(exc)}]
    finally:
        children.end(child, quit_line=None)
    progress("micro", "done", 1, 1)
    if tag == "SKIPPED":
        return [{"name": "micro", "skipped": str(payload)}]
    rows: list[Row] = payload
    return rows
