"""The pieces of trusted grading, fast: what a notebook hands over and how the grader replays it,
the sandbox's view of the machine, safe zip unpacking, output caps and reference-class flags.

The whole path (nbgrader, the sandbox, a hostile class) is in test_grading_e2e.py.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from course_pkg import checks
from course_pkg.checks import handover
from course_pkg.grading import replicas
from course_pkg.grading.grade import unpack_zip
from course_pkg.grading.verdict import cap_outputs, reference_flags, run_verdict, split_test, verdict_namespace
from course_pkg.models.inception import Inception
from course_pkg.models.layers import BasicConv2d

REPO = Path(__file__).resolve().parents[1]


class Wrong5x5(Inception):
    """torchvision's deviation: a 3x3 kernel in the "5x5" branch."""

    def __init__(self, *args):
        super().__init__(*args)
        self.branch5x5[1] = BasicConv2d(args[4], args[5], 3, padding=1)


class Swapped(Inception):
    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch1x1(x), self.branch5x5(x), self.branch_pool(x)], 1)


def handed_over(tmp_path: Path, monkeypatch, **objects) -> dict:
    """Run ``give`` as a test cell would in the sandbox, then load it as the grader does."""
    monkeypatch.setenv(handover.ENV, str(tmp_path))
    handover.begin("cell")
    frame_globals = dict(objects)
    exec("handover.give(Inception=handover.inception_class())", {"handover": handover, **frame_globals})
    return replicas.load(tmp_path / "cell.pt")


@pytest.mark.slow  # every inception module built and probed in the sandbox
def test_replica_gives_the_same_findings_as_the_live_class(tmp_path, monkeypatch):
    replayed = {}
    for cls in (Wrong5x5, Swapped):
        live = checks.inception_findings(cls)
        replayed[cls] = checks.inception_findings(handed_over(tmp_path, monkeypatch, Inception=cls)["Inception"])
        assert [str(f) for f in replayed[cls]] == [str(f) for f in live], cls.__name__
    assert any("3x3 kernel" in str(f) for f in replayed[Wrong5x5])
    assert any(f.kind == "order" for f in replayed[Swapped])


def test_the_handover_file_is_data_only(tmp_path, monkeypatch):
    handed_over(tmp_path, monkeypatch, Inception=Inception)
    torch.load(tmp_path / "cell.pt", weights_only=True)  # raises if anything but data were inside


def test_unrecorded_calls_are_refused_not_guessed(tmp_path, monkeypatch):
    cls = handed_over(tmp_path, monkeypatch, Inception=Inception)["Inception"]
    with pytest.raises(replicas.NotRecorded):
        cls(1, 2, 3, 4, 5, 6, 7)
    module = cls(192, 64, 96, 128, 16, 32, 32).eval()
    with pytest.raises(replicas.NotRecorded):
        module(torch.zeros(2, 192, 7, 7))


def test_student_errors_are_replayed(tmp_path, monkeypatch):
    class Unfinished(nn.Module):
        def __init__(self, *args):
            super().__init__()
            raise NotImplementedError()

    cls = handed_over(tmp_path, monkeypatch, Inception=Unfinished)["Inception"]
    with pytest.raises(checks.CheckFailed, match="raise NotImplementedError"):
        checks.inception_findings(cls)


def test_verdict_outputs_follow_nbgrader_scoring():
    ns = verdict_namespace({"answer": 3})
    assert run_verdict("checks.require(answer == 3, 'no')", ns) == []
    out = run_verdict("checks.require(answer == 4, 'answer should be 4')", ns)
    assert out[0]["output_type"] == "error" and out[0]["evalue"] == "answer should be 4"
    assert out[0]["traceback"] == ["CheckFailed: answer should be 4"]  # no hidden source
    out = run_verdict("print('hi')\nchecks.partial_credit(0.5, 6)", ns)
    assert out[0]["text"] == "hi\n" and out[1]["data"]["text/plain"] == "3.0"
    out = run_verdict("checks.defined(globals(), 'missing')\n", ns)
    assert "missing is not defined" in out[0]["evalue"]


def test_outputs_never_quote_a_hidden_test():
    from course_pkg.grading.verdict import scrub

    hidden = "_secret_threshold_table = ((0.8, 1.0),)\nchecks.require(x, 'message')\n"
    outs = scrub(run_verdict("print('_secret_threshold_table = ((0.8, 1.0),)')", verdict_namespace({})), [hidden])
    assert "_secret_threshold_table" not in outs[0]["text"] and "removed" in outs[0]["text"]


def test_split_test_keeps_the_hidden_part_out_of_the_sandbox():
    begin, end = "### BEGIN " + "HIDDEN TESTS", "### END " + "HIDDEN TESTS"
    visible, hidden = split_test(f"handover.give('x')\n{begin}\nsecret_check()\n{end}\n")
    assert "secret_check" not in visible and "handover.give" in visible
    assert "secret_check()" in hidden


def test_outputs_are_capped_by_characters():
    outs = cap_outputs([{"output_type": "stream", "name": "stdout", "text": "x" * 100_000},
                        {"output_type": "stream", "name": "stderr", "text": "late"}], 1000)
    assert sum(len(o["text"]) for o in outs) < 1100 and "cut at 1,000 characters" in outs[0]["text"]
    outs = cap_outputs([{"output_type": "stream", "name": "stderr", "text": "own warning"}], 1000)
    assert outs[0]["name"] == "stderr"


def test_reference_class_imports_are_flagged():
    import nbformat

    nb = nbformat.v4.new_notebook()
    honest = nbformat.v4.new_code_cell("class Inception(nn.Module):\n    pass")
    borrowed = nbformat.v4.new_code_cell("from course_pkg.models.inception import Inception")
    sub = nbformat.v4.new_code_cell("import course_pkg.models.inception as m\nclass Inception(m.Inception):\n    pass")
    for c in (honest, borrowed, sub):
        c.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "x"}
    nb.cells = [honest]
    assert reference_flags(nb, {"Inception"}, set()) == []
    nb.cells = [borrowed]
    assert reference_flags(nb, {"Inception"}, set()) == [
        "imports the course's Inception from course_pkg.models.inception"]
    nb.cells = [sub]
    assert "subclasses m.Inception" in reference_flags(nb, {"Inception"}, set())[0]


@pytest.mark.parametrize("name, why", [("../evil.ipynb", "unsafe path"), ("/etc/evil", "unsafe path")])
def test_zip_paths_cannot_leave_the_folder(tmp_path, name, why):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(name, "{}")
    assert why in unpack_zip(archive, tmp_path / "out")
    assert not (tmp_path / "evil.ipynb").exists()


def test_zip_size_is_counted_while_unpacking(tmp_path, monkeypatch):
    monkeypatch.setattr("course_pkg.grading.submissions.MAX_ZIP_BYTES", 1000)
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.ipynb", "0" * 100_000)  # compresses to almost nothing
    assert "more than" in unpack_zip(archive, tmp_path / "out")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("folder/a.ipynb", "{}")
    assert unpack_zip(archive, tmp_path / "ok") is None and (tmp_path / "ok" / "a.ipynb").is_file()


# --------------------------------------------------------------------------------------------
# The sandbox's view of the machine (bubblewrap)
# --------------------------------------------------------------------------------------------
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None and not os.environ.get("CI"),
                                 reason="bubblewrap is not installed (`make sandbox` installs it)")


@needs_bwrap
def test_sandbox_sees_only_its_copy_and_the_python_environment(tmp_path):
    from course_pkg.grading import sandbox

    private = tmp_path / "private"
    private.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("instructor file")
    os.environ["COURSE_INSTRUCTOR_TOKEN"] = "secret-token"
    probe = f"""
import os, socket, sys
import torch, course_pkg
print("uid", os.getuid())
print("env", os.environ.get("COURSE_INSTRUCTOR_TOKEN"), os.environ.get("COURSE_DATA"))
for path in ({str(outside)!r}, {str(REPO / "solutions")!r}, {str(REPO / "nbgrader_config.py")!r},
             {str(Path.home() / ".bashrc")!r}, "/etc/passwd"):
    print("exists", path, os.path.exists(path))
print("home", os.environ["HOME"], sorted(os.listdir(os.environ["HOME"])) if os.path.isdir(os.environ["HOME"]) else [])
try:
    open({str(REPO / "course_pkg" / "pwned.py")!r}, "w")
    print("wrote the package")
except OSError as e:
    print("package read-only", type(e).__name__)
open("mine.txt", "w").write("ok")
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
    print("network")
except OSError:
    print("no network")
print("pids", len([p for p in os.listdir("/proc") if p.isdigit()]))
"""
    # a generous limit: importing torch on a busy 2-core machine can take minutes
    outcome = sandbox.run(private, [sys.executable, "-c", probe], sandbox.Limits(wall_seconds=600), handshake=False)
    out = outcome.output
    assert outcome.returncode == 0, out
    assert "uid 65534" in out
    assert "env None None" in out
    seen = [line for line in out.splitlines() if line.startswith("exists")]
    assert len(seen) == 5 and all(line.endswith(" False") for line in seen), seen
    assert "home /tmp/home []" in out
    assert "package read-only" in out and not (REPO / "course_pkg" / "pwned.py").exists()
    assert "no network" in out
    assert not (private / "mine.txt").exists()  # written into the sandbox's tmpfs, never the host's disk
    assert int(out.split("pids")[1].split()[0]) <= 3


@needs_bwrap
def test_sandbox_kills_everything_at_the_end(tmp_path):
    import psutil

    from course_pkg.grading import sandbox

    private = tmp_path / "private"
    private.mkdir()
    code = ("import subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', 'sandbox-leftover-probe'],"
            " start_new_session=True)\n")
    outcome = sandbox.run(private, [sys.executable, "-c", code], sandbox.Limits(wall_seconds=60), handshake=False)
    assert outcome.returncode == 0, outcome.output
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if "sandbox-leftover-probe" in " ".join(p.info["cmdline"] or [])]
    assert left == []
    # and at the wall-time limit
    outcome = sandbox.run(private, [sys.executable, "-c", "while True: pass"], sandbox.Limits(wall_seconds=3),
                          handshake=False)
    assert outcome.returncode is None and outcome.seconds < 20


@needs_bwrap
def test_memory_limit_applies(tmp_path):
    from course_pkg.grading import sandbox

    private = tmp_path / "private"
    private.mkdir()
    code = "try:\n    bytearray(64 << 30)\n    print('allocated')\nexcept MemoryError:\n    print('refused')\n"
    outcome = sandbox.run(private, [sys.executable, "-c", code], sandbox.Limits(wall_seconds=60, memory_bytes=4 << 30),
                          handshake=False)
    assert "refused" in outcome.output


def test_course_grade_refuses_without_a_sandbox_tool(tmp_path, monkeypatch, capsys):
    from course_pkg.grading import main

    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    (tmp_path / "assignments" / "02_inception_module").mkdir(parents=True)
    monkeypatch.setattr("course_pkg.grading.sandbox.bwrap_path", lambda: None)
    assert main(["02_inception_module", "--course-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bubblewrap" in err and "apt-get install bubblewrap" in err and "--unsafe-no-sandbox" in err


def test_a_forged_huge_layer_costs_the_grader_no_memory():
    spec = {"leaf": None, "cls": "Huge", "attrs": {}, "params": {"extra": [100_000, 100_000]},
            "children": [("conv", {"leaf": "Conv2d", "cls": "Conv2d",
                                   "args": {"in_channels": 100_000, "out_channels": 100_000, "kernel_size": (11, 11),
                                            "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1,
                                            "padding_mode": "zeros", "bias": True}})]}
    replica = replicas.Replica(spec, [])  # 1.2e12 parameters: only possible as shapes
    assert checks.n_params(replica) == 100_000 * 100_000 * 121 + 100_000 + 100_000 ** 2
    assert isinstance(replica.conv, nn.Conv2d) and replica.conv.kernel_size == (11, 11)


# --------------------------------------------------------------------------------------------
# Per-student caps that hold whoever runs the grader (root in CI, an ordinary user elsewhere).
# Each probe is bounded on its own (a few hundred processes or MiB at most, children that exit
# after seconds), so a cap that fails cannot hurt the machine: the test fails instead.
# --------------------------------------------------------------------------------------------
FORK_BOMB = """
import os, time
children = 0
for _ in range(400):
    try:
        pid = os.fork()
    except OSError as err:
        print("fork refused", err.errno)
        break
    if pid == 0:
        time.sleep(20)
        os._exit(0)
    children += 1
print("children", children)
"""
MEMORY_HOGS = """
import os, time
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        block = b"x" * (200 << 20)  # 200 MiB each, touched; the per-process cap allows it
        time.sleep(6)
        os._exit(0)
    kids.append(pid)
survived = 0
for pid in kids:
    _, status = os.waitpid(pid, 0)
    survived += os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
print("survived", survived)
"""
SHARED_BY_FORKS = """
import os, time
block = b"x" * (150 << 20)  # 150 MiB, touched, then shared (copy-on-write) with six children
kids = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
lived = 0
for pid in kids:
    _, status = os.waitpid(pid, 0)
    lived += os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
print("lived", lived, "of 6")
"""
DISK_FILL = """
import os
import re
for folder in (".", "/tmp", "/dev/shm"):
    written = 0
    try:
        with open(os.path.join(folder, "fill.bin"), "wb") as fh:
            for _ in range(256):
                fh.write(b"x" * (1 << 20))
                fh.flush()
                written += 1
    except OSError as err:
        print("refused", folder, err.errno)
    print("written", folder, written)
    os.remove(os.path.join(folder, "fill.bin"))
"""
CAPS = {"processes": 64, "memory_bytes": 400 << 20, "disk_bytes": 32 << 20, "tmp_bytes": 16 << 20}


def check_caps(probe: str, out: str) -> None:
    """What each probe must show when its cap holds."""
    if probe == "fork bomb":
        assert "fork refused 11" in out, out  # EAGAIN: RLIMIT_NPROC or pids.max
        assert int(re.search(r"children (\d+)", out).group(1)) < CAPS["processes"], out
    elif probe == "memory":
        # 3 x 200 MiB in 3 processes against 400 MiB for all of them: at most one finishes
        assert int(re.search(r"survived (\d+)", out).group(1)) <= 1, out
    elif probe == "shared by forks":
        # 150 MiB that seven processes map: counted once, it is under the cap, and nobody is killed
        assert "lived 6 of 6" in out and "killed" not in out, out
    else:
        for folder, cap in ((".", CAPS["disk_bytes"]), ("/tmp", CAPS["tmp_bytes"]), ("/dev/shm", CAPS["tmp_bytes"])):
            assert f"refused {folder} 28" in out, out  # ENOSPC
            assert int(re.search(rf"written {re.escape(folder)} (\d+)", out).group(1)) <= cap >> 20, out


PROBES = {"fork bomb": FORK_BOMB, "memory": MEMORY_HOGS, "shared by forks": SHARED_BY_FORKS, "disk": DISK_FILL}


@needs_bwrap
@pytest.mark.timeout(300)
@pytest.mark.parametrize("probe", list(PROBES))
def test_per_student_caps_hold(tmp_path, probe):
    from course_pkg.grading import sandbox

    private = tmp_path / "private"
    private.mkdir()
    outcome = sandbox.run(private, [sys.executable, "-c", PROBES[probe]],
                          sandbox.Limits(wall_seconds=120, **CAPS), handshake=False)
    check_caps(probe, outcome.output)
    assert sorted(p.name for p in private.iterdir()) == [".course-grader"]  # nothing reached the host's disk
    assert outcome.output.startswith("sandbox caps per student")


# The same probes with the grader itself unprivileged (uid 65534).  As root, a mount namespace
# makes the interpreter readable for that uid first (pyenv under a 0700 /root, say); the
# grader step then runs exactly as an ordinary user's would.
GRADER_STEP = """
import json, os, shutil, sys, tempfile
from pathlib import Path
from course_pkg.grading import sandbox
private = Path(tempfile.mkdtemp())
limits = sandbox.Limits(wall_seconds=120, **json.loads(sys.argv[2]))
outcome = sandbox.run(private, [sys.executable, "-c", sys.argv[1]], limits, handshake=False)
left = sorted(p.name for p in private.iterdir())
shutil.rmtree(private)
print(json.dumps({"uid": os.getuid(), "output": outcome.output, "left": left}))
"""


def _as_nobody() -> list[str]:
    """A command prefix that runs what follows as uid 65534 with this Python readable to it."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534; as an ordinary user the tests above are the non-root path")
    hidden: dict[Path, set[Path]] = {}  # folders others may not enter -> the paths needed below them
    for needed in {Path(sys.prefix), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent, REPO}:
        for folder in reversed(needed.parents):
            if folder != Path("/") and not folder.stat().st_mode & 0o001:
                hidden.setdefault(folder, set()).add(folder / needed.relative_to(folder).parts[0])
                break
    cmd = [shutil.which("bwrap"), "--dev-bind", "/", "/"]
    for folder, keep in hidden.items():
        cmd += ["--perms", "0755", "--tmpfs", str(folder)]
        for path in sorted(keep):
            cmd += ["--ro-bind", str(path), str(path)]
    setpriv = shutil.which("setpriv")
    assert setpriv and subprocess.run([*cmd, "--", "/bin/true"]).returncode == 0
    return [*cmd, "--", setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@needs_bwrap
@pytest.mark.timeout(300)
@pytest.mark.parametrize("probe", list(PROBES))
def test_per_student_caps_hold_for_an_unprivileged_grader(probe):
    import json
    import subprocess

    done = subprocess.run([*_as_nobody(), sys.executable, "-c", GRADER_STEP, PROBES[probe], json.dumps(CAPS)],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["uid"] == 65534
    assert "the grader's uid 65534" in result["output"]
    check_caps(probe, result["output"])
    assert result["left"] == [".course-grader"]


# --------------------------------------------------------------------------------------------
# The harness's handshake: a harness that never started is the machinery's failure, not a zero
# --------------------------------------------------------------------------------------------
@needs_bwrap
def test_a_harness_that_dies_before_the_first_cell_is_a_machinery_failure(tmp_path):
    from course_pkg.grading import sandbox

    private = tmp_path / "private"
    private.mkdir()
    died = "import course_pkg_is_not_importable_here"
    with pytest.raises(sandbox.SandboxFailed, match="GRADING MACHINERY FAILURE") as failure:
        sandbox.run(private, [sys.executable, "-c", died], sandbox.Limits(wall_seconds=60))
    assert "course_pkg_is_not_importable_here" in str(failure.value)  # its own error, quoted
    assert "not the student's doing" in str(failure.value)
    other = ("import json, os\nfrom course_pkg.grading.harness import write_frame\n"
             "hello = json.dumps({'course_pkg': '/elsewhere'}).encode()\n"
             "write_frame(int(os.environ['COURSE_GRADER_FD']), 'hello', hello)")
    with pytest.raises(sandbox.SandboxFailed, match="two versions of the course"):
        sandbox.run(private, [sys.executable, "-c", other], sandbox.Limits(wall_seconds=60))


@needs_bwrap
@pytest.mark.slow  # a kernel starts in the sandbox (about 20 s on an idle machine)
@pytest.mark.timeout(900)
def test_the_sandbox_runs_the_package_the_grader_imports_from_a_second_checkout(tmp_path):
    """A second checkout graded with another checkout's environment: the sandbox must import the
    grader's copy (here one on PYTHONPATH, not in the environment), and the harness must say so."""
    import json
    import subprocess

    import nbformat

    checkout = tmp_path / "second checkout"
    shutil.copytree(REPO / "course_pkg", checkout / "course_pkg", ignore=shutil.ignore_patterns("__pycache__"))
    private = tmp_path / "private"
    private.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import course_pkg\nprint(course_pkg.__file__)")]
    nbformat.write(nb, str(private / "n.ipynb"))
    step = ("import json, sys\nfrom pathlib import Path\nfrom course_pkg.grading import sandbox\n"
            f"private = Path({str(private)!r})\n"
            "argv = [sys.executable, '-m', 'course_pkg.grading.harness', f'{sandbox.WORKDIR}/n.ipynb',\n"
            "        f'{sandbox.WORKDIR}/{sandbox.RESULTS}', '60']\n"
            "outcome = sandbox.run(private, argv, sandbox.Limits(wall_seconds=600))\n"
            "print(json.dumps({'grader': sandbox.__file__, 'output': outcome.output}))\n")
    done = subprocess.run([sys.executable, "-c", step], capture_output=True, text=True, timeout=800,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(checkout)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["grader"].startswith(str(checkout))
    results = json.loads((private / ".course-grader" / "results.json").read_text())["cells"]
    printed = "".join(o.get("text", "") for o in results["0"]["outputs"])
    assert results["0"]["status"] == "ok" and printed.strip() == str(checkout / "course_pkg" / "__init__.py")


def test_a_machinery_failure_stops_the_run_and_records_no_score(tmp_path, monkeypatch):
    """What nbgrader logs when the sandbox raised SandboxFailed becomes MachineryFailure (a
    GradingError: `course grade` prints it and exits 2), and the student's gradebook copy is gone."""
    import traceback

    from course_pkg.grading import autograde, sandbox
    from course_pkg.grading.course import GradingError, Layout, StudentResult

    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    layout = Layout.load(tmp_path)
    (layout.work / "gradebook.db").write_bytes(b"")
    try:
        sandbox._check_handshake(None, "ModuleNotFoundError: No module named 'course_pkg'")
    except sandbox.SandboxFailed:
        logged = ("[AutogradeApp | ERROR] There was an error processing assignment: a\n"
                  f"[AutogradeApp | ERROR] {traceback.format_exc()}"
                  "[AutogradeApp | ERROR] There was an error processing assignment 'a' for student 'ann'\n")
    monkeypatch.setattr(autograde, "run_nbgrader", lambda *args: (1, logged, 3.0))
    result = StudentResult("ann")
    with pytest.raises(autograde.MachineryFailure) as failure:
        autograde.autograde_one(layout, "a", result, 60, [], tmp_path / "dbs")
    assert isinstance(failure.value, GradingError)
    message = str(failure.value)
    assert message.startswith("ann: GRADING MACHINERY FAILURE") and "No module named 'course_pkg'" in message
    assert "No score was recorded" in message and "There was an error" not in message
    assert not (tmp_path / "dbs" / "ann.db").exists() and result.status == "failed"
