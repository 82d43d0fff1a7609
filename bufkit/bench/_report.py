"""The bench's output: a rich table per scenario, ratios to plain asyncio.

Every figure of a contender is shown beside its ratio to plain asyncio's
figure in the same cell (same connections, same message size), measured in
the same run: on a shared machine the ratios are what to read, the absolute
figures drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from bufkit.bench._contenders import BASELINE
from bufkit.bench._environment import summary_line

__all__ = ["GUIDANCE", "NOT_MEASURED", "TITLES", "grid", "render", "targets_grid"]

Row = dict[str, Any]
Format = Callable[[Any], str]

GUIDANCE: Final = (
    "Ratios to plain asyncio count; absolute figures drift with the machine's load. "
    "On a shared or noisy machine, close other work, run twice (or --full) and "
    "compare ratios, not MB/s."
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


#: Per scenario: the row keys naming a cell, then (key, header, format, ratio?).
_COLUMNS: Final[
    dict[str, tuple[tuple[str, ...], list[tuple[str, str, Format, bool]]]]
] = {
    "idle": (
        ("connections",),
        [
            ("connections", "conns", _num(","), False),
            ("rss_per_conn", "RSS/conn idle", _kb, True),
            ("rss_per_conn_after_rt", "after 1 B each", _kb, True),
            ("pool_bytes_idle", "pool idle", _bytes, False),
            ("pool_bytes_after_rt", "pool after", _bytes, False),
            ("buffer_bytes_after_rt", "buffers held", _bytes, False),
        ],
    ),
    "echo": (
        ("connections", "size"),
        [
            ("connections", "conns", _num(","), False),
            ("size", "size", _size, False),
            ("mb_per_s", "MB/s", _num(",.0f"), True),
            ("msgs_per_s", "msg/s", _num(",.0f"), False),
            ("server_cpu_s_per_gb", "srv CPU s/GB", _num(".3f"), True),
            ("saturated", "saturated", _text, False),
            ("cpu_utils", "CPU srv/cli", _utils, False),
        ],
    ),
    "fanout": (
        ("connections",),
        [
            ("connections", "conns", _num(","), False),
            ("responses_per_s", "responses/s", _num(",.0f"), True),
            ("server_cpu_us_per_response", "CPU µs/resp", _num(".1f"), True),
            ("send_calls_per_response", "sends/resp", _num(".2f"), False),
            ("syscalls_per_response", "syscalls/resp", _num(".2f"), False),
            ("saturated", "saturated", _text, False),
            ("cpu_utils", "CPU srv/cli", _utils, False),
        ],
    ),
}

_CAPTION: Final = f"x aio: ratio to plain {BASELINE} in the same cell, same run"

TITLES: Final = {
    "idle": "Idle memory: RSS growth per connection, pool bytes in use",
    "echo": "Echo throughput (pipelined; server and client one core each)",
    "fanout": "Fanout: 1-byte request -> 32 writes of 100 B",
    "micro": "Queue and pool micro-benchmarks (best of repeats)",
}


def _baseline(rows: list[Row], row: Row, keys: tuple[str, ...]) -> Row | None:
    for other in rows:
        same = all(other.get(k) == row.get(k) for k in keys)
        if same and other["contender"] == BASELINE and "error" not in other:
            return other
    return None


def _ratio(value: Any, base: Any) -> str:
    if value is None or not base:
        return NOT_MEASURED
    return f"{value / base:.2f}x"


def grid(scenario: str, rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Return a scenario's headers and cell texts (an error row has 2 cells)."""
    if scenario == "micro":
        return _micro_grid(rows)
    keys, columns = _COLUMNS[scenario]
    headers = ["contender"]
    for _, header, _, ratio in columns:
        headers.append(header)
        if ratio:
            headers.append("x aio")
    cells: list[list[str]] = []
    for row in rows:
        if "error" in row:
            cells.append([row["contender"], f"error: {row['error'][:100]}"])
            continue
        base = _baseline(rows, row, keys)
        line = [row["contender"]]
        for key, _, fmt, ratio in columns:
            line.append(fmt(_value(row, key)))
            if ratio:
                line.append(_ratio(row.get(key), base.get(key) if base else None))
        cells.append(line)
    return headers, cells


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
        [t["target"], t["contender"], t["measured"], _hit(t["hit"]), t["margin"]]
        for t in targets
    ]
    return headers, cells


def _hit(hit: bool | None) -> str:
    if hit is None:
        return "reported"
    return "hit" if hit else "MISSED"


def _table(title: str, grid: tuple[list[str], list[list[str]]], caption: str) -> Table:
    headers, cells = grid
    table = Table(title=title, title_justify="left", caption=caption or None)
    for i, header in enumerate(headers):
        style = "cyan" if header == "x aio" else None
        table.add_column(header, justify="left" if i == 0 else "right", style=style)
    for line in cells:
        text = [c.replace("[", "\\[") for c in line]
        if len(line) == 2 and len(headers) > 2:
            text[1] = f"[red]{text[1]}[/red]"
        text = [
            {"hit": "[green]hit[/green]", "MISSED": "[red]MISSED[/red]"}.get(c, c)
            for c in text
        ]
        table.add_row(*text)
    return table


def render(report: dict[str, Any], console: Console) -> None:
    """Print a finished run's tables, skipped contenders, targets and summary."""
    for scenario, rows in report["scenarios"].items():
        if not rows:
            continue
        console.print()
        caption = "" if scenario == "micro" else _CAPTION
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
