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

__all__ = ["GUIDANCE", "render"]

Row = dict[str, Any]
Format = Callable[[Any], str]

GUIDANCE: Final = (
    "Ratios to plain asyncio count; absolute figures drift with the machine's load. "
    "On a shared or noisy machine, close other work, run twice (or --full) and "
    "compare ratios, not MB/s."
)


def _num(fmt: str) -> Format:
    return lambda v: "-" if v is None else format(v, fmt)


def _kb(value: Any) -> str:
    return "-" if value is None else f"{value / 1000:.2f} KB"


def _bytes(value: Any) -> str:
    return "-" if value is None else f"{value:,} B"


def _size(value: Any) -> str:
    return f"{value // 1024} KiB" if value >= 1024 else f"{value} B"


def _ns(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} µs" if value >= 1000 else f"{value:.0f} ns"


def _utils(value: Any) -> str:
    return "-" if value is None else f"{value[0]:.0%}/{value[1]:.0%}"


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
            ("saturated", "saturated", str, False),
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
            ("saturated", "saturated", str, False),
            ("cpu_utils", "CPU srv/cli", _utils, False),
        ],
    ),
}

_CAPTION: Final = f"x aio: ratio to plain {BASELINE} in the same cell, same run"

_TITLES: Final = {
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
        return "-"
    return f"{value / base:.2f}x"


def _scenario_table(scenario: str, rows: list[Row], labels: dict[str, str]) -> Table:
    keys, columns = _COLUMNS[scenario]
    table = Table(title=_TITLES[scenario], title_justify="left", caption=_CAPTION)
    table.add_column("contender", no_wrap=True)
    for _, header, _, ratio in columns:
        table.add_column(header, justify="right")
        if ratio:
            table.add_column("x aio", justify="right", style="cyan")
    for row in rows:
        label = labels.get(row["contender"], row["contender"])
        if "error" in row:
            table.add_row(label, f"[red]error: {row['error'][:100]}[/red]")
            continue
        base = _baseline(rows, row, keys)
        cells = [label]
        for key, _, fmt, ratio in columns:
            cells.append(fmt(_value(row, key)))
            if ratio:
                cells.append(_ratio(row.get(key), base.get(key) if base else None))
        table.add_row(*cells)
    return table


def _micro_table(rows: list[Row]) -> Table:
    table = Table(title=_TITLES["micro"], title_justify="left")
    for header in ("benchmark", "bufkit", "baseline", "plain way", "ratio"):
        table.add_column(header, justify="left" if header == "benchmark" else "right")
    for row in rows:
        if "skipped" in row or "error" in row:
            table.add_row(
                row["name"],
                "skipped" if "skipped" in row else "error",
                "",
                row.get("skipped") or row.get("error", ""),
                "",
            )
            continue
        table.add_row(
            row["name"],
            _ns(row["bufkit_ns"]),
            _ns(row["baseline_ns"]),
            row["baseline"],
            _ratio(row["bufkit_ns"], row["baseline_ns"]),
        )
    return table


def _targets_table(targets: list[Row]) -> Table:
    table = Table(title="Targets (reported, not asserted)", title_justify="left")
    for header in ("target", "contender", "measured", "result", "margin"):
        table.add_column(header)
    for t in targets:
        result = "[green]hit[/green]" if t["hit"] else "[red]missed[/red]"
        table.add_row(t["target"], t["contender"], t["measured"], result, t["margin"])
    return table


def render(report: dict[str, Any], console: Console) -> None:
    """Print a finished run's tables, skipped contenders, targets and summary."""
    labels = {c["name"]: c["name"] for c in report["contenders"]}
    for scenario, rows in report["scenarios"].items():
        if not rows:
            continue
        console.print()
        if scenario == "micro":
            console.print(_micro_table(rows))
        else:
            console.print(_scenario_table(scenario, rows, labels))
    for row in report["scenarios"].get("idle", []):
        left, pool = row.get("fds_left_open"), row.get("pool_bytes_closed")
        if left or pool:
            console.print(
                f"[yellow]leak[/yellow] {row['contender']}: {left} connection(s) "
                f"still open and {pool or 0} pool bytes in use 3 s after the "
                "clients closed"
            )
    for contender in report["contenders"]:
        if contender["status"] in ("skipped", "failed"):
            console.print(
                f"[yellow]{contender['status']}[/yellow] {contender['name']}: "
                f"{contender['reason']}"
            )
    if report.get("targets"):
        console.print()
        console.print(_targets_table(report["targets"]))
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
