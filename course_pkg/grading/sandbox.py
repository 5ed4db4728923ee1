"""Run one student's notebook in a sandbox: bubblewrap, one private folder, limits, no network.

nbgrader does not protect against hostile code (its FAQ: "nbgrader does not sandbox the code
students submit"), so ``course grade`` never lets it run student code.  The notebook runs here,
inside `bubblewrap <https://github.com/containers/bubblewrap>`_ (Debian package ``bubblewrap``):

- new user, PID, network, IPC, UTS and cgroup namespaces (``--unshare-all``): an unprivileged
  uid (65534), no network (a loopback of its own only), no other process visible;
- a new root: the Python installation and the course package read-only, ``/dev`` and ``/proc``
  of the namespace, an empty ``/tmp`` and HOME (so a fresh IPython profile), and one writable
  folder: a private copy of this student's submission.  No gradebook, no ``solutions/``, no
  course repository, no classmates, no data sets, none of the instructor's environment variables;
- memory (address space), process-count, file-size and wall-time limits;
- when it ends (or the grader dies: ``--die-with-parent``) the namespace's first process is
  killed, which kills every process started in it: nothing of the student's survives.

The harness inside (:mod:`course_pkg.grading.harness`) executes the notebook cell by cell and
writes the cells' outputs and the handed-over data (:mod:`course_pkg.checks.handover`) into the
private folder; the trusted side reads them back as data.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534  # "nobody"
WORKDIR = "/work/submission"
RESULTS = ".course-grader"  # inside the private copy: results.json and the handover files


class SandboxUnavailable(RuntimeError):
    """No usable sandbox tool on this machine."""


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def check_available() -> str:
    """The path of a working ``bwrap``; raises :class:`SandboxUnavailable` saying what to do."""
    path = bwrap_path()
    if path is None:
        raise SandboxUnavailable(
            "no sandbox tool: `course grade` runs student code only inside bubblewrap (bwrap). Install it "
            "(Debian/Ubuntu: sudo apt-get install bubblewrap; `make sandbox` does this) and run again, or "
            "pass --unsafe-no-sandbox to run student code with your own rights (not for real classes)")
    probe = subprocess.run([path, "--unshare-all", "--die-with-parent", "--uid", str(SANDBOX_UID),
                            "--ro-bind", "/", "/", "--", "/bin/true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bwrap is installed but cannot create namespaces here ({probe.stderr.strip()[:200]}): enable "
            "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root; or pass "
            "--unsafe-no-sandbox (not for real classes)")
    return path


@dataclass
class Limits:
    wall_seconds: float
    memory_bytes: int = 8 << 30
    processes: int = 256
    file_bytes: int = 512 << 20
    tmp_bytes: int = 512 << 20


def _read_only_paths() -> list[Path]:
    """What the notebook needs to import: the interpreter, the environment, the course package."""
    import course_pkg

    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
             Path(course_pkg.__file__).resolve().parent}
    for usr in ("/usr", "/etc/alternatives", "/etc/ssl", "/etc/fonts"):
        if Path(usr).exists():
            paths.add(Path(usr))
    # keep the most general paths only
    return sorted(p for p in paths if not any(q != p and q in p.parents for q in paths))


def command(bwrap: str, private: Path, argv: list[str], env: dict[str, str], limits: Limits) -> list[str]:
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session",
           "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin"), ("/sbin", "usr/sbin")):
        if Path(link).is_symlink():
            cmd += ["--symlink", target, link]
        elif Path(link).is_dir():
            cmd += ["--ro-bind", link, link]
    # the fresh /tmp first: bwrap mounts in order, so an environment or course package that lives
    # under /tmp on the host (a CI clone, say) is bound on top of it instead of hidden by it
    cmd += ["--dev", "/dev", "--proc", "/proc", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    for path in _read_only_paths():
        cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--bind", str(private), WORKDIR, "--chdir", WORKDIR, "--clearenv"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--", *argv]


def sandbox_env(cell_threads: int = 1) -> dict[str, str]:
    """The whole environment of the student's processes (nothing of the instructor's)."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": "/tmp/home", "IPYTHONDIR": "/tmp/home/.ipython", "JUPYTER_RUNTIME_DIR": "/tmp/home/runtime",
        "JUPYTER_DATA_DIR": "/tmp/home/data", "JUPYTER_CONFIG_DIR": "/tmp/home/config",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/home/mpl", "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8",
        "NBGRADER_EXECUTION": "autograde", "COURSE_QUIET": "1", "TQDM_DISABLE": "1",
        "OMP_NUM_THREADS": str(cell_threads), "MKL_NUM_THREADS": str(cell_threads),
        "COURSE_HANDOVER": f"{WORKDIR}/{RESULTS}",
    }


def _limit(limits: Limits):
    def apply() -> None:
        for what, value in ((resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_NPROC, limits.processes),
                            (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(what, (value, value))
            except (ValueError, OSError):
                pass
    return apply


@dataclass
class Outcome:
    returncode: int | None  # None: killed at the wall-time limit
    output: str
    seconds: float


def run(private: Path, argv: list[str], limits: Limits, cell_threads: int = 1,
        unsafe: bool = False) -> Outcome:
    """Run ``argv`` with ``private`` as the only writable folder; kill everything at the end."""
    env = sandbox_env(cell_threads)
    if unsafe:  # the instructor asked for it: same steps, no isolation
        env = {**env, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               "COURSE_HANDOVER": str(private / RESULTS), "HOME": str(private / RESULTS / "home"),
               "IPYTHONDIR": str(private / RESULTS / "home" / ".ipython")}
        for key in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "MPLCONFIGDIR"):
            env[key] = str(private / RESULTS / "home" / key.lower())
        cmd, cwd = argv, private
    else:
        cmd, cwd = command(check_available(), private, argv, env, limits), None
    (private / RESULTS).mkdir(exist_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env if unsafe else {"PATH": "/usr/bin:/bin"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=_limit(limits))
    try:
        out, _ = proc.communicate(timeout=limits.wall_seconds)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
        out = ""
    finally:
        # bwrap is PID 1 of the sandbox's PID namespace: killing it ends every process in there
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if unsafe:
            _kill_tree(proc.pid)
        if proc.poll() is None:
            proc.kill()
        if code is None:
            try:
                out, _ = proc.communicate(timeout=10)
            except Exception:  # noqa: BLE001
                out = out or ""
    return Outcome(code, (out or "")[-20000:] if isinstance(out, str) else out.decode(errors="replace")[-20000:],
                   time.monotonic() - start)


def _kill_tree(pid: int) -> None:
    try:
        import psutil

        for p in psutil.Process(pid).children(recursive=True):
            p.kill()
    except Exception:  # noqa: BLE001
        pass
