"""The repository's shape: modules a reader finds in one guess and reads in one sitting."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_pkg"
MAX_MODULE_LINES = 400  # one job per module
MAX_FIT_LINES = 80  # fit reads in one sitting


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_does_several_jobs_by_size():
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def test_fit_reads_in_one_sitting():
    tree = ast.parse((PACKAGE / "train.py").read_text())
    fit = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 <= MAX_FIT_LINES


def test_the_readme_says_where_every_module_is():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Where things are"):]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else None]
    listed = set(re.findall(r"`(course_pkg/[\w/]+\.py)`", section))
    present = {str(p.relative_to(ROOT)) for p in _modules()}
    assert present - listed == set(), f"modules missing from README 'Where things are': {sorted(present - listed)}"
    assert listed - present == set(), f"README lists modules that do not exist: {sorted(listed - present)}"


def test_the_public_repository_cites_nothing_it_does_not_contain():
    """No citation of the private reference notes or of this project's issue numbers (an issue of
    another public repository, named with it, is a public source)."""
    pattern = re.compile(r"REFERENCE\.md|\bissue #?\d+\b|\bissues/\d+", re.I)
    public = re.compile(r"[\w-]+/[\w.-]+ issue #?\d+|github\.com/[\w-]+/[\w.-]+/issues/\d+", re.I)
    hits = []
    for path in ROOT.rglob("*"):
        if (not path.is_file() or path.suffix not in {".py", ".md", ".ipynb", ".yml", ".toml", ".cfg", ".txt"}
                or any(part.startswith(".") or part in {"_build", "_publish", "node_modules"} for part in path.relative_to(ROOT).parts)
                or path.name == "test_structure.py"):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(public.sub("", line)):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
