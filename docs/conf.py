"""Sphinx configuration for mmio's documentation (built warning-free by the test suite)."""

import mmio

project = "mmio"
author = "mmio developers"
release = version = mmio.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "*.ipynb", "api-contract.md"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = f"mmio {release}"
html_static_path = ["_static"]

autodoc_typehints = "none"          # the compiled modules embed their signatures
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
intersphinx_mapping = {}
suppress_warnings = ["myst.xref_missing"]
nitpicky = False
