"""The Hypothesis side of the conformance checks (imported only when they run).

Theory of operation: each check first runs a few explicit examples that catch
the classic bugs on every run (a partial send, ``EAGAIN`` after a partial
send, a cut inside a gather buffer, a gather longer than ``IOV_MAX``, a
clogged peer), and shrinks a failing one itself (``_shrink.py``), since
Hypothesis never shrinks explicit examples. Then it builds a ``@given``
function over messages and schedules from :mod:`bufkit.testing.strategies`
and runs it; Hypothesis shrinks a failure toward no fault, and the raised
:class:`~bufkit.testing.CheckFailed` carries the verdict of the shrunk
example. The number of examples comes from the loaded Hypothesis profile
unless the caller gives one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import cast

from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import seed as fix_seed
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable

from bufkit.testing import _config
from bufkit.testing._errors import CheckFailed
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._recvcheck import (
    MakeReceiver,
    MakeTLSReceiver,
    check_receiver_example,
)
from bufkit.testing._schedule import (
    Accept,
    AcceptAllBut,
    AcceptBuffers,
    Deliver,
    Eof,
    Fail,
    RecvStep,
    SendStep,
    WouldBlock,
)
from bufkit.testing._sendcheck import Sender, check_sender_example
from bufkit.testing._shrink import SenderCase, shrink_sender_case
from bufkit.testing._tls_fake import FakeTLSSocket
from bufkit.testing._tlscheck import (
    TLSLink,
    check_tls_receiver_example,
    check_tls_sender_example,
)
from bufkit.testing.strategies import (
    record_fault_coverage,
    recv_schedules,
    send_schedules,
)

__all__ = ["run_receiver_check", "run_sender_check"]


def _settings(max_examples: int | None) -> settings:
    if max_examples is None:
        profile = settings.default
        max_examples = 100 if profile is None else profile.max_examples
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=[p for p in Phase if p is not Phase.explain],
    )


def _run_hidden(test: Callable[[], object]) -> None:
    """Run ``test``; a failure's traceback starts at the user's call, not in here."""
    __tracebackhide__ = True
    try:
        test()
    except CheckFailed as exc:
        raise exc.with_traceback(None) from None


def _with_fault(pair: tuple[list[SendStep], int | None]) -> list[SendStep]:
    steps, fault = pair
    return steps if fault is None else [*steps, Fail(fault)]


def _sender_cases(
    max_message: int,
    max_messages: int,
    max_buffered: int | None,
    faults: Sequence[int],
) -> list[SenderCase]:
    """The explicit examples of ``check_sender``: the classic bugs."""
    big = b"x" * max_message
    clogged = SenderCase(
        (big,) * max_messages,
        (WouldBlock(),) * (2 * max_messages),
        (True,) * max_messages,
    )
    cases = [
        SenderCase((b"ab",), (Accept(1),)),
        SenderCase((b"abc", b"def"), (Accept(1), WouldBlock())),
        SenderCase((b"abc",), (WouldBlock(),)),
        SenderCase(
            (b"abc", b"def", b"ghi"),
            (WouldBlock(), AcceptAllBut(4), WouldBlock(), AcceptBuffers(1)),
        ),
        clogged,
    ]
    cases += [SenderCase((b"ab",), (Accept(1), Fail(e))) for e in faults]
    if max_buffered is not None:
        size = max(1, min(max_message, max_buffered // 4))
        count = max_buffered // size + 3
        cases.append(
            SenderCase(
                (b"y" * size,) * count, (WouldBlock(),) * (2 * count), (True,) * count
            )
        )
    cases.append(SenderCase((), (WouldBlock(),), burst=True))
    return cases


def run_sender_check(
    make_sender: Callable[[FakeSocket], Sender] | Callable[[FakeTLSSocket], Sender],
    *,
    max_examples: int | None,
    max_message: int,
    max_messages: int,
    faults: Sequence[int],
    interrupts: bool,
    iov_max: int,
    max_buffered: int | None,
    seed: int | None,
    tls: bool,
) -> None:
    """Run :func:`bufkit.testing.check_sender` (see there)."""
    __tracebackhide__ = True
    if tls:
        tls_sender = cast("Callable[[FakeTLSSocket], Sender]", make_sender)
        _tls_sender_check(tls_sender, max_examples, max_message, max_messages, seed)
        return
    plain = cast("Callable[[FakeSocket], Sender]", make_sender)

    def run(case: SenderCase) -> FakeSocket:
        __tracebackhide__ = True
        return check_sender_example(
            plain,
            list(case.messages),
            list(case.schedule),
            writable_after=list(case.writable_after),
            burst=case.burst,
            iov_max=iov_max,
            max_buffered=max_buffered,
        )

    for case in _sender_cases(max_message, max_messages, max_buffered, faults):
        try:
            run(case)
        except CheckFailed:
            raise shrink_sender_case(case, run).with_traceback(None) from None

    fault = st.none() | st.sampled_from(list(faults)) if faults else st.none()
    prefix = send_schedules(max_accept=max(1, max_message), interrupts=interrupts)

    @_settings(max_examples)
    @given(
        messages=st.lists(st.binary(max_size=max_message), max_size=max_messages),
        schedule=st.tuples(prefix, fault).map(_with_fault),
        writable_after=st.lists(st.booleans(), max_size=max_messages),
        burst=st.integers(0, 9).map(lambda n: n == 9),  # rare: 1025 writes
    )
    def check_sender_run(
        messages: list[bytes],
        schedule: list[SendStep],
        writable_after: list[bool],
        burst: bool,
    ) -> None:
        __tracebackhide__ = True
        case = SenderCase(
            tuple(messages), tuple(schedule), tuple(writable_after), burst
        )
        record_fault_coverage(run(case))

    seed = _config.seed if seed is None else seed
    if seed is not None:
        check_sender_run = fix_seed(seed)(check_sender_run)
    _run_hidden(check_sender_run)


def _receiver_cases(
    encode: Callable[[bytes], bytes], faults: Sequence[int], message: bytes
) -> list[tuple[list[bytes], list[RecvStep]]]:
    """The explicit examples of ``check_receiver``, each minimal for its bug."""
    frame = encode(message)
    cases: list[tuple[list[bytes], list[RecvStep]]] = [
        ([], [WouldBlock(), Eof()]),
        ([message], [Deliver(frame[:1]), WouldBlock(), Deliver(frame[1:]), Eof()]),
        ([message] * 2, [Deliver(frame * 2), Eof()]),
    ]
    cases += [([message], [Deliver(frame[:1]), Fail(e)]) for e in faults]
    return cases


def _sample(messages: st.SearchStrategy[bytes]) -> bytes | None:
    """The simplest message of at least two bytes ``messages`` draws, if any."""
    try:
        return find(
            messages,
            lambda m: len(m) >= 2,
            settings=settings(
                max_examples=100,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except (NoSuchExample, Unsatisfiable):
        return None


def run_receiver_check(
    make_receiver: MakeReceiver | MakeTLSReceiver,
    *,
    encode: Callable[[bytes], bytes] | None,
    messages: object,
    max_examples: int | None,
    max_chunks: int | None,
    faults: Sequence[int],
    interrupts: bool,
    seed: int | None,
    tls: bool,
) -> None:
    """Run :func:`bufkit.testing.check_receiver` (see there)."""
    __tracebackhide__ = True
    if tls:
        tls_receiver = cast("MakeTLSReceiver", make_receiver)
        _tls_receiver_check(tls_receiver, encode, messages, max_examples, seed)
        return
    plain = cast("MakeReceiver", make_receiver)
    message = messages if isinstance(messages, st.SearchStrategy) else None
    one = message if message is not None else st.binary(max_size=64)

    def frame(msgs: list[bytes]) -> bytes:
        return b"".join(encode(m) if encode else m for m in msgs)

    sample = b"ab" if message is None else _sample(message)
    if sample is not None:
        for msgs, steps in _receiver_cases(encode or (lambda m: m), faults, sample):
            cuts = sum(isinstance(step, Deliver) for step in steps)
            if max_chunks is not None and cuts > max_chunks:
                continue
            _run_hidden(
                partial(check_receiver_example, plain, msgs, steps, encode=encode)
            )

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
        __tracebackhide__ = True
        msgs, schedule = case
        sock = check_receiver_example(plain, msgs, schedule, encode=encode)
        record_fault_coverage(sock)

    seed = _config.seed if seed is None else seed
    if seed is not None:
        check_receiver_run = fix_seed(seed)(check_receiver_run)
    _run_hidden(check_receiver_run)


def _seeded(test: Callable[..., None], seed: int | None) -> Callable[..., None]:
    seed = _config.seed if seed is None else seed
    return test if seed is None else fix_seed(seed)(test)


def _tls_links() -> st.SearchStrategy[TLSLink]:
    """Hostile streams under TLS; shrinks toward whole sends and no would-block."""
    sizes = st.just(4096) | st.integers(1, 64)
    return st.builds(
        TLSLink,
        seed=st.integers(0, 2**32 - 1),
        max_send=sizes,
        max_recv=sizes,
        block_rate=st.sampled_from([0.0, 0.1, 0.5]),
        clogged=st.integers(0, 3),
        reset_after=st.none() | st.integers(0, 3000),
    )


def _tls_sender_check(
    make_sender: Callable[[FakeTLSSocket], Sender],
    max_examples: int | None,
    max_message: int,
    max_messages: int,
    seed: int | None,
) -> None:
    """Run :func:`bufkit.testing.check_sender` with ``tls=True``."""
    __tracebackhide__ = True
    for messages, link in [
        ([b"ab"], TLSLink()),
        ([b"abc", b"def"], TLSLink(max_send=1, max_recv=1, clogged=2)),
    ]:
        _run_hidden(partial(check_tls_sender_example, make_sender, messages, link))

    @_settings(max_examples)
    @given(
        messages=st.lists(st.binary(max_size=max_message), max_size=max_messages),
        link=_tls_links(),
        writable_after=st.lists(st.booleans(), max_size=max_messages),
    )
    def check_tls_sender_run(
        messages: list[bytes], link: TLSLink, writable_after: list[bool]
    ) -> None:
        __tracebackhide__ = True
        check_tls_sender_example(
            make_sender, messages, link, writable_after=writable_after
        )

    _run_hidden(_seeded(check_tls_sender_run, seed))


def _tls_receiver_check(
    make_receiver: MakeTLSReceiver,
    encode: Callable[[bytes], bytes] | None,
    messages: object,
    max_examples: int | None,
    seed: int | None,
) -> None:
    """Run :func:`bufkit.testing.check_receiver` with ``tls=True``."""
    __tracebackhide__ = True
    message = messages if isinstance(messages, st.SearchStrategy) else None
    one = message if message is not None else st.binary(max_size=64)
    sample = b"ab" if message is None else _sample(message)
    if sample is not None:
        frame = len(encode(sample)) if encode else len(sample)
        two_records = [sample] * (16384 // frame + 2)  # more than one TLS record
        for msgs, link in [
            ([sample], TLSLink()),
            ([sample], TLSLink(clogged=1)),
            (two_records, TLSLink()),
        ]:
            _run_hidden(
                partial(
                    check_tls_receiver_example,
                    make_receiver,
                    msgs,
                    link,
                    encode=encode,
                )
            )

    @_settings(max_examples)
    @given(msgs=st.lists(one, max_size=8), link=_tls_links())
    def check_tls_receiver_run(msgs: list[bytes], link: TLSLink) -> None:
        __tracebackhide__ = True
        check_tls_receiver_example(make_receiver, msgs, link, encode=encode)

    _run_hidden(_seeded(check_tls_receiver_run, seed))
