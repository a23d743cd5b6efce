"""Sphinx configuration of the book (``make book``; see ``kdas_utils/book.py``, which copies this
file to the root of the staging folder it builds from)."""

import re

from kdas_utils.config import REPOSITORY

project = "KDAS notebooks"
author = "the KDAS notebooks contributors"
copyright = "2026, " + author
root_doc = "docs/index"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinxarg.ext"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "results/**/*.md", "_mathjax"]
nb_execution_mode = "off"  # the notebooks as make tutorial executed them: never a second run
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # the pages keep GitHub's heading levels (a table may sit under ####)
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True

# MathJax 2.7 from the site itself (kdas_utils.book copies jupyter-server-mathjax's files to _static/mathjax/),
# so that formulas render offline and when the pages are opened from disk; Sphinx's default loads it from a CDN.
html_static_path = ["_mathjax"]
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    # Sphinx marks the page's body tex2jax_ignore and each formula "math": only those are typeset
    "tex2jax": {
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "processEscapes": True,
        "ignoreClass": "tex2jax_ignore|mathjax_ignore|document",
        "processClass": "math|output_area",
    },
    "showMathMenu": False,
    # the package ships the STIX-Web fonts only (as the classic Jupyter Notebook used them)
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
}

html_theme = "sphinx_book_theme"
html_title = "KDAS notebooks"
html_favicon = "docs/_static/favicon.svg"
html_context = {"default_mode": "light"}  # else the theme logs an error on a first visit (no stored mode)
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": "main",
    "path_to_docs": "",
    "use_repository_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com", "binderhub_url": "https://mybinder.org"},
    "show_toc_level": 2,
}

# Links from the pages to files of the repository that are not in the book (code, tests, settings)
# go to the file on GitHub.
IN_BOOK = ("docs/", "notebooks/", "results/")


def _to_github(app, docname, source):
    if not docname.startswith("docs/"):
        return

    def link(match):
        target = match.group(2)
        if target.endswith("/"):  # a folder: GitHub lists it
            return f"{match.group(1)}({REPOSITORY}/tree/main/{target})"
        if target.startswith(IN_BOOK):
            return match.group(0)
        return f"{match.group(1)}({REPOSITORY}/blob/main/{target})"

    source[0] = re.sub(r"(\]|\]\s)\(\.\./([^)#\s]+)\)", link, source[0])


def setup(app):
    app.connect("source-read", _to_github)
