"""The sandbox launcher: run by `filters.sandbox.core` as `python -I -S _launch.py CONFIG_JSON`.

Stdlib only, and no import of thinkmix, so it starts fast. It builds the jail, then execs the
program. Three processes:

    launcher (host pid namespace, root)       waits for init, exits with its status
      init = pid 1 of a new pid namespace     mounts, then reaps; when it exits the kernel kills
        program (unprivileged uid)            every process left in the namespace

- new net namespace: only a loopback interface, and it is down, so no connection goes anywhere;
- new mount namespace: private mounts, a fresh /proc (only the jail's pids), small tmpfs over
  /tmp, /var/tmp and /dev/shm, the scratch dir bound at /tmp/box (the cwd), the Python prefix
  bind-mounted read-only at /tmp/.python so an
  unprivileged uid can run the interpreter even when it lives under a 0700 home;
- new pid and ipc namespaces; init has PR_SET_PDEATHSIG=SIGKILL, so killing the launcher (the
  parent's wall-clock timeout kills its process group) tears the whole jail down;
- the program runs as a fresh random uid/gid with no groups, so RLIMIT_NPROC is enforced (it is
  not for root) and nothing outside the scratch dir is writable;
- rlimits: CPU, AS, NPROC, FSIZE, NOFILE, CORE=0; environment = exactly `env` from the config.

Exit status: the program's exit code, or 128 + signal number when a signal ended it. Setup
failures print `thinkmix-sandbox: ...` to stderr and exit 125.
"""

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
SETUP_FAILED = 125
PYTHON_MOUNT = "/tmp/.python"
BOX_MOUNT = "/tmp/box"  # the program's cwd: the scratch dir

# The program runs under `python -I -S` (no site: it would import the host's .pth files, 40 ms
# per run, and the program gets the stdlib only); this puts back the `exit`/`quit` site adds.
BOOT = (
    "import builtins, sys\n"
    "builtins.exit = builtins.quit = sys.exit\n"
    "sys.argv = sys.argv[1:]\n"
    "with open(sys.argv[0], 'rb') as f: code = compile(f.read(), sys.argv[0], 'exec')\n"
    "del f\n"
    "exec(code, {'__name__': '__main__', '__file__': sys.argv[0], '__builtins__': builtins})\n"
)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def _fail(message: str) -> None:
    os.write(2, f"thinkmix-sandbox: {message}\n".encode())
    os._exit(SETUP_FAILED)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _enter_namespaces(cfg: dict) -> None:
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC
    if cfg["no_network"]:
        flags |= CLONE_NEWNET
    if cfg["user_namespace"]:  # not root: an unprivileged user namespace gives the same powers
        uid, gid = os.getuid(), os.getgid()
        _check(_libc.unshare(flags | CLONE_NEWUSER), "unshare")
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    else:
        _check(_libc.unshare(flags), "unshare")


def _build_jail(cfg: dict) -> None:
    """In init (pid 1 of the new namespace): mounts; the cwd is the scratch dir."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # chdir before /tmp is covered: the cwd keeps pointing at the scratch dir underneath.
    os.chdir(cfg["scratch"])
    for path in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            opts = f"size={cfg['tmpfs_bytes']},nr_inodes=4096,mode=1777"
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    os.mkdir(PYTHON_MOUNT, 0o755)
    _mount(cfg["python_prefix"], PYTHON_MOUNT, None, MS_BIND | MS_REC)
    _mount(None, PYTHON_MOUNT, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    # The scratch dir, now hidden under the tmpfs, is bound at a fixed path through the cwd.
    os.mkdir(BOX_MOUNT, 0o755)
    _mount(".", BOX_MOUNT, None, MS_BIND)
    os.chdir(BOX_MOUNT)


def _exec_program(cfg: dict) -> None:
    """In the program's process: drop privileges, set limits, exec. Never returns."""
    if cfg["results_fd"] is not None:
        os.dup2(cfg["results_fd"], 3, inheritable=True)
    if not cfg["user_namespace"]:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])
    cpu = cfg["cpu_s"]
    limits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (cfg["memory_bytes"],) * 2,
        resource.RLIMIT_NPROC: (cfg["nproc"],) * 2,
        resource.RLIMIT_FSIZE: (cfg["fsize_bytes"],) * 2,
        resource.RLIMIT_NOFILE: (cfg["nofile"],) * 2,
        resource.RLIMIT_CORE: (0, 0),
    }
    for which, value in limits.items():
        resource.setrlimit(which, value)
    os.umask(0o077)
    python = os.path.join(PYTHON_MOUNT, cfg["python_rel"])
    # a libpython found through an RPATH under the (hidden) real prefix is found here instead
    env = {**cfg["env"], "LD_LIBRARY_PATH": os.path.join(PYTHON_MOUNT, "lib")}
    os.execve(python, [python, "-I", "-S", "-B", "-X", "utf8", "-c", BOOT, *cfg["argv"]], env)


def _init(cfg: dict) -> None:
    try:
        _build_jail(cfg)
    except OSError as exc:
        _fail(f"jail setup failed: {exc}")
    program = os.fork()
    if program == 0:
        try:
            _exec_program(cfg)
        except OSError as exc:
            _fail(f"exec failed: {exc}")
    if cfg["results_fd"] is not None:
        os.close(cfg["results_fd"])
    while True:  # reap every orphan; stop when the program itself is gone
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(SETUP_FAILED)
        if pid == program:
            os._exit(_exit_code(status))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    try:
        _enter_namespaces(cfg)
    except OSError as exc:
        _fail(f"cannot create namespaces ({exc}); see docs/sandbox.md")
    init = os.fork()
    if init == 0:
        _init(cfg)
    if cfg["results_fd"] is not None:
        os.close(cfg["results_fd"])
    _, status = os.waitpid(init, 0)
    os._exit(_exit_code(status))


if __name__ == "__main__":
    main()
