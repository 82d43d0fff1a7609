"""The type of a public argument that bufkit validates itself.

Theory of operation: a public entry point refuses a wrong argument with an
error that names the argument and the value (``min_size must be an int, not
str``), and refuses ``bool`` where it wants an ``int``. Type checkers see
``Checked[int]`` as ``int``, so they reject a wrong argument before it runs.
The compiled build (see ``hatch_build.py``) reads this module from a shadow
copy where ``Checked[T]`` is ``object``: mypyc then leaves the argument as it
came, instead of converting a ``bool`` or raising its own ``TypeError``
before bufkit's check runs, and both builds raise the same errors.
Cost: none at run time; annotations are never evaluated by the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeAlias, TypeVar

__all__ = ["Checked"]

_T = TypeVar("_T")

if TYPE_CHECKING:
    Checked: TypeAlias = Annotated[_T, "validated by bufkit"]
else:

    class _Checked:
        """At run time ``Checked[T]`` is ``T``, which documentation tools show."""

        __slots__ = ()

        def __getitem__(self, item: object) -> object:
            return item

    Checked = _Checked()
