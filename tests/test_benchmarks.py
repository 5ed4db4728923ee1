"""The benchmark scripts' shared bookkeeping and the one GPU entry point, on the CPU with tiny settings."""

from __future__ import annotations

import pytest

import json


def test_commit_can_be_named_where_there_is_no_git(monkeypatch, repo_root):
    import sys

    sys.path.insert(0, str(repo_root / "benchmarks"))
    import _meta

    monkeypatch.setenv("COURSE_COMMIT", "0123abc")
    assert _meta.commit() == "0123abc"
    monkeypatch.delenv("COURSE_COMMIT")
    monkeypatch.setenv("GIT_DIR", "/nonexistent")  # as on the GPU machine: a tree without .git
    assert _meta.commit() == "unknown"


def _session(repo_root, tmp_path, *steps, **env):
    import os
    import subprocess

    import sys

    full_env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(repo_root / "benchmarks" / "gpu_session.sh"), *steps],
                          capture_output=True, text=True, env=full_env, timeout=120)


def test_gpu_session_script_refuses_what_would_waste_device_time(repo_root, tmp_path, course_data):
    proc = _session(repo_root, tmp_path, "bn", GIT_DIR="/nonexistent", COURSE_COMMIT="")
    assert proc.returncode == 2 and "name the commit" in proc.stderr
    proc = _session(repo_root, tmp_path, "bn", COURSE_DATA=str(tmp_path))
    assert proc.returncode == 2 and "cifar10_jpeg.npz" in proc.stderr
    proc = _session(repo_root, tmp_path, "bn", "no_such_step", COURSE_DATA=str(course_data))
    assert proc.returncode == 2 and "unknown step no_such_step" in proc.stdout
    assert "faithful_chunk2" in proc.stdout  # the steps it knows: the reference runs and table3
    assert "start (limit" not in proc.stdout  # a bad step is refused before any step spends device time


def test_gpu_session_script_keeps_its_deadline_and_packs(repo_root, tmp_path, course_data):
    import tarfile

    # a budget already spent: every step is skipped, and the packing still happens
    proc = _session(repo_root, tmp_path, "bn", "table3", COURSE_DATA=str(course_data), BUDGET="0")
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "out" / "log.txt").read_text()
    assert log.count("skipped (budget spent)") == 2
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        assert tar.getnames() == []  # nothing ran, so nothing new to bring back
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["log.txt", "results.tar.gz"]


@pytest.mark.slow  # a real (tiny) training run
def test_gpu_session_script_trains_a_reference_run_in_a_tiny_setting(repo_root, tmp_path, course_data):
    proc = _session(repo_root, tmp_path, "bn", COURSE_DATA=str(course_data), QUICK="1", BUDGET="110")
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "exit 0: " in log and "reference_cpu.py bn --quick" in log
    result = json.loads((tmp_path / "out" / "quick" / "results" / "reference_bn.json").read_text())
    assert len(result["history"]) == 1 and result["run"] == "bn"
    assert (tmp_path / "out" / "quick" / "pretrained" / "googlenet_cifar.pt").is_file()
