"""``--markdown FILE``: a run's tables as Markdown, for the docs page."""

from __future__ import annotations

from typing import Any

from bufkit.bench._environment import summary_line
from bufkit.bench._report import CAPTION, TITLES, grid, targets_grid

__all__ = ["to_markdown"]


def _table(headers: list[str], cells: list[list[str]]) -> list[str]:
    def line(values: list[str]) -> str:
        padded = values + [""] * (len(headers) - len(values))
        return "| " + " | ".join(v.replace("|", "/") for v in padded) + " |"

    align = ["---"] + ["---:"] * (len(headers) - 1)
    return [line(headers), "| " + " | ".join(align) + " |", *map(line, cells)]


def to_markdown(report: dict[str, Any], command: str = "bufkit bench") -> str:
    """Return the run's figures and targets as Markdown tables."""
    out = [
        f"Command: `{command}`, {report['seconds']:.0f} s.",
        "",
        f"Machine: {summary_line(report['environment'])}.",
        "",
    ]
    config = report.get("config") or {}
    if "rounds" in config:
        out += [
            f"Each echo and fanout cell: {config['rounds']} rounds of "
            f"{config['duration']} s (after {config['warmup']} s of warm-up), "
            "round-robin across the contenders.",
            "",
        ]
    for scenario, rows in report["scenarios"].items():
        if not rows:
            continue
        out += [f"**{TITLES[scenario]}**", "", *_table(*grid(scenario, rows)), ""]
        if scenario != "micro":
            out += [f"{CAPTION}.", ""]
    skipped = [c for c in report["contenders"] if c["status"] != "ran"]
    for contender in skipped:
        out.append(
            f"- {contender['name']} {contender['status']}: {contender['reason']}"
        )
    if skipped:
        out.append("")
    if report.get("targets"):
        out += ["**Targets**", "", *_table(*targets_grid(report["targets"])), ""]
    return "\n".join(out)
