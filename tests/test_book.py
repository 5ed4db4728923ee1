"""The book's sources: chapters are Colab-ready notebooks, committed clean, whose prose states no
number that the code does not compute.  (The built site is checked in test_book_browser.py.)"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())


def toc_files() -> list[str]:
    """Every document named in _toc.yml (without suffix), root first."""
    files = [TOC["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            for part in entry.get("parts", []) if isinstance(entry, dict) else []:
                walk(part.get("chapters"))

    walk(TOC.get("chapters"))
    for part in TOC.get("parts", []):
        walk(part.get("chapters"))
    return files


def chapter_paths() -> list[Path]:
    """The numbered chapters (book/NN_*.ipynb) in the order of the table of contents."""
    return [REPO / (f + ".ipynb") for f in toc_files() if re.match(r"book/\d\d_", f)]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def markdown_text(nb: dict) -> str:
    return "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def code_cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


CHAPTERS = chapter_paths()
IDS = [p.stem for p in CHAPTERS]


def test_toc_lists_ten_chapters_that_exist_as_notebooks():
    assert len(CHAPTERS) == 10, f"_toc.yml should list the ten chapters book/NN_*.ipynb, found {IDS}"
    assert [p.name[:2] for p in CHAPTERS] == [f"{i:02d}" for i in range(1, 11)]
    for f in toc_files():
        candidates = [REPO / (f + s) for s in (".ipynb", ".md")]
        assert any(c.is_file() for c in candidates), f"_toc.yml names {f}, which does not exist"
    for p in CHAPTERS:
        assert p.is_file(), f"chapter {p.relative_to(REPO)} must be a .ipynb (Colab cannot open .md)"
        assert not p.with_suffix(".md").exists(), f"{p.stem} has both .md and .ipynb; keep the .ipynb"


def test_build_settings_fail_on_errors_and_cache_execution():
    execute = CONFIG["execute"]
    assert execute["execute_notebooks"] == "cache"
    assert execute["raise_on_error"] is True
    assert "_build" in CONFIG["exclude_patterns"] and CONFIG["only_build_toc_files"] is True
    makefile = (REPO / "Makefile").read_text()
    assert "jupyter-book build . -W -n --keep-going" in makefile


def test_colab_launch_button_configured():
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    url = CONFIG["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    # sphinx.config.html_theme_options would replace the theme options Jupyter Book derives
    # from launch_buttons/repository (the Colab button vanishes) unless recursive_update is set.
    sphinx = CONFIG.get("sphinx", {})
    if "html_theme_options" in sphinx.get("config", {}):
        assert sphinx.get("recursive_update") is True


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapter_committed_without_outputs(path):
    nb = load(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: clear them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} carries saved widget state"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_first_code_cell_installs_course_pkg_from_the_configured_repository_in_colab_only(path):
    first = code_cells(load(path))[0]
    url = CONFIG["repository"]["url"]
    assert '"google.colab" in sys.modules' in first, f"{path.name}: install only when in Colab"
    assert f'"git+{url}"' in first, f"{path.name}: install git+{url} (the repository.url of _config.yml)"
    # the URL appears nowhere else in a chapter's code, so changing _config.yml is enough...
    others = [c for c in code_cells(load(path))[1:] if "github.com" in c]
    assert not others, f"{path.name}: repository URL repeated outside the install cell"
    # ...and no other chapter installs from a different repository
    assert re.findall(r"git\+https://[^\s\"']+", first) == [f"git+{url}"]


# --- numbers in prose -------------------------------------------------------------------------
# Prose may state small integers (kernel sizes, chapter numbers, "two GPUs") and years.  Anything
# that looks like a measured or counted quantity — four or more digits, a decimal, a percentage,
# a K/M/G suffix — must come from code through a {glue:text} role, or be one of these figures
# quoted from a paper (and cited beside it).
QUOTED_FROM_PAPERS = {
    "(around 0.5%)",  # the auxiliary classifiers' effect as the paper states it, Szegedy et al. 2015, section 5
    "1.5 billion",  # GoogLeNet's design budget of multiply-adds, Szegedy et al. 2015, section 5
    "6.67%",  # GoogLeNet's ILSVRC 2014 top-5 error, Szegedy et al. 2015, Table 2/3
    "60 million",  # AlexNet's parameter count as stated, Krizhevsky et al. 2012, section 4
    "60,000",  # LeNet-5's trainable parameters as stated, LeCun et al. 1998, section II.B
}
YEARS = range(1950, 2031)

_STRIP = [
    re.compile(r"\{glue(?::\w+)?\}`[^`]*`"),  # glued values
    re.compile(r"\{cite(?::\w+)?\}`[^`]*`"),  # citations
    re.compile(r"\{(?:ref|numref|doc|eq|download)\}`[^`]*`"),
    re.compile(r"```.*?```", re.S),  # fenced code / directives
    re.compile(r"`[^`]*`"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"https?://\S+"),
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"^\([\w-]+\)=\s*$", re.M),  # MyST labels
    re.compile(r"\b(?:[Ss]ections?|[Tt]ables?|[Ff]igures?|[Cc]hapters?)\s+[\dIVX]+(?:\.\d+)*[a-z]?"),  # "section 3.3"
]
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
_NUMBER = re.compile(
    r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(\s?(?:%|[KMGB]\b|(?i:million|billion|thousand)\b))?"
)


def suspicious_numbers(markdown: str) -> list[str]:
    for pattern in _STRIP:
        markdown = pattern.sub(" ", markdown)
    # Equations state formulas and the papers' hyperparameters (alpha = 10^-4, beta = 0.75):
    # in them only a count of four or more digits is suspicious.
    found = [m for eq in _MATH.findall(markdown) for m in re.findall(r"\d(?:[\d,]|\{,\})*\d{3}", eq)]
    markdown = _MATH.sub(" ", markdown)
    for quoted in QUOTED_FROM_PAPERS:
        markdown = markdown.replace(quoted, " ")
    for match in _NUMBER.finditer(markdown):
        digits, suffix = match.group(1).rstrip(","), match.group(2)
        value = float(digits.replace(",", ""))
        is_year = digits.isdigit() and int(digits) in YEARS
        if suffix or "." in digits or "," in digits or (value >= 1000 and not is_year):
            found.append(match.group(0).strip())
    return found


def test_number_scanner_catches_typed_counts():
    # the scanner itself: typed counts are caught; glued values, years and small sizes are not
    text = (
        "It has 6,998,552 parameters, 1.58 GMAC, 93% accuracy and 60M weights, trained 2400 steps. "
        "Figure 2b (section 3.3) shows 3 Million things. "
        "Glued: {glue:text}`n_params` and $3 \\times 3$ convolutions on 224x224 images, in 2014, "
        "with $\\beta = 0.75$ and $1{,}024{,}000$ weights."
    )
    assert suspicious_numbers(text) == ["1{,}024{,}000", "6,998,552", "1.58", "93%", "60M", "2400", "3 Million"]


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_prose_states_no_number_the_code_does_not_produce(path):
    found = suspicious_numbers(markdown_text(load(path)))
    assert not found, (
        f"{path.name} types these numbers in its prose: {found}. Compute them in a code cell and "
        "insert them with glue(...) and {glue:text}`name`, or cite the paper they are quoted from "
        "(QUOTED_FROM_PAPERS in this test)."
    )


def glue_names_used(path: Path) -> set[str]:
    """The glue names a chapter's prose shows ({glue:text}`name`)."""
    return set(re.findall(r"\{glue(?::\w+)?\}`([\w.-]+)(?::[^`]*)?`", markdown_text(load(path))))


# Chapters that glue the dicts of course_pkg functions (``for name, value in f(...).items(): glue(name, ...)``):
# their names are checked by running those functions, in the test named here.
GLUED_FROM_THE_PACKAGE = {
    "07_training_cifar10": "tests/test_reference_runs.py::test_chapter7_glues_every_name_its_prose_shows",
    "08_multicrop": "tests/test_book_results_cells.py::test_chapter8_shows_table3_and_glues_its_directions"}


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_glued_names_are_glued_by_the_chapter(path):
    nb = load(path)
    code = "\n".join(code_cells(nb))
    assert ("glue(name, value" in code) == (path.stem in GLUED_FROM_THE_PACKAGE), (
        f"{path.name}: a chapter that glues a package function's dict is listed in GLUED_FROM_THE_PACKAGE "
        "with the test that runs those functions, and only such a chapter")
    if path.stem in GLUED_FROM_THE_PACKAGE:
        return
    missing = sorted(name for name in glue_names_used(path) if not re.search(rf"""["']{re.escape(name)}["']""", code))
    assert not missing, f"{path.name} uses glue names its code never glues: {missing}"


def test_papers_are_cited_from_the_bibliography():
    bib = (REPO / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([\w:-]+),", bib))
    cited: set[str] = set()
    for path in CHAPTERS:
        md = markdown_text(load(path))
        found = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]*)`", md) for k in group.split(",")}
        unknown = found - keys
        assert not unknown, f"{path.name} cites {sorted(unknown)}, which references.bib lacks"
        cited |= found
    assert {"szegedy2015going", "lecun1998gradient", "krizhevsky2012imagenet"} <= cited
    references = [f for f in toc_files() if f.endswith("references")]
    assert references, "_toc.yml should list the references page (its {bibliography} directive)"


# --- from chapter to assignment -----------------------------------------------------------------
# Which assignment each chapter prepares (assignments/<name>/<name>.ipynb, the student versions).
PREPARES = {
    "02_lenet": "01_lenet_alexnet",
    "03_alexnet": "01_lenet_alexnet",
    "04_vgg_1x1": "01_lenet_alexnet",
    "05_inception_module": "02_inception_module",
    "06_googlenet": "03_googlenet_aux",
    "07_training_cifar10": "03_googlenet_aux",
    "08_multicrop": "04_multicrop",
}


def colab_url(path: str) -> str:
    owner_repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{CONFIG['repository']['branch']}/{path}"


def test_every_assignment_is_prepared_by_a_chapter():
    assignments = sorted(p.name for p in (REPO / "assignments").iterdir() if p.is_dir())
    assert assignments and sorted(set(PREPARES.values())) == assignments
    assert set(PREPARES) <= set(IDS)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapter_ends_with_exercises_and_its_assignment_box(path):
    cells = [c for c in load(path)["cells"] if c["cell_type"] == "markdown"]
    texts = ["".join(c["source"]) for c in cells]
    exercises = [t for t in texts if t.startswith("## Exercises")]
    assert len(exercises) == 1, f"{path.name}: one '## Exercises' section at the end"
    items = re.findall(r"^\d+\. ", exercises[0], re.M)
    assert 2 <= len(items) <= 4, f"{path.name}: {len(items)} exercises, want 2-4"
    assignment = PREPARES.get(path.stem)
    if assignment is None:
        assert texts[-1] is exercises[0], f"{path.name}: the exercises should end the chapter"
        assert "colab.research.google.com" not in "".join(texts)
        return
    box = texts[-1]
    assert texts[-2] is exercises[0] and box.startswith("```{admonition} Assignment"), (
        f"{path.name}: the chapter should end with its exercises, then the assignment box"
    )
    notebook = f"assignments/{assignment}/{assignment}.ipynb"
    assert (REPO / notebook).is_file()
    assert f"]({colab_url(notebook)})" in box, f"{path.name}: the box should open {notebook} in Colab"
    for part in ("**What to do.**", "**Open it.**", "**What is graded.**"):
        assert part in box, f"{path.name}: the assignment box lacks {part}"
    graded = [c["metadata"]["nbgrader"]["grade_id"] for c in load(REPO / notebook)["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade")]
    assert graded, f"{notebook} has no graded cells"
    if path.stem in FULL_POINTS_PENDING:
        return
    total = sum(c["metadata"]["nbgrader"]["points"] for c in load(REPO / notebook)["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade"))
    assert "**Full points.**" in box, f"{path.name}: the assignment box should say what earns full points"
    assert re.search(rf"(?<!\d){total:g} points", box), (
        f"{path.name}: the box should state the assignment's {total:g} points (the graded cells' sum)")
    if assignment == "03_googlenet_aux":  # the accuracy steps, as the assignment grades them
        source = (REPO / "assignments_src" / "03_googlenet_aux.py").read_text()
        steps = ast.literal_eval(re.search(r"^ACCURACY_STEPS = (.+)$", source, re.M).group(1))
        for accuracy, fraction in steps:
            assert f"{6 * fraction:g} at {accuracy:.0%}" in box or f"all 6 at {accuracy:.0%}" in box, (
                f"{path.name}: the box should state the step {accuracy:.0%} -> {6 * fraction:g} of 6 points")


FULL_POINTS_PENDING: set[str] = set()  # chapters whose box does not say yet what earns full points


def test_precomputed_slider_shows_the_output_of_its_position():
    """The page gets every output and a link from the slider to the one shown (no kernel needed)."""
    from ipywidgets.embed import embed_data

    from course_pkg.book import precomputed_slider

    box = precomputed_slider("width", [4, 8, 12], ["cost a", "cost <b>", "cost c"], value=8)
    slider, shown = box.children
    assert slider.value == 8 and shown.selected_index == 1
    assert [page.value for page in shown.children][1] == '<pre class="precomputed-output">cost &lt;b&gt;</pre>'
    state = embed_data(views=[box])["manager_state"]["state"]
    links = [m["state"] for m in state.values() if m["model_name"] == "LinkModel"]
    assert any(link.get("source") == ["IPY_MODEL_" + slider.model_id, "index"]
               and link.get("target") == ["IPY_MODEL_" + shown.model_id, "selected_index"] for link in links)
    with pytest.raises(ValueError, match="one output per value"):
        precomputed_slider("width", [4, 8], ["only one"])


def test_precomputed_slider_without_stack_swaps_the_text_in_python(monkeypatch):
    """ipywidgets 7 (Colab's) has no Stack: there a kernel runs, and the slider's callback shows
    the output of its position."""
    import ipywidgets

    from course_pkg.book import precomputed_slider

    monkeypatch.delattr(ipywidgets, "Stack")
    slider, shown = precomputed_slider("width", [4, 8, 12], ["a", "b", "c"], value=4).children
    assert shown.value == '<pre class="precomputed-output">a</pre>'
    slider.value = 12
    assert shown.value == '<pre class="precomputed-output">c</pre>'


def test_index_has_prerequisites_and_maps_chapters_to_assignments_with_times():
    index = (REPO / "book" / "index.md").read_text()
    assert "## Before you start" in index
    for chapter in IDS:
        row = next((line for line in index.splitlines() if f"]({chapter}.ipynb)" in line), None)
        assert row, f"the index's chapter table has no row for {chapter}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.search(r"\d+ (?:h|min)", cells[-1]), f"{chapter}: no time estimate in {row!r}"
        number = str(int(chapter[:2]))
        if chapter in PREPARES:
            assert cells[1].startswith(f"assignment {int(PREPARES[chapter][:2])}"), (chapter, row)
        else:
            assert cells[1] == "—", (chapter, row)
        assert cells[0].startswith(f"[{number}.")
    for assignment in sorted(set(PREPARES.values())):
        assert colab_url(f"assignments/{assignment}/{assignment}.ipynb") in index


# ------------------------------------------------------------------------------------------------
# the built site (after `make book`)
# ------------------------------------------------------------------------------------------------
_NOT_PROSE = re.compile(r"<(pre|code|script|style|textarea)\b.*?</\1>", re.S | re.I)
_PIPE_ROW = re.compile(r"^\s*\|.*\|\s*$|\|\s*[-\u2013\u2014:]{3,}\s*\|")


def raw_pipe_table_lines(html: str) -> list[str]:
    """Lines of a page's rendered text (code, scripts and styles left out) that are a markdown pipe
    table which was not turned into a <table>."""
    import html as html_lib

    text = _NOT_PROSE.sub(" ", html)
    text = re.sub(r"<(p|div|br|li|tr|h\d)\b[^>]*>", "\n", text, flags=re.I)
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", text))
    return [line.strip() for line in text.splitlines() if _PIPE_ROW.search(line)]


def test_the_raw_table_finder_finds_a_printed_table_and_ignores_code():
    printed = ("<p>| models | crops |\n|\u2014:|\u2014:|\n| 1 | 10 |</p><pre>| a | b |</pre>"
               "<table><tr><td>1</td></tr></table>")
    assert raw_pipe_table_lines(printed) == ["| models | crops |", "|\u2014:|\u2014:|", "| 1 | 10 |"]
    assert raw_pipe_table_lines("<p>x | y is an or</p><code>|---|</code>") == []


def _built_site() -> Path:
    """_build/html; the test skips without it (fails in CI, where `make test` builds it first)."""
    site = REPO / "_build" / "html"
    if not (site / "index.html").is_file():
        import os

        if os.environ.get("CI"):
            pytest.fail("_build/html is missing: `make test` builds the book before the tests")
        pytest.skip("the book is not built (`make book`)")
    return site


@pytest.mark.book
def test_the_built_site_prints_no_table_as_raw_text():
    site = _built_site()
    raw = {page.relative_to(site).as_posix(): found for page in sorted(site.rglob("*.html"))
           if (found := raw_pipe_table_lines(page.read_text(errors="replace")))}
    assert raw == {}, f"pipe tables printed as text (a text/markdown output not rendered as MyST?): {raw}"
    tables = sum(page.read_text(errors="replace").count("<table") for page in site.glob("book/0[678]_*.html"))
    assert tables >= 6  # chapter 6's filter table, chapter 7's recipe and runs, chapter 8's Table 3s


@pytest.mark.book
def test_the_pages_ipynb_download_is_the_copy_with_its_values():
    sources = _built_site() / "_sources" / "book"
    downloads = sorted(sources.glob("[0-9][0-9]_*.ipynb"))
    assert len(downloads) == len(CHAPTERS)
    for page in downloads:
        text = page.read_text(encoding="utf-8")
        assert "{glue" not in text and text == (REPO / "book" / "colab" / page.name).read_text(encoding="utf-8")


def glue_names_in_order(path: Path) -> list[str]:
    """The names of a chapter's ``{glue:text}`` roles in the order its prose shows them."""
    return re.findall(r"\{glue(?::\w+)?\}`([\w.-]+)(?::[^`]*)?`", markdown_text(load(path)))


@pytest.mark.book
def test_chapter8_page_says_what_its_table_shows():
    """Each direction word chapter 8's built page shows is the one its table's paired interval
    allows: falls or rises only where the interval excludes zero (recomputed here from the numbers)."""
    import html as html_lib

    from course_pkg import results, table3_figures

    page = (_built_site() / "book" / "08_multicrop.html").read_text(errors="replace")
    shown = [html_lib.unescape(v) for v in re.findall(r'<span class="pasted-text">(.*?)</span>', page)]
    names = glue_names_in_order(REPO / "book" / "08_multicrop.ipynb")
    assert len(shown) == len(names), "every glue role of the chapter is rendered as a pasted value"
    result = results.load("table3_cifar", results.REPO_RESULTS)
    assert result is not None and result["images"] == 10_000, "chapter 8 reads Table 3 on the full test split"
    claims = table3_figures.claims(result)
    for name, value in zip(names, shown):
        if name in claims:
            vs = claims[name]
            expected = "falls" if vs["high"] < 0 else "rises" if vs["low"] > 0 else "does not change measurably"
            assert value == expected, (f"chapter 8 says {value!r} for {vs['row']}, whose interval is "
                                       f"{vs['low']:+.2f} to {vs['high']:+.2f}")
    assert {n for n in names if n in claims} == set(claims), "the page states every direction its table decides"
