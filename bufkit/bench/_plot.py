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


def _echo(ax: Any, rows: list[Row]) -> None:
    conns = min((r["connections"] for r in rows), default=1)
    rows = [r for r in rows if r["connections"] == conns]
    sizes = sorted({r["size"] for r in rows})
    names = _contenders(rows)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = {r["size"]: r["mb_per_s"] for r in rows if r["contender"] == name}
        xs = [j + i * width for j in range(len(sizes))]
        heights = [values.get(s) for s in sizes]  # no bar for an unmeasured cell
        ax.bar(xs, [math.nan if h is None else h for h in heights], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))])
    ax.set_xticklabels([f"{s // 1024} KiB" if s >= 1024 else f"{s} B" for s in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("MB/s (log)")
    ax.set_title(f"Echo throughput, {conns} connection(s)")
    ax.legend(fontsize="x-small")


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
    """Draw idle memory, echo throughput and syscalls per response to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = report["scenarios"]
    panels = [
        (draw, _ok(scenarios.get(name, [])))
        for name, draw in (("idle", _idle), ("echo", _echo), ("fanout", _fanout))
    ]
    panels = [(draw, rows) for draw, rows in panels if rows]
    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 5)
    )
    axes_list = list(axes) if len(panels) > 1 else [axes]
    for ax, (draw, rows) in zip(axes_list, panels, strict=False):
        draw(ax, rows)
    fig.suptitle(f"bufkit bench, {report['environment']['date']}", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
