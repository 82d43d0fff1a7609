"""Seeded random schedules: quick fuzzing and reproductions without Hypothesis.

Theory of operation: each function draws a schedule from a
:class:`random.Random` (or a seed), so the same seed always gives the same
schedule; print the seed of a failing run to reproduce it. Faults are rare by
design: a schedule holds at most one, at a random place. Cost: O(steps).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from bufkit.testing._schedule import (
    RECV_FAULTS,
    SEND_FAULTS,
    Accept,
    AcceptAll,
    Deliver,
    Eof,
    Fail,
    Interrupt,
    RecvStep,
    SendStep,
    WouldBlock,
)

__all__ = ["random_cuts", "random_recv_schedule", "random_send_schedule"]


def _rng(seed: int | random.Random) -> random.Random:
    return seed if isinstance(seed, random.Random) else random.Random(seed)


def _pause(rng: random.Random, would_block: float, interrupt: float) -> list[RecvStep]:
    r = rng.random()
    if r < interrupt:
        return [Interrupt()]
    return [WouldBlock()] if r < interrupt + would_block else []


def random_send_schedule(
    seed: int | random.Random,
    *,
    steps: int = 16,
    max_accept: int = 4096,
    would_block: float = 0.3,
    interrupt: float = 0.05,
    fault: float = 0.0,
    errnos: Sequence[int] = SEND_FAULTS,
) -> list[SendStep]:
    """Draw a send schedule of ``steps`` steps from ``seed``.

    Args:
        seed: a seed or a :class:`random.Random` to draw from.
        steps: the schedule's length (then the fake accepts everything).
        max_accept: the largest partial send, ``Accept(1..max_accept)``.
        would_block: the chance of each step being :class:`WouldBlock`.
        interrupt: the chance of each step being :class:`Interrupt`.
        fault: the chance that one step, at a random place, is a
            :class:`Fail` with one of ``errnos``.
        errnos: the errors a fault is drawn from.

    Returns:
        The schedule, a list of steps.
    """
    rng = _rng(seed)
    schedule: list[SendStep] = []
    for _ in range(steps):
        r = rng.random()
        if r < interrupt:
            schedule.append(Interrupt())
        elif r < interrupt + would_block:
            schedule.append(WouldBlock())
        elif rng.random() < 0.1:
            schedule.append(AcceptAll())
        else:
            schedule.append(Accept(rng.randint(1, max_accept)))
    if errnos and rng.random() < fault:
        schedule.insert(rng.randint(0, len(schedule)), Fail(rng.choice(errnos)))
    return schedule


def random_cuts(
    seed: int | random.Random, data: bytes, *, max_chunk: int
) -> list[bytes]:
    """Cut ``data`` into chunks of 1 to ``max_chunk`` bytes at random points."""
    rng = _rng(seed)
    chunks, start = [], 0
    while start < len(data):
        end = min(len(data), start + rng.randint(1, max_chunk))
        chunks.append(data[start:end])
        start = end
    return chunks


def random_recv_schedule(
    seed: int | random.Random,
    data: bytes,
    *,
    max_chunk: int = 4096,
    would_block: float = 0.3,
    interrupt: float = 0.05,
    eof: bool = True,
    fault: float = 0.0,
    errnos: Sequence[int] = RECV_FAULTS,
) -> list[RecvStep]:
    """Draw a receive schedule that delivers ``data`` in random chunks.

    Args:
        seed: a seed or a :class:`random.Random` to draw from.
        data: the bytes to deliver, in order.
        max_chunk: the largest chunk one :class:`Deliver` holds.
        would_block: the chance of a :class:`WouldBlock` before each chunk.
        interrupt: the chance of an :class:`Interrupt` before each chunk.
        eof: end with :class:`Eof` (else the fake blocks once done).
        fault: the chance that a :class:`Fail` with one of ``errnos`` cuts
            the stream short at a random chunk.
        errnos: the errors a fault is drawn from.

    Returns:
        The schedule, a list of steps.
    """
    rng = _rng(seed)
    schedule: list[RecvStep] = []
    for chunk in random_cuts(rng, data, max_chunk=max_chunk):
        schedule += _pause(rng, would_block, interrupt)
        schedule.append(Deliver(chunk))
    schedule += _pause(rng, would_block, interrupt)
    if errnos and rng.random() < fault:
        del schedule[rng.randint(0, len(schedule)) :]
        schedule.append(Fail(rng.choice(errnos)))
    elif eof:
        schedule.append(Eof())
    return schedule
