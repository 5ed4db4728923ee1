"""The course package as a graded notebook sees it: without the reference implementations of what
its assignment grades.

``course grade`` decides what a notebook may import, not the student: for each assignment,
:data:`HIDDEN` names the classes and functions of ``course_pkg`` that implement what it grades.
:func:`hidden_package` writes a copy of each such module in which they are placeholders that raise
:class:`~course_pkg.checks.feedback.HiddenWhileGrading`, and :mod:`course_pkg.grading.sandbox`
binds those copies read-only over the package's files (and an empty folder over every
``__pycache__``, whose compiled files hold the code too).  Nothing the student's code does in its
own process brings them back: ``importlib`` with computed names, ``create(...)`` and
``inspect.getsource`` all reach the placeholder.  The hidden tests run in the grader's process,
which imports the whole package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

#: Per assignment, what the sandbox's ``course_pkg`` does not contain: for each module (a path
#: under ``course_pkg``), the top-level classes and functions that implement what the assignment
#: grades, or hold something that does (GoogLeNet holds the inception module, the model builders
#: build the classes).  Each is replaced by a placeholder that raises
#: :class:`~course_pkg.checks.feedback.HiddenWhileGrading`; everything else of the module stays, so
#: what the notebook legitimately imports (``BasicConv2d``, ``INCEPTION_FILTERS``, assignment 3's
#: ``Inception``, assignment 4's GoogLeNet) still imports.  The hidden tests run in the grader's
#: process, which imports the whole package.
HIDDEN: dict[str, dict[str, tuple[str, ...]]] = {
    "01_lenet_alexnet": {
        "models/lenet.py": ("LeNet5", "lenet5", "param_counts"),
        "models/alexnet.py": ("AlexNet", "alexnet", "param_split"),
    },
    "02_inception_module": {
        "models/inception.py": ("InceptionNaive", "Inception", "inception_naive", "inception"),
        "models/googlenet.py": ("InceptionAux", "GoogLeNet", "googlenet", "googlenet_cifar"),
    },
    "03_googlenet_aux": {
        "models/googlenet.py": ("InceptionAux", "GoogLeNet", "googlenet", "googlenet_cifar"),
        "train.py": ("googlenet_loss", "_loss"),
    },
    "04_multicrop": {
        "multicrop.py": ("multicrop_views", "multicrop_boxes", "distinct_views", "view_order", "_plan", "_cut",
                         "_five_origins"),
        "evaluate.py": ("reduce_views", "predict_multicrop", "predict_multicrop_per_model"),
        "table3.py": ("view_keys", "render_view", "view_probabilities", "set_probabilities"),
    },
}

_PLACEHOLDERS = '''

def _course_hidden(name):
    from course_pkg.checks.feedback import HiddenWhileGrading

    return HiddenWhileGrading(
        f"{__name__}.{name} is the course's reference implementation of what this assignment grades: "
        "it is hidden while the notebook is graded (write your own; the self-checks run outside grading)")


def _course_hidden_class(name):
    def refuse(cls, *args, **kwargs):
        raise _course_hidden(name)

    return type(name, (), {"__new__": refuse, "__module__": __name__, "__doc__": "hidden while grading"})


def _course_hidden_function(name):
    def hidden(*args, **kwargs):
        raise _course_hidden(name)

    hidden.__name__ = hidden.__qualname__ = name
    return hidden
'''


def hide_definitions(source: str, names: Iterable[str]) -> str:
    """``source`` (a module of the course package) with its top-level classes and functions called
    ``names`` replaced by placeholders that raise ``HiddenWhileGrading`` when used.  Decorators of a
    hidden function still run (a model builder stays registered, and says why it cannot build)."""
    import ast

    names = set(names)
    tree = ast.parse(source)
    body: list[ast.stmt] = []
    future = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    found = set()
    for node in tree.body:
        if node in future:
            continue
        if isinstance(node, ast.ClassDef) and node.name in names:
            found.add(node.name)
            node = ast.parse(f"{node.name} = _course_hidden_class({node.name!r})").body[0]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            found.add(node.name)
            wrapped = ast.parse(f"_course_hidden_function({node.name!r})").body[0].value
            for deco in reversed(node.decorator_list):
                wrapped = ast.Call(func=deco, args=[wrapped], keywords=[])
            node = ast.Assign(targets=[ast.Name(node.name, ast.Store())], value=wrapped)
        body.append(node)
    if found != names:
        raise ValueError(f"hide_definitions: {sorted(names - found)} not defined at the top level of the module "
                         "(the sandbox's deny list is out of date)")
    tree.body = [*future, *ast.parse(_PLACEHOLDERS).body, *body]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def hidden_package(assignment: str, dest: Path) -> list[tuple[str, str]]:
    """Write the placeholders of ``assignment``'s hidden modules under ``dest`` (an empty folder the
    sandbox may read); return bwrap's binds ``(source, target)``: each hidden module's file, and every
    ``__pycache__`` folder of the package (its compiled files hold the hidden code too), masked; the
    same for the package's path as named and as resolved."""
    import course_pkg

    hidden = HIDDEN.get(assignment, {})
    if not hidden:
        return []
    named = Path(course_pkg.__file__).parent
    roots = list(dict.fromkeys([named, named.resolve()]))
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o755)
    empty = dest / "empty"
    empty.mkdir(exist_ok=True)
    os.chmod(empty, 0o755)
    binds = []
    for i, (rel, names) in enumerate(sorted(hidden.items())):
        stub = dest / f"{i}_{Path(rel).name}"
        stub.write_text(hide_definitions((named / rel).read_text(), names))
        os.chmod(stub, 0o644)
        binds += [(str(stub), str(root / rel)) for root in roots]
    caches = sorted({p.relative_to(named) for p in named.rglob("__pycache__") if p.is_dir()})
    binds += [(str(empty), str(root / rel)) for rel in caches for root in roots]
    return binds
