"""The bench's output: a rich table per scenario, ratios to asyncio and to C.

The headline of every echo and fanout cell is the server's CPU per message
(per response), the median of the cell's rounds with their range. Each
judged figure of a contender is shown beside its ratio to plain asyncio's
figure and to the C server's in the same cell (same connections, same
message size), measured in the same run: on a shared machine the ratios are
what to read, the absolute figures drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs
from rich.console import Console
from rich.table import Table

from bufkit.bench._contenders import BASELINE, LIMIT
from bufkit.bench._environment import summary_line

__all__ = [
    "CAPTION",
    "GUIDANCE",
    "NOT_MEASURED",
    "TITLES",
    "grid",
    "render",
    "targets_grid",
]

Row = dict[str, Any]
Format = Callable[[Any], str]

GUIDANCE: Final = (
    "Server CPU per message is the figure to read, with its ratios to asyncio and "
    "to the C server; MB/s drifts with the machine's load (one connection is "
    "bound by latency: its MB/s measures the scheduler). A target whose rounds "
    "disagree by more than its margin is unsettled: run again, or with --full."
)


#: The text of a cell whose figure the run did not measure.
NOT_MEASURED: Final = "not measured"


def _num(fmt: str) -> Format:
    return lambda v: NOT_MEASURED if v is None else format(v, fmt)


def _text(value: Any) -> str:
    return NOT_MEASURED if value is None else str(value)


def _kb(value: Any) -> str:
    return NOT_MEASURED if value is None else f"{value / 1000:.2f} KB"


def _bytes(value: Any) -> str:
    return NOT_MEASURED if value is None else f"{value:,} B"


def _size(value: Any) -> str:
    return f"{value // 1024} KiB" if value >= 1024 else f"{value} B"


def _ns(value: Any) -> str:
    if value is None:
        return NOT_MEASURED
    return f"{value / 1000:.2f} µs" if value >= 1000 else f"{value:.0f} ns"


def _utils(value: Any) -> str:
    if value is None or None in value:
        return NOT_MEASURED
    return f"{value[0]:.0%}/{value[1]:.0%}"


def _value(row: Row, key: str) -> Any:
    if key == "cpu_utils":
        return row.get("server_util"), row.get("client_util")
    return row.get(key)


@attrs.frozen
class _Column:
    key: str
    header: str
    fmt: Format
    ratio: bool = False  #: followed by "x aio" and "x C" columns
    spread: bool = False  #: followed by the range of its rounds


#: Per scenario: the row keys naming a cell, then its columns.
_COLUMNS: Final[dict[str, tuple[tuple[str, ...], list[_Column]]]] = {
    "idle": (
        ("connections",),
        [
            _Column("connections", "conns", _num(",")),
            _Column("rss_per_conn", "RSS/conn idle", _kb, ratio=True),
            _Column("rss_per_conn_after_rt", "after 1 B each", _kb, ratio=True),
            _Column("pool_bytes_idle", "pool idle", _bytes),
            _Column("pool_bytes_after_rt", "pool after", _bytes),
            _Column("buffer_bytes_after_rt", "buffers held", _bytes),
        ],
    ),
    "echo": (
        ("connections", "size"),
        [
            _Column("connections", "conns", _num(",")),
            _Column("size", "size", _size),
            _Column("server_cpu_us_per_msg", "srv µs/msg", _num(".2f"), True, True),
            _Column("server_cpu_s_per_gb", "srv s/GB", _num(".3f")),
            _Column("mb_per_s", "MB/s", _num(",.0f"), ratio=True),
            _Column("msgs_per_s", "msg/s", _num(",.0f")),
            _Column("saturated", "saturated", _text),
            _Column("cpu_utils", "CPU srv/cli", _utils),
        ],
    ),
    "tls-echo": (
        ("connections", "size"),
        [
            _Column("connections", "conns", _num(",")),
            _Column("size", "size", _size),
            _Column("server_cpu_us_per_msg", "srv µs/msg", _num(".2f"), True, True),
            _Column("server_cpu_s_per_gb", "srv s/GB", _num(".3f"), True),
            _Column("mb_per_s", "MB/s", _num(",.0f"), ratio=True),
            _Column("saturated", "saturated", _text),
            _Column("cpu_utils", "CPU srv/cli", _utils),
        ],
    ),
    "fanout": (
        ("connections",),
        [
            _Column("connections", "conns", _num(",")),
            _Column(
                "server_cpu_us_per_response", "srv µs/resp", _num(".1f"), True, True
            ),
            _Column("server_cpu_s_per_gb", "srv s/GB", _num(".3f")),
            _Column("responses_per_s", "responses/s", _num(",.0f"), ratio=True),
            _Column("send_calls_per_response", "sends/resp", _num(".2f")),
            _Column("syscalls_per_response", "syscalls/resp", _num(".2f")),
            _Column("saturated", "saturated", _text),
            _Column("cpu_utils", "CPU srv/cli", _utils),
        ],
    ),
}

CAPTION: Final = (
    f"x aio, x C: ratio to plain {BASELINE} and to the C server ({LIMIT}) in the "
    "same cell, same run; srv: server CPU (user + system) over the measuring "
    "window, median of the rounds; range: min-max over the rounds"
)

TITLES: Final = {
    "idle": "Idle memory: RSS growth per connection, pool bytes in use",
    "echo": "Echo: server CPU per message (pipelined; median of interleaved rounds)",
    "tls-echo": "TLS echo: server CPU per message and per GB over TLS (x aio: "
    "asyncio ssl=)",
    "fanout": "Fanout: 1-byte request -> 32 writes of 100 B; server CPU per response",
    "micro": "Queue and pool micro-benchmarks (best of repeats)",
}


def _reference(
    rows: list[Row], row: Row, keys: tuple[str, ...], name: str
) -> Row | None:
    for other in rows:
        same = all(other.get(k) == row.get(k) for k in keys)
        if same and other["contender"] == name and "error" not in other:
            return other
    return None


def _ratio(value: Any, base: Any) -> str:
    if value is None or not base:
        return NOT_MEASURED
    return f"{value / base:.2f}x"


def _range(row: Row, column: _Column) -> str:
    bounds = row.get(f"{column.key}_range")
    if not bounds or None in bounds:
        return NOT_MEASURED
    return f"{column.fmt(bounds[0])}-{column.fmt(bounds[1])}"


def _headers(columns: list[_Column], with_limit: bool) -> list[str]:
    headers = ["contender"]
    for column in columns:
        headers.append(column.header)
        if column.ratio:
            headers += ["x aio", "x C"] if with_limit else ["x aio"]
        if column.spread:
            headers.append("range")
    return headers


def grid(scenario: str, rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Return a scenario's headers and cell texts (an error row has 2 cells).

    The "x C" columns appear when the C server is among the rows.
    """
    if scenario == "micro":
        return _micro_grid(rows)
    keys, columns = _COLUMNS[scenario]
    with_limit = any(r["contender"] == LIMIT and "error" not in r for r in rows)
    cells: list[list[str]] = []
    for row in rows:
        if "error" in row:
            cells.append([row["contender"], f"error: {row['error'][:100]}"])
            continue
        refs = [_reference(rows, row, keys, BASELINE)]
        if with_limit:
            refs.append(_reference(rows, row, keys, LIMIT))
        line = [row["contender"]]
        for column in columns:
            line.append(column.fmt(_value(row, column.key)))
            if column.ratio:
                line += [
                    _ratio(row.get(column.key), ref.get(column.key) if ref else None)
                    for ref in refs
                ]
            if column.spread:
                line.append(_range(row, column))
        cells.append(line)
    return _headers(columns, with_limit), cells


def _micro_grid(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    headers = ["benchmark", "bufkit", "plain", "plain way", "ratio"]
    cells: list[list[str]] = []
    for row in rows:
        if "skipped" in row or "error" in row:
            reason = row.get("skipped") or row.get("error", "")
            cells.append([row["name"], f"skipped: {reason}"])
            continue
        cells.append(
            [
                row["name"],
                _ns(row["bufkit_ns"]),
                _ns(row["baseline_ns"]),
                row["baseline"],
                _ratio(row["bufkit_ns"], row["baseline_ns"]),
            ]
        )
    return headers, cells


def targets_grid(targets: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Return the targets' headers and cell texts."""
    headers = ["target", "contender", "measured", "result", "margin"]
    cells = [
        [t["target"], t["contender"], t["measured"], _verdict(t), t["margin"]]
        for t in targets
    ]
    return headers, cells


def _verdict(target: Row) -> str:
    verdict = target.get("verdict")
    if verdict is None:  # a report written before verdicts had names
        hit = target["hit"]
        verdict = "reported" if hit is None else ("hit" if hit else "missed")
    return "MISSED" if verdict == "missed" else str(verdict)


_COLOURED: Final = {
    "hit": "[green]hit[/green]",
    "MISSED": "[red]MISSED[/red]",
    "unsettled": "[yellow]unsettled[/yellow]",
}


def _table(title: str, grid: tuple[list[str], list[list[str]]], caption: str) -> Table:
    headers, cells = grid
    table = Table(title=title, title_justify="left", caption=caption or None)
    for i, header in enumerate(headers):
        style = "cyan" if header in ("x aio", "x C") else None
        table.add_column(header, justify="left" if i == 0 else "right", style=style)
    for line in cells:
        text = [c.replace("[", "\\[") for c in line]
        if len(line) == 2 and len(headers) > 2:
            text[1] = f"[red]{text[1]}[/red]"
        text = [_COLOURED.get(c, c) for c in text]
        table.add_row(*text)
    return table


def render(report: dict[str, Any], console: Console) -> None:
    """Print a finished run's tables, skipped contenders, targets and summary."""
    for scenario, rows in report["scenarios"].items():
        if not rows:
            continue
        console.print()
        caption = "" if scenario == "micro" else CAPTION
        console.print(_table(TITLES[scenario], grid(scenario, rows), caption))
    for row in report["scenarios"].get("idle", []):
        left, pool = row.get("fds_left_open"), row.get("pool_bytes_closed")
        if left or pool:
            console.print(
                f"[yellow]leak[/yellow] {row['contender']}: {left} connection(s) "
                f"still open and {pool or 0} pool bytes in use 3 s after the "
                "clients closed"
            )
    unmeasured = {
        row["contender"]: row.get("syscall_note") or "no strace run"
        for row in report["scenarios"].get("fanout", [])
        if "error" not in row and row.get("syscalls_per_response") is None
    }
    for name, note in unmeasured.items():
        console.print(f"syscalls of {name} not measured: {note}")
    for contender in report["contenders"]:
        if contender["status"] in ("skipped", "failed"):
            console.print(
                f"[yellow]{contender['status']}[/yellow] {contender['name']}: "
                f"{contender['reason']}"
            )
    if report.get("targets"):
        console.print()
        title = "Targets (reported, not asserted)"
        console.print(_table(title, targets_grid(report["targets"]), ""))
    console.print()
    console.print(f"[bold]machine[/bold] {summary_line(report['environment'])}")
    console.print(f"[dim]{GUIDANCE}[/dim]")
    load = report["environment"].get("load_average")
    cores = report["environment"].get("cores") or 1
    if load and load[0] > 0.5 * cores:
        console.print(
            f"[yellow]load average {load[0]:.2f} on {cores} cores at the "
            "start: this run shared the machine[/yellow]"
        )
