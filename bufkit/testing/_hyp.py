"""The Hypothesis side of the conformance checks (imported only when they run).

Theory of operation: each check builds a ``@given`` function over messages and
schedules from :mod:`bufkit.testing.strategies`, adds explicit examples for the
classic bugs (a partial send, ``EAGAIN`` after a partial send, a gather longer
than ``IOV_MAX``, a stream cut inside a message), and runs it. Hypothesis
shrinks a failure toward no fault; the raised
:class:`~bufkit.testing.CheckFailed` carries the verdict of the shrunk example.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, example, given, settings
from hypothesis import seed as fix_seed
from hypothesis import strategies as st

from bufkit.testing import _config
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._recvcheck import MakeReceiver, check_receiver_example
from bufkit.testing._schedule import Accept, Fail, RecvStep, SendStep, WouldBlock
from bufkit.testing._sendcheck import Sender, check_sender_example
from bufkit.testing.strategies import (
    record_fault_coverage,
    recv_schedules,
    send_schedules,
)

__all__ = ["run_receiver_check", "run_sender_check"]


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )


def _with_fault(pair: tuple[list[SendStep], int | None]) -> list[SendStep]:
    steps, fault = pair
    return steps if fault is None else [*steps, Fail(fault)]


def run_sender_check(
    make_sender: Callable[[FakeSocket], Sender],
    *,
    max_examples: int,
    max_message: int,
    max_messages: int,
    faults: Sequence[int],
    interrupts: bool,
    iov_max: int,
    max_buffered: int | None,
    seed: int | None,
) -> None:
    """Run :func:`bufkit.testing.check_sender` (see there)."""
    fault = st.none() | st.sampled_from(list(faults)) if faults else st.none()
    prefix = send_schedules(max_accept=max(1, max_message), interrupts=interrupts)

    @_settings(max_examples)
    @example(messages=[b"ab"], schedule=[Accept(1)], writable_after=[], burst=False)
    @example(
        messages=[b"abc", b"def"],
        schedule=[Accept(1), WouldBlock()],
        writable_after=[],
        burst=False,
    )
    @example(messages=[b"abc"], schedule=[WouldBlock()], writable_after=[], burst=False)
    @example(messages=[], schedule=[], writable_after=[], burst=True)
    @example(
        messages=[b"x" * max_message] * max_messages,
        schedule=[WouldBlock()] * (2 * max_messages),
        writable_after=[True] * max_messages,
        burst=False,
    )
    @given(
        messages=st.lists(st.binary(max_size=max_message), max_size=max_messages),
        schedule=st.tuples(prefix, fault).map(_with_fault),
        writable_after=st.lists(st.booleans(), max_size=max_messages),
        burst=st.booleans(),
    )
    def check_sender_run(
        messages: list[bytes],
        schedule: list[SendStep],
        writable_after: list[bool],
        burst: bool,
    ) -> None:
        sock = check_sender_example(
            make_sender,
            messages,
            schedule,
            writable_after=writable_after,
            burst=burst,
            iov_max=iov_max,
            max_buffered=max_buffered,
        )
        record_fault_coverage(sock)

    seed = _config.seed if seed is None else seed
    if seed is not None:
        check_sender_run = fix_seed(seed)(check_sender_run)
    check_sender_run()


def run_receiver_check(
    make_receiver: MakeReceiver,
    *,
    encode: Callable[[bytes], bytes] | None,
    messages: object,
    max_examples: int,
    max_chunks: int | None,
    faults: Sequence[int],
    interrupts: bool,
    seed: int | None,
) -> None:
    """Run :func:`bufkit.testing.check_receiver` (see there)."""
    message = messages if isinstance(messages, st.SearchStrategy) else None
    one = message if message is not None else st.binary(max_size=64)

    def frame(msgs: list[bytes]) -> bytes:
        return b"".join(encode(m) if encode else m for m in msgs)

    @st.composite
    def examples(draw: st.DrawFn) -> tuple[list[bytes], list[RecvStep]]:
        msgs: list[bytes] = draw(st.lists(one, max_size=8))
        schedule = draw(
            recv_schedules(
                frame(msgs), max_chunks=max_chunks, interrupts=interrupts, faults=faults
            )
        )
        return msgs, schedule

    @_settings(max_examples)
    @given(case=examples())
    def check_receiver_run(case: tuple[list[bytes], list[RecvStep]]) -> None:
        msgs, schedule = case
        sock = check_receiver_example(make_receiver, msgs, schedule, encode=encode)
        record_fault_coverage(sock)

    seed = _config.seed if seed is None else seed
    if seed is not None:
        check_receiver_run = fix_seed(seed)(check_receiver_run)
    check_receiver_run()
