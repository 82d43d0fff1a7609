"""The shared engine of the hostile transports: record, drive, judge, report.

Theory of operation: a :class:`Wire` is the state every hostile transport
shares, whatever the framework: what the protocol wrote, how the connection
ended, whether writing or reading is paused, and a transcript of the calls.
:func:`drive` plays one conversation as a generator: it delivers the chunks of
a :class:`~bufkit.testing.Cutting` through a framework adapter, applies the
backpressure schedule from inside the protocol's own writes (as a real
transport does at its high-water mark), honours paused reading, and ends with
EOF, a lost connection, or the protocol's own close. It yields between
deliveries so an asyncio runner can let the loop turn; a plain runner ignores
the yields, so no loop is needed. The judge compares the :class:`Outcome` of a
hostile run with the reference run (each message of the conversation in one
delivery, no backpressure): anything but equality is a bug in the protocol.
After Hypothesis shrinks a failure, :func:`polish` removes cut points and
pauses one at a time while the failure persists, so the report shows a
cutting from which nothing can be taken away. Cost: one protocol instance and
O(bytes) work per run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final, Protocol, final

import attrs

from bufkit.testing._errors import CheckFailed
from bufkit.testing._hostile_cuts import Cutting, Pause, _pieces, cuttings

__all__ = [
    "Adapter",
    "Outcome",
    "Wire",
    "check_conversation",
    "check_example",
    "check_search",
    "drain",
    "drive",
    "polish",
    "prepare",
    "reference_cutting",
    "run_plain",
]

_SHOWN: Final = 160  # bytes of output shown around the first difference
_POLISH_BUDGET: Final = 400  # runs spent making a shrunk cutting 1-minimal
_STALL_SETTLES: Final = 8  # loop turns given to a protocol that paused reading
# The options of the *_example functions and their defaults: a reproducing
# call names only those that differ.
_DEFAULTS: Final = {"eof": True, "respects_backpressure": False, "loop": False}


@final
@attrs.frozen
class Outcome:
    """What the protocol did in one run: compared between cuttings.

    Attributes:
        output: every byte it wrote, in order.
        eof_written: whether it half-closed (``write_eof``).
        ending: how the connection ended: ``"open"``, or the closing call
            (``"close()"``, ``"abort()"``, ``"loseConnection()"`` ...), or
            ``"closed after an error"``.
        error: the exception a callback raised, as ``"callback raised repr"``.
        dropped: bytes written after the connection was closed or lost.
        undelivered: inbound bytes never delivered because reading stayed
            paused.
        problems: contract violations seen (a write while paused), not
            compared.
        calls: the transcript of the run, not compared.
    """

    output: bytes
    eof_written: bool
    ending: str
    error: str | None
    dropped: int
    undelivered: int
    problems: tuple[str, ...] = attrs.field(eq=False)
    calls: tuple[str, ...] = attrs.field(eq=False, repr=False)


def _short(data: bytes, limit: int = 48) -> str:
    text = repr(bytes(data[:limit]))
    return text if len(data) <= limit else f"{text}+{len(data) - limit} bytes"


class Wire:
    """The shared state of one hostile connection (one run)."""

    def __init__(self, cutting: Cutting, *, respects_backpressure: bool) -> None:
        self.cutting = cutting
        self.respects_backpressure = respects_backpressure
        self.output = bytearray()
        self.calls: list[str] = []
        self.problems: list[str] = []
        self.writes = 0
        self.write_paused = False
        self.told = False
        self.event = 0  # counts the callbacks the transport makes
        self.paused_in = -1  # the callback during which writing was paused
        self.reading_paused = False
        self.hold = 0
        self.closing = False
        self.lost = False
        self.ending = "open"
        self.eof_written = False
        self.dropped = 0
        self.undelivered = 0
        self.error: str | None = None
        self.fatal: BaseException | None = None
        self.pause_name = "pause"
        self.resume_name = "resume"
        # on_pause returns False when nobody could be told (no producer).
        self.on_pause: Callable[[], object] = lambda: None
        self.on_resume: Callable[[], object] = lambda: None
        self._pauses = {p.at_write: p for p in cutting.pauses}

    def note(self, call: str) -> None:
        """Add one line to the transcript."""
        self.calls.append(call)

    def write(self, data: bytes, name: str = "write") -> None:
        """Record a write from the protocol; maybe pause inside it."""
        self.note(f"{name}({_short(data)})")
        if self.lost or self.closing:
            self.dropped += len(data)
            self.note(f"  ^ dropped: the connection was {self._why_dropped()}")
            return
        if self.respects_backpressure and self._paused_earlier():
            self._flag_paused_write(name)
        self.output += data
        pause = self._pauses.get(self.writes)
        self.writes += 1
        if pause is not None and not self.write_paused:
            self.pause(pause)

    def _paused_earlier(self) -> bool:
        # The callback that crossed the mark may finish its unit of work;
        # writing in a later callback while still paused is the violation.
        told = self.write_paused and self.told
        return told and self.event != self.paused_in

    def next_event(self) -> None:
        """The transport is about to call the protocol again."""
        self.event += 1

    def _why_dropped(self) -> str:
        return "lost" if self.lost else f"closed by {self.ending}"

    def _flag_paused_write(self, name: str) -> None:
        self.note("  ^ written while paused, in a later callback")
        self.problems.append(
            f"{name}() #{self.writes} came while writing was paused, in a later "
            f"callback than the one {self.pause_name}() interrupted and before "
            f"{self.resume_name}(): the protocol declared it respects backpressure, "
            "so once paused it must hold its output (and pause reading) until "
            "writing resumes"
        )

    def pause(self, pause: Pause) -> None:
        """The buffer crossed its high-water mark: pause the writer."""
        self.write_paused = True
        self.hold = pause.hold
        self.note(f"  -> {self.pause_name}()    # {pause!r}")
        self.paused_in = self.event
        self.told = self.guard(self.pause_name, self.on_pause) is not False
        if not self.told:
            self.note("     (nobody to tell: no producer is registered)")

    def resume(self) -> None:
        """The peer drained: resume the writer, if paused."""
        if self.write_paused and not self.lost:
            self.next_event()
            self.write_paused = False
            self.note(f"  -> {self.resume_name}()")
            self.guard(self.resume_name, self.on_resume)

    def close(self, how: str) -> None:
        """The protocol closed the connection (``how`` names the call)."""
        self.note(how)
        if not self.closing and not self.lost:
            self.closing = True
            self.ending = how

    def guard(self, name: str, call: Callable[..., object], *args: object) -> object:
        """Call a protocol callback; an exception it raises ends the run."""
        try:
            return call(*args)
        except Exception as exc:
            self.fail(name, exc)
            return None

    def fail(self, name: str, exc: Exception) -> None:
        """Record that ``name`` raised ``exc``: the transport closes, as asyncio's."""
        if self.error is None:
            self.error = f"{name} raised {exc!r}"
            self.note(f"  ^ {self.error}")
            self.fatal = exc
            if not self.lost:
                self.closing = True
                self.ending = "closed after an error"

    def outcome(self) -> Outcome:
        """The frozen result of this run."""
        self.fatal = None
        return Outcome(
            output=bytes(self.output),
            eof_written=self.eof_written,
            ending=self.ending,
            error=self.error,
            dropped=self.dropped,
            undelivered=self.undelivered,
            problems=tuple(self.problems),
            calls=tuple(self.calls),
        )


class Adapter(Protocol):
    """How :func:`drive` talks to one framework's protocol."""

    def start(self) -> None:
        """Make the connection (``connection_made`` ...)."""
        ...

    def deliver(self, chunk: bytes) -> None:
        """Deliver one chunk of inbound bytes."""
        ...

    def eof(self) -> None:
        """The peer half-closed."""
        ...

    def lose(self, exc: BaseException | None) -> None:
        """The connection is gone (``None``: closed cleanly)."""
        ...

    def poll(self) -> None:
        """Let the transport pull from producers (a no-op where none exist)."""
        ...


def drive(
    wire: Wire, adapter: Adapter, chunks: Sequence[bytes], *, eof: bool
) -> Iterator[None]:
    """Play one conversation; yield wherever an event loop may turn."""
    adapter.start()
    yield
    for i, chunk in enumerate(chunks):
        if wire.closing:
            break
        if wire.write_paused:
            if wire.hold <= 0:
                wire.resume()
            else:
                wire.hold -= 1
        if wire.reading_paused:
            yield from _unstall(wire, adapter)
            if wire.reading_paused:
                wire.undelivered = sum(len(c) for c in chunks[i:])
                wire.note(f"-- reading stays paused: {wire.undelivered} bytes")
                break
        adapter.poll()
        wire.next_event()
        adapter.deliver(chunk)
        yield
    yield from _finish(wire, adapter, eof=eof)


def drain(wire: Wire) -> None:
    """The peer reads everything: resume writing until no pause is left."""
    # Each pause of the cutting fires at most once, so this ends.
    while wire.write_paused and not wire.lost:
        wire.resume()


def _unstall(wire: Wire, adapter: Adapter) -> Iterator[None]:
    drain(wire)
    for _ in range(_STALL_SETTLES):
        if not wire.reading_paused:
            return
        adapter.poll()
        yield


def _finish(wire: Wire, adapter: Adapter, *, eof: bool) -> Iterator[None]:
    lost = wire.cutting.lost_at is not None
    if not wire.closing and not lost and not wire.undelivered:
        drain(wire)
        adapter.poll()
        yield
        if eof and not wire.closing:
            wire.next_event()
            adapter.eof()
            yield
            drain(wire)
            adapter.poll()
            yield
    if lost and not wire.closing:
        wire.ending = "lost by the peer"
        wire.lost = True
        adapter.lose(ConnectionResetError("connection lost (hostile transport)"))
    elif wire.closing:
        wire.lost = True
        adapter.lose(wire.fatal)
    yield


def reference_cutting(pieces: Sequence[bytes], lost_at: int | None) -> Cutting:
    """The reference: each message in one delivery, no backpressure."""
    bounds = list(itertools.accumulate(len(p) for p in pieces))[:-1]
    return Cutting(cuts=tuple(b for b in bounds if b > 0), lost_at=lost_at)


def verdict(
    reference: Outcome, hostile: Outcome, cutting: Cutting, subject: str = "protocol"
) -> str | None:
    """Why ``hostile`` is wrong, or ``None``.

    When the connection is lost while writing may be paused, output the
    protocol held back is lost with it: then the hostile output need only be
    a prefix of the reference output.
    """
    if hostile.problems:
        return hostile.problems[0]
    lost_while_paused = cutting.lost_at is not None and cutting.pauses
    if lost_while_paused and reference.output.startswith(hostile.output):
        hostile = attrs.evolve(hostile, output=reference.output)
    if hostile == reference:
        return None
    return f"the {subject}'s behaviour depends on how its input was cut"


def _differences(reference: Outcome, hostile: Outcome) -> list[str]:
    lines = []
    if reference.output != hostile.output:
        at = next(
            (
                i
                for i, (a, b) in enumerate(
                    zip(reference.output, hostile.output, strict=False)
                )
                if a != b
            ),
            min(len(reference.output), len(hostile.output)),
        )
        start = max(0, at - _SHOWN // 2)
        lines.append(f"output differs from byte {at}:")
        for name, out in (("reference", reference.output), ("hostile", hostile.output)):
            piece = out[start : start + _SHOWN]
            where = f"[{start}:]" if start else ""
            lines.append(f"  {name:<9} output{where} ({len(out)} bytes): {piece!r}")
    for field in ("eof_written", "ending", "error", "dropped", "undelivered"):
        a, b = getattr(reference, field), getattr(hostile, field)
        if a != b:
            lines.append(f"{field}: reference {a!r}, hostile {b!r}")
    return lines


def report(
    name: str,
    problem: str,
    pieces: Sequence[bytes],
    *,
    eof: bool,
    cutting: Cutting,
    reference: Outcome,
    hostile: Outcome,
    reproduce: str,
) -> str:
    """The readable failure message of a hostile check."""
    data = b"".join(pieces)
    end = "then EOF" if eof else "no EOF"
    lines = [
        f"{name}: {problem}",
        "",
        f"conversation ({len(data)} bytes in {len(pieces)} messages, {end}):",
        f"  {list(pieces)!r}",
        "smallest hostile cutting found:",
        f"  {cutting!r}",
        *(f"  {line}" for line in cutting.describe(data).splitlines()),
        "",
        *(
            _differences(reference, hostile)
            or ["the outputs are the same: the problem is the one named above"]
        ),
        "",
        "reproduce with:",
        f"    {reproduce}",
        "",
        "hostile transport calls:",
        *(f"  {i:3}  {call}" for i, call in enumerate(hostile.calls)),
    ]
    return "\n".join(lines)


def polish(cutting: Cutting, fails: Callable[[Cutting], bool]) -> Cutting:
    """Take away cut points, pauses and hints while ``fails`` stays true."""
    budget = _POLISH_BUDGET
    improved = True
    while improved and budget > 0:
        improved = False
        for candidate in _simpler(cutting):
            budget -= 1
            if fails(candidate):
                cutting, improved = candidate, True
                break
            if budget <= 0:
                break
    return cutting


def _simpler(c: Cutting) -> Iterator[Cutting]:
    block = len(c.cuts) // 2
    while block > 1:
        for i in range(0, len(c.cuts), block):
            yield attrs.evolve(c, cuts=c.cuts[:i] + c.cuts[i + block :])
        block //= 2
    for i in range(len(c.cuts)):
        yield attrs.evolve(c, cuts=c.cuts[:i] + c.cuts[i + 1 :])
    for i in range(len(c.pauses)):
        yield attrs.evolve(c, pauses=c.pauses[:i] + c.pauses[i + 1 :])
    for i in range(len(c.hints)):
        yield attrs.evolve(c, hints=c.hints[:i] + c.hints[i + 1 :])
    for i, p in enumerate(c.pauses):
        if p.hold > 0:
            smaller = attrs.evolve(p, hold=p.hold - 1)
            yield attrs.evolve(c, pauses=(*c.pauses[:i], smaller, *c.pauses[i + 1 :]))
    for i, cut in enumerate(c.cuts):
        lower = cut - 1
        if lower > 0 and (i == 0 or c.cuts[i - 1] < lower):
            yield attrs.evolve(c, cuts=(*c.cuts[:i], lower, *c.cuts[i + 1 :]))


def check_conversation(
    name: str,
    run: Callable[[Cutting], Outcome],
    pieces: Sequence[bytes],
    *,
    eof: bool,
    reproduce: Callable[[Cutting], str],
    max_examples: int,
    seed: int | None,
    hints: bool = False,
    lose_connection: bool = False,
    backpressure: bool = True,
    subject: str = "protocol",
) -> None:
    """Draw cuttings with Hypothesis; raise a readable report on the smallest."""
    __tracebackhide__ = True
    from bufkit.testing._hostile_hyp import find_failure

    references: dict[int | None, Outcome] = {}

    def judge(cutting: Cutting) -> tuple[str | None, Outcome, Outcome]:
        lost = cutting.lost_at
        if lost not in references:
            references[lost] = run(reference_cutting(pieces, lost))
        hostile = run(cutting)
        problem = verdict(references[lost], hostile, cutting, subject)
        return problem, references[lost], hostile

    first = references[None] = run(reference_cutting(pieces, None))
    if first.error is not None:
        raise CheckFailed(_broken_reference(name, first))
    size = sum(len(p) for p in pieces)
    strategy = cuttings(size, pauses=backpressure, hints=hints, lose=lose_connection)
    explicit = [Cutting(cuts=tuple(range(1, size)))]
    if backpressure:
        explicit.append(Cutting(pauses=(Pause(0, 1),)))
    found = find_failure(
        lambda c: judge(c)[0] is not None,
        strategy,
        explicit=explicit,
        max_examples=max_examples,
        seed=seed,
    )
    if found is None:
        return
    cutting = found
    if judge(found)[0] is not None:
        cutting = polish(found, lambda c: judge(c)[0] is not None)
    problem, reference, hostile = judge(cutting)
    if problem is None:
        raise CheckFailed(
            f"{name}: the {subject} is not deterministic: {cutting!r} changed its "
            "behaviour once and not when played again (does it depend on time, "
            "randomness or state shared between connections?)"
        )
    text = report(
        name,
        problem,
        pieces,
        eof=eof,
        cutting=cutting,
        reference=reference,
        hostile=hostile,
        reproduce=reproduce(cutting),
    )
    raise CheckFailed(text)


def _broken_reference(name: str, reference: Outcome) -> str:
    calls = [f"  {i:3}  {call}" for i, call in enumerate(reference.calls)]
    return "\n".join(
        [
            f"{name}: the reference run (each message in one delivery, no "
            f"backpressure) already fails: {reference.error}",
            "fix that first (an asyncio protocol that needs a running event loop "
            "wants loop=True)",
            "",
            "transport calls:",
            *calls,
        ]
    )


def check_one(
    name: str,
    run: Callable[[Cutting], Outcome],
    pieces: Sequence[bytes],
    cutting: Cutting,
    *,
    eof: bool,
    reproduce: str,
    subject: str = "protocol",
) -> Outcome:
    """Judge one cutting against the reference; return the hostile outcome."""
    __tracebackhide__ = True
    cutting.validate(sum(len(p) for p in pieces))
    reference = run(reference_cutting(pieces, cutting.lost_at))
    hostile = run(cutting)
    problem = verdict(reference, hostile, cutting, subject)
    if problem is not None:
        raise CheckFailed(
            report(
                name,
                problem,
                pieces,
                eof=eof,
                cutting=cutting,
                reference=reference,
                hostile=hostile,
                reproduce=reproduce,
            )
        )
    return hostile


def prepare(
    conversation: bytes | Sequence[bytes], cutting: Cutting | None
) -> tuple[bytes, Cutting]:
    """The inbound bytes and the cutting of a run (default: one delivery).

    Raises:
        CuttingError: if the cutting does not fit the conversation.
    """
    data = b"".join(_pieces(conversation))
    cutting = cutting or Cutting()
    cutting.validate(len(data))
    return data, cutting


def run_plain(
    wire: Wire, adapter: Adapter, data: bytes, cutting: Cutting, *, eof: bool
) -> None:
    """Play a conversation to its end without an event loop."""
    for _ in drive(wire, adapter, cutting.chunks(data), eof=eof):
        pass


def _example_call(
    name: str,
    arg: str,
    pieces: Sequence[bytes],
    cutting: Cutting,
    options: Mapping[str, bool],
) -> str:
    """The call of ``name``'s ``_example`` function that reruns ``cutting``."""
    given = "".join(
        f", {key}={value!r}"
        for key, value in options.items()
        if value != _DEFAULTS[key]
    )
    return f"{name}_example({arg}, {list(pieces)!r}, {cutting!r}{given})"


def check_search(
    name: str,
    arg: str,
    run: Callable[[Cutting], Outcome],
    pieces: Sequence[bytes],
    options: Mapping[str, bool],
    *,
    max_examples: int,
    seed: int | None,
    lose_connection: bool,
    hints: bool = False,
    subject: str = "protocol",
) -> None:
    """A public check: search cuttings, and report the one to rerun.

    Args:
        name: the check's name, such as ``"check_protocol"``.
        arg: the name of the first argument in the reproducing call.
        run: plays one cutting.
        pieces: the conversation.
        options: the example function's options as given (``eof`` first).
        max_examples: how many cuttings Hypothesis draws.
        seed: fix Hypothesis' seed.
        lose_connection: also lose the connection at drawn points.
        hints: draw ``get_buffer`` hints.
        subject: what the report calls the code under test.
    """
    __tracebackhide__ = True
    check_conversation(
        name,
        run,
        pieces,
        eof=options["eof"],
        reproduce=lambda c: _example_call(name, arg, pieces, c, options),
        max_examples=max_examples,
        seed=seed,
        hints=hints,
        lose_connection=lose_connection,
        subject=subject,
    )


def check_example(
    name: str,
    arg: str,
    run: Callable[[Cutting], Outcome],
    pieces: Sequence[bytes],
    cutting: Cutting,
    options: Mapping[str, bool],
    *,
    subject: str = "protocol",
) -> Outcome:
    """A public check's ``_example`` function: judge one cutting."""
    __tracebackhide__ = True
    return check_one(
        name,
        run,
        pieces,
        cutting,
        eof=options["eof"],
        reproduce=_example_call(name, arg, pieces, cutting, options),
        subject=subject,
    )
