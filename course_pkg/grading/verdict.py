"""The trusted side of autograding: nbgrader's execution step, replaced.

``nbgrader autograde`` (configured in the course's ``nbgrader_config.py``) runs this preprocessor
instead of its ``Execute``.  nbgrader itself keeps doing what it does well — restore the test
cells from the gradebook, read the scores from the outputs, write the gradebook — but no student
code ever runs in its process.  For one notebook:

1. the sandbox notebook: the submitted cells, and for every graded test cell only its *visible*
   part (which hands data over); the hidden tests never leave this process;
2. a private copy of the student's files, executed by :mod:`course_pkg.grading.harness` inside
   :mod:`course_pkg.grading.sandbox`;
3. the outputs of the student's own cells are copied back (capped by characters, tracebacks in
   full); for each test cell the hidden part runs *here*, on the handed-over data
   (:mod:`course_pkg.checks.handover`), and its result becomes the cell's output, which nbgrader
   scores as usual (an error: 0 points; a float: partial credit; otherwise full points);
4. flags for the instructor (a solution that imports the course's reference class, a crash, a
   time-out) go to ``$COURSE_GRADE_LOGS/<student>.json`` for ``course grade``'s summary and CSV.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from traitlets import Bool, Integer, Unicode

from .reports import sanitise_notebook

try:
    from nbgrader.preprocessors.base import NbGraderPreprocessor
except ImportError:  # nbgrader is an optional dependency (course_pkg[grade])
    NbGraderPreprocessor = object  # type: ignore[misc,assignment]

MAX_RESULTS_BYTES = 50 << 20
MAX_RESULTS_CONTAINERS = 2_000_000  # lists and objects in results.json (each costs the grader memory)
MAX_CHECKPOINT_UNPACKED = 1 << 30  # a submitted torch file the verdicts may load


def _delimiters() -> tuple[str, str]:
    """nbgrader's hidden-test delimiters (its ClearHiddenTests settings), as comment lines."""
    from nbgrader.preprocessors import ClearHiddenTests

    c = ClearHiddenTests()
    return f"### {c.begin_test_delimeter}", f"### {c.end_test_delimeter}"


def split_test(source: str) -> tuple[str, str]:
    """(visible part, hidden part) of a test cell's source."""
    BEGIN, END = _delimiters()
    if BEGIN not in source:
        return source, ""
    head, rest = source.split(BEGIN, 1)
    hidden, _, tail = rest.partition(END)
    return head.rstrip() + ("\n" + tail.strip() if tail.strip() else ""), hidden


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------
def cap_outputs(outputs: list[dict], max_chars: int) -> list[dict]:
    """The outputs of one cell, at most ``max_chars`` characters of text in all (images kept
    while they fit in ten times that)."""
    kept, used = [], 0
    for out in outputs:
        if not isinstance(out, dict):
            continue
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            room = max_chars - used
            if room <= 0:
                break
            if len(text) > room:
                text = text[:room] + f"\n... output cut at {max_chars:,} characters\n"
            used += len(text)
            kept.append({"output_type": "stream", "name": out.get("name") if out.get("name") in ("stdout", "stderr")
                         else "stdout", "text": text})
        elif kind == "error":
            tb = [str(line) for line in out.get("traceback", [])][:200]
            text_len = sum(len(line) for line in tb)
            if used + text_len > max_chars:
                tb = tb[:1] + ["... (traceback cut)"] + tb[-1:]
            used += sum(len(line) for line in tb)
            kept.append({"output_type": "error", "ename": str(out.get("ename", "Error"))[:200],
                         "evalue": str(out.get("evalue", ""))[:2000], "traceback": tb})
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {}) if isinstance(out.get("data"), dict) else {}
            clean = {}
            for mime in ("text/plain", "image/png", "text/html"):
                value = data.get(mime)
                if isinstance(value, list):
                    value = "".join(value)
                if isinstance(value, str) and len(value) <= (max_chars * 10 if mime == "image/png"
                                                             else max_chars - used):
                    clean[mime] = value
                    used += len(value) if mime != "image/png" else 0
            if clean:
                item = {"output_type": "display_data", "data": clean, "metadata": {}}
                kept.append(item)
    return kept


def scrub(outputs: list[dict], hidden_sources: list[str]) -> list[dict]:
    """Remove from outputs every line that quotes a hidden test (feedback shows outputs too)."""
    lines = {line.strip() for src in hidden_sources for line in src.splitlines() if len(line.strip()) > 15}
    if not lines:
        return outputs

    def clean(text: str) -> str:
        return "\n".join("[a line of a hidden test was removed]" if any(h in line for h in lines) else line
                         for line in text.split("\n"))

    for out in outputs:
        if "text" in out:
            out["text"] = clean(out["text"])
        if "evalue" in out:
            out["evalue"] = clean(out["evalue"])
        if "traceback" in out:
            out["traceback"] = [clean(line) for line in out["traceback"]]
        if "text/plain" in out.get("data", {}):
            out["data"]["text/plain"] = clean(out["data"]["text/plain"])
    return outputs


def _error_output(ename: str, message: str) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": message, "traceback": [f"{ename}: {message}"]}


def _refused_files(folder: Path) -> dict[str, str]:
    """The submitted zip/torch files under ``folder`` that unpack too large to load, with why:
    a verdict that names one fails with that reason instead of loading it."""
    from .replicas import Refused, check_zip

    refused = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb":
            continue
        with path.open("rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                continue
            try:
                check_zip(fh, path.name, MAX_CHECKPOINT_UNPACKED)
            except Refused as err:
                refused[path.name] = f"{err}; not loaded (submit the file torch.save(model.state_dict(), ...) writes)"
    return refused


# --------------------------------------------------------------------------------------------
# Running hidden tests on handed-over data (in this, trusted, process)
# --------------------------------------------------------------------------------------------
def run_verdict(hidden: str, namespace: dict[str, Any]) -> list[dict]:
    """Run a hidden test on ``namespace``; return the outputs nbgrader will score."""
    from .. import checks
    from .replicas import NotRecorded

    tree = ast.parse(hidden)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    stdout = io.StringIO()
    outputs: list[dict] = []
    try:
        with contextlib.redirect_stdout(stdout):
            exec(compile(tree, "<hidden test>", "exec"), namespace)  # noqa: S102 -- the instructor's test
            value = eval(compile(last, "<hidden test>", "eval"), namespace) if last is not None else None
    except checks.CheckFailed as err:
        result = _error_output("CheckFailed", str(err))
    except NotRecorded as err:
        result = _error_output("CheckFailed", f"this could not be checked: {err} (did a cell above fail?)")
    except NameError as err:
        name = getattr(err, "name", None) or str(err)
        result = _error_output("CheckFailed", f"{name} is not defined: write your answer in the cell above "
                                              "(replacing `raise NotImplementedError()`) and run it")
    except AssertionError as err:
        result = _error_output("AssertionError", str(err) or "a check failed")
    except Exception as err:  # noqa: BLE001 -- e.g. an error the student's code raised, replayed
        first = str(err).splitlines()[0] if str(err) else ""
        result = _error_output(type(err).__name__, first)
    else:
        result = None
        if value is not None:
            outputs_value = {"output_type": "execute_result", "execution_count": None, "metadata": {},
                             "data": {"text/plain": repr(value)}}
    text = stdout.getvalue()
    if text:
        outputs.append({"output_type": "stream", "name": "stdout", "text": text[:5000]})
    if result is not None:
        outputs.append(result)
    elif value is not None:
        outputs.append(outputs_value)
    return outputs


def verdict_namespace(record: dict[str, Any]) -> dict[str, Any]:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from .. import checks

    return {"__name__": "__grader__", "torch": torch, "nn": nn, "F": F, "math": math, "checks": checks,
            **record}


# --------------------------------------------------------------------------------------------
# Flags: solutions built on the course's own reference classes
# --------------------------------------------------------------------------------------------
REFERENCE_NAMES = ("Inception", "InceptionNaive", "InceptionAux", "GoogLeNet", "LeNet5", "AlexNet")
#: Reference classes an assignment lets students use (assignment 3 builds on assignment 2's module).
ALLOWED_REFERENCES = {"03_googlenet_aux": {"Inception", "InceptionNaive"}}
_USES_COURSE_MODELS = re.compile(r"course_pkg\.models|from\s+course_pkg\s+import\s+models|create\s*\(")


def reference_flags(nb: Any, asked_for: set[str], allowed: set[str]) -> list[str]:
    """Sentences for the instructor when a solution cell imports or subclasses a reference class
    it was asked to write (``asked_for``: class names defined by the notebook's solution cells)."""
    flags = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("grade") or (meta.get("locked") and not meta.get("solution")):
            continue
        src = cell.source
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_pkg.models"):
                hit = [a.name for a in node.names if a.name in asked_for and a.name not in allowed]
                if hit:
                    flags.append(f"imports the course's {', '.join(hit)} from {node.module}")
            if isinstance(node, ast.ClassDef) and node.name in asked_for:
                for base in node.bases:
                    text = ast.unparse(base)
                    if any(text.endswith(n) for n in REFERENCE_NAMES) and (text != node.name) and (
                            "." in text or _USES_COURSE_MODELS.search(src)):
                        flags.append(f"class {node.name} subclasses {text} (a course reference class)")
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in asked_for
                                                    for t in node.targets):
                value = ast.unparse(node.value)
                if _USES_COURSE_MODELS.search(value) or value.split(".")[-1] in REFERENCE_NAMES:
                    flags.append(f"binds {', '.join(t.id for t in node.targets if isinstance(t, ast.Name))} "
                                 f"to {value[:80]}")
    return sorted(set(flags))


# --------------------------------------------------------------------------------------------
# The nbgrader preprocessor
# --------------------------------------------------------------------------------------------
class SandboxedExecute(NbGraderPreprocessor):  # type: ignore[misc,valid-type]
    """nbgrader's execution step: student code in the sandbox, verdicts here."""

    timeout = Integer(60, help="seconds per cell (nbgrader's Execute.timeout by default)").tag(config=True)
    max_output_chars = Integer(20_000, help="characters of output kept per cell").tag(config=True)
    memory_gb = Integer(8, help="memory of all of a student's processes together (and each one's address space), "
                                "GiB").tag(config=True)
    unsafe = Bool(False, help="run without a sandbox (the instructor's --unsafe-no-sandbox)").tag(config=True)
    allowed_reference = Unicode("", help="reference classes a notebook may import (comma-separated)").tag(config=True)

    def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
        import copy

        import nbformat

        from . import replicas, sandbox
        from .hidden import hidden_package

        unsafe = self.unsafe or os.environ.get("COURSE_GRADE_UNSAFE") == "1"
        timeout = int(os.environ.get("COURSE_CELL_TIMEOUT") or self.timeout)
        source_dir = Path(resources.get("metadata", {}).get("path") or ".")
        student = resources.get("nbgrader", {}).get("student", "student")
        notebook = resources.get("nbgrader", {}).get("notebook", "notebook")

        run_nb = copy.deepcopy(nb)
        hidden: dict[int, str] = {}
        tests = 0
        for i, cell in enumerate(run_nb.cells):
            cell.outputs = [] if cell.cell_type == "code" else cell.get("outputs", None) or []
            if cell.cell_type != "code":
                cell.pop("outputs", None)
                continue
            meta = cell.metadata.get("nbgrader", {})
            cell.metadata.pop("tags", None)  # "skip-execution" and the like: every cell runs
            if meta.get("grade"):
                tests += 1
                visible, hidden[i] = split_test(cell.source)
                cell.source = (f"__import__('course_pkg.checks.handover', fromlist=['begin'])"
                               f".begin({meta.get('grade_id', str(i))!r})\n{visible}")

        private = Path(tempfile.mkdtemp(prefix=f"course-grade-{re.sub(r'[^A-Za-z0-9_-]', '_', student)}-",
                                        dir=os.environ.get("COURSE_GRADE_TMP") or None))
        flags: list[str] = []
        outcome = None
        try:
            work = private / "submission"
            # links stay links: inside the sandbox they point into its own, empty, file system
            shutil.copytree(source_dir, work, symlinks=True, ignore=shutil.ignore_patterns("*.ipynb", ".course-grader"))
            os.chmod(work, 0o755)
            nb_file = work / f"{notebook}.ipynb"
            nbformat.write(run_nb, str(nb_file))
            limits = sandbox.Limits(wall_seconds=60 + timeout * (tests + 3), memory_bytes=self.memory_gb << 30)
            inside = sandbox.WORKDIR if not unsafe else str(work)
            results_dir = f"{inside}/{sandbox.RESULTS}"
            import sys

            # the course package without the reference implementations this assignment grades
            overlays = [] if unsafe else hidden_package(notebook, private / "hidden")
            outcome = sandbox.run(work, [sys.executable, "-m", "course_pkg.grading.harness",
                                         f"{inside}/{nb_file.name}", results_dir, str(timeout)],
                                  limits, unsafe=unsafe, overlays=overlays)
            if outcome.returncode is None:
                flags.append(f"the whole notebook ran past the outer limit of {limits.wall_seconds:.0f} s "
                             f"({tests} test cells); later cells were not graded")
            results = self._read_results(work, work / sandbox.RESULTS / "results.json", flags)
            refused = _refused_files(source_dir)
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                state = results.get(str(i), {}) if isinstance(results.get(str(i)), dict) else {}
                outputs = state.get("outputs") if isinstance(state.get("outputs"), list) else []
                status = str(state.get("status", "not run"))
                if i not in hidden:
                    cell.outputs = [nbformat.from_dict(o) for o in cap_outputs(outputs, self.max_output_chars)]
                    if status in ("timeout", "crashed"):
                        cell.outputs.append(nbformat.from_dict(_error_output(
                            "CellFailed", str(state.get("reason", status))[:300])))
                        name = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {i}"
                        flags.append(f"{name}: {status}")
                    continue
                gid = cell.metadata.get("nbgrader", {}).get("grade_id", str(i))
                record_path = work / sandbox.RESULTS / f"{gid}.pt"
                if status in ("timeout", "crashed", "not run") and not os.path.lexists(record_path):
                    why = str(state.get("reason", "this test cell did not run"))[:300]
                    cell.outputs = [nbformat.from_dict(_error_output("CellFailed", f"{gid}: {why}"))]
                    if status != "not run":
                        flags.append(f"{gid}: {status}")
                    continue
                if not os.path.lexists(record_path):
                    own = [o for o in cap_outputs(outputs, self.max_output_chars) if o["output_type"] == "error"]
                    cell.outputs = [nbformat.from_dict(o) for o in own] or [nbformat.from_dict(_error_output(
                        "CellFailed", f"{gid}: this test cell did not run (a cell above stopped the notebook)"))]
                    continue
                try:
                    record = replicas.load(record_path, root=work)
                except replicas.Refused as err:
                    cell.outputs = [nbformat.from_dict(_error_output("CellFailed", f"{gid}: refused: {err}"))]
                    flags.append(f"{gid}: handed-over data refused: {err}")
                    continue
                except Exception as err:  # noqa: BLE001 -- a forged or broken file
                    cell.outputs = [nbformat.from_dict(_error_output(
                        "CellFailed", f"{gid}: the handed-over data could not be read ({type(err).__name__})"))]
                    continue
                bad = [why for file, why in refused.items() if file in hidden[i]]
                if bad:  # the verdict would load a file the grader refuses
                    cell.outputs = [nbformat.from_dict(_error_output("CheckFailed", f"{gid}: {'; '.join(bad)}"))]
                    flags += [f"{gid}: {why}" for why in bad]
                    continue
                namespace = verdict_namespace(record)
                namespace["submission"] = source_dir  # the trusted copy of the submitted files
                outputs = scrub(run_verdict(hidden[i], namespace), list(hidden.values()))
                cell.outputs = [nbformat.from_dict(o) for o in outputs]
        finally:
            shutil.rmtree(private, ignore_errors=True)

        sanitise_notebook(nb)  # the feedback HTML renders what the student wrote and printed
        allowed = ALLOWED_REFERENCES.get(notebook, set()) | {a for a in self.allowed_reference.split(",") if a}
        flags += reference_flags(nb, set(REFERENCE_NAMES) - allowed, allowed)
        self._write_flags(student, notebook, flags, outcome)
        return nb, resources

    @staticmethod
    def _read_results(work: Path, path: Path, flags: list[str]) -> dict:
        """The harness's results.json, read as hostile data (no links, bounded); a refusal is flagged
        and every cell then counts as not run."""
        from .replicas import Refused, read_untrusted

        try:
            raw = read_untrusted(path, work, MAX_RESULTS_BYTES)
            if raw.count(b"[") + raw.count(b"{") > MAX_RESULTS_CONTAINERS:
                raise Refused(f"results.json holds more than {MAX_RESULTS_CONTAINERS:,} lists and objects")
            data = json.loads(raw)
        except FileNotFoundError:
            return {}
        except Refused as err:
            flags.append(f"the sandbox's results were refused: {err}")
            return {}
        except (OSError, ValueError, RecursionError):
            return {}
        cells = data.get("cells", {}) if isinstance(data, dict) else {}
        return cells if isinstance(cells, dict) else {}

    @staticmethod
    def _write_flags(student: str, notebook: str, flags: list[str], outcome: Any) -> None:
        folder = os.environ.get("COURSE_GRADE_LOGS")
        if not folder:
            return
        path = Path(folder) / f"{student}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"student": student, "notebook": notebook, "flags": flags,
                "sandbox_output": (outcome.output[-4000:] if outcome else ""),
                "sandbox_seconds": (outcome.seconds if outcome else None)}
        path.write_text(json.dumps(data, indent=1))

