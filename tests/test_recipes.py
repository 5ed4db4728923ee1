"""One recipe per data set (course_pkg.recipes): its tags are true, and every trainer uses it.

The trainers: ``course train`` (checked by running it with ``fit`` and the loaders replaced by
recorders), chapter 7's training cell and assignment 3's training cell (checked in their source:
they run only on a GPU or for an hour, so what is checked is that every setting they pass comes
from the recipe object, changed only through ``.replace``).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from course_pkg import recipes
from course_pkg.recipes import CIFAR10, MNIST, RECIPES, Recipe

ROOT = Path(__file__).resolve().parents[1]
FIELDS = [f.name for f in dataclasses.fields(Recipe)]


# --- the tags -------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", list(RECIPES.values()), ids=list(RECIPES))
def test_every_measured_value_is_the_value_of_the_run_its_results_file_records(recipe):
    record = json.loads((ROOT / recipe.measured_in).read_text())
    recorded = record["recipe"]
    compared = [name for name in FIELDS if name in recorded]
    assert {"epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "schedule"} <= set(compared)
    differ = {name: (getattr(recipe, name), recorded[name]) for name in compared
              if getattr(recipe, name) != recorded[name]}
    assert not differ, f"{recipe.dataset}: the recipe and {recipe.measured_in} disagree (recipe, file): {differ}"
    assert record["test_acc"] > (0.85 if recipe.dataset == "cifar10" else 0.98)


def test_each_field_of_each_recipe_has_a_tag_and_each_named_file_exists():
    source = (ROOT / "course_pkg" / "recipes.py").read_text()
    for name, recipe in (("CIFAR10", CIFAR10), ("MNIST", MNIST)):
        block = source[source.index(f"\n{name} = Recipe("):]
        block = block[: block.index("\n)\n")]
        for field in FIELDS:
            if field in ("dataset", "measured_in", "aux_weight", "cutout") and name == "MNIST":
                continue  # nothing to measure: fixed by the data set or the network
            line = next((ln for ln in block.splitlines() if ln.strip().startswith(f"{field}=")), None)
            if field in ("dataset", "measured_in"):
                assert line is not None
                continue
            assert line is not None and re.search(r"#\s*(measured|guessed)", line), f"{name}.{field} has no tag"
        for path in re.findall(r"(?:benchmarks/results|course_pkg/pretrained)/[\w./]+\.json", block):
            assert (ROOT / path).is_file(), f"{name} cites {path}, which is not in the repository"


# --- the object -------------------------------------------------------------------------------------
def test_replace_changes_what_it_names_and_refuses_unknown_fields():
    changed = CIFAR10.replace(epochs=12, lr=0.05)
    assert (changed.epochs, changed.lr, changed.batch_size) == (12, 0.05, CIFAR10.batch_size)
    assert CIFAR10.epochs != 12  # the original is untouched (frozen)
    with pytest.raises(TypeError, match="no field learning_rate"):
        CIFAR10.replace(learning_rate=0.1)
    with pytest.raises(ValueError, match="cutout is an augmentation"):
        CIFAR10.replace(augment=False, cutout=8)


def test_loader_and_fit_parts_split_the_fields_between_them():
    import inspect

    from course_pkg.data import get_loaders
    from course_pkg.train import fit

    fit_part, loader_part = CIFAR10.fit_kwargs(), CIFAR10.replace(cutout=8).loader_kwargs()
    assert set(fit_part) <= set(inspect.signature(fit).parameters)
    assert set(loader_part) <= set(inspect.signature(get_loaders).parameters)
    assert loader_part["augment"].cutout == 8 and loader_part["augment"].flip
    covered = set(fit_part) | set(recipes.LOADER_FIELDS) | {"dataset", "measured_in"}
    assert covered == set(FIELDS)



def test_the_scale_recipe_trains_on_random_resized_crops_instead_of_padded_ones(monkeypatch, tmp_path):
    augment = recipes.CIFAR10_SCALE.loader_kwargs()["augment"]
    assert augment.scale == (0.25, 1.0) and augment.crop_padding == 0 and augment.flip
    assert CIFAR10.loader_kwargs()["augment"] is True  # the reference recipe keeps the padded crop
    with pytest.raises(ValueError, match="scale is an augmentation"):
        CIFAR10.replace(augment=False, scale=(0.25, 1.0))
    loaders, _ = _run_course_train(monkeypatch, ["train", "--model", "googlenet_cifar", "--scale", "0.3", "1",
                                                 "--out", str(tmp_path / "x.pt")])
    assert loaders["augment"].scale == (0.3, 1.0) and loaders["augment"].crop_padding == 0


# --- course train -----------------------------------------------------------------------------------
class _Stop(Exception):
    pass


def _run_course_train(monkeypatch, argv):
    """`course train argv` up to the call of fit; returns (get_loaders kwargs, fit kwargs)."""
    import course_pkg.data as data
    import course_pkg.train as train
    from course_pkg.cli import main

    seen = {}

    def fake_loaders(**kwargs):
        seen["loaders"] = kwargs
        return [(None, None)], [(None, None)]

    def fake_fit(model, train_loader, **kwargs):
        seen["fit"] = kwargs
        raise _Stop

    monkeypatch.setattr(data, "get_loaders", fake_loaders)
    monkeypatch.setattr(train, "fit", fake_fit)
    with pytest.raises(_Stop):
        main(argv)
    return seen["loaders"], seen["fit"]


def test_course_train_passes_the_data_sets_recipe_with_each_flag_replacing_one_field(monkeypatch, tmp_path):
    loaders, fit_kwargs = _run_course_train(
        monkeypatch, ["train", "--model", "googlenet_cifar", "--kw", "stem=16", "--out", str(tmp_path / "m.pt"),
                      "--lr", "0.05", "--epochs", "12", "--device", "cpu"])
    expected = CIFAR10.replace(lr=0.05, epochs=12)
    assert {k: fit_kwargs[k] for k in expected.fit_kwargs()} == expected.fit_kwargs()
    assert (loaders["name"], loaders["batch_size"], loaders["augment"]) == ("cifar10", CIFAR10.batch_size, True)

    loaders, fit_kwargs = _run_course_train(
        monkeypatch, ["train", "--model", "lenet5", "--data", "mnist", "--out", str(tmp_path / "l.pt"),
                      "--device", "cpu"])
    assert {k: fit_kwargs[k] for k in MNIST.fit_kwargs()} == MNIST.fit_kwargs()
    assert (loaders["name"], loaders["batch_size"], loaders["augment"]) == ("mnist", MNIST.batch_size, False)


# --- chapter 7 and assignment 3 ---------------------------------------------------------------------
def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _uses_the_recipe(code: str, where: str, base: str) -> None:
    """Every fit() and get_loaders() call takes its settings from one recipe variable, bound to
    ``base`` or ``base.replace(...)``; none passes a recipe field by hand."""
    code = "\n".join(ln for ln in code.splitlines() if not ln.lstrip().startswith(("%", "!")))
    tree = ast.parse(code)
    bound = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        # `recipe = CIFAR10...` or `RECIPE, LIMITS = CIFAR10.replace(...), {...}`
        pairs = (zip(target.elts, value.elts) if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                 else [(target, value)])
        for name, value in pairs:
            if not isinstance(name, ast.Name):
                continue
            if isinstance(value, ast.Name) and value.id == base:
                bound[name.id] = base
            elif (isinstance(value, ast.Call) and getattr(value.func, "attr", None) == "replace"
                  and getattr(value.func.value, "id", None) == base):
                bound[name.id] = base
    for function, part in (("fit", "fit_kwargs"), ("get_loaders", "loader_kwargs")):
        calls = _calls(tree, function)
        assert calls, f"{where}: no {function}() call"
        for call in calls:
            spread = [k.value for k in call.keywords if k.arg is None]
            assert any(isinstance(s, ast.Call) and getattr(s.func, "attr", None) == part
                       and getattr(s.func.value, "id", None) in bound for s in spread), \
                f"{where}: {function}() does not take **<recipe>.{part}() from {base}"
            by_hand = sorted({k.arg for k in call.keywords} & set(FIELDS))
            assert not by_hand, f"{where}: {function}() sets {by_hand} by hand instead of through the recipe"


def test_chapter_7s_full_mode_trains_with_the_cifar_recipe():
    nb = json.loads((ROOT / "book" / "07_training_cifar10.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c.get("id") == "ch7-recipe-code")
    code = "".join(cell["source"])
    assert "if QUICK:" in code and "else:" in code, "the cell trains only in full mode (a GPU)"
    _uses_the_recipe(code, "chapter 7, cell ch7-recipe-code", "CIFAR10")


def test_assignment_3_trains_with_the_cifar_recipe_and_the_students_loss():
    source = (ROOT / "assignments_src" / "03_googlenet_aux.py").read_text()
    cell = next(c for c in source.split("\n# %%") if "fit(" in c and "get_loaders" in c)
    _uses_the_recipe(cell, "assignment 3's training cell", "CIFAR10")
    (call,) = _calls(ast.parse(cell), "fit")
    loss = [k.value for k in call.keywords if k.arg == "loss_fn"]
    assert loss and getattr(loss[0], "id", None) == "googlenet_loss", "fit must minimise the student's googlenet_loss"


def test_the_checker_catches_a_setting_passed_by_hand():
    bad = "recipe = CIFAR10.replace(epochs=1)\ntrain_loader, t = get_loaders(**recipe.loader_kwargs())\n" \
          "fit(model, train_loader, **recipe.fit_kwargs(), lr=0.3)\n"
    with pytest.raises(AssertionError, match=r"sets \['lr'\] by hand"):
        _uses_the_recipe(bad, "seeded", "CIFAR10")
    with pytest.raises(AssertionError, match="does not take"):
        _uses_the_recipe("get_loaders('cifar10', batch_size=128)\nfit(model, loader, epochs=3)\n", "seeded", "CIFAR10")
