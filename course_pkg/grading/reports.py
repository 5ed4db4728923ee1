"""The reports of a grading run: ``grades.csv``, the score histogram, the summary in words, and the
student-written parts of a graded notebook made safe to show as feedback HTML."""

from __future__ import annotations

import base64
import binascii
import csv
import html
import re
import urllib.parse
from pathlib import Path
from typing import Any

from .course import StudentResult


def spreadsheet_safe(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that starts with = + - @ tab or CR would be
    read as a formula (OWASP "CSV injection"), so it gets a leading single quote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(path: Path, results: dict[str, StudentResult], cells: list[str]) -> None:
    """One row per student; every text cell through :func:`spreadsheet_safe` (reasons quote file
    names and messages the student chose)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "submitted_as", "status", "score", "max_score", "seconds", "reason", "flags",
                    "needs_manual_grade", "log", *cells])
        for r in sorted(results.values(), key=lambda r: r.student):
            text = [r.student, r.source or r.student, r.status]
            w.writerow([*map(spreadsheet_safe, text), "" if r.score is None else f"{r.score:g}",
                        "" if r.max_score is None else f"{r.max_score:g}", f"{r.seconds:.1f}",
                        spreadsheet_safe(r.reason), spreadsheet_safe("; ".join(r.flags)), "yes" if r.manual else "",
                        spreadsheet_safe(r.log), *["" if r.cells.get(c) is None else f"{r.cells[c]:g}" for c in cells]])


def write_histogram(path: Path, results: dict[str, StudentResult], assignment: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graded = [r for r in results.values() if r.status == "graded" and r.max_score]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if graded:
        top = max(r.max_score for r in graded)
        ax.hist([r.score for r in graded], bins=min(20, max(5, int(top))), range=(0, top), color="#4a7")
        ax.set_xlim(0, top)
    failed = sum(r.status == "failed" for r in results.values())
    ax.set_title(f"{assignment}: {len(graded)} graded" + (f", {failed} failed (not shown)" if failed else ""))
    ax.set_xlabel("score")
    ax.set_ylabel("students")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)



def summary(results: dict[str, StudentResult], assignment: str, unsafe: bool = False,
            logs: Path | None = None, caps: str | None = None) -> str:
    """The run in a few lines: counts, scores, failures, flags; ``caps`` says which sandbox limits
    held on this machine (:func:`course_pkg.grading.sandbox.enforcement`)."""
    graded = [r for r in results.values() if r.status == "graded"]
    failed = [r for r in results.values() if r.status == "failed"]
    lines = [f"{assignment}: {len(graded)} graded, {len(failed)} failed, {len(results)} submissions"]
    if unsafe:
        lines.append("  UNSAFE: student code ran WITHOUT a sandbox (--unsafe-no-sandbox), with your rights")
    elif caps:
        lines.append(f"  {caps}")
    if graded:
        scores = sorted(r.score or 0.0 for r in graded)
        top = graded[0].max_score
        mid = (scores[len(scores) // 2] if len(scores) % 2
               else (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2)
        lines.append(f"  scores out of {top:g}: mean {sum(scores) / len(scores):.1f}, median {mid:g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g}; slowest {max(r.seconds for r in graded):.0f} s")
    for r in sorted(failed, key=lambda r: r.student):
        lines.append(f"  FAILED {r.student}: {r.reason}" + (f" (log: {r.log})" if r.log else ""))
    for r in sorted(results.values(), key=lambda r: r.student):
        if r.manual:
            lines.append(f"  needs manual grade: {r.student}")
        for f in r.flags:
            lines.append(f"  flag {r.student}: {f}")
        for n in r.notes:
            lines.append(f"  note {r.student}: {n}")
    if logs is not None:
        lines.append(f"  logs: {logs}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Feedback: what the student wrote or printed, made inert before nbgrader renders it as HTML
# --------------------------------------------------------------------------------------------
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # where HTML would start a tag, a comment or a declaration
# code the markdown renderer escapes itself: fenced blocks at a line start, and inline spans
# closed by a run of backticks of the same length (not after a backslash, which makes it text)
_CODE = re.compile(r"(^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\2[`~]*[ \t]*$"
                   r"|(?<![`\\])(`+)(?!`)[^\n]*?(?<!`)\3(?!`))", re.M | re.S)
_LINK = re.compile(r"(\]\(\s*|^ {0,3}\[[^\]\n]+\]:\s*)([^)\s]*)", re.M)
_IMAGE = re.compile(r"image/(png|jpeg|gif)")
_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _safe_url(url: str) -> bool:
    plain = re.sub(r"[\x00-\x20]", "", html.unescape(urllib.parse.unquote(url))).lower()
    scheme = re.match(r"([a-z][a-z0-9+.-]*):", plain)
    return scheme is None or scheme.group(1) in ("http", "https", "mailto") or bool(
        re.match(r"data:image/(png|jpeg|gif);", plain))


def sanitise_markdown(text: str) -> str:
    """Markdown a student wrote, with no HTML left to run: every tag outside code is escaped (so it
    shows as text) and links to ``javascript:`` and other schemes than http(s)/mailto are cut."""
    parts = _CODE.split(text)
    out = []
    for k in range(0, len(parts), 4):  # re.split: text, then the whole code match and its 2 groups
        prose = _TAG_START.sub("&lt;", parts[k])
        out.append(_LINK.sub(lambda m: m.group(1) + (m.group(2) if _safe_url(m.group(2)) else "#link-removed"), prose))
        if k + 1 < len(parts):
            out.append(parts[k + 1])
    return "".join(out)


def _base64(value: Any) -> bool:
    try:
        base64.b64decode("".join(value) if isinstance(value, list) else value, validate=True)
        return True
    except (binascii.Error, TypeError, ValueError):
        return False


def sanitise_notebook(nb: Any) -> None:
    """Make a graded notebook safe to render as feedback (in place): markdown through
    :func:`sanitise_markdown`, HTML outputs through nbconvert's own sanitiser (bleach: no
    scripts, event handlers, iframes or ``javascript:`` links), images only as valid base64, and
    no grading metadata whose id would be pasted into the page (only a student adds such ids)."""
    from nbconvert.filters import clean_html

    nb.metadata.pop("title", None)
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        grading = meta.get("nbgrader")
        if isinstance(grading, dict) and not _ID.fullmatch(str(grading.get("grade_id", "x"))):
            meta.pop("nbgrader")
        if cell.cell_type == "markdown":  # (a student can mark a cell of their own "locked")
            cell.source = sanitise_markdown(cell.source)
            cell["attachments"] = {name: {m: v for m, v in files.items() if _IMAGE.fullmatch(m) and _base64(v)}
                                   for name, files in (cell.get("attachments") or {}).items()
                                   if isinstance(files, dict)}
            if not cell["attachments"]:
                cell.pop("attachments")
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            for mime in list(data):
                if mime == "text/html":
                    data[mime] = clean_html("".join(data[mime]) if isinstance(data[mime], list) else data[mime])
                elif mime.startswith("image/") and (not _IMAGE.fullmatch(mime) or not _base64(data[mime])):
                    del data[mime]
                elif mime not in ("text/plain",) and not mime.startswith("image/"):
                    del data[mime]  # javascript, svg, markdown, widgets: nothing a student made runs here
