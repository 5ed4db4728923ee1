"""The built book in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Every page of ``_build/html`` is served from 127.0.0.1 and opened; the test fails on console
errors from the site itself, on images that did not load, on equations MathJax did not render, and
on chapters whose Colab link does not point at a notebook in this repository.  Screenshots of two
pages go to ``test-artifacts/``.  Requests to any other host are aborted: the site must work
offline (MathJax is served from the site itself, see book/_ext/book_site.py).

``make test`` builds the book and installs chromium first.  Run alone, the test skips (locally)
when the build or the browser is missing, and fails in CI.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "_build" / "html"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = {  # page -> (what to scroll to, file name)
    "book/05_inception_module.html": ("#the-module-with-dimension-reductions", "inception_module_equations.png"),
    "book/06_googlenet.html": ("#table-1-recomputed-and-its-errors img", "googlenet_table1.png"),
}

# The generated diagrams (course_pkg.diagrams), as the page shows them: element screenshots.
DIAGRAMS = {
    "book/05_inception_module.html": ("#the-naive-module img", "diagram_inception_module.png"),
    "book/06_googlenet.html": ("#the-whole-network img", "diagram_googlenet.png"),
}
WIDGET_PAGES = ["book/04_vgg_1x1.html", "book/05_inception_module.html"]
PHONE_WIDTH = 420

pytestmark = [pytest.mark.book, pytest.mark.timeout(900)]


def _missing(problem: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run the browser test: {problem}")
    pytest.skip(problem)


def _toc_chapters() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [entry["file"] for entry in toc["chapters"] if re.match(r"book/\d\d_", entry["file"])]


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "index.html").is_file():
        _missing(f"the book is not built ({SITE}/index.html missing): run `make book`")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output readable
        pass


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} not found: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _pages() -> list[str]:
    """Every HTML page of the built site, relative to it (not Sphinx's copied sources/assets)."""
    pages = []
    for path in sorted(SITE.rglob("*.html")):
        rel = path.relative_to(SITE).as_posix()
        if not rel.startswith(("_static/", "_sources/", "_images/")):
            pages.append(rel)
    return pages


def _visit(browser, site_url: str, page: str, screenshot: tuple[str, Path] | None = None,
           width: int = 1280, element_shot: tuple[str, Path] | None = None) -> dict:
    """Open one page; return what the browser saw."""
    local = urlparse(site_url).netloc
    report = {"console_errors": [], "page_errors": [], "external": [], "failed": []}
    context = browser.new_context(viewport={"width": width, "height": 900})

    def route(r):
        if urlparse(r.request.url).netloc == local or r.request.url.startswith("data:"):
            r.continue_()
        else:  # offline: nothing outside the site may be needed to read it
            report["external"].append(r.request.url)
            r.abort()

    context.route("**/*", route)
    tab = context.new_page()

    def on_console(msg):
        if msg.type != "error":
            return
        source = (msg.location or {}).get("url", "")
        text = msg.text
        blocked = any(url in text or url == source for url in report["external"])
        if not blocked and not (text.startswith("Failed to load resource") and urlparse(source).netloc != local):
            report["console_errors"].append(f"{text} ({source})")

    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: report["page_errors"].append(str(exc)))
    tab.on("requestfailed", lambda req: urlparse(req.url).netloc == local and report["failed"].append(req.url))
    response = tab.goto(f"{site_url}/{page}", wait_until="load")
    report["status"] = response.status if response else None
    # MathJax typesets asynchronously: wait for its startup promise where it is on the page.
    tab.wait_for_function(
        """() => !document.querySelector('span.math, div.math')
                 || Boolean(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)""",
        timeout=30_000,
    )
    tab.evaluate(
        """() => (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)
                 ? window.MathJax.startup.promise.then(() => true) : true"""
    )
    # Images: make lazy ones load, then look at each.
    tab.evaluate("() => document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
    tab.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=20_000)
    report["alts"] = tab.evaluate("() => [...document.querySelectorAll('article img')].map(i => i.alt)")
    report["images"] = tab.evaluate(
        "() => [...document.images].map(i => ({src: i.currentSrc.slice(0, 120), w: i.naturalWidth}))"
    )
    report["math"] = tab.evaluate(
        """() => ({
            spans: document.querySelectorAll('span.math, div.math').length,
            rendered: document.querySelectorAll('mjx-container').length,
            errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
            mathjax: Boolean(window.MathJax && window.MathJax.version),
            raw_tex: [...document.querySelectorAll('span.math, div.math')]
                       .filter(e => !e.querySelector('mjx-container'))
                       .map(e => e.textContent.slice(0, 60)),
        })"""
    )
    if page in WIDGET_PAGES:  # the html manager renders the saved widget state asynchronously
        try:
            tab.wait_for_selector(".widget-slider", timeout=20_000)
        except Exception:
            pass
    report["widgets"] = tab.evaluate(
        """() => ({
            states: document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]').length,
            views: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
            sliders: [...document.querySelectorAll('.widget-slider')]
                .filter(e => e.getBoundingClientRect().width > 0).length,
            saved_sliders: [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]')]
                .map(s => Object.values(JSON.parse(s.textContent).state || {}))
                .flat().filter(m => /SliderModel$/.test(m.model_name)).length,
            handles: document.querySelectorAll('.widget-slider .noUi-handle, .widget-slider .ui-slider-handle').length,
        })"""
    )
    report["overflow"] = tab.evaluate(_OVERFLOW_JS)
    if element_shot is not None:
        selector, path = element_shot
        path.parent.mkdir(parents=True, exist_ok=True)
        tab.locator(selector).first.screenshot(path=str(path))
    report["colab"] = tab.evaluate(
        "() => [...document.querySelectorAll('a[href*=\"colab.research.google.com\"]')].map(a => a.href)"
    )
    if screenshot is not None:
        selector, path = screenshot
        found = tab.evaluate(
            """(sel) => { const e = document.querySelector(sel); if (!e) return false;
                         e.scrollIntoView({block: 'start'}); window.scrollBy(0, -70); return true; }""",
            selector,
        )
        assert found, f"{page}: nothing matches {selector!r} to take the screenshot of"
        tab.wait_for_timeout(300)
        path.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(path), full_page=False)
    context.close()
    return report


# Elements sticking out to the right of the viewport, unless a horizontally scrolling box that
# itself fits holds them (wide tables, code, outputs).  Hidden elements do not count.
_OVERFLOW_JS = """() => {
    const width = document.documentElement.clientWidth;
    const inScroller = (e) => {
        for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
            const x = getComputedStyle(p).overflowX;
            if ((x === 'auto' || x === 'scroll' || x === 'hidden') && p.getBoundingClientRect().right <= width + 1)
                return true;
        }
        return false;
    };
    const out = [];
    for (const e of document.querySelectorAll('body *')) {
        const r = e.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || r.right <= width + 1) continue;
        const style = getComputedStyle(e);
        if (style.visibility === 'hidden' || style.position === 'fixed') continue;
        if (!inScroller(e)) out.push(`${e.tagName.toLowerCase()}.${String(e.className).split(' ')[0]}`
                                     + ` (right edge ${Math.round(r.right)})`);
    }
    return {width, scroll_width: document.documentElement.scrollWidth, outside: out.slice(0, 8)};
}"""


@pytest.fixture(scope="module")
def phone_visits(browser, site_url) -> dict[str, dict]:
    """Every page again at a phone's width; the diagrams are photographed there too."""
    return {page: _visit(browser, site_url, page, width=PHONE_WIDTH) for page in _pages()}


@pytest.fixture(scope="module")
def visits(browser, site_url) -> dict[str, dict]:
    pages = _pages()
    assert "index.html" in pages
    shots = {page: (selector, ARTIFACTS / name) for page, (selector, name) in SCREENSHOTS.items()}
    diagrams = {page: (selector, ARTIFACTS / name) for page, (selector, name) in DIAGRAMS.items()}
    return {page: _visit(browser, site_url, page, shots.get(page), element_shot=diagrams.get(page)) for page in pages}


def test_every_chapter_page_was_built(visits):
    missing = [f + ".html" for f in _toc_chapters() if f + ".html" not in visits]
    assert not missing, f"chapters without a page in {SITE}: {missing}"


def test_pages_load_without_console_errors(visits):
    problems = {
        page: {k: v[k] for k in ("console_errors", "page_errors", "failed") if v[k]}
        for page, v in visits.items()
        if v["status"] != 200 or v["console_errors"] or v["page_errors"] or v["failed"]
    }
    assert not problems, f"pages with errors in the browser: {problems}"


def test_images_loaded(visits):
    broken = {p: [i["src"] for i in v["images"] if i["w"] == 0] for p, v in visits.items()}
    broken = {p: srcs for p, srcs in broken.items() if srcs}
    assert not broken, f"images that did not load (naturalWidth 0): {broken}"
    figures = sum(len(v["images"]) for p, v in visits.items() if p.startswith("book/"))
    assert figures >= len(_toc_chapters()), f"only {figures} images in the chapters: figures missing?"


def test_equations_rendered_offline(visits):
    with_math = {p: v["math"] for p, v in visits.items() if v["math"]["spans"]}
    assert with_math, "no page has equations: the parameter/cost formulas should be there"
    for page, math in with_math.items():
        assert math["mathjax"], f"{page}: MathJax did not load (it is served from _static/mathjax)"
        assert not math["raw_tex"], f"{page}: equations left as raw TeX: {math['raw_tex'][:3]}"
        assert math["rendered"] >= math["spans"] and not math["errors"], (page, math)
    needs_cdn = {p: v["external"] for p, v in visits.items() if any("mathjax" in u.lower() for u in v["external"])}
    assert not needs_cdn, f"pages asking a CDN for MathJax: {needs_cdn}"


def test_colab_links_open_notebooks_of_this_repository(visits):
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    repo_path = urlparse(config["repository"]["url"]).path.strip("/")
    branch = config["repository"]["branch"]
    tracked = None  # what Colab can fetch is what is committed
    if (REPO / ".git").exists():
        listing = subprocess.run(["git", "ls-files", "book", "assignments"], cwd=REPO, capture_output=True, text=True)
        if listing.returncode == 0:
            tracked = set(listing.stdout.split())
    for chapter in _toc_chapters():
        links = visits[chapter + ".html"]["colab"]
        assert links, f"{chapter}: no Colab launch link on the page"
        for link in links:
            url = urlparse(link)
            assert url.netloc == "colab.research.google.com"
            prefix = f"/github/{repo_path}/blob/{branch}/"
            assert url.path.startswith(prefix), f"{chapter}: Colab link {link} is not into {repo_path}@{branch}"
            target = url.path[len(prefix):]
            assert target.endswith(".ipynb") and (REPO / target).is_file(), (
                f"{chapter}: Colab link points at {target}, which is not a notebook in the repository"
            )
            if tracked is not None:
                assert target in tracked, f"{chapter}: {target} exists but is not committed (git add it)"


def test_screenshots_saved(visits):
    for _, name in SCREENSHOTS.values():
        shot = ARTIFACTS / name
        assert shot.is_file() and shot.stat().st_size > 10_000, f"screenshot {shot} missing or empty"


def test_widgets_render_offline(visits):
    """The sliders of chapters 4 and 5 are drawn from their saved state with no network: require.js
    and the ipywidgets HTML manager come from the site itself (book/_ext/book_site.py)."""
    for page in WIDGET_PAGES:
        seen = visits[page]
        assert seen["widgets"]["states"] == 1 and seen["widgets"]["views"] >= 1, f"{page}: no saved widget state"
        saved = seen["widgets"]["saved_sliders"]
        assert saved >= 1 and seen["widgets"]["sliders"] == saved, (
            f"{page}: sliders not rendered offline: {seen['widgets']}")
        assert not [u for u in seen["external"] if "widget" in u or "require" in u], seen["external"]
    needs_cdn = {p: v["external"] for p, v in visits.items() if v["external"]}
    assert not needs_cdn, f"pages that asked another host for something: {needs_cdn}"


def test_no_page_overflows_a_phone_screen(phone_visits):
    wide = {page: v["overflow"] for page, v in phone_visits.items()
            if v["overflow"]["outside"] or v["overflow"]["scroll_width"] > v["overflow"]["width"] + 1}
    assert not wide, f"pages wider than a {PHONE_WIDTH}-px screen outside scrolling boxes: {wide}"
    assert all(v["status"] == 200 for v in phone_visits.values())


def test_diagrams_photographed(visits):
    for _, name in DIAGRAMS.values():
        shot = ARTIFACTS / name
        assert shot.is_file() and shot.stat().st_size > 20_000, f"screenshot {shot} missing or empty"


def test_figures_have_alt_text_not_file_names(visits):
    alts = {page: v["alts"] for page, v in visits.items() if page.startswith("book/")}
    bad = {page: [a for a in found if not a or re.search(r"[0-9a-f]{32}|\.png", a)] for page, found in alts.items()}
    bad = {page: found for page, found in bad.items() if found}
    assert not bad, f"images whose alt text is missing or a file name: {bad}"
