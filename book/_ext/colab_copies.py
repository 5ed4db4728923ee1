"""The Colab copies of the chapters: what the launch buttons and Colab open.

Colab renders plain Markdown, not MyST, so a chapter opened there would show raw ``{glue:text}``
and ``{cite}`` roles and directive fences.  The copy in ``book/colab/`` is the chapter with its
prose finished: every glued value written in (from the book build's ``<chapter>.glue.json``), every
citation as "(Author et al., year)" from ``references.bib``, admonitions as block quotes, MyST
labels dropped.  Its code cells are the chapter's, outputs cleared, except that the setup cell
imports the silent ``glue`` (the text already holds the numbers).

``make book`` writes the copies (book_site.py calls :func:`write_copies` when the build finishes);
commit them with the chapters.  tests/test_colab_copies.py checks them.

Some glued values are measurements of the build itself (seconds, images/s, the accuracy of a
short training run): they differ a little from one build to the next.  So that a build of an
unchanged chapter leaves its committed copy alone, each copy records the hash of its text with
every glued value replaced by a placeholder (``metadata.colab_copy.source_sha256``), and a copy is
rewritten only when that hash changes, i.e. when the chapter's prose or code changed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

COPY_DIR = Path("book") / "colab"
GLUE_FALLBACK = "from course_pkg.book import QUICK, glue, plt, torch"
SILENT_FALLBACK = ("from course_pkg.book import QUICK, plt, torch\n"
                   "from course_pkg.book import quiet_glue as glue  # this copy's text already holds the numbers")

_GLUE = re.compile(r"\{glue(?::text)?\}`([\w.-]+)(?::([^`]*))?`")
_CITE = re.compile(r"\{cite(?::(\w+))?\}`([^`]*)`")
_ROLE = re.compile(r"\{[\w:-]+\}`([^`]*)`")
_LABEL = re.compile(r"^\([\w-]+\)=[ \t]*\n?", re.M)
_DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{([\w-]+)\}[ \t]*([^\n]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
#: What a reader must not see in a copy: a role, a directive fence or a label.
MYST_SYNTAX = re.compile(r"\{[\w:-]+\}`|^(?:`{3,}|:{3,})\{[\w-]+\}|^\([\w-]+\)=", re.M)


def author_year(entry) -> tuple[str, str]:
    """("Szegedy et al.", "2015") for a pybtex entry: one author, two joined by "and", or et al."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    last = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people]
    names = last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2 else f"{last[0]} et al."
    return names, entry.fields.get("year", "n.d.")


def load_bibliography(path: Path) -> dict:
    from pybtex.database import parse_file

    return {key: author_year(entry) for key, entry in parse_file(str(path)).entries.items()}


def glued_value(record: dict) -> str:
    text = record["data"]["text/plain"]
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def finish_markdown(text: str, glue: dict[str, str], bibliography: dict) -> str:
    """One markdown cell's MyST turned into plain Markdown with the values written in."""

    def directive(match):
        name, argument, body = match.group(2), match.group(3).strip(), match.group(4)
        body = "\n".join(line for line in body.splitlines() if not re.match(r"^:[\w-]+:", line))
        title = argument if name == "admonition" else name.capitalize() + (f": {argument}" if argument else "")
        quoted = "\n".join("> " + line if line else ">" for line in body.strip("\n").splitlines())
        return f"> **{title}**\n>\n{quoted}"

    def glued(match):
        name, spec = match.group(1), match.group(2)
        if name not in glue:
            raise KeyError(f"glue name {name!r} has no value in the executed chapter")
        value = glue[name]
        return format(float(value), spec) if spec and not value.startswith("\u27e8") else value

    def cite(match):
        kind, keys = match.group(1) or "p", [k.strip() for k in match.group(2).split(",")]
        missing = [k for k in keys if k not in bibliography]
        if missing:
            raise KeyError(f"citation keys {missing} are not in references.bib")
        if kind == "t":
            return "; ".join(f"{bibliography[k][0]} ({bibliography[k][1]})" for k in keys)
        return "(" + "; ".join(f"{bibliography[k][0]}, {bibliography[k][1]}" for k in keys) + ")"

    text = _DIRECTIVE.sub(directive, text)
    text = _GLUE.sub(glued, text)
    text = _CITE.sub(cite, text)
    text = _ROLE.sub(lambda m: re.sub(r"\s*<[^>]*>$", "", m.group(1)), text)
    return _LABEL.sub("", text)


#: Glued values that measure the build (timings, a short run's accuracy): they may differ between
#: builds of the same chapter.  Every other glued value is computed exactly and must not.
MEASURED_AT_BUILD = re.compile(r"seconds|speed|minutes|acc|loss|time")


def placeholder(name: str) -> str:
    return f"\u27e8{name}\u27e9"  # ⟨name⟩: cannot occur in a chapter's prose


def source_hash(chapter: dict, glue_names, bibliography: dict, title: str) -> str:
    """The hash of the copy with each glued value replaced by :func:`placeholder` (its name)."""
    skeleton = colab_copy(chapter, {n: placeholder(n) for n in glue_names}, bibliography, title, hashed=False)
    return hashlib.sha256(json.dumps(skeleton["cells"], sort_keys=True).encode()).hexdigest()


def colab_copy(chapter: dict, glue: dict[str, str], bibliography: dict, title: str, hashed: bool = True) -> dict:
    nb = copy.deepcopy(chapter)
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            source = finish_markdown(source, glue, bibliography)
        elif cell["cell_type"] == "code":
            source = source.replace(GLUE_FALLBACK, SILENT_FALLBACK)
            cell["outputs"], cell["execution_count"] = [], None
        cell["source"] = source.splitlines(keepends=True)
    note = (f"*The Colab copy of chapter {title} of the course book. The numbers in its text are those of "
            "the book's build (on a CPU, with quick settings); the cells compute them again on your runtime.*")
    nb["cells"].insert(0, {"cell_type": "markdown", "id": "colab-note", "metadata": {}, "source": [note]})
    if hashed:
        nb["metadata"]["colab_copy"] = {"source_sha256": source_hash(chapter, glue, bibliography, title)}
    return nb


def write_copies(repo: Path, executed: Path, chapters: list[Path]) -> list[Path]:
    """Write ``book/colab/<chapter>.ipynb`` for every chapter whose executed glue record exists."""
    bibliography = load_bibliography(repo / "book" / "references.bib")
    out = repo / COPY_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for chapter in chapters:
        record = executed / chapter.with_suffix(".glue.json").name
        glue = {k: glued_value(v) for k, v in json.loads(record.read_text()).items()} if record.is_file() else {}
        nb = json.loads(chapter.read_text(encoding="utf-8"))
        finished = colab_copy(nb, glue, bibliography, chapter.stem[:2].lstrip("0"))
        target = out / chapter.name
        if target.is_file():
            try:
                old = json.loads(target.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                old = {}
            if old.get("metadata", {}).get("colab_copy") == finished["metadata"]["colab_copy"]:
                written.append(target)  # same prose and code: keep the committed measurements
                continue
        target.write_text(json.dumps(finished, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written
