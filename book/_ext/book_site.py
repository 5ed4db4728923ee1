"""Two fixes to the built site, so that it works offline and a browser reports no errors.

1. MathJax from the site itself, so equations render without a CDN.  Sphinx loads MathJax 3 from a CDN by default.  The course is built and tested offline (CI has no
internet) and readers may open a downloaded copy of the book, so the single-file MathJax 3 bundle
``es5/tex-svg.js`` (SVG output: no web fonts to fetch) is copied into ``_build/html/_static`` from
the ``django-static-mathjax`` package on PyPI (a plain copy of MathJax 3.2.2, no dependencies;
listed in the ``book`` extra of pyproject.toml).

2. No script twice.  With Jupyter Book 1.0.4, sphinx-thebe registers its inline configuration
   script (``const THEBE_JS_URL = ...``) twice, and the second ``const`` is a JavaScript error on
   every page (Sphinx 7.4 re-adds inline scripts with filename "" beside the originals with
   filename None, so its own de-duplication misses them).  Duplicates are dropped per page.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

BUNDLE = "tex-svg.js"
TARGET = "mathjax/" + BUNDLE  # relative to _static, as Sphinx's mathjax_path allows


def bundle_path() -> Path:
    """The MathJax bundle shipped by the ``django-static-mathjax`` package."""
    try:
        import mathjax  # the package's import name
    except ImportError:
        raise ExtensionError(
            "MathJax is not installed: the book serves it locally so equations render offline. "
            "Install it with `pip install django-static-mathjax` (or `pip install -e .[book]`)."
        ) from None
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / BUNDLE
    if not path.is_file():
        raise ExtensionError(f"{path} is missing: reinstall django-static-mathjax (version 3.x)")
    return path


def _use_local_mathjax(app: Sphinx, config: Config) -> None:
    bundle_path()  # fail early, with the fix, if the package is missing
    config.mathjax_path = TARGET


def _copy_bundle(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / TARGET
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundle_path(), target)


def _drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        # inline scripts have filename None when first added and "" when Sphinx re-adds them
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _use_local_mathjax)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)  # after the themes
    app.connect("build-finished", _copy_bundle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
