"""The opt-in compiled build: mypyc compiles bufkit's core into the wheel.

By default this hook does nothing and the wheel is pure Python. With
``BUFKIT_COMPILE=1`` in the environment of ``pip install .`` (or
``python -m build``), a regular (not editable) wheel gets the modules listed in
``[tool.hatch.build.targets.wheel.hooks.custom] compile`` compiled by mypyc as
extension modules, next to their unchanged ``.py`` sources; Python imports the
extension when both are present.

Every file the compilation writes stays in a temporary directory: nothing is
built in the source tree, so ``pip install -e .`` and ``PYTHONPATH=.`` keep
running the pure-Python sources, and a compiled wheel is never mixed with them.
An editable install asked to compile is refused rather than silently pure.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ENV_VAR = "BUFKIT_COMPILE"
# What the compiled build reads instead of bufkit/_argtypes.py: arguments that
# bufkit validates itself reach its checks unconverted (see that module).
ARGTYPES = "bufkit/_argtypes.py"
ARGTYPES_SHADOW = """\
from typing import TypeAlias, TypeVar, Union

_T = TypeVar("_T")

Checked: TypeAlias = Union[_T, object]
"""

# The shared library holding mypyc's runtime and every compiled module is the
# top-level module GROUP__mypyc (mypyc's name for a group's library).
GROUP = "bufkit"


def _compile_requested() -> bool:
    """Whether the environment asks for the compiled build."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in {"", "0", "false", "no", "off"}:
        return False
    if value in {"1", "true", "yes", "on"}:
        return True
    raise ValueError(f"{ENV_VAR} must be 1 or 0, got {value!r}")


class CompileHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the configured modules with mypyc when ``BUFKIT_COMPILE=1``."""

    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        """What the compiled build needs at build time (nothing otherwise)."""
        if not _compile_requested():
            return []
        # mypy checks the compiled modules, so it needs the runtime
        # dependencies' types too (attrs).
        return ["mypy>=1.18", "setuptools>=70", "attrs>=23.1"]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile into a temporary directory and add the extensions."""
        if self.target_name != "wheel" or not _compile_requested():
            return
        if version == "editable":
            raise RuntimeError(
                f"{ENV_VAR}=1 builds a regular wheel only: an editable install "
                "would run the pure-Python sources. Use `pip install .`."
            )
        modules = self.config.get("compile", [])
        self._tmp = tempfile.mkdtemp(prefix="bufkit-mypyc-")
        outputs = _compile(Path(self.root), modules, Path(self._tmp))
        for path in outputs:
            rel = path.relative_to(Path(self._tmp) / "lib")
            build_data["force_include"][str(path)] = rel.as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        self.app.display_info(
            f"bufkit: compiled {len(modules)} modules with mypyc ({', '.join(modules)})"
        )

    def finalize(
        self, version: str, build_data: dict[str, Any], artifact_path: str
    ) -> None:
        """Remove the temporary build directory once the wheel is written."""
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _compile(root: Path, modules: list[str], tmp: Path) -> list[Path]:
    """Build ``modules`` (paths relative to ``root``); return the extensions."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    shadow = tmp / "argtypes_compiled.py"
    shadow.write_text(ARGTYPES_SHADOW, encoding="utf-8")
    args = ["--shadow-file", str(root / ARGTYPES), str(shadow)]
    paths = args + [str(root / module) for module in modules]
    cwd = Path.cwd()
    os.chdir(root)  # mypy reads [tool.mypy] and finds the package from here
    try:
        extensions = mypycify(
            paths, target_dir=str(tmp / "c"), group_name=GROUP, opt_level="3"
        )
        dist = Distribution({"name": "bufkit", "ext_modules": extensions})
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib = str(tmp / "lib")  # type: ignore[attr-defined]
        cmd.build_temp = str(tmp / "obj")  # type: ignore[attr-defined]
        cmd.inplace = False  # type: ignore[attr-defined]
        dist.run_command("build_ext")
    finally:
        os.chdir(cwd)
    suffixes = (".so", ".pyd")
    found = [p for p in (tmp / "lib").rglob("*") if p.suffix in suffixes]
    if not found:
        sys.exit("bufkit: mypyc produced no extension module")
    return sorted(found)
