"""The book's sources: chapters are Colab-ready notebooks, committed clean, whose prose states no
number that the code does not compute.  (The built site is checked in test_book_browser.py.)"""

from __future__ import annotations

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


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_glued_names_are_glued_by_the_chapter(path):
    nb = load(path)
    used = set(re.findall(r"\{glue(?::\w+)?\}`([\w.-]+)(?::[^`]*)?`", markdown_text(nb)))
    code = "\n".join(code_cells(nb))
    missing = sorted(name for name in used if not re.search(rf"""["']{re.escape(name)}["']""", code))
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
