"""The repository's shape: modules a reader finds in one guess and reads in one sitting, imports
that run one way, no code without a caller, documents that name only what exists."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_pkg"
# Size limits with headroom: a module that nears them is split by meaning, not squeezed under them
# (the largest module is about 390 lines, fit about 70).
MAX_MODULE_LINES = 450  # one job per module
MAX_FIT_LINES = 80  # fit reads in one sitting


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_does_several_jobs_by_size():
    long = {str(p.relative_to(ROOT)): n for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
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
                or any(part.startswith(".") or part in {"_build", "_publish", "node_modules"}
                       for part in path.relative_to(ROOT).parts)
                or path.name == "test_structure.py"):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(public.sub("", line)):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)


# ------------------------------------------------------------------------------------------------
# imports: no circle; the instructor's grading package is never imported by the student's side
# ------------------------------------------------------------------------------------------------
def _module_name(path: Path, root: Path = ROOT) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if package else parts), package


def _imports(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The course_pkg modules ``path`` imports, at module level and inside functions alike;
    ``from package import name`` counts as importing the submodule when ``name`` is one."""
    name, package = _module_name(path, root)
    here = name.split(".") if package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    paths = {_module_name(p)[0]: p for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "course_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\n")
    (pkg / "d.py").write_text("import course_pkg.a\n")
    graph = {name: _imports(path, {"course_pkg", "course_pkg.a", "course_pkg.b", "course_pkg.sub", "course_pkg.sub.c",
                                   "course_pkg.d"}, tmp_path)
             for name, path in {"course_pkg.a": pkg / "a.py", "course_pkg.b": pkg / "b.py",
                                "course_pkg.sub.c": pkg / "sub" / "c.py", "course_pkg.d": pkg / "d.py"}.items()}
    assert graph["course_pkg.b"] == {"course_pkg.sub.c"} and graph["course_pkg.d"] == {"course_pkg.a"}
    assert import_cycles(graph) == [["course_pkg.a", "course_pkg.b", "course_pkg.sub.c"]]


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "course_pkg.checks.handover" in graph["course_pkg.checks.inception"]  # the graph sees imports
    assert import_cycles(graph) == []


def _notebook_code(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")


def test_the_student_side_never_imports_the_instructors_grading_package():
    """Notebooks (assignments, solutions with their hidden tests, the book) and every module outside
    course_pkg/grading/ use course_pkg.checks; only the `course` command dispatches to grading."""
    grading = re.compile(r"course_pkg\.grading|from\s+course_pkg\s+import\s+grading"
                         r"|from\s+\.+grading|from\s+\.+\s+import\s+grading")
    notebooks = [*ROOT.glob("assignments/*/*.ipynb"), *ROOT.glob("solutions/*/*.ipynb"), *ROOT.glob("book/*.ipynb"),
                 *ROOT.glob("book/colab/*.ipynb")]
    assert len(notebooks) >= 8
    offenders = [str(p.relative_to(ROOT)) for p in notebooks if grading.search(_notebook_code(p))]
    offenders += [str(p.relative_to(ROOT)) for p in ROOT.glob("assignments_src/*.py") if grading.search(p.read_text())]
    graph = import_graph()
    offenders += [f"{name} imports {sorted(t for t in targets if t.startswith('course_pkg.grading'))}"
                  for name, targets in graph.items()
                  if not name.startswith("course_pkg.grading") and name != "course_pkg.cli"
                  and any(t.startswith("course_pkg.grading") for t in targets)]
    assert offenders == []
    assert any(grading.search(_notebook_code(p)) is None and "course_pkg.checks" in _notebook_code(p)
               for p in notebooks)


# ------------------------------------------------------------------------------------------------
# no code without a caller
# ------------------------------------------------------------------------------------------------
CALLERS = ("course_pkg/**/*.py", "tests/*.py", "benchmarks/*.py", "benchmarks/*.sh", "tools/*.py",
           "book/*.ipynb", "book/_ext/*.py", "assignments_src/*.py", "nbgrader_config.py", "pyproject.toml", "Makefile")
# called by a framework, not by name: PyTorch's module protocol, nbgrader's preprocessor protocol
FRAMEWORK_METHODS = {"forward", "extra_repr", "preprocess", "preprocess_cell"}


def _code_without_all(path: Path) -> str:
    text = path.read_text()
    if path.suffix == ".ipynb":
        return _notebook_code(path)
    if path.suffix != ".py":
        return text
    lines = text.splitlines()
    for node in ast.parse(text).body:  # a name listed in __all__ is exported, not called
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            lines[node.lineno - 1:node.end_lineno] = [""] * (node.end_lineno - node.lineno + 1)
    return "\n".join(lines)


def test_every_function_of_the_package_has_a_caller():
    from collections import Counter

    code = "\n".join(_code_without_all(p) for pattern in CALLERS for p in ROOT.glob(pattern))
    words = Counter(re.findall(r"\w+", code))  # every mention of a name, its definitions included
    definitions = Counter(re.findall(r"def\s+(\w+)", code))
    uncalled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            defs = [(node, None)] if isinstance(node, ast.FunctionDef) else [
                (sub, node.name) for sub in getattr(node, "body", []) if isinstance(node, ast.ClassDef)
                and isinstance(sub, ast.FunctionDef)]
            for fn, cls in defs:
                if (fn.name.startswith("__") and fn.name.endswith("__")) or (cls and fn.name in FRAMEWORK_METHODS):
                    continue
                if words[fn.name] <= definitions[fn.name]:
                    uncalled.append(f"{path.relative_to(ROOT)}: {cls + '.' if cls else ''}{fn.name}")
    assert uncalled == [], "functions nothing calls (remove them, or call them from a test or the book)"


# ------------------------------------------------------------------------------------------------
# documents name only what exists
# ------------------------------------------------------------------------------------------------
_PATHLIKE = re.compile(r"^[\w.-]+(/[\w.-]*)*$")
_SUFFIXES = (".py", ".md", ".json", ".sh", ".yml", ".toml", ".ipynb", ".pt", ".cfg", ".txt", ".npz")


def paths_named_in(markdown: str) -> set[str]:
    """Relative paths a markdown file names: link targets, and backticked words that look like a
    path (with a slash, or a file suffix); URLs, globs, placeholders and commands are not paths."""
    named = {m.group(1) for m in re.finditer(r"\]\(([^)#\s]+)", markdown) if "://" not in m.group(1)}
    for word in re.findall(r"`([^`\n]+)`", markdown):
        if " " in word or not _PATHLIKE.match(word) or word.startswith(("-", ".")) and "/" not in word:
            continue
        if "/" in word or word.endswith(_SUFFIXES):
            named.add(word)
    return {n for n in named if not re.search(r"[*<>$]|^\.\.", n) and not n.startswith(("http", "torch.", "nn."))}


def test_path_finder_reads_links_and_backticks():
    text = ("See [the notes](docs/a.md), `course_pkg/models/`, `train.py`, `python benchmarks/x.py`, "
            "`https://x.org/a.py`, `results/<name>.json`, `torch.nn.Module`, `--out-dir`, [web](https://a.b/c)")
    assert paths_named_in(text) == {"docs/a.md", "course_pkg/models/", "train.py"}


def _ignored(path: str) -> bool:
    return subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", path]).returncode == 0


@pytest.mark.parametrize("document", ["README.md", "benchmarks/README.md"])
def test_every_path_a_readme_names_exists(document):
    """Relative to the repository or to the document's folder; a generated path (git-ignored, such
    as _build/ or .cache/) need not exist in a clean clone."""
    doc = ROOT / document
    missing = []
    for name in sorted(paths_named_in(doc.read_text())):
        bare = name.rstrip("/")
        if "/" not in bare:  # a bare name of code: it must exist somewhere in the repository (data
            # files and a tool's outputs are named too, and live elsewhere)
            if bare.endswith((".py", ".sh", ".ipynb")) and not any(ROOT.glob(f"**/{bare}")):
                missing.append(name)
        elif not ((ROOT / bare).exists() or (doc.parent / bare).exists() or _ignored(name)):
            missing.append(name)
    assert missing == [], f"{document} names paths that do not exist: {missing}"
