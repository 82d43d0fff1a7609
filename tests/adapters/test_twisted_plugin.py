"""The wheel ships bufkit's Twisted string-endpoint plugin where Twisted finds it.

The wheel's file map is read from ``pyproject.toml``; the test lays out an
installed package by that map (the ``bufkit`` package plus every
force-included file at its destination) in a fresh directory and asks
Twisted's plugin system, in a subprocess that sees only that directory and
the interpreter's own site-packages (no checkout of bufkit), which string
endpoints it knows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("twisted")

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "twisted/plugins/bufkit_endpoints.py"

LIST_PREFIXES = """
import os, sys
# Only the laid-out site may hold bufkit (an editable install adds a checkout).
site = sys.argv[1]
sys.path[:] = [
    path for path in sys.path
    if path == site or not os.path.exists(os.path.join(path or ".", "bufkit"))
]
from twisted.internet import interfaces
from twisted.plugin import getPlugins
import bufkit
found = set()
for kind in (
    interfaces.IStreamServerEndpointStringParser,
    interfaces.IStreamClientEndpointStringParserWithReactor,
):
    for parser in getPlugins(kind):
        if parser.prefix.startswith("bufkit-"):
            found.add(f"{kind.__name__}:{parser.prefix}")
print(bufkit.__file__)
print(" ".join(sorted(found)))
"""


def _wheel_map() -> dict[str, str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    mapping = {package: package for package in wheel["packages"]}
    mapping.update(wheel.get("force-include", {}))
    return mapping


def test_wheel_maps_the_plugin_to_twisted_plugins() -> None:
    """The wheel's file map puts the plugin module under twisted/plugins/."""
    mapping = _wheel_map()
    assert mapping.get(PLUGIN) == PLUGIN
    assert (ROOT / PLUGIN).is_file()
    # Twisted's own twisted/plugins/__init__.py must stay the only one.
    assert not any(dest.endswith("__init__.py") for dest in mapping.values())


def _runs_from_checkout() -> bool:
    import bufkit

    return Path(bufkit.__file__).resolve().parent == ROOT / "bufkit"


def test_installed_layout_finds_the_bufkit_endpoints(tmp_path: Path) -> None:
    """Twisted's getPlugins finds bufkit-tcp and bufkit-tls from the wheel's layout."""
    if not _runs_from_checkout():
        pytest.skip("bufkit runs from an installed wheel: the next test checks it")
    site = tmp_path / "site"
    for source, dest in _wheel_map().items():
        target = site / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(ROOT / source, target_is_directory=(ROOT / source).is_dir())
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run(
        [sys.executable, "-c", LIST_PREFIXES, str(site)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    where, found = result.stdout.splitlines()
    assert where.startswith(str(site))
    assert found.split() == [
        "IStreamClientEndpointStringParserWithReactor:bufkit-tcp",
        "IStreamClientEndpointStringParserWithReactor:bufkit-tls",
        "IStreamServerEndpointStringParser:bufkit-tcp",
        "IStreamServerEndpointStringParser:bufkit-tls",
    ]


def test_the_installed_wheel_ships_the_plugin() -> None:
    """From an installed wheel, the plugin sits beside bufkit and Twisted finds it."""
    if _runs_from_checkout():
        pytest.skip("bufkit runs from the checkout: the layout test checks the wheel")
    from twisted.internet import interfaces
    from twisted.plugin import getPlugins

    import bufkit

    assert (Path(bufkit.__file__).resolve().parents[1] / PLUGIN).is_file()
    found = {
        parser.prefix
        for parser in getPlugins(interfaces.IStreamServerEndpointStringParser)
        if parser.prefix.startswith("bufkit-")
    }
    assert found == {"bufkit-tcp", "bufkit-tls"}
