"""Copied work, flagged for the instructor with its evidence (never a score by itself).

Three measures, each with the threshold it flags from (benchmarks/copy_thresholds.py measures them
on the course's solutions, pasted code, independent implementations and trained weights):

- :func:`pasted_reference_flags`: a cell the student wrote holds most of a definition that
  :mod:`course_pkg.grading.hidden` hides for the assignment (normalised code: :func:`code_shingles`);
- :func:`similar_notebooks`: two students' written code near-identical (starter code excluded);
- :func:`shipped_weight_flags`: a submitted checkpoint close to one the course ships
  (:func:`weight_distance`, read on the grader's side like every submitted file).
"""

from __future__ import annotations

import ast
import io
from pathlib import Path
from typing import Any

from .verdict import MAX_CHECKPOINT_UNPACKED

# --------------------------------------------------------------------------------------------
# Flags: copied code (the course's reference source, a classmate's notebook)
# --------------------------------------------------------------------------------------------
SHINGLE = 8  # tokens per shingle: a run of 8 normalised tokens is about one short statement
#: Flag a notebook holding this fraction of a reference definition's shingles (those not in the
#: starter notebook), and two notebooks sharing this fraction of their own (Jaccard): see
#: GUARANTEES_free_marks.md for the measurements on the solutions, pasted and renamed code.
PASTED_REFERENCE = 0.85
SIMILAR_PAIR = 0.9
MIN_SHINGLES = 30  # a definition or notebook shorter than this says too little to compare


def code_shingles(source: str, k: int = SHINGLE) -> set[int]:
    """The runs of ``k`` tokens of ``source`` (hashed), normalised so that renaming and comments
    change nothing: comments and blank lines dropped, every identifier one token, every string
    (docstrings too) one token, keywords, numbers and operators kept (IPython's ``%`` and ``!``
    lines skipped)."""
    import keyword
    import tokenize

    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    tokens: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENCODING, tokenize.ENDMARKER):
                continue
            if tok.type == tokenize.STRING:
                tokens.append("S")
            elif tok.type == tokenize.NAME:
                tokens.append(tok.string if keyword.iskeyword(tok.string) else "N")
            else:
                tokens.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return {hash(tuple(tokens[i:i + k])) for i in range(len(tokens) - k + 1)}


def written_code(nb: Any) -> list[tuple[str, str]]:
    """(label, source) of the code cells a student wrote: solution cells and cells of their own,
    not the locked cells or the test cells the grader restores."""
    out = []
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("grade") or (meta.get("locked") and not meta.get("solution")):
            continue
        out.append((meta.get("grade_id") or f"cell {i}", cell.source))
    return out


def reference_sources(assignment: str) -> dict[str, str]:
    """``"course_pkg/<module>:<name>"`` -> the source of each definition the sandbox hides for
    ``assignment`` (:data:`~course_pkg.grading.hidden.HIDDEN`): what a notebook may not paste."""
    import course_pkg

    from .hidden import HIDDEN

    root = Path(course_pkg.__file__).parent
    out = {}
    for rel, names in HIDDEN.get(assignment, {}).items():
        source = (root / rel).read_text()
        for node in ast.parse(source).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names:
                out[f"course_pkg/{rel}:{node.name}"] = ast.get_source_segment(source, node) or ""
    return out


def pasted_reference_flags(nb: Any, assignment: str, starter: set[int]) -> list[str]:
    """Sentences for the instructor when the code a student wrote holds most of a reference
    definition (:func:`code_shingles`, less the starter notebook's): which cell, which definition,
    what fraction."""
    flags = []
    cells = [(label, code_shingles(src)) for label, src in written_code(nb)]
    for name, source in reference_sources(assignment).items():
        ref = code_shingles(source) - starter
        if len(ref) < MIN_SHINGLES:
            continue
        for label, mine in cells:
            share = len(ref & mine) / len(ref)
            if share >= PASTED_REFERENCE:
                flags.append(f"{label}: holds {share:.0%} of the course's {name} (normalised code, identifiers "
                             f"and comments ignored; flagged from {PASTED_REFERENCE:.0%})")
    return flags


def similar_notebooks(notebooks: dict[str, Any], starter: set[int]) -> dict[str, list[str]]:
    """student -> sentences naming each classmate whose written code (less the starter notebook's)
    is near-identical to theirs: Jaccard similarity of :func:`code_shingles` from :data:`SIMILAR_PAIR`."""
    sets = {}
    for student, nb in notebooks.items():
        shingles = set().union(*(code_shingles(src) for _, src in written_code(nb))) - starter
        if len(shingles) >= MIN_SHINGLES:
            sets[student] = shingles
    pairs: dict[str, list[tuple[float, str]]] = {}
    names = sorted(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            sim = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
            if sim >= SIMILAR_PAIR:
                pairs.setdefault(a, []).append((sim, b))
                pairs.setdefault(b, []).append((sim, a))
    flags = {}
    for student, found in pairs.items():
        found.sort(key=lambda pair: (-pair[0], pair[1]))
        shown = ", ".join(f"{other} ({sim:.0%})" for sim, other in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        flags[student] = [f"written code near-identical to that of {shown}{more} (Jaccard similarity of normalised "
                          f"code, starter code excluded, flagged from {SIMILAR_PAIR:.0%})"]
    return flags


# --------------------------------------------------------------------------------------------
# Flags: weights near a checkpoint the course ships
# --------------------------------------------------------------------------------------------
#: A submitted state_dict this close to a shipped checkpoint (relative L2 distance over the weight
#: tensors they share, :func:`weight_distance`) is flagged.  Measured (GUARANTEES_free_marks.md):
#: the shipped faithful network plus noise of 0.1 of each tensor's std is at 0.10, and its last 6
#: epochs (a warm restart from chunk 2) moved it 0.140; an honest run with the course's own seed,
#: initialisation and recipe (the reference's first 6-epoch schedule) is 0.66 from the shipped
#: weights and 0.50 from the 16-epoch chunk; other seeds or layouts are 1.2 or more.
NEAR_SHIPPED = 0.25
MAX_SUBMITTED_WEIGHTS_BYTES = 512 << 20


def _weights_of(obj: Any) -> dict[str, Any]:
    """The floating-point tensors of a loaded checkpoint (a state_dict, or the course's format)."""
    import torch

    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        return {}
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)
            and v.is_floating_point() and v.ndim >= 2}


def weight_distance(submitted: dict[str, Any], shipped: dict[str, Any]) -> tuple[float, int] | None:
    """(relative L2 distance ``|s - r| / |r|``, tensors compared) over the weight tensors (2-D and
    more) that both hold with the same shape, or None when they share less than half of the shipped
    checkpoint's weights (another network)."""
    keys = [k for k, v in shipped.items() if k in submitted and submitted[k].shape == v.shape]
    total = sum(v.numel() for v in shipped.values())
    if not keys or sum(shipped[k].numel() for k in keys) * 2 < total:
        return None
    diff = ref = 0.0
    for k in keys:
        r = shipped[k].float()
        diff += float((submitted[k].float() - r).pow(2).sum())
        ref += float(r.pow(2).sum())
    return (diff / ref) ** 0.5 if ref else float("inf"), len(keys)


def shipped_weight_flags(folder: Path) -> list[str]:
    """Sentences for the instructor for each submitted torch file in ``folder`` (the trusted copy)
    whose weights lie within :data:`NEAR_SHIPPED` of a checkpoint shipped in ``course_pkg.pretrained``
    (read bounded, without links, ``weights_only=True``)."""
    import torch

    from .. import pretrained
    from .replicas import Refused, check_zip, read_untrusted

    shipped = {}
    for name in pretrained.available():
        try:
            shipped[name] = _weights_of(torch.load(pretrained.path(name), map_location="cpu", weights_only=True))
        except Exception:  # noqa: BLE001 -- a shipped file the grader cannot read compares with nothing
            continue
    flags = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb":
            continue
        try:
            data = read_untrusted(path, folder, MAX_SUBMITTED_WEIGHTS_BYTES)
            if not data.startswith(b"PK\x03\x04"):
                continue
            check_zip(data, path.name, MAX_CHECKPOINT_UNPACKED)
            submitted = _weights_of(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
        except (Refused, OSError):
            continue
        except Exception:  # noqa: BLE001 -- not a loadable state_dict: the checks say so
            continue
        for name, weights in shipped.items():
            found = weight_distance(submitted, weights)
            if found is not None and found[0] < NEAR_SHIPPED:
                flags.append(f"{path.relative_to(folder).as_posix()}: weights at relative L2 distance {found[0]:.4f} "
                             f"(over {found[1]} weight tensors) from the course's shipped checkpoint {name}; "
                             f"independent training is 0.5 or more, flagged below {NEAR_SHIPPED}")
    return flags
