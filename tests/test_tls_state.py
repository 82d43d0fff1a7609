"""A Hypothesis state machine over two TLS connection cores and a hostile stream."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bufkit import Connection, ConnectionState, TLSState
from tests._tls_drive import Duo, Peer

_CONTEXTS: list[tuple[ssl.SSLContext, ssl.SSLContext]] = []


class TwoEnds(RuleBasedStateMachine):
    """Random writes, steps, closes, resets and timeouts; invariants after each."""

    def __init__(self) -> None:
        super().__init__()
        self.duo = Duo(
            _CONTEXTS[0], seed=11, max_send=900, max_recv=700, block_rate=0.2
        )
        self.duo.start()
        self.written = {"client": bytearray(), "server": bytearray()}
        self.count = 0

    def _side(self, name: str) -> tuple[Peer, Connection]:
        duo = self.duo
        if name == "client":
            return duo.client, duo.client_conn
        return duo.server, duo.server_conn

    @rule(name=st.sampled_from(["client", "server"]), size=st.integers(1, 30_000))
    def write(self, name: str, size: int) -> None:
        """Write on an open end (before or after the handshake)."""
        peer, conn = self._side(name)
        if conn.state is not ConnectionState.OPEN:
            return
        data = bytes([self.count % 251]) * size
        self.count += 1
        peer.write(self.count, data)
        self.written[name] += data

    @rule(rounds=st.integers(1, 200))
    def step(self, rounds: int) -> None:
        """Deliver readiness for a while."""
        for _ in range(rounds):
            if not self.duo.step():
                break

    @rule(name=st.sampled_from(["client", "server"]))
    def close(self, name: str) -> None:
        """Close one end gracefully."""
        _peer, conn = self._side(name)
        conn.close()

    @rule(name=st.sampled_from(["client", "server"]))
    def reset(self, name: str) -> None:
        """Reset one end's stream and abort it."""
        _peer, conn = self._side(name)
        self.duo.socks[conn].reset()
        conn.abort()

    @rule()
    def time_out(self) -> None:
        """The timers fire now."""
        for conn, delay in list(self.duo.timers.items()):
            if delay is not None:
                conn.on_timeout()

    @invariant()
    def no_pool_bytes_between_events(self) -> None:
        """docs/design.md invariant 7: nothing is lent between events."""
        assert self.duo.pool.stats().buffers_in_use == 0

    @invariant()
    def plaintext_is_a_prefix_of_what_was_written(self) -> None:
        """Bytes arrive in order, exactly once (invariant 1 for plaintext)."""
        duo = self.duo
        assert bytes(duo.server.data) == bytes(
            self.written["client"][: len(duo.server.data)]
        )
        assert bytes(duo.client.data) == bytes(
            self.written["server"][: len(duo.client.data)]
        )

    @invariant()
    def completions_fire_at_most_once(self) -> None:
        """Invariant 2: one completion per write, never two."""
        for peer in (self.duo.client, self.duo.server):
            assert all(len(done) <= 1 for done in peer.done.values())
            assert len(peer.lost) <= 1

    @invariant()
    def tls_state_follows_the_connection(self) -> None:
        """A closed connection's layer is closed; close_notify only while closing."""
        for conn in (self.duo.client_conn, self.duo.server_conn):
            tls = conn.tls
            assert tls is not None
            if conn.closed:
                assert tls.state is TLSState.CLOSED
                assert tls.cipher_pending == 0
            if tls.state is TLSState.SHUTTING:
                assert conn.state is ConnectionState.CLOSING

    def teardown(self) -> None:
        """Every completion fired once the ends are gone."""
        for conn in (self.duo.client_conn, self.duo.server_conn):
            conn.abort()
        for peer in (self.duo.client, self.duo.server):
            assert all(len(done) == 1 for done in peer.done.values())
            assert len(peer.lost) == 1
        assert self.duo.pool.stats().buffers_in_use == 0


@pytest.fixture(autouse=True)
def _contexts(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    if not _CONTEXTS:
        _CONTEXTS.append(tls_contexts)


TestTwoEnds = TwoEnds.TestCase
TestTwoEnds.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
