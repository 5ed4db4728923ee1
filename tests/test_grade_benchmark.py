"""The class-grading benchmark (benchmarks/grade_class.py) in its --quick form: the plumbing only.

The real figure needs idle cores (see the script); this checks that both runs grade every student
with the same scores and that the result has its ratio, device, date and commit.
"""

from __future__ import annotations

import json

import pytest

from conftest import import_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_grade_class_quick_writes_a_ratio(tmp_path):
    bench = import_benchmark("grade_class")
    out = tmp_path / "grade_class.json"
    assert bench.main(["--quick", "--jobs", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["students"] == 2 and result["jobs"] == 2
    assert result["serial_seconds"] > 0 and result["parallel_seconds"] > 0
    assert result["speedup"] == round(result["serial_seconds"] / result["parallel_seconds"], 2)
    for key in ("device", "date", "commit", "torch", "one_student_seconds_median"):
        assert result[key], key
    assert "Speed-up" in out.with_suffix(".md").read_text()
