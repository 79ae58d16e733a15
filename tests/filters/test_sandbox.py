"""The sandbox (filters/sandbox/) on plain programs and on a hostile corpus.

Every hostile program must be contained, reported with a status, and leave this process and the
host as they were. Small limits keep the whole file to a few seconds.
"""

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from filters.sandbox import Limits, SandboxError, run_python
from filters.sandbox.core import UID_LOW

FAST = Limits(wall_s=1.5, cpu_s=1, memory_mb=256, max_procs=16, output_bytes=64 << 10)


@pytest.fixture(scope="module", autouse=True)
def _jail_works():
    try:
        run_python("pass", FAST)
    except SandboxError as exc:  # no namespaces on this machine: say so, do not pretend
        pytest.skip(f"sandbox unavailable here: {exc}")


def jailed_processes() -> list[int]:
    """Pids on the host owned by a sandbox uid (there should be none after a run)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid >= UID_LOW:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                pass
    return pids


def assert_no_leftovers():
    deadline = time.monotonic() + 3
    while jailed_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jailed_processes() == []


def test_stdin_stdout_and_exit_codes():
    result = run_python("print(input()[::-1])", FAST, stdin="hello\n")
    assert (result.status, result.exit_code, result.stdout) == ("ok", 0, "olleh\n")
    result = run_python("import sys; print('bad', file=sys.stderr); exit(3)", FAST)
    assert (result.status, result.exit_code, result.stderr) == ("exit_nonzero", 3, "bad\n")
    assert run_python("def f(:", FAST).status == "exit_nonzero"


def test_files_cwd_environment_and_no_site():
    code = (
        "import os, sys\n"
        "print(open('data.txt').read(), os.getcwd(), sorted(os.environ), 'site' in sys.modules)"
    )
    result = run_python(code, FAST, files={"data.txt": "hi"})
    assert result.stdout.split() == [
        "hi",
        "/tmp/box",
        "['HOME',",
        "'LANG',",
        "'LD_LIBRARY_PATH',",
        "'PATH']",
        "False",
    ]


def test_fork_bomb_is_contained():
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    result = run_python(bomb, FAST)
    assert result.status == "timeout"
    assert_no_leftovers()
    assert run_python("print(1)", FAST).stdout == "1\n"  # the host still forks


def test_fork_count_is_limited():
    code = (
        "import os, time\nn = 0\n"
        "try:\n    while True:\n        if os.fork() == 0:\n            time.sleep(5)\n        n += 1\n"
        "except OSError:\n    print(n)\n"
    )
    result = run_python(code, FAST)
    assert result.status == "ok"
    assert int(result.stdout) < FAST.max_procs  # children sleeping: RLIMIT_NPROC stopped it
    assert_no_leftovers()  # the sleeping children died with the jail's init


def test_infinite_loop_hits_the_cpu_limit():
    result = run_python("while True:\n    pass\n", FAST)
    assert result.status == "timeout"
    assert result.wall_s < FAST.wall_s + 0.5


def test_sleeping_forever_hits_the_wall_clock():
    started = time.monotonic()
    result = run_python("import time\ntime.sleep(60)\n", Limits(wall_s=0.5, cpu_s=1))
    assert result.status == "timeout" and result.exit_code is None
    assert time.monotonic() - started < 2
    assert_no_leftovers()


def test_allocating_10_gb_is_a_memory_error():
    result = run_python("x = bytearray(10 * 1024**3)\n", FAST)
    assert result.status == "memory"
    assert "MemoryError" in result.stderr


def test_no_network_loopback_or_public():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        f"for addr in [('127.0.0.1', {port}), ('1.1.1.1', 80), ('8.8.8.8', 53)]:\n"
        "    s = socket.socket()\n    s.settimeout(1)\n"
        "    try:\n        s.connect(addr)\n        print('connected')\n"
        "    except OSError as exc:\n        print(exc.errno)\n"
    )
    result = run_python(code, FAST)
    listener_got = None
    try:
        listener_got = listener.accept()
    except BlockingIOError:
        pass
    finally:
        listener.close()
    assert "connected" not in result.stdout
    assert len(result.stdout.split()) == 3
    assert listener_got is None


def test_writing_outside_the_scratch_dir_is_contained(tmp_path):
    name = f"thinkmix-escape-{uuid.uuid4().hex}"
    code = (
        f"for path in [{str(tmp_path / name)!r}, '/tmp/{name}', '/var/tmp/{name}', "
        f"'/dev/shm/{name}', '/etc/{name}', {str(Path.cwd() / name)!r}]:\n"
        "    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n"
        "    except OSError as exc:\n        print('denied', exc.errno)\n"
    )
    result = run_python(code, FAST)
    assert result.status == "ok"
    for where in (
        tmp_path,
        Path("/tmp"),
        Path("/var/tmp"),
        Path("/dev/shm"),
        Path("/etc"),
        Path.cwd(),
    ):
        assert not (where / name).exists()
    # /tmp, /var/tmp, /dev/shm are private tmpfs: writable, gone with the jail
    assert result.stdout.count("wrote") == 3 and result.stdout.count("denied") == 3


def test_parent_environment_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("THINKMIX_FAKE_SECRET", "hunter2-4f1c")
    code = (
        "import os\nprint(dict(os.environ))\n"
        f"for pid in ['self', '1', str(os.getppid()), '{os.getpid()}', '{os.getppid()}']:\n"
        "    try:\n        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as exc:\n        print(exc.errno)\n"
    )
    result = run_python(code, FAST)
    assert result.status == "ok"
    assert "hunter2" not in result.stdout and "THINKMIX_FAKE_SECRET" not in result.stdout


def test_killing_the_parent_fails_and_we_survive():
    code = (
        "import os, signal\n"
        f"for pid in [os.getppid(), 1, {os.getpid()}, -1]:\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n        print('killed', pid)\n"
        "    except OSError as exc:\n        print('refused', exc.errno)\n"
    )
    result = run_python(code, FAST)
    assert "killed" not in result.stdout  # EPERM for init, ESRCH for pids outside the jail
    assert run_python("print(2)", FAST).stdout == "2\n"  # this process is alive


def test_printing_a_gigabyte_is_capped():
    code = (
        "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    )
    started = time.monotonic()
    result = run_python(code, FAST)
    assert result.status == "output_limit"
    assert len(result.stdout) <= FAST.output_bytes
    assert time.monotonic() - started < 2


def test_scratch_dirs_are_removed():
    before = set(Path("/tmp").glob("thinkmix-sbx-*"))
    run_python("open('big', 'w').write('x' * 1000)", FAST)
    assert set(Path("/tmp").glob("thinkmix-sbx-*")) == before


def test_limits_are_checked():
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=1)
    with pytest.raises(ValueError, match="wall_s"):
        Limits(wall_s=0)
