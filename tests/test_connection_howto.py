"""The fourth-adapter how-to: its code runs as written, and is a working adapter."""

from __future__ import annotations

import contextlib
import io
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from bufkit.servers import Echo

PAGE = Path(__file__).parents[1] / "docs" / "howto" / "fourth-adapter.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def _adapter_namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "fourth_adapter"}
    exec(compile(_blocks()[0], str(PAGE), "exec"), namespace)
    return namespace


def test_the_adapter_is_under_a_hundred_lines_of_public_names() -> None:
    """The adapter block is short and imports only public bufkit names."""
    code = _blocks()[0]
    assert len(code.splitlines()) < 100
    imports = re.findall(r"^from (bufkit\S*) import", code, re.M)
    assert imports == ["bufkit"]


def test_the_page_runs_as_written() -> None:
    """The usage block prints the upper-cased reply and the connection ends."""
    namespace = _adapter_namespace()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_blocks()[1], str(PAGE), "exec"), namespace)
    assert out.getvalue() == "b'HELLO'\n"
    adapter = namespace["adapter"]
    assert adapter.connections == 0
    assert adapter.pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("size", [1, 70_000, 1_000_000])
def test_the_adapter_echoes_a_stream_byte_exact(size: int) -> None:
    """Echo over the how-to's adapter returns every byte, then closes cleanly."""
    adapter = _adapter_namespace()["PollAdapter"]()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    adapter.add(ours, Echo())
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sent, got = 0, bytearray()
    for _ in range(10_000):
        if sent < size:
            with contextlib.suppress(BlockingIOError):
                sent += theirs.send(payload[sent : sent + 65536])
            if sent == size:
                theirs.shutdown(socket.SHUT_WR)
        adapter.run_once(10)
        with contextlib.suppress(BlockingIOError):
            while chunk := theirs.recv(65536):
                got += chunk
        if not adapter.connections:
            break
    theirs.close()
    assert bytes(got) == payload
    assert adapter.connections == 0
    assert adapter.pool.stats().buffers_in_use == 0
