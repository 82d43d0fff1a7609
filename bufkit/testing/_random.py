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
    AcceptAllBut,
    AcceptBuffers,
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
    interrupt: float = 0.0,
    fault: float = 0.0,
    errnos: Sequence[int] = SEND_FAULTS,
) -> list[SendStep]:
    """Draw a send schedule of ``steps`` steps from ``seed``.

    Most steps are partial sends whose cut is placed relative to what a send
    offers (one byte, all but one byte, all but a few, a buffer boundary of a
    gather list), so they cut the data whatever its size.

    Args:
        seed: a seed or a :class:`random.Random` to draw from.
        steps: the schedule's length (then the fake accepts everything).
        max_accept: the largest count of ``Accept(n)`` and ``AcceptAllBut(n)``.
        would_block: the chance of each step being :class:`WouldBlock`.
        interrupt: the chance of each step being :class:`Interrupt`. None by
            default: Python retries ``EINTR`` inside real socket calls (PEP
            475), so a real socket never raises it.
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
        else:
            schedule.append(_cut(rng, max_accept))
    if errnos and rng.random() < fault:
        schedule.insert(rng.randint(0, len(schedule)), Fail(rng.choice(errnos)))
    return schedule


def _cut(rng: random.Random, max_accept: int) -> SendStep:
    kind = rng.randrange(6)
    n = 1 if kind < 2 else rng.randint(1, max(1, max_accept))
    if kind == 5:
        return AcceptAll() if rng.random() < 0.5 else AcceptBuffers(rng.randint(1, 8))
    return Accept(n) if kind % 2 == 0 else AcceptAllBut(n)


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
    interrupt: float = 0.0,
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
        interrupt: the chance of an :class:`Interrupt` before each chunk
            (none by default; see :func:`random_send_schedule`).
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
