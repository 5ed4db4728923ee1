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
    report["svg_text"] = tab.evaluate(_SVG_TEXT_JS)
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


# The text of every SVG figure of a page as the page shows it: the SVG file the <img> loads is put
# into the page at the image's displayed size (hidden), and each <text> element's font size is
# multiplied by its scale on screen (getScreenCTM: the viewBox-to-image scale and any transform).
# Diagrams are SVG with real text (course_pkg.diagrams.svg), so this is what a reader sees.
_SVG_TEXT_JS = """async () => {
    const out = [];
    for (const img of document.querySelectorAll('article img')) {
        const src = img.currentSrc || img.src;
        if (!/\\.svg([?#]|$)/.test(src)) continue;
        const r = img.getBoundingClientRect();
        const text = await (await fetch(src)).text();
        const svg = document.importNode(new DOMParser().parseFromString(text, 'image/svg+xml').documentElement, true);
        svg.setAttribute('width', `${r.width}px`);
        svg.setAttribute('height', `${r.height}px`);
        const holder = document.createElement('div');
        holder.style.cssText = 'position:absolute;left:0;top:0;visibility:hidden;pointer-events:none';
        holder.appendChild(svg);
        document.body.appendChild(holder);
        const sizes = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim()).map(t => {
            const m = t.getScreenCTM();
            return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
        });
        holder.remove();
        out.push({src: src.split('/').pop(), alt: img.alt, width: Math.round(r.width), texts: sizes.length,
                  min_px: sizes.length ? Math.round(100 * Math.min(...sizes)) / 100 : null});
    }
    return out;
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


# Chapters rewritten on another branch: some of their figures still get the section fallback.
GENERIC_ALT_PENDING: set[str] = set()  # pages whose figures do not say yet what they show


def test_alt_texts_say_what_each_figure_shows(visits):
    """Not "Figure" or the section's name (book_site.py's fallback): the plot's titles or the
    alt text the cell gives its image.  The diagrams' alt texts describe them in full."""
    generic = {page: [a for a in v["alts"] if re.search(r"a figure of the section|^(Figure:?\s*)?$", a)]
               for page, v in visits.items() if page.startswith("book/") and page not in GENERIC_ALT_PENDING}
    generic = {page: found for page, found in generic.items() if found}
    assert not generic, f"figures whose alt text does not say what they show: {generic}"
    diagrams = [d for v in visits.values() for d in v["svg_text"]]
    short = [d["alt"] for d in diagrams if len(d["alt"]) < 80]
    assert not short, f"diagram alt texts too short to say what the diagram shows: {short}"


# ------------------------------------------------------------------------------------------------
# Diagrams readable: text size measured in Chromium at 1280 and 420 px
# ------------------------------------------------------------------------------------------------
MIN_TEXT_PX = 9
SVG_DIAGRAMS = {  # page -> how many SVG diagrams it shows (course_pkg.diagrams)
    "book/05_inception_module.html": 1, "book/06_googlenet.html": 1, "book/10_for_instructors.html": 1,
}


def _diagram_sizes(visits) -> dict[str, list[dict]]:
    return {page: v["svg_text"] for page, v in visits.items() if v["svg_text"]}


def test_diagram_text_is_9px_or_more_at_desktop_width(visits):
    found = _diagram_sizes(visits)
    assert {p: len(d) for p, d in found.items()} == SVG_DIAGRAMS, f"SVG diagrams per page: {found}"
    for page, diagrams in found.items():
        for d in diagrams:
            assert d["texts"] > 5, f"{page}: {d['src']} has no real text (glyphs as paths cannot be measured)"
            assert d["min_px"] >= MIN_TEXT_PX, (
                f"{page}: {d['src']} shown {d['width']} px wide has text of {d['min_px']} CSS px at 1280 px "
                f"(want {MIN_TEXT_PX} or more)")


def test_diagram_text_is_9px_or_more_on_a_phone(phone_visits):
    """At 420 px the same requirement, without zooming: a diagram narrow enough shrinks to the
    388-px column and its text stays 9 px or more; the network diagram (class diagram-wide) keeps
    its own size in a box that scrolls sideways (the page itself does not get wider, see
    test_no_page_overflows_a_phone_screen).  Being SVG, every diagram stays sharp when zoomed."""
    found = _diagram_sizes(phone_visits)
    assert {p: len(d) for p, d in found.items()} == SVG_DIAGRAMS, f"SVG diagrams per page: {found}"
    small = {page: [(d["src"], d["width"], d["min_px"]) for d in diagrams if d["min_px"] < MIN_TEXT_PX]
             for page, diagrams in found.items()}
    small = {page: found for page, found in small.items() if found}
    assert not small, f"diagram text under {MIN_TEXT_PX} CSS px at {PHONE_WIDTH} px (file, width, px): {small}"


# ------------------------------------------------------------------------------------------------
# Sliders: moved in the browser, the page shows what the chapter says it shows
# ------------------------------------------------------------------------------------------------
def _bottleneck_text(width: int) -> list[str]:
    """Chapter 4: 5x5 convolution, 32 filters, 28x28x192 input, after a 1x1 reduction to ``width``."""
    return [f"1x1 to {width:>3}, then 5x5", f"{28 * 28 * (192 * width + 32 * width * 25):,}",
            f"{28 * 28 * 32 * 192 * 25:,}"]


def _module_text(reduce3: int) -> list[str]:
    """Chapter 5: inception (3a) on 28x28x192 with #3x3 reduce ``reduce3`` (the chapter's formula)."""
    macs = 28 * 28 * (192 * (64 + reduce3 + 16 + 32) + 9 * reduce3 * 128 + 25 * 16 * 32)
    return [f"{macs:,} multiply-adds, 256 output channels"]


# page -> (the claim in the chapter's text, the slider's start, ArrowRight presses, the end,
#          what the page must show at the start and at the end)
SLIDERS = {
    "book/04_vgg_1x1.html": ("the slider shows the result for the position it", 16, 12, 64, _bottleneck_text),
    "book/05_inception_module.html": ("the slider shows the result for the position it", 96, 4, 128, _module_text),
}


def test_moved_slider_shows_what_the_page_says(browser, site_url):
    """The chapters say the slider shows the result for the position it is at: move it with the
    keyboard as a reader would and read what the page then shows."""
    for page, (claim, start, presses, end, expected) in SLIDERS.items():
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.goto(f"{site_url}/{page}", wait_until="load")
        prose = " ".join(tab.evaluate("() => document.querySelector('article').innerText").split())
        assert claim in prose, f"{page}: the text no longer says {claim!r}: update this test with it"
        tab.wait_for_selector(".widget-slider .noUi-handle", timeout=20_000)
        shown = lambda: tab.evaluate(  # noqa: E731 - the visible precomputed output
            """() => [...document.querySelectorAll('pre.precomputed-output')]
                     .filter(e => e.offsetParent !== null).map(e => e.textContent).join('\\n')""")
        before = shown()
        assert all(text in before for text in expected(start)), f"{page}: at {start} the page shows {before!r}"
        handle = tab.locator(".widget-slider .noUi-handle").first
        handle.focus()
        for _ in range(presses):
            tab.keyboard.press("ArrowRight")
        tab.wait_for_function(
            "(old) => [...document.querySelectorAll('pre.precomputed-output')]"
            ".some(e => e.offsetParent !== null && e.textContent !== old)", arg=before, timeout=5_000)
        after = shown()
        readout = tab.evaluate("() => document.querySelector('.widget-slider .widget-readout').textContent.trim()")
        context.close()
        assert readout == str(end), f"{page}: the slider reads {readout} after {presses} steps, expected {end}"
        assert all(text in after for text in expected(end)), f"{page}: moved to {end}, the page shows {after!r}"
