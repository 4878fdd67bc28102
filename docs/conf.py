"""Sphinx configuration: the API reference, built in CI with warnings as errors."""

from __future__ import annotations

import zoom_s2s

project = "zoom-s2s"
author = "The zoom-s2s developers"
copyright = "2026, The zoom-s2s developers"  # noqa: A001 - Sphinx's name
release = version = zoom_s2s.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
