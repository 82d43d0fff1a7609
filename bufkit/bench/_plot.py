"""``--plot FILE.png``: the run's figures drawn with matplotlib (Agg)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["plot"]

Row = dict[str, Any]


def _ok(rows: list[Row]) -> list[Row]:
    return [r for r in rows if "error" not in r]


def _contenders(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(r["contender"] for r in rows))


def _idle(ax: Any, rows: list[Row]) -> None:
    counts = sorted({r["connections"] for r in rows})
    if len(counts) == 1:
        names = _contenders(rows)
        values = [next(r for r in rows if r["contender"] == n) for n in names]
        ax.barh(names, [r["rss_per_conn"] / 1000 for r in values])
        ax.set_xscale("log")
        ax.set_xlabel(f"RSS per idle connection (KB), {counts[0]:,} connections")
        ax.set_title("Idle memory")
        return
    for name in _contenders(rows):
        points = sorted(
            (r["connections"], r["rss_per_conn"] / 1000)
            for r in rows
            if r["contender"] == name
        )
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("idle connections")
    ax.set_ylabel("RSS per connection (KB)")
    ax.set_title("Idle memory")
    ax.legend(fontsize="x-small")


def _cell_label(row: Row) -> str:
    size = row["size"]
    text = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
    return f"{row['connections']} x {text}"


def _echo(ax: Any, rows: list[Row]) -> None:
    """Server CPU per message in every cell, with the range of the rounds."""
    key = "server_cpu_us_per_msg"
    cells = sorted({(r["connections"], r["size"]) for r in rows})
    names = _contenders(rows)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        found = {
            (r["connections"], r["size"]): r for r in rows if r["contender"] == name
        }
        xs = [j + i * width for j in range(len(cells))]
        mids: list[float] = []
        errors: list[list[float]] = [[], []]
        for cell in cells:
            row = found.get(cell)
            value = row.get(key) if row else None
            bounds = (row.get(f"{key}_range") if row else None) or [value, value]
            # No bar for an unmeasured cell, never a made-up zero.
            mid = math.nan if value is None else value
            mids.append(mid)
            errors[0].append(0.0 if value is None else value - bounds[0])
            errors[1].append(0.0 if value is None else bounds[1] - value)
        ax.bar(xs, mids, width, yerr=errors, capsize=1, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cells))])
    labels = [_cell_label({"connections": c, "size": s}) for c, s in cells]
    ax.set_xticklabels(labels, rotation=30, fontsize="small")
    ax.set_yscale("log")
    ax.set_ylabel("server CPU µs per message (log; bars: range)")
    ax.set_title("Echo: server CPU per message (conns x size)")
    ax.legend(fontsize="x-small", ncols=2)


def _fanout(ax: Any, rows: list[Row]) -> None:
    traced = [r for r in rows if r.get("syscalls_per_response") is not None]
    names = _contenders(traced)
    totals = [next(r for r in traced if r["contender"] == n) for n in names]
    ax.barh(names, [r["syscalls_per_response"] for r in totals], label="all syscalls")
    ax.barh(names, [r["send_calls_per_response"] for r in totals], label="send calls")
    ax.set_xlabel("syscalls per fanout response")
    ax.set_title("Many small writes")
    ax.legend(fontsize="x-small")


def plot(report: dict[str, Any], path: str) -> None:
    """Draw idle memory, echo CPU per message and syscalls per response to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = report["scenarios"]
    panels = [
        (draw, _ok(scenarios.get(name, [])))
        for name, draw in (("idle", _idle), ("echo", _echo), ("fanout", _fanout))
    ]
    panels = [(draw, rows) for draw, rows in panels if rows]
    widths = [2 if draw is _echo else 1 for draw, _ in panels] or [1]
    fig, axes = plt.subplots(
        1,
        max(1, len(panels)),
        figsize=(6 * sum(widths), 5.5),
        gridspec_kw={"width_ratios": widths},
    )
    axes_list = list(axes) if len(panels) > 1 else [axes]
    for ax, (draw, rows) in zip(axes_list, panels, strict=False):
        draw(ax, rows)
    fig.suptitle(f"bufkit bench, {report['environment']['date']}", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
