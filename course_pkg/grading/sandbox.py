"""Run one student's notebook in a sandbox: bubblewrap, per-student caps, no network.

nbgrader does not sandbox the code students submit (its FAQ), so ``course grade`` never lets it run
student code.  The notebook runs here, in `bubblewrap <https://github.com/containers/bubblewrap>`_:

- new user, PID, network, IPC, UTS and cgroup namespaces: uid 65534 inside, no network, no other
  process visible; and an unprivileged uid on the host.  A user namespace maps the sandbox's uid to
  the uid that started bwrap, so a root grader (as in CI) would hand out host root, for which
  ``RLIMIT_NPROC`` does not count.  As root, a first bwrap builds the file system, ``setpriv``
  drops to a uid of this sandbox's own (:func:`host_uid`), a second bwrap makes the namespaces;
- a read-only root: the Python installation and the package the grader itself imports (wherever
  it is installed), less what the assignment grades (:mod:`course_pkg.grading.hidden`).  Writable
  are only size-limited tmpfs mounts: the student's copy (``WORKDIR``, filled from a read-only
  view of the private folder), ``/tmp`` and ``/dev/shm``;
- per-student caps: processes (cgroup ``pids.max``, else ``RLIMIT_NPROC`` of that uid), memory of
  all its processes together (cgroup ``memory.max``, else a watchdog that kills the largest process
  as the OOM killer would), disk (the tmpfs sizes), file size, wall time (:func:`enforcement`);
- a channel (a pipe): the harness says it started (``harness.HELLO``), then sends results and handed-
  over data, which land, bounded, in ``private/.course-grader``.  No handshake: the machinery
  failed, not the student (:class:`SandboxFailed`);
- at the end (or when the grader dies: ``--die-with-parent``) every process in it is killed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import caps
from .harness import CHANNEL_ENV, Receiver

SANDBOX_UID = 65534  # "nobody", inside the namespace
HOST_UIDS = (2_000_000_000, 100_000_000)  # first uid and count: one per sandbox when the grader is root
WORKDIR = "/work/submission"
WATCHDOG_SECONDS = 0.2  # without a cgroup, how often the memory of a student's processes is summed
INPUT = "/work/input"  # the private folder, read-only; copied into WORKDIR before anything runs
RESULTS = ".course-grader"  # in the private folder: results.json and the handover files
# Copy the notebook first, so that a submission too large for its disk still has one to run.
_COPY_IN = ('cp -- "$0"/*.ipynb ' + WORKDIR + '/ 2>/dev/null; cp -R -- "$0"/. ' + WORKDIR + '/ || '
            'echo "course grader: the submitted files do not fit in the sandbox disk of $1 bytes; '
            'some were not copied"; shift; exec "$@"')


class SandboxUnavailable(RuntimeError):
    """No usable sandbox tool on this machine."""


class SandboxFailed(RuntimeError):
    """The grading machinery failed (the harness never started): no student's fault, no score."""


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
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        raise SandboxUnavailable(
            "grading as root needs setpriv (util-linux) to run student code as an unprivileged uid: install "
            "util-linux, or grade as an ordinary user")
    argv = [path, "--unshare-all", "--die-with-parent", "--uid", str(SANDBOX_UID), "--ro-bind", "/", "/",
            "--", "/bin/true"]
    if os.geteuid() == 0:  # as the sandboxes will run: a mount namespace as root, then an unprivileged uid
        uid = host_uid()
        argv = [path, "--dev-bind", "/", "/", "--", shutil.which("setpriv") or "setpriv", f"--reuid={uid}",
                f"--regid={uid}", "--clear-groups", "--", *argv]
    probe = subprocess.run(argv, capture_output=True, text=True)
    if probe.returncode != 0 and os.geteuid() == 0:
        raise SandboxUnavailable(
            f"grading as root, bwrap could not build a sandbox that runs as an unprivileged uid "
            f"({probe.stderr.strip()[:200]}): root needs CAP_SYS_ADMIN (a VM, or a privileged container); or "
            "run `course grade` as an ordinary user with user namespaces enabled")
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bwrap is installed but cannot create namespaces here ({probe.stderr.strip()[:200]}): enable "
            "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root; or pass "
            "--unsafe-no-sandbox (not for real classes)")
    return path


@dataclass
class Limits:
    wall_seconds: float
    memory_bytes: int = 8 << 30  # all the student's processes together (and each one's address space)
    processes: int = 256
    file_bytes: int = 512 << 20
    disk_bytes: int = 1 << 30  # the writable copy of the submission (a tmpfs: memory)
    tmp_bytes: int = 512 << 20  # /tmp and /dev/shm, each


def host_uid() -> int:
    """The host uid of one sandbox when the grader is root: not root, not a login, not shared with
    another sandbox running now (a random pick out of 10^8), so ``RLIMIT_NPROC`` counts one student."""
    return HOST_UIDS[0] + secrets.randbelow(HOST_UIDS[1])


def cgroup_parent() -> Path | None:
    """A cgroup v2 folder this grader may create children in, with the memory and pids controllers
    enabled for them: ``$COURSE_GRADE_CGROUP`` (e.g. a systemd unit with ``Delegate=yes``), else
    this process's own cgroup when it qualifies.  None: the rlimit-and-watchdog scheme applies."""
    given = os.environ.get("COURSE_GRADE_CGROUP")
    if given:
        folder = Path(given)
    else:
        try:
            own = [line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")]
        except OSError:
            return None
        if not own:
            return None
        folder = Path("/sys/fs/cgroup") / own[0].lstrip("/")
    try:
        enabled = set((folder / "cgroup.subtree_control").read_text().split())
    except OSError:
        enabled = set()
    if {"memory", "pids"} <= enabled and os.access(folder, os.W_OK):
        return folder
    if given:
        raise SandboxUnavailable(f"COURSE_GRADE_CGROUP={given} is not a cgroup v2 folder this grader can write "
                                 "with memory and pids in its cgroup.subtree_control: fix it, or unset it")
    return None


def enforcement(limits: Limits) -> str:
    """Which per-student caps hold on this machine, in words (for the run's summary)."""
    mem = f"{limits.memory_bytes >> 20} MiB"
    who = ("a uid of its own (the grader is root)" if os.geteuid() == 0
           else f"the grader's uid {os.geteuid()}")
    disk = f"disk {limits.disk_bytes >> 20} MiB + /tmp {limits.tmp_bytes >> 20} MiB (tmpfs)"
    if cgroup_parent() is not None:
        return (f"sandbox caps per student (cgroup v2): {limits.processes} processes (pids.max), "
                f"{mem} memory in all (memory.max), {disk}; runs as {who}")
    return (f"sandbox caps per student (no delegated cgroup v2, rlimits): {limits.processes} processes "
            f"(RLIMIT_NPROC of {who}), {mem} memory in all (a watchdog kills the largest process, "
            f"checked every {WATCHDOG_SECONDS:g} s; {mem} address space per process), {disk}")


def _read_only_paths() -> list[Path]:
    """What the notebook needs to import: the interpreter, the environment, the course package that
    this process imports (an editable checkout, a wheel in site-packages), as named and resolved."""
    import course_pkg

    named = {Path(sys.base_prefix), Path(sys.prefix), Path(course_pkg.__file__).parent}
    paths = named | {p.resolve() for p in named}
    for usr in ("/usr", "/etc/alternatives", "/etc/ssl", "/etc/fonts"):
        if Path(usr).exists():
            paths.add(Path(usr))
    # keep the most general paths only
    return sorted(p for p in paths if not any(q != p and q in p.parents for q in paths))


def python_path() -> str | None:
    """The folder holding the grader's ``course_pkg``, when the sandbox's interpreter would not find
    it on its own (a checkout next to, not inside, the environment)."""
    import site

    import course_pkg

    home = Path(course_pkg.__file__).resolve().parent.parent
    sites = {Path(p).resolve() for p in site.getsitepackages()}
    return None if home in sites else str(home)


def _mounts(private: Path, limits: Limits, overlays: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The sandbox's file system, as bwrap arguments (bwrap mounts in order); ``overlays``:
    ``(source, target)`` read-only binds on top of it (:func:`.hidden.hidden_package`)."""
    cmd: list[str] = []
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin"), ("/sbin", "usr/sbin")):
        if Path(link).is_symlink():
            cmd += ["--symlink", target, link]
        elif Path(link).is_dir():
            cmd += ["--ro-bind", link, link]
    # the fresh /tmp first, so an environment or course package under /tmp on the host (a CI clone)
    # is bound on top of it instead of hidden by it
    cmd += ["--size", str(limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    binds = _read_only_paths()
    parents = sorted({a for p in [*binds, Path(WORKDIR), Path(INPUT)] for a in p.parents if a != Path("/")},
                     key=lambda a: len(a.parts))
    for folder in parents:  # 0755: the uid in there must pass through (bwrap's default is 0700 as root)
        if folder not in binds and str(folder) not in ("/tmp", "/lib", "/lib64", "/bin", "/sbin"):
            cmd += ["--perms", "0755", "--dir", str(folder)]
    for path in binds:
        cmd += ["--ro-bind", str(path), str(path)]
    for source, target in overlays:
        cmd += ["--ro-bind", source, target]
    cmd += ["--ro-bind", str(private), INPUT,
            "--size", str(limits.disk_bytes), "--perms", "0777", "--tmpfs", WORKDIR]
    return cmd


def command(bwrap: str, private: Path, argv: list[str], env: dict[str, str], limits: Limits,
            uid: int | None = None, overlays: Sequence[tuple[str, str]] = ()) -> list[str]:
    """bwrap's command line; ``uid``: the host uid to drop to first (a root grader), else None;
    ``overlays``: read-only binds over the file system (:func:`.hidden.hidden_package`)."""
    # --disable-userns: no nested namespace in which the student could mount a tmpfs of any size
    spaces = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
              "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
    devices = ["--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
               "--proc", "/proc", "--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    for key, value in env.items():
        devices += ["--setenv", key, value]
    inside = ["--", "/bin/sh", "-c", _COPY_IN, INPUT, str(limits.disk_bytes), *argv]
    if uid is None:
        return [*spaces, *_mounts(private, limits, overlays), *devices, *inside]
    # root: the file system as root, then the namespaces as an unprivileged host uid
    return [bwrap, "--die-with-parent", *_mounts(private, limits, overlays), "--dev", "/dev",
            "--bind", "/proc", "/proc",
            "--remount-ro", "/", "--", shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}",
            "--clear-groups", "--", *spaces, "--bind", "/", "/", *devices, *inside]


def sandbox_env(cell_threads: int = 1) -> dict[str, str]:
    """The whole environment of the student's processes (nothing of the instructor's)."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": "/tmp/home", "IPYTHONDIR": "/tmp/home/.ipython", "JUPYTER_RUNTIME_DIR": "/tmp/home/runtime",
        "JUPYTER_DATA_DIR": "/tmp/home/data", "JUPYTER_CONFIG_DIR": "/tmp/home/config",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/home/mpl", "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8",
        # the harness must not import the student's files (a submitted nbformat.py); it drops this
        # before starting the kernel, whose notebook may import its own modules
        "PYTHONSAFEPATH": "1",
        "NBGRADER_EXECUTION": "autograde", "COURSE_QUIET": "1", "TQDM_DISABLE": "1",
        "OMP_NUM_THREADS": str(cell_threads), "MKL_NUM_THREADS": str(cell_threads),
        "COURSE_HANDOVER": f"{WORKDIR}/{RESULTS}",
    }
    if python_path():
        env["PYTHONPATH"] = python_path()
    return env


class _Output(threading.Thread):
    """The sandbox's stdout and stderr: the last ``keep`` characters, whatever it prints."""

    def __init__(self, stream, keep: int = 20000):
        super().__init__(daemon=True)
        self.stream, self.keep, self.text = stream, keep, b""

    def run(self) -> None:
        for chunk in iter(lambda: self.stream.read1(1 << 16), b""):
            self.text = (self.text + chunk)[-self.keep:]


@dataclass
class Outcome:
    returncode: int | None  # None: killed at the wall-time limit
    output: str
    seconds: float


def run(private: Path, argv: list[str], limits: Limits, cell_threads: int = 1,
        unsafe: bool = False, handshake: bool = True, overlays: Sequence[tuple[str, str]] = ()) -> Outcome:
    """Run ``argv`` on a copy of ``private`` with the caps of ``limits``; kill everything at the end.

    What arrives on the channel lands in ``private/.course-grader``.  ``handshake``: ``argv`` is the
    harness, which must say it started; if it does not, :class:`SandboxFailed` is raised.
    ``overlays``: read-only binds over the sandbox's file system (:func:`.hidden.hidden_package`; not
    possible ``unsafe``, without a sandbox)."""
    env = sandbox_env(cell_threads)
    results = private / RESULTS
    results.mkdir(exist_ok=True)
    read_end, write_end = os.pipe()
    env[CHANNEL_ENV] = str(write_end)
    cgroup = uid = None
    if unsafe:  # the instructor asked for it: same steps, no isolation
        env = {**env, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               "COURSE_HANDOVER": str(results), "HOME": str(results / "home"),
               "IPYTHONDIR": str(results / "home" / ".ipython")}
        for key in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "MPLCONFIGDIR"):
            env[key] = str(results / "home" / key.lower())
        cmd, cwd = argv, private
    else:
        bwrap = check_available()
        parent = cgroup_parent()
        cgroup = caps.new_cgroup(parent, limits) if parent is not None else None
        uid = host_uid() if os.geteuid() == 0 else None
        if uid is not None:  # the sandbox's uid must read its copy (and nothing else of the host)
            _give(private, uid)
        cmd, cwd = command(bwrap, private, argv, env, limits, uid, overlays), None
    start = time.monotonic()
    notes = enforcement(limits) + "\n" if not unsafe else ""
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env if unsafe else {"PATH": "/usr/bin:/bin"},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=caps.preexec(limits, cgroup), pass_fds=(write_end,))
    except BaseException:
        os.close(read_end)
        if cgroup is not None:
            caps.end_cgroup(cgroup)
        raise
    finally:
        os.close(write_end)
    receiver = Receiver(read_end, results, limits.disk_bytes)
    receiver.start()  # threads only after the fork: preexec_fn runs in the child
    output = _Output(proc.stdout)
    output.start()
    code: int | None = None
    try:
        while True:
            try:
                code = proc.wait(timeout=WATCHDOG_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() - start > limits.wall_seconds:
                break
            if cgroup is None and not unsafe:
                notes += caps.memory_watchdog(proc.pid, limits.memory_bytes)
    finally:
        # bwrap is PID 1 of the sandbox's PID namespace: killing it ends every process in there
        if unsafe:
            _kill_tree(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if cgroup is not None:
            caps.end_cgroup(cgroup)
        output.join(10)
        receiver.join(10)
    text = notes + output.text.decode(errors="replace")
    if receiver.problem:
        text += f"\ncourse grader: {receiver.problem}\n"
    if handshake:
        _check_handshake(receiver.hello, text)
    return Outcome(code, text[-20000:], time.monotonic() - start)


def _give(private: Path, uid: int) -> None:
    """Hand the private copy to ``uid`` (links themselves, never what they point to)."""
    os.chown(private, uid, uid)
    for folder, dirs, files in os.walk(private):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


def _check_handshake(hello: dict | None, output: str) -> None:
    """The harness must have started, with the course package this grader imports."""
    import course_pkg

    ours = str(Path(course_pkg.__file__).resolve())
    if hello is None:
        raise SandboxFailed(
            "GRADING MACHINERY FAILURE: the harness died before the student's first cell (no start-up "
            "handshake), so nothing was graded. This is not the student's doing. Its last output:\n"
            + "\n".join(output.strip().splitlines()[-12:])
            + "\nCheck that the sandbox's Python can import course_pkg (it imports the grader's own "
              f"package, {ours}), and that `course grade` runs with the environment course_pkg is installed in")
    here = os.stat(ours)
    if hello.get("course_pkg") != ours and hello.get("file_id") != [here.st_dev, here.st_ino]:
        raise SandboxFailed(
            f"GRADING MACHINERY FAILURE: the sandbox imported course_pkg from {hello.get('course_pkg')!r}, "
            f"the grader from {ours}: two versions of the course would grade one class. Install one copy "
            "(pip install -e . in the checkout you grade from) and run again")


def _kill_tree(pid: int) -> None:
    try:
        import psutil

        for p in psutil.Process(pid).children(recursive=True):
            p.kill()
    except Exception:  # noqa: BLE001
        pass
