"""Sphinx configuration of hpcdask's documentation.

Built by the README's test command (``ci/test.sh``) with warnings as errors:

    .venv/bin/sphinx-build -W --keep-going -b html docs build/docs

Pages are Markdown (MyST); the API reference comes from the docstrings
(numpydoc style, through napoleon). Nothing is fetched at build time.
"""

from __future__ import annotations

import hpcdask

project = "hpcdask"
author = "the hpcdask developers"
copyright = "the hpcdask developers"
release = version = hpcdask.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# "#walltime" links to a section of another page, as on GitHub
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"hpcdask {release}"
