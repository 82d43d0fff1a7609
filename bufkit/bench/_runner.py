"""A whole bench run: start the contenders, run every cell, end everything.

Servers for all contenders are started at once and stay up for the run;
each throughput cell (one scenario at one setting) then runs in several
rounds, and each round measures every contender once, round-robin, so that
a machine getting noisier mid-run shifts all contenders of a cell alike and
the per-round ratios stay meaningful. Idle memory runs first, while the
servers are fresh. A contender that fails (its server crashed, a client
reported an error) gets an error row for that cell and the run goes on; a
contender whose server is gone is marked failed for the rest of the run.

The echo scenario's TLS cells (reported as ``tls-echo``) run right after
its plain cells, against the servers' TLS echo ports, with the contenders
that speak TLS and that the run's ``tls_contenders`` names; the servers get
a throwaway certificate (:mod:`bufkit.bench._certs`) when they start.
"""

from __future__ import annotations

import json
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import attrs

from bufkit.bench import _certs, _contenders, _environment
from bufkit.bench._certs import CertFiles
from bufkit.bench._config import BenchConfig
from bufkit.bench._procs import BenchError, Child, Children
from bufkit.bench._scenarios import (
    Loader,
    Row,
    Server,
    echo_cell,
    fanout_cell,
    idle_cell,
    summarise,
    syscall_cell,
)
from bufkit.bench._wire import ContenderUnavailable

__all__ = ["Progress", "run", "tls_contenders"]

_HOST: Final = "127.0.0.1"
_READY_TIMEOUT: Final = 60.0

#: Progress callback: (scenario, description, steps done, steps in all).
Progress = Callable[[str, str, int, int], object]


def _start_servers(
    children: Children,
    names: list[str],
    statuses: dict[str, dict[str, Any]],
    tls: CertFiles | None = None,
) -> dict[str, Server]:
    started: dict[str, Child] = {}
    for name in names:
        try:
            started[name] = _contenders.launch(
                children, _contenders.by_name(name), _HOST, tls
            )
        except ContenderUnavailable as exc:
            statuses[name] |= {"status": "skipped", "reason": str(exc)}
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
        if payload.get("tls_note"):
            statuses[name] |= {"tls_note": payload["tls_note"]}
        servers[name] = Server(
            name, child, payload["echo"], payload["fanout"], payload.get("tls")
        )
    return servers


@attrs.frozen
class _Cell:
    """One setting of a scenario, measured in ``rounds`` interleaved rounds."""

    description: str
    measure: Callable[[Server], Row]
    rounds: int = 1


def _cells(
    config: BenchConfig,
    children: Children,
    loader: Loader,
    cafile: str | None = None,
) -> dict[str, list[_Cell]]:
    """Return each scenario's cells (``tls-echo``'s need ``cafile``)."""

    def idle(n: int) -> _Cell:
        return _Cell(f"{n} idle connections", lambda s: idle_cell(s, children, n))

    def echo(c: int, size: int) -> _Cell:
        return _Cell(
            f"{c} conn x {_size(size)}",
            lambda s: echo_cell(s, loader, config, c, size),
            config.rounds,
        )

    def fanout(c: int) -> _Cell:
        return _Cell(
            f"{c} conn",
            lambda s: fanout_cell(s, loader, config, c),
            config.rounds,
        )

    def tls_echo(c: int, size: int) -> _Cell:
        return _Cell(
            f"TLS {c} conn x {_size(size)}",
            lambda s: echo_cell(s, loader, config, c, size, cafile=cafile),
            config.rounds,
        )

    def syscalls(server: Server) -> Row:
        return syscall_cell(server, children, config)

    return {
        "idle": [idle(n) for n in config.idle_connections],
        "echo": [echo(c, s) for c, s in config.echo_cells],
        "tls-echo": [tls_echo(c, s) for c, s in config.tls_echo_cells]
        if cafile is not None
        else [],
        "fanout": [fanout(c) for c in config.fanout_connections]
        + [_Cell("syscalls (strace)", syscalls)],
    }


def _size(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def _run_cells(
    scenario: str,
    cells: list[_Cell],
    servers: dict[str, Server],
    statuses: dict[str, dict[str, Any]],
    progress: Progress,
) -> list[Row]:
    rows: list[Row] = []
    names = list(servers)
    total = sum(cell.rounds for cell in cells) * len(names)
    done = 0
    for cell in cells:
        results: dict[str, list[Row]] = {name: [] for name in names}
        for turn in range(cell.rounds):
            # Round-robin, starting one contender later each round, so that
            # drift during a cell reaches every contender alike.
            start = turn % len(names) if names else 0
            for name in names[start:] + names[:start]:
                label = f"{name}: {cell.description} ({turn + 1}/{cell.rounds})"
                progress(scenario, label, done, total)
                done += 1
                if any("error" in r for r in results[name]):
                    continue
                row = _one(name, cell, servers[name], statuses)
                results[name].append(row)
        rows.extend(_combine(scenario, results[name]) for name in names)
    progress(scenario, "done", done, total)
    return rows


def _one(
    name: str, cell: _Cell, server: Server, statuses: dict[str, dict[str, Any]]
) -> Row:
    if not server.child.alive():
        reason = f"server exited ({server.child.proc.returncode})"
        statuses[name] |= {"status": "failed", "reason": reason}
        return {"contender": name, "cell": cell.description, "error": reason}
    try:
        return cell.measure(server) | {"cell": cell.description}
    except BenchError as exc:
        return {"contender": name, "cell": cell.description, "error": str(exc)}


def _combine(scenario: str, rounds: list[Row]) -> Row:
    """Merge one contender's rounds of a cell into its row (an error wins)."""
    errors = [r for r in rounds if "error" in r]
    if errors:
        return errors[0]
    if "samples" not in rounds[0]:
        return rounds[0]
    samples = [sample for r in rounds for sample in r["samples"]]
    return summarise(scenario, rounds[0] | {"samples": samples})


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
    tls_names = tls_contenders(config, runnable)
    note = _certs.unavailable() if tls_names else None
    if note is not None:
        report["tls_echo_note"] = f"TLS echo cells skipped: {note}"
        tls_names = []
    plain = [n for n in runnable if not _contenders.by_name(n).tls_only]
    for name in runnable:
        if name not in plain and name not in tls_names:
            statuses[name] |= {
                "status": "not run",
                "reason": "runs in the TLS echo cells only (--full or --contender)",
            }
    started = time.monotonic()
    with (
        _sigterm_as_interrupt(),
        Children() as children,
        _certificate(bool(tls_names)) as tls,
    ):
        progress("setup", "starting servers", 0, 1)
        names = [n for n in runnable if n in plain or n in tls_names]
        servers = (
            _start_servers(children, names, statuses, tls)
            if _needs_servers(config)
            else {}
        )
        progress("setup", "servers ready", 1, 1)
        loader = Loader(children)
        cells = _cells(config, children, loader, None if tls is None else tls.cert)
        plain_servers = {n: s for n, s in servers.items() if n in plain}
        for scenario in config.scenarios:
            if scenario == "micro":
                report["scenarios"]["micro"] = _micro(children, config, progress)
                continue
            rows = _run_cells(
                scenario, cells[scenario], plain_servers, statuses, progress
            )
            report["scenarios"][scenario] = (
                _merge_syscalls(rows) if scenario == "fanout" else rows
            )
            if scenario == "echo" and cells["tls-echo"]:
                tls_servers = {
                    n: s
                    for n, s in servers.items()
                    if n in tls_names and s.tls_port is not None
                }
                report["scenarios"]["tls-echo"] = _run_cells(
                    "tls-echo", cells["tls-echo"], tls_servers, statuses, progress
                )
        loader.reset()
        report["server_pids"] = [s.child.pid for s in servers.values()]
    for status in statuses.values():
        if status["status"] == "pending":  # only micro-benchmarks ran
            status |= {"status": "not run", "reason": "no scenario needed a server"}
    report["contenders"] = list(statuses.values())
    report["seconds"] = time.monotonic() - started
    return report


def tls_contenders(config: BenchConfig, runnable: list[str]) -> list[str]:
    """The contenders of ``runnable`` that the TLS echo cells measure."""
    if "echo" not in config.scenarios or not config.tls_echo_cells:
        return []
    wanted = config.tls_contenders
    return [
        name
        for name in runnable
        if _contenders.by_name(name).tls and (wanted is None or name in wanted)
    ]


@contextmanager
def _certificate(needed: bool) -> Iterator[CertFiles | None]:
    """A throwaway certificate for the run's TLS echo, if ``needed``."""
    if not needed:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bufkit-bench-tls-") as tmp:
        yield _certs.self_signed(Path(tmp))


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
