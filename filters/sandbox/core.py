"""Run one untrusted Python program in a jail and report how it ended.

`run_python(code, limits, stdin=...)` writes the program to a fresh scratch dir, starts
`_launch.py` (namespaces, unprivileged uid, rlimits; see its docstring and docs/sandbox.md),
waits up to the wall-clock limit, kills the whole process group on timeout, reads at most
`limits.output_bytes` of stdout and stderr, and removes the scratch dir. Output goes to files,
not pipes, so a program printing 1 GB costs nothing: RLIMIT_FSIZE stops it at the cap.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LAUNCHER = Path(__file__).with_name("_launch.py")
SETUP_FAILED = 125
SETUP_MARKER = b"thinkmix-sandbox:"
# A fresh uid per run from this range: no other process on the host has it, so the program can
# signal nothing outside its jail and RLIMIT_NPROC counts only its own processes.
UID_LOW, UID_SPAN = 1 << 20, 1 << 29
SCRUBBED_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}

Status = Literal["ok", "exit_nonzero", "timeout", "memory", "output_limit", "crashed"]


class SandboxError(RuntimeError):
    """The jail could not be built (not a fault of the program): the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-run limits. Defaults suit short competitive-programming style programs."""

    wall_s: float = 4.0  # wall clock; the parent kills the process group after it
    cpu_s: int = 2  # RLIMIT_CPU (soft; SIGKILL one second later)
    memory_mb: int = 512  # RLIMIT_AS: address space, so MemoryError rather than the OOM killer
    max_procs: int = 32  # RLIMIT_NPROC for the program's uid (processes and threads)
    output_bytes: int = 1 << 20  # RLIMIT_FSIZE; also what is read back of stdout/stderr
    max_open_files: int = 64  # RLIMIT_NOFILE
    tmpfs_mb: int = 16  # size of each private /tmp, /var/tmp, /dev/shm
    no_network: bool = True  # new network namespace (loopback only, down)

    def __post_init__(self) -> None:
        if self.wall_s <= 0 or self.cpu_s < 1:
            raise ValueError(f"Limits: need wall_s > 0 and cpu_s >= 1, got {self}")
        if self.memory_mb < 64:
            raise ValueError(f"Limits: memory_mb must be >= 64 (Python needs it), got {self}")
        if self.max_procs < 1 or self.output_bytes < 1 or self.max_open_files < 8:
            raise ValueError(f"Limits: max_procs, output_bytes, max_open_files too small: {self}")


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class RunResult:
    status: Status
    exit_code: int | None  # None when the parent killed it on the wall clock
    stdout: str
    stderr: str
    wall_s: float
    results: str = ""  # what the program wrote to fd 3 (the function-test harness)

    @property
    def signal(self) -> int | None:
        code = self.exit_code
        return code - 128 if code is not None and code > 128 else None


def _python_location() -> tuple[str, str]:
    """(prefix, executable relative to it) of the interpreter running us, outside any venv."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    if not executable.startswith(prefix + os.sep):
        prefix = os.path.dirname(os.path.dirname(executable))
    return prefix, os.path.relpath(executable, prefix)


def _user_processes(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError):  # exited meanwhile
                count += entry.stat().st_uid == uid
    return count


def _config(limits: Limits, scratch: Path, argv: list[str], results_fd: int | None) -> dict:
    prefix, rel = _python_location()
    as_root = os.geteuid() == 0
    uid = UID_LOW + secrets.randbelow(UID_SPAN) if as_root else os.getuid()
    # Without root the program keeps our uid, whose other processes count against RLIMIT_NPROC.
    nproc = limits.max_procs + (0 if as_root else _user_processes(uid))
    return {
        "uid": uid,
        "user_namespace": not as_root,
        "no_network": limits.no_network,
        "scratch": str(scratch),
        "python_prefix": prefix,
        "python_rel": rel,
        "argv": argv,
        "env": dict(SCRUBBED_ENV),
        "results_fd": results_fd,
        "cpu_s": limits.cpu_s,
        "memory_bytes": limits.memory_mb << 20,
        "nproc": nproc,
        "fsize_bytes": limits.output_bytes,
        "nofile": limits.max_open_files,
        "tmpfs_bytes": limits.tmpfs_mb << 20,
    }


def _read_capped(path: Path, cap: int) -> tuple[str, int]:
    with open(path, "rb") as f:
        data = f.read(cap)
    return data.decode("utf-8", errors="replace"), path.stat().st_size


def _classify(code: int | None, stderr: str, out_size: int, limits: Limits) -> Status:
    if code is None or code - 128 in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout"  # wall clock, RLIMIT_CPU soft (SIGXCPU) or hard (SIGKILL)
    if code == 0:
        return "ok"
    if out_size >= limits.output_bytes or "[Errno 27] File too large" in stderr:
        return "output_limit"  # Python ignores SIGXFSZ, so the write fails with EFBIG
    if "MemoryError" in stderr:
        return "memory"
    if code > 128:
        return "crashed"  # SIGSEGV, SIGABRT, ...
    return "exit_nonzero"


def _wait(proc: subprocess.Popen, timeout_s: float) -> int | None:
    """The exit code, or None after killing the process group at the timeout.

    A pidfd wakes us the moment the launcher exits; Popen.wait(timeout) polls with sleeps of up
    to 50 ms, which would cost more than the run itself.
    """
    pidfd = os.pidfd_open(proc.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if poller.poll(timeout_s * 1000):
            return proc.wait()
    finally:
        os.close(pidfd)
    os.killpg(proc.pid, signal.SIGKILL)  # init's PDEATHSIG then tears the jail down
    proc.wait()
    return None


def run_python(
    code: str,
    limits: Limits | None = None,
    stdin: str = "",
    files: dict[str, str] | None = None,
    want_results: bool = False,
) -> RunResult:
    """Run `code` as the script `main.py` with `stdin`; see the module docstring.

    `files` are written beside it in the scratch dir (read-only to the program's uid: it owns
    the dir, so it can still replace them). With `want_results` the program may write to fd 3,
    a channel apart from stdout, and `RunResult.results` holds what it wrote. Raises
    SandboxError only when the jail itself cannot be built."""
    limits = limits or DEFAULT_LIMITS
    work = Path(tempfile.mkdtemp(prefix="thinkmix-sbx-"))  # 0700, root: the program never sees it
    try:
        scratch = work / "box"
        scratch.mkdir(mode=0o700)
        for name, text in {**(files or {}), "main.py": code}.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"run_python: file names must be plain, got {name!r}")
            (scratch / name).write_text(text, encoding="utf-8")
            os.chmod(scratch / name, 0o644)
        (work / "stdin").write_text(stdin, encoding="utf-8")
        results_fd = (
            os.open(work / "results", os.O_RDWR | os.O_CREAT, 0o600) if want_results else None
        )
        cfg = _config(limits, scratch, ["main.py"], results_fd)
        if cfg["uid"] != os.getuid():
            os.chown(scratch, cfg["uid"], cfg["uid"])
        started = time.monotonic()
        with (
            open(work / "stdin", "rb") as fin,
            open(work / "stdout", "wb") as fout,
            open(work / "stderr", "wb") as ferr,
        ):
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(cfg)],
                stdin=fin,
                stdout=fout,
                stderr=ferr,
                env={},
                pass_fds=() if results_fd is None else (results_fd,),
                start_new_session=True,
            )
            if results_fd is not None:
                os.close(results_fd)
            exit_code = _wait(proc, limits.wall_s)
        wall = time.monotonic() - started
        stdout, out_size = _read_capped(work / "stdout", limits.output_bytes)
        stderr, _ = _read_capped(work / "stderr", 64 << 10)
        if exit_code == SETUP_FAILED and stderr.encode().startswith(SETUP_MARKER):
            raise SandboxError(stderr.strip())
        results = _read_capped(work / "results", limits.output_bytes)[0] if want_results else ""
        status = _classify(exit_code, stderr, out_size, limits)
        return RunResult(status, exit_code, stdout, stderr, wall, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
