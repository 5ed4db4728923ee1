"""The Colab copies of the chapters (book/colab/, written by the book build, see
book/_ext/colab_copies.py): what Colab opens must read as finished Markdown — no MyST role,
directive or label — with the chapter's own code."""

from __future__ import annotations

import json
import re
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


@pytest.mark.book
def test_committed_copies_are_the_ones_the_build_writes():
    """After `make book`, the copies in the working tree are the build's: they must be committed."""
    if not (REPO / ".git").exists():
        pytest.skip("no git repository")
    diff = subprocess.run(["git", "status", "--porcelain", "--", str(colab_copies.COPY_DIR)], cwd=REPO,
                          capture_output=True, text=True)
    assert diff.returncode == 0 and not diff.stdout.strip(), (
        f"the build changed or added Colab copies that are not committed:\n{diff.stdout}"
    )


def _glue_names(chapter: dict) -> set[str]:
    prose = "\n".join("".join(c["source"]) for c in chapter["cells"] if c["cell_type"] == "markdown")
    return {m.group(1) for m in colab_copies._GLUE.finditer(prose)}


def _bibliography():
    return colab_copies.load_bibliography(REPO / "book" / "references.bib")


@pytest.mark.parametrize("chapter, copy", list(zip(CHAPTERS, COPIES)), ids=IDS)
def test_copy_is_in_sync_with_its_chapter(chapter, copy):
    """The hash recorded in the copy is that of the chapter as it is now (values as placeholders)."""
    nb = load(chapter)
    expected = colab_copies.source_hash(nb, _glue_names(nb), _bibliography(), chapter.stem[:2].lstrip("0"))
    assert load(copy)["metadata"].get("colab_copy", {}).get("source_sha256") == expected, (
        f"{copy.relative_to(REPO)} is older than {chapter.name}: run `make book` and commit the copy")


def test_an_unchanged_chapter_keeps_its_copy_and_a_changed_one_is_rewritten(tmp_path):
    chapter = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["Took {glue:text}`t_seconds` s."]}],
               "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "references.bib").write_text("")
    src = tmp_path / "01_x.ipynb"
    src.write_text(json.dumps(chapter))
    executed = tmp_path / "exec"
    executed.mkdir()

    def build(seconds: str) -> str:
        record = {"t_seconds": {"data": {"text/plain": repr(seconds)}}}
        (executed / "01_x.glue.json").write_text(json.dumps(record))
        (target,) = colab_copies.write_copies(tmp_path, executed, [src])
        return "".join(load(target)["cells"][1]["source"])

    assert build("12") == "Took 12 s."
    assert build("13") == "Took 12 s."  # another build of the same chapter: the committed copy stays
    chapter["cells"][0]["source"] = ["It took {glue:text}`t_seconds` s."]
    src.write_text(json.dumps(chapter))
    assert build("13") == "It took 13 s."


def _same_number(a: str, b: str) -> bool:
    """Two renderings of one computed number that differ only by float rounding (1e-6 absolute,
    1e-4 relative), e.g. a difference of two equal products printed as 0.0e+00 or 6.0e-07."""
    a, b = (t.replace(",", "").rstrip("%") for t in (a, b))
    if a.lstrip("-").isdigit() or b.lstrip("-").isdigit():  # counts are exact
        return False
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= max(1e-6, 1e-4 * max(abs(x), abs(y)))


def test_same_number_tolerates_rounding_only():
    assert _same_number("0.0e+00", "6.0e-07") and _same_number("1.5000", "1.50001")
    assert not _same_number("6,998,552", "6,998,553") and not _same_number("0.10", "0.11")
    assert not _same_number("ten", "10")


@pytest.mark.book
def test_copies_state_the_chapters_glued_values():
    executed = REPO / "_build" / "jupyter_execute" / "book"
    if not executed.is_dir():
        pytest.skip("the book is not built (`make book`)")
    bibliography = _bibliography()
    checked = 0
    for chapter, copy in zip(CHAPTERS, COPIES):
        record = executed / chapter.with_suffix(".glue.json").name
        if not record.is_file():
            continue
        built = {k: colab_copies.glued_value(v) for k, v in json.loads(record.read_text()).items()}
        nb = load(chapter)
        names = _glue_names(nb)
        skeleton = colab_copies.colab_copy(nb, {n: colab_copies.placeholder(n) for n in names}, bibliography,
                                           chapter.stem[:2].lstrip("0"), hashed=False)
        originals = [None] + nb["cells"]  # the copy opens with its own note
        for cell, written, original in zip(skeleton["cells"], load(copy)["cells"], originals):
            if cell["cell_type"] != "markdown":
                continue
            parts = re.split("\u27e8([\\w.-]+)\u27e9", "".join(cell["source"]))
            pattern = "".join(re.escape(p) if i % 2 == 0 else "(.+?)" for i, p in enumerate(parts))
            match = re.fullmatch(pattern, "".join(written["source"]), re.S)
            assert match, f"{copy.name}: a markdown cell differs from {chapter.name} beyond its values"
            roles = list(colab_copies._GLUE.finditer("".join(original["source"]))) if original else []
            assert [r.group(1) for r in roles] == parts[1::2]
            for role, value in zip(roles, match.groups()):
                name, spec = role.group(1), role.group(2)
                checked += 1
                if colab_copies.MEASURED_AT_BUILD.search(name):
                    continue  # a measurement of the build that wrote the copy, not of this one
                expected = format(float(built[name]), spec) if spec else built[name]
                assert value == expected or _same_number(value, expected), (
                    f"{copy.name}: {name} is {value!r} in the copy, {expected!r} in this build")
    assert checked > 50
