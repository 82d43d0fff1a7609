"""twisted.web on bufkit transports, checked by curl and wrk.

The reactor runs in the test's thread; curl and wrk run in the reactor's
thread pool, so the server keeps serving while they wait. Skipped, with the
reason, where the binaries are missing (CI installs them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any, cast

import pytest

pytest.importorskip("twisted")

from twisted.internet import threads
from twisted.internet.interfaces import IPushProducer
from twisted.web import resource, server
from zope.interface import implementer

from bufkit.adapters.twisted import listen_tcp
from tests.adapters._twisted_support import fresh_reactor, run

pytestmark = pytest.mark.timeout(120)

PAGE = b"<html><body>" + b"bufkit " * 1000 + b"</body></html>"
STREAM_CHUNK = 65536
STREAM_CHUNKS = 800  # 50 MiB


@implementer(IPushProducer)
class Streamer:
    """Writes STREAM_CHUNKS chunks to a request while it is not paused."""

    def __init__(self, request: Any, peaks: list[int]) -> None:
        self.request = request
        self.left = STREAM_CHUNKS
        self.paused = False
        self.peaks = peaks

    def resumeProducing(self) -> None:
        self.paused = False
        transport = self.request.channel.transport
        while not self.paused and self.left:
            self.left -= 1
            self.request.write(bytes([self.left % 256]) * STREAM_CHUNK)
            self.peaks.append(transport.connection.pending_bytes)
        if not self.left:
            self.request.unregisterProducer()
            self.request.finish()

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.left = 0


class Page(resource.Resource):
    """A small static page (twisted.web.static warns on import, so not Data)."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/html")
        return PAGE


class Stream(resource.Resource):
    """A streaming resource: 50 MiB from a push producer, chunked."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.peaks: list[int] = []

    def render_GET(self, request: Any) -> Any:
        producer = Streamer(request, self.peaks)
        request.registerProducer(producer, True)
        producer.resumeProducing()
        return server.NOT_DONE_YET


def expected_stream() -> bytes:
    """The body Stream sends, computed independently of the server."""
    return b"".join(bytes([n % 256]) * STREAM_CHUNK for n in reversed(range(800)))


def site(reactor: Any) -> tuple[server.Site, Stream]:
    """A Site with a static page at / and the stream at /stream."""
    root = resource.Resource()
    root.putChild(b"", cast(Any, Page()))
    stream = Stream()
    root.putChild(b"stream", cast(Any, stream))
    return server.Site(root, reactor=reactor), stream


def in_thread(reactor: Any, *args: str) -> Any:
    """Run a command in the reactor's thread pool; a Deferred of the result."""
    return threads.deferToThreadPool(
        reactor,
        reactor.getThreadPool(),
        subprocess.run,
        list(args),
        capture_output=True,
        timeout=60,
        check=False,
    )


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing")
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk missing")


@needs_curl
def test_curl_keep_alive_static_page() -> None:
    """curl fetches the page twice over one kept-alive connection, byte-exact."""
    with fresh_reactor("epoll") as reactor:
        web, _ = site(reactor)

        async def main() -> Any:
            port = listen_tcp(reactor, 0, web, interface="127.0.0.1")
            url = f"http://127.0.0.1:{port.getHost().port}/"
            done = await in_thread(reactor, "curl", "-sv", url, url)
            await port.stopListening()
            reactor.getThreadPool().stop()
            return done

        done = run(reactor, main)
        assert done.returncode == 0, done.stderr
        assert done.stdout == PAGE + PAGE
        assert b"Re-using existing connection" in done.stderr


@needs_curl
def test_curl_chunked_50_mib_through_a_slow_reader() -> None:
    """50 MiB, chunked, to a rate-limited reader: whole, and server memory bounded."""
    with fresh_reactor("epoll") as reactor:
        web, stream = site(reactor)

        async def main() -> Any:
            port = listen_tcp(reactor, 0, web, interface="127.0.0.1")
            url = f"http://127.0.0.1:{port.getHost().port}/stream"
            done = await in_thread(
                reactor, "curl", "-s", "-D", "/dev/stderr", "--limit-rate", "40M", url
            )
            await port.stopListening()
            reactor.getThreadPool().stop()
            return done

        done = run(reactor, main, timeout=90)
        assert done.returncode == 0, done.stderr
        assert b"transfer-encoding: chunked" in done.stderr.lower()
        assert done.stdout == expected_stream()
        # The producer is paused at the high watermark (64 KiB): what waits
        # for the slow reader stays within it plus one chunk and its framing.
        assert max(stream.peaks) <= 65536 + STREAM_CHUNK + 64


@needs_wrk
def test_wrk_load_against_the_adapter_and_twisteds_own_transport() -> None:
    """wrk gets only 200s from one Site on both transports; requests/s are printed."""
    with fresh_reactor("epoll") as reactor:
        web, _ = site(reactor)

        async def main() -> dict[str, bytes]:
            ours = listen_tcp(reactor, 0, web, interface="127.0.0.1", backlog=128)
            theirs = reactor.listenTCP(0, web, interface="127.0.0.1")
            outputs = {}
            for name, port in (("bufkit", ours), ("twisted", theirs)):
                url = f"http://127.0.0.1:{port.getHost().port}/"
                done = await in_thread(reactor, "wrk", "-t1", "-c16", "-d2s", url)
                assert done.returncode == 0, done.stderr
                outputs[name] = done.stdout
            await ours.stopListening()
            await theirs.stopListening()
            reactor.getThreadPool().stop()
            return outputs

        outputs = run(reactor, main, timeout=60)
        for name, out in outputs.items():
            text = out.decode()
            assert "Non-2xx" not in text, text
            assert "Socket errors" not in text, text
            rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
            assert rate is not None, text
            assert float(rate.group(1)) > 0
            print(f"{name}: {rate.group(1)} requests/s")
