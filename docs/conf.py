"""Sphinx configuration for bufkit's documentation."""

from __future__ import annotations

import bufkit

project = "bufkit"
author = "The bufkit developers"
copyright = "2026, The bufkit developers"
release = bufkit.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

nitpicky = True
# Builds run with no network, so Python's own inventory cannot be fetched:
# references to bufkit's names must resolve (nitpicky), references to the
# standard library and other packages are rendered as plain names.
nitpick_ignore_regex = [(r"py:.*", r"(?!bufkit\b).*")]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"bufkit {release}"
