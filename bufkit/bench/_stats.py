"""Medians, ranges and verdicts: how the bench turns rounds into findings.

Every throughput cell is measured in several rounds, interleaved across the
contenders, so a machine that gets busier during a run shifts every
contender alike. A cell reports the median of its rounds and their range
(min-max). A target is judged on the median, and only when the range is no
wider than the median's margin to the target: otherwise the rounds disagree
by more than the finding and the cell is *unsettled*, neither hit nor missed.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Final, Literal

import attrs

__all__ = [
    "HIT",
    "MISSED",
    "REPORTED",
    "UNSETTLED",
    "Judged",
    "Spread",
    "judge",
    "paired_ratios",
    "spread",
]

Verdict = Literal["hit", "missed", "unsettled", "reported"]
Better = Literal["lower", "higher"]

HIT: Final = "hit"
MISSED: Final = "missed"
UNSETTLED: Final = "unsettled"
REPORTED: Final = "reported"


@attrs.frozen
class Spread:
    """The median of some rounds and their range."""

    median: float
    low: float
    high: float

    @property
    def width(self) -> float:
        """How far apart the lowest and the highest round are."""
        return self.high - self.low


def spread(values: Sequence[float]) -> Spread:
    """Return the median and range of ``values`` (at least one).

    Raises:
        ValueError: ``values`` is empty.
    """
    if not values:
        raise ValueError("no rounds to summarise")
    return Spread(statistics.median(values), min(values), max(values))


def paired_ratios(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """Return ``ours[i] / theirs[i]`` for the rounds both sides measured.

    Round ``i`` of two contenders ran back to back, so each ratio is taken
    under the same conditions; drift between rounds cancels out of it.
    Rounds where ``theirs`` is zero are left out.
    """
    return [a / b for a, b in zip(ours, theirs, strict=False) if b]


@attrs.frozen
class Judged:
    """A target judged on some rounds."""

    verdict: Verdict
    spread: Spread
    margin: float  #: distance from the median to the threshold


def judge(values: Sequence[float], threshold: float, better: Better) -> Judged:
    """Judge the rounds ``values`` against ``threshold``.

    The target is met when the median is at or below the threshold
    (``better="lower"``) or at or above it (``better="higher"``). The verdict
    is ``unsettled`` when the range of the rounds is wider than the median's
    margin to the threshold, else ``hit`` or ``missed``.

    Raises:
        ValueError: ``values`` is empty.
    """
    summary = spread(values)
    margin = abs(summary.median - threshold)
    if summary.width > margin:
        return Judged(UNSETTLED, summary, margin)
    if better == "lower":
        met = summary.median <= threshold
    else:
        met = summary.median >= threshold
    return Judged(HIT if met else MISSED, summary, margin)
