"""Shrinking the explicit examples of the checks, which Hypothesis never shrinks.

Theory of operation: :func:`bufkit.testing.check_sender` first runs a few
hand-written examples that catch the classic bugs on every run (a clogged
peer, a partial send, a gather longer than ``IOV_MAX``). Hypothesis reports a
failing explicit example as it is, unshrunk, so the check shrinks it here, as
Hypothesis would: greedily, trying simpler cases (fewer messages, fewer steps,
simpler steps, shorter messages) and keeping each one that still fails, until
none does. Cost: one run of the example per candidate, at most
``_MAX_RUNS`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

import attrs

from bufkit.testing._errors import CheckFailed
from bufkit.testing._schedule import (
    Accept,
    AcceptAll,
    AcceptAllBut,
    AcceptBuffers,
    SendStep,
)

__all__ = ["SenderCase", "shrink_sender_case"]

_MAX_RUNS: Final = 2000


@attrs.frozen
class SenderCase:
    """One example of :func:`bufkit.testing.check_sender`."""

    messages: tuple[bytes, ...]
    schedule: tuple[SendStep, ...]
    writable_after: tuple[bool, ...] = ()
    burst: bool = False


def shrink_sender_case(
    case: SenderCase, run: Callable[[SenderCase], object]
) -> CheckFailed:
    """Return the failure of the simplest case found that still fails ``run``.

    Args:
        case: an example that fails (``run(case)`` raises :class:`CheckFailed`).
        run: runs one example, raising :class:`CheckFailed` if it fails.

    Returns:
        The :class:`CheckFailed` raised by the simplest failing case.
    """
    failure = _failure(run, case)
    assert failure is not None, "the case to shrink must fail"
    runs = 0
    improved = True
    while improved and runs < _MAX_RUNS:
        improved = False
        for candidate in _simpler(case):
            runs += 1
            found = _failure(run, candidate)
            if found is not None:
                case, failure, improved = candidate, found, True
                break
            if runs >= _MAX_RUNS:
                break
    return failure


def _failure(
    run: Callable[[SenderCase], object], case: SenderCase
) -> CheckFailed | None:
    try:
        run(case)
    except CheckFailed as exc:
        return exc
    return None


def _simpler(case: SenderCase) -> Iterator[SenderCase]:
    """Candidates simpler than ``case``, the biggest simplifications first."""
    if case.burst:
        yield attrs.evolve(case, burst=False)
    messages, schedule, after = case.messages, case.schedule, case.writable_after
    kept = after[: len(messages)]
    while kept and not kept[-1]:
        kept = kept[:-1]  # a trailing False changes nothing
    if kept != after:
        yield attrs.evolve(case, writable_after=kept)
    for size in sorted({len(schedule) // 2, 1} - {0}, reverse=True):
        for i in range(len(schedule) - size, -1, -size):
            yield attrs.evolve(case, schedule=schedule[:i] + schedule[i + size :])
    for i in range(len(messages) - 1, -1, -1):
        yield attrs.evolve(
            case,
            messages=messages[:i] + messages[i + 1 :],
            writable_after=after[:i] + after[i + 1 :],
        )
    for i, flag in enumerate(after):
        if flag:
            yield attrs.evolve(
                case, writable_after=(*after[:i], False, *after[i + 1 :])
            )
    for i, step in enumerate(schedule):
        for simpler in _simpler_steps(step):
            yield attrs.evolve(
                case, schedule=(*schedule[:i], simpler, *schedule[i + 1 :])
            )
    for i, message in enumerate(messages):
        for shorter in (message[: len(message) // 2], message[:-1]):
            if len(shorter) < len(message):
                yield attrs.evolve(
                    case, messages=(*messages[:i], shorter, *messages[i + 1 :])
                )


def _simpler_steps(step: SendStep) -> list[SendStep]:
    """Steps simpler than ``step``: accept everything, or cut at one byte."""
    if isinstance(step, AcceptAll):
        return []
    options: list[SendStep] = [AcceptAll()]
    if isinstance(step, Accept | AcceptAllBut) and step.n > 1:
        options += [type(step)(1), type(step)(step.n // 2)]
    if isinstance(step, AcceptAllBut | AcceptBuffers):
        options.append(Accept(1))
    return options
