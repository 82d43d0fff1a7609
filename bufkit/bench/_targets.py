"""The design's performance targets, checked against a run's figures.

Targets are reported, never asserted: a missed target is a finding with a
margin ("1.3x the budget"), not a failure of the bench. Throughput targets
are judged on the server's CPU per message (per response for fanout), from
the ratio of the two contenders in each interleaved round
(:func:`~bufkit.bench._stats.paired_ratios`): the median of those ratios
decides, unless their range is wider than its margin to the target, and then
the target is *unsettled* (:func:`~bufkit.bench._stats.judge`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from bufkit.bench._contenders import LIMIT
from bufkit.bench._stats import HIT, MISSED, Judged, judge, paired_ratios

__all__ = ["TLS_PAIRS", "evaluate"]

Row = dict[str, Any]

_KB: Final = 1000
_FRAMEWORK_PEERS: Final = ("asyncio", "uvloop", "twisted")
#: The contenders whose writes go through bufkit's write queue (PooledProtocol
#: writes through the loop's own transport, so the fanout targets are not its).
_QUEUE_WRITERS: Final = ("bufkit-selectors", "bufkit-stream", "bufkit-stream-uvloop")
_LINEAR: Final = 2.0


def _ok(rows: list[Row]) -> list[Row]:
    return [r for r in rows if "error" not in r]


def _find(rows: list[Row], contender: str, **key: object) -> Row | None:
    for row in rows:
        if row["contender"] == contender and all(
            row.get(k) == v for k, v in key.items()
        ):
            return row
    return None


def _target(
    name: str,
    contender: str,
    measured: str,
    hit: bool | None,
    margin: str,
    verdict: str | None = None,
) -> Row:
    """One target row; ``hit`` None for a figure that is reported, not judged."""
    if verdict is None:
        verdict = "reported" if hit is None else (HIT if hit else MISSED)
    return {
        "target": name,
        "contender": contender,
        "measured": measured,
        "hit": hit,
        "verdict": verdict,
        "margin": margin,
    }


def _judged(
    name: str, contender: str, judged: Judged, unit: str, extra: str = ""
) -> Row:
    """A target row from rounds judged against a ratio."""
    s = judged.spread
    measured = f"{s.median:.2f}x {unit} ({s.low:.2f}-{s.high:.2f}){extra}"
    hit = {HIT: True, MISSED: False}.get(judged.verdict)
    margin = f"{judged.margin:.2f} from the target, rounds {s.width:.2f} apart"
    return _target(name, contender, measured, hit, margin, judged.verdict)


def _cpu_per_byte(row: Row) -> list[float]:
    """The server's CPU seconds per byte in each round of ``row``."""
    return [s["server_cpu"] / s["bytes"] for s in row.get("samples", ())]


def _vs_limit(rows: list[Row], row: Row, key: str, **cell: object) -> str:
    """``; 3.1x C``: the median figure as a multiple of the C server's."""
    limit = _find(rows, LIMIT, **cell)
    if limit is None or not limit.get(key) or row.get(key) is None:
        return ""
    return f"; {row[key] / limit[key]:.1f}x C"


def _bufkit(rows: list[Row]) -> list[str]:
    seen = [r["contender"] for r in rows if r["contender"].startswith("bufkit")]
    return list(dict.fromkeys(seen))


def _idle(rows: list[Row]) -> Iterator[Row]:
    rows = _ok(rows)
    if not rows:
        return
    n = max(r["connections"] for r in rows)
    peers = [
        r for r in rows if r["connections"] == n and r["contender"] in _FRAMEWORK_PEERS
    ]
    best_peer = min((r["rss_per_conn"] for r in peers), default=None)
    for name in _bufkit(rows):
        row = _find(rows, name, connections=n)
        if row is None:
            continue
        pool = row["pool_bytes_idle"]
        if pool is not None:
            yield _target(
                "pool bytes held by idle connections = 0",
                name,
                f"{pool} B at {n} conns",
                pool == 0,
                f"{pool} B",
            )
        rss = row["rss_per_conn"]
        yield _target(
            f"RSS per idle connection <= 1 KB ({n} conns)",
            name,
            f"{rss / _KB:.2f} KB",
            rss <= _KB,
            f"{rss / _KB:.2f}x the budget",
        )
        if best_peer is not None:
            yield _target(
                "RSS per idle connection below every framework peer",
                name,
                f"{rss / _KB:.2f} KB vs best peer {best_peer / _KB:.2f} KB",
                rss < best_peer,
                f"{rss / best_peer:.2f}x the best peer",
            )


def _syscalls(name: str, row: Row) -> Iterator[Row]:
    sends = row.get("send_calls_per_response")
    total = row.get("syscalls_per_response")
    if sends is None or total is None:
        return
    yield _target(
        "<= 1.1 send calls per fanout response",
        name,
        f"{sends:.2f}",
        sends <= 1.1,
        f"{sends / 1.1:.2f}x the budget",
    )
    yield _target(
        "about 3 syscalls per fanout response (<= 3.5)",
        name,
        f"{total:.2f}",
        total <= 3.5,
        f"{total / 3.5:.2f}x the budget",
    )


def _fanout(rows: list[Row]) -> Iterator[Row]:
    rows = _ok(rows)
    writers = [name for name in _bufkit(rows) if name in _QUEUE_WRITERS]
    for name in writers:  # strace ran once per contender: judged once
        row = _find(rows, name)
        if row is not None:
            yield from _syscalls(name, row)
    for conns in dict.fromkeys(r["connections"] for r in rows):
        for name in writers:
            yield from _fanout_cpu(rows, name, conns)


def _fanout_cpu(rows: list[Row], name: str, conns: int) -> Iterator[Row]:
    row = _find(rows, name, connections=conns)
    ours = _cpu_per_byte(row) if row is not None else []
    if row is None or not ours:
        return
    extra = _vs_limit(rows, row, "server_cpu_us_per_response", connections=conns)
    twisted_row = _find(rows, "twisted", connections=conns)
    if twisted_row is not None:
        ratios = paired_ratios(ours, _cpu_per_byte(twisted_row))
        if ratios:
            yield _judged(
                f"fanout server CPU per response <= Twisted ({conns} conns)",
                name,
                judge(ratios, 1.0, "lower"),
                "Twisted",
                extra,
            )
    asyncio_row = _find(rows, "asyncio", connections=conns)
    if asyncio_row is not None:
        ratios = paired_ratios(_cpu_per_byte(asyncio_row), ours)
        if ratios:
            yield _judged(
                f"fanout: asyncio's server CPU per response >= 3.5x ours "
                f"({conns} conns)",
                name,
                judge(ratios, 3.5, "higher"),
                "below asyncio",
                extra,
            )


def _echo(rows: list[Row]) -> Iterator[Row]:
    rows = _ok(rows)
    pairs = [
        ("bufkit-stream-uvloop", "uvloop", (4096, 65536)),
        ("bufkit-selectors", "asyncio", None),
    ]
    for ours, peer, sizes in pairs:
        for row in rows:
            if row["contender"] != ours or (sizes and row["size"] not in sizes):
                continue
            cell = {"connections": row["connections"], "size": row["size"]}
            other = _find(rows, peer, **cell)
            if other is None:
                continue
            ratios = paired_ratios(_cpu_per_byte(row), _cpu_per_byte(other))
            if not ratios:
                continue
            size = row["size"]
            label = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
            yield _judged(
                f"echo server CPU per message <= {peer} "
                f"({row['connections']} conn x {label})",
                ours,
                judge(ratios, 1.0, "lower"),
                peer,
                _vs_limit(rows, row, "server_cpu_us_per_msg", **cell),
            )


#: TLS echo targets: (ours, the peer it must match) in every TLS echo cell.
TLS_PAIRS: Final = (
    ("bufkit-selectors", "asyncio"),
    ("bufkit-stream-uvloop", "uvloop"),
)


def _throughput(row: Row) -> list[float]:
    """The bytes per second of each round of ``row``."""
    return [s["bytes"] / s["seconds"] for s in row.get("samples", ()) if s["seconds"]]


def _tls_echo(rows: list[Row]) -> Iterator[Row]:
    rows = _ok(rows)
    for ours, peer in TLS_PAIRS:
        for row in rows:
            if row["contender"] != ours:
                continue
            cell = {"connections": row["connections"], "size": row["size"]}
            other = _find(rows, peer, **cell)
            if other is None:
                continue
            size = row["size"]
            label = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
            where = f"TLS, {row['connections']} conn x {label}"
            cpu = paired_ratios(_cpu_per_byte(row), _cpu_per_byte(other))
            if cpu:
                yield _judged(
                    f"TLS echo server CPU per GB <= {peer} ssl= ({where})",
                    ours,
                    judge(cpu, 1.0, "lower"),
                    f"{peer} ssl=",
                    _vs_limit(rows, row, "server_cpu_s_per_gb", **cell),
                )
            rate = paired_ratios(_throughput(row), _throughput(other))
            if rate:
                yield _judged(
                    f"TLS echo throughput >= {peer} ssl= ({where})",
                    ours,
                    judge(rate, 1.0, "higher"),
                    f"{peer} ssl=",
                )


def _micro(rows: list[Row]) -> Iterator[Row]:
    for shape in ("1 write", "64 KiB writes"):
        small = _drain(rows, 4, shape)
        large = _drain(rows, 64, shape)
        if small is None or large is None:
            continue
        growth = large["bufkit_ns"] / small["bufkit_ns"]
        yield _target(
            f"queue drain linear, {shape} (cost per call, 4 -> 64 MiB)",
            "WriteQueue",
            f"{growth:.2f}x per call (quadratic: 16x)",
            growth <= _LINEAR,
            f"{growth:.2f}x",
        )
        if large["ratio"] is None:
            continue
        yield _target(
            f"queue drain vs bytearray + del at 64 MiB, {shape}",
            "WriteQueue",
            f"{large['ratio']:.2f}x",
            None,
            f"{large['ratio']:.2f}x",
        )


def _drain(rows: list[Row], mib: int, shape: str) -> Row | None:
    for row in rows:
        name = row.get("name", "")
        if name.startswith(f"drain {mib} MiB,") and "error" not in row:
            one = ", 1 write," in name
            if one == (shape == "1 write"):
                return row
    return None


def evaluate(scenarios: dict[str, list[Row]]) -> list[Row]:
    """Return one row per target that this run's figures can judge."""
    checks = {
        "idle": _idle,
        "fanout": _fanout,
        "echo": _echo,
        "tls-echo": _tls_echo,
        "micro": _micro,
    }
    targets: list[Row] = []
    for scenario, check in checks.items():
        targets.extend(check(scenarios.get(scenario, [])))
    return targets
