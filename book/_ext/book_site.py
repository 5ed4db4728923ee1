"""Fixes to the built site, so that it works offline, reads well on a phone, and a browser reports
no errors.

1. MathJax from the site itself, so equations render without a CDN.
Sphinx loads MathJax 3 from a CDN by default.  The course is built and tested offline (CI has no
internet) and readers may open a downloaded copy of the book, so the single-file MathJax 3 bundle
``es5/tex-svg.js`` (SVG output: no web fonts to fetch) is copied into ``_build/html/_static`` from
the ``django-static-mathjax`` package on PyPI (a plain copy of MathJax 3.2.2, no dependencies;
listed in the ``book`` extra of pyproject.toml).

2. No script twice.  With Jupyter Book 1.0.4, sphinx-thebe registers its inline configuration
   script (``const THEBE_JS_URL = ...``) twice, and the second ``const`` is a JavaScript error on
   every page (Sphinx 7.4 re-adds inline scripts with filename "" beside the originals with
   filename None, so its own de-duplication misses them).  Duplicates are dropped per page.

3. Widgets from the site itself.  myst-nb loads require.js and the ipywidgets HTML manager
   (``@jupyter-widgets/html-manager``, ``dist/embed-amd.js`` and the fonts beside it) from CDNs;
   offline the sliders of chapters 4 and 5 would be empty space.  ``make widgets-js`` fetches both
   npm packages (pinned in the Makefile) into ``.cache/widgets-js``; they are copied into
   ``_static/widgets`` and myst-nb is pointed at them.

4. Colab copies (colab_copies.py): when the build finishes, ``book/colab/<chapter>.ipynb`` is
   written from the executed chapter with its values and citations written in, every Colab
   launch link of a chapter page is pointed at that copy instead of the MyST source, and the
   page's ``.ipynb`` download (``_sources/``) is that copy too.

5. Reading: wide tables scroll inside their own box on narrow screens (static/book_site.css),
   figures get alt text from their plot titles (or their section) instead of a hashed file name,
   and the reference list uses the same author-year labels as the citations in the text.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from docutils import nodes
from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

from colab_copies import author_year, write_copies

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WIDGETS_JS = REPO / ".cache" / "widgets-js"  # filled by `make widgets-js`
WIDGET_FILES = {"require.js": "requirejs/require.js", "embed-amd.js": "html-manager/dist/embed-amd.js"}

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
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _widget_sources() -> Path:
    missing = [rel for rel in WIDGET_FILES.values() if not (WIDGETS_JS / rel).is_file()]
    if missing:
        raise ExtensionError(
            f"the widget scripts are missing from {WIDGETS_JS} ({', '.join(missing)}): the book serves them "
            "so that the sliders render offline. Run `make widgets-js` (it uses npm)."
        )
    return WIDGETS_JS


def _use_local_widgets(app: Sphinx, config: Config) -> None:
    _widget_sources()
    # relative to _static; require.js first, then the manager that renders the saved widget state
    config.nb_ipywidgets_js = {"widgets/require.js": {}, "book_site_widgets.js": {}, "widgets/embed-amd.js": {}}
    config.html_static_path = [*config.html_static_path, str(HERE / "static")]
    config.bibtex_default_style = "course_authoryear"


def _copy_widgets(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "widgets"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(WIDGETS_JS / WIDGET_FILES["require.js"], target / "require.js")
    # the manager loads its fonts and chunks from beside itself
    for path in (WIDGETS_JS / "html-manager" / "dist").iterdir():
        if path.is_file() and not path.name.endswith((".map", ".LICENSE.txt")) and path.name != "embed.js":
            shutil.copyfile(path, target / path.name)


class AuthorYearLabels(BaseLabelStyle):
    """Reference-list labels "Szegedy et al., 2015", like the in-text citations."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            names, year = author_year(entry)
            yield f"{names}, {year}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.formatting", "course_authoryear", AuthorYearStyle)

# a title in either kind of quotes, the other kind allowed inside ("C3's connection table")
_TITLE = re.compile(r"""(?:suptitle|set_title)\(\s*(["'])((?:(?!\1)[^{}\\\n])+)\1""")


def _alt_text(app: Sphinx, doctree, docname: str) -> None:
    """Alt text for figures that a code cell drew: the cell's plot titles, else the section title."""
    for image in doctree.findall(nodes.image):
        if image.get("alt") and not re.search(r"[0-9a-f]{32}|jupyter_execute|\.png$", image["alt"]):
            continue
        cell, titles = image.parent, []
        while cell is not None and not (isinstance(cell, nodes.container) and cell.get("nb_element") == "cell_code"):
            cell = cell.parent
        if cell is not None:
            for block in cell.findall(nodes.literal_block):
                titles += [m.group(2) for m in _TITLE.finditer(block.astext())]
        section = image.parent
        while section is not None and not isinstance(section, nodes.section):
            section = section.parent
        heading = section[0].astext() if section is not None else docname
        image["alt"] = "Figure: " + ("; ".join(dict.fromkeys(titles)) if titles
                                     else f"a figure of the section “{heading}”")


def _chapters(app: Sphinx) -> list[Path]:
    return sorted(REPO / f"{doc}.ipynb" for doc in app.env.found_docs if re.fullmatch(r"book/\d\d_[\w-]+", doc))


def _colab_copies(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / "book"
    write_copies(REPO, executed, _chapters(app))
    # the page's .ipynb download serves the source, whose prose holds raw {glue} roles: serve the
    # copy instead, with the values written in
    for chapter in _chapters(app):
        source = Path(app.outdir) / "_sources" / "book" / chapter.name
        copy = REPO / "book" / "colab" / chapter.name
        if source.is_file() and copy.is_file():
            shutil.copyfile(copy, source)
    # the theme's Colab button opens the chapter's source; point it at the copy
    link = re.compile(r"(colab\.research\.google\.com/github/[^\"'\s]+?/blob/[^/\"']+/)book/(\d\d_[\w-]+\.ipynb)")
    for page in (Path(app.outdir) / "book").glob("[0-9][0-9]_*.html"):
        html = page.read_text(encoding="utf-8")
        fixed = link.sub(r"\1book/colab/\2", html)
        if fixed != html:
            page.write_text(fixed, encoding="utf-8")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _use_local_mathjax)
    app.connect("config-inited", _use_local_widgets)
    app.connect("builder-inited", lambda app: app.add_css_file("book_site.css"))
    app.connect("doctree-resolved", _alt_text)
    app.connect("build-finished", _copy_widgets)
    app.connect("build-finished", _colab_copies)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)  # after the themes
    app.connect("build-finished", _copy_bundle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
