"""twisted.web ``Site`` on Twisted's own TCP transport and on bufkit's, loaded by wrk.

Run from a checkout (Twisted and the ``wrk`` binary installed)::

    python benchmarks/twisted_web_wrk.py [--rounds 3] [--seconds 10] [--connections 50]

One unmodified ``Site`` serves a small static page (about 7 KB) on the epoll
reactor, in a server process of its own: ``reactor.listenTCP`` for Twisted's
transport, :func:`bufkit.adapters.twisted.listen_tcp` for bufkit's. Rounds
alternate the two servers; each round runs ``wrk -t1 -cN -dS`` and reads the
server's CPU time (user + system) from ``/proc``. The figure to judge is the
server CPU per request; requests/s follows the machine's load, which is
printed with each round.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from typing import Any, cast

PAGE = b"<html><body>" + b"bufkit " * 1000 + b"</body></html>"


def _serve(kind: str) -> None:
    """Run the server; print its port; serve until killed."""
    from twisted.internet import epollreactor

    cast(Any, epollreactor).install()
    from twisted.internet import reactor as installed
    from twisted.web import resource, server

    reactor: Any = installed

    class Page(resource.Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            request.setHeader(b"content-type", b"text/html")
            return PAGE

    make_site: Any = server.Site  # Twisted's classes carry no annotations
    site = make_site(cast(Any, Page)(), reactor=reactor)
    site.log = lambda request: None
    if kind == "bufkit":
        from bufkit.adapters.twisted import listen_tcp

        port: Any = listen_tcp(reactor, 0, site, interface="127.0.0.1", backlog=1024)
    else:
        port = reactor.listenTCP(0, site, interface="127.0.0.1", backlog=1024)
    print(port.getHost().port, flush=True)
    reactor.run()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(kind: str, seconds: int, connections: int) -> tuple[float, float, str]:
    """Requests/s, server CPU µs per request, and the load average."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/"
        warm = ["wrk", "-t1", "-c4", "-d1s", url]
        subprocess.run(warm, capture_output=True, check=True)
        with open("/proc/loadavg") as loadavg:
            load = loadavg.read().split()[0]
        before = _cpu_seconds(proc.pid)
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu = _cpu_seconds(proc.pid) - before
    finally:
        proc.kill()
        proc.wait()
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {kind}:\n{out}")
    found = re.search(r"(\d+) requests in", out)
    assert found is not None, out
    requests = int(found.group(1))
    return requests / seconds, cpu / requests * 1e6, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("twisted", "bufkit"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    results: dict[str, list[tuple[float, float]]] = {"twisted": [], "bufkit": []}
    for number in range(args.rounds):
        for kind in ("twisted", "bufkit"):
            rate, cpu, load = _round(kind, args.seconds, args.connections)
            results[kind].append((rate, cpu))
            print(
                f"round {number + 1} {kind:8} {rate:9.0f} requests/s "
                f"{cpu:7.1f} µs server CPU per request (load {load})",
                flush=True,
            )
    for kind, rows in results.items():
        rates = [rate for rate, _ in rows]
        cpus = [cpu for _, cpu in rows]
        print(
            f"{kind:8} median {statistics.median(rates):9.0f} requests/s "
            f"{statistics.median(cpus):7.1f} µs CPU/request "
            f"(range {min(cpus):.1f}-{max(cpus):.1f})"
        )


if __name__ == "__main__":
    main()
