"""The Colab copies of the chapters (book/colab/, written by the book build, see
book/_ext/colab_copies.py): what Colab opens must read as finished Markdown — no MyST role,
directive or label — with the chapter's own code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "book" / "_ext"))
import colab_copies  # noqa: E402
from test_book import CHAPTERS, IDS, code_cells, load  # noqa: E402

COPIES = [REPO / colab_copies.COPY_DIR / p.name for p in CHAPTERS]


def test_the_detector_sees_roles_directives_and_labels():
    for text in ("a {glue:text}`x` b", "{cite}`k`", "```{admonition} T\nbody\n```", ":::{note}\nx\n:::",
                 "(my-label)=\n# T", "{ref}`t <l>`"):
        assert colab_copies.MYST_SYNTAX.search(text), text
    assert not colab_copies.MYST_SYNTAX.search("plain `code`, $x^2$, [a link](u) and\n```python\nx = 1\n```")


def test_finishing_writes_values_citations_and_quotes():
    bib = {"szegedy2015going": ("Szegedy et al.", "2015"), "lecun1998gradient": ("LeCun et al.", "1998")}
    text = ("GoogLeNet {cite}`szegedy2015going` has {glue:text}`n` parameters and {glue:text}`r:.1f` "
            "{cite:t}`lecun1998gradient`.\n\n(lbl)=\n```{admonition} GPU results pending\n:class: warning\n"
            "Line one.\n\nLine two.\n```\n")
    out = colab_copies.finish_markdown(text, {"n": "6,998,552", "r": "8.94"}, bib)
    assert "GoogLeNet (Szegedy et al., 2015) has 6,998,552 parameters and 8.9 LeCun et al. (1998)." in out
    assert "> **GPU results pending**\n>\n> Line one.\n>\n> Line two." in out
    assert not colab_copies.MYST_SYNTAX.search(out) and ":class:" not in out
    with pytest.raises(KeyError, match="missing_name"):
        colab_copies.finish_markdown("{glue:text}`missing_name`", {}, bib)


@pytest.mark.parametrize("chapter, copy", list(zip(CHAPTERS, COPIES)), ids=IDS)
def test_colab_copy_has_no_myst_and_the_chapters_code(chapter, copy):
    assert copy.is_file(), f"{copy.relative_to(REPO)} is missing: `make book` writes it; commit it"
    nb, original = load(copy), load(chapter)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            found = colab_copies.MYST_SYNTAX.findall("".join(cell["source"]))
            assert not found, f"{copy.name} cell {i} shows MyST syntax in Colab: {found}"
    expected = [c.replace(colab_copies.GLUE_FALLBACK, colab_copies.SILENT_FALLBACK) for c in code_cells(original)]
    assert code_cells(nb) == expected, f"{copy.name}: code differs from {chapter.name}: rebuild the book"
    assert all(c["outputs"] == [] for c in nb["cells"] if c["cell_type"] == "code")
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "{glue" not in prose and "{cite" not in prose


def test_committed_copies_are_the_ones_the_build_writes():
    """After `make book`, the copies in the working tree are the build's: they must be committed."""
    if not (REPO / ".git").exists():
        pytest.skip("no git repository")
    diff = subprocess.run(["git", "status", "--porcelain", "--", str(colab_copies.COPY_DIR)], cwd=REPO,
                          capture_output=True, text=True)
    assert diff.returncode == 0 and not diff.stdout.strip(), (
        f"the build changed or added Colab copies that are not committed:\n{diff.stdout}"
    )


def test_copies_state_the_chapters_glued_values():
    executed = REPO / "_build" / "jupyter_execute" / "book"
    if not executed.is_dir():
        pytest.skip("the book is not built (`make book`)")
    checked = 0
    for chapter, copy in zip(CHAPTERS, COPIES):
        record = executed / chapter.with_suffix(".glue.json").name
        if not record.is_file():
            continue
        prose = "\n".join("".join(c["source"]) for c in load(copy)["cells"] if c["cell_type"] == "markdown")
        for name, value in json.loads(record.read_text()).items():
            if f"`{name}`" in "\n".join("".join(c["source"]) for c in load(chapter)["cells"] if c["cell_type"] == "markdown"):
                assert colab_copies.glued_value(value) in prose, f"{copy.name}: {name} not written in"
                checked += 1
    assert checked > 50
