# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The sandbox, and the hostile-program suite: each program would pass (or do damage) if it escaped containment; each
must fail within its time limit, leave no process behind and touch nothing outside its temporary directory."""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from trl_mos.verifiers import ProgramCheck, Sandbox, SandboxConfig, outputs_match
from trl_mos.verifiers import _sandbox_runtime as runtime


TIMEOUT = 2.0  # CPU time
WALL = 2 * TIMEOUT  # wall-clock backstop
MAX_PROCESSES = 12
SECRET = "trl-mos-secret-7f3a"

# a check that the harness must reach for the program to pass
CHECK_F = "def check(candidate):\n    assert candidate(2) == 3\n"


@pytest.fixture(scope="module")
def sandbox():
    os.environ["TRL_MOS_TEST_SECRET"] = SECRET  # in the harness's environment before the sandbox starts
    box = Sandbox(
        SandboxConfig(
            timeout=TIMEOUT,
            wall_timeout=WALL,
            memory_limit_mb=256,
            max_processes=MAX_PROCESSES,
            num_workers=2,
            max_output_bytes=4096,
        )
    )
    try:
        _ = box.capabilities  # start the worker slots
        yield box
    finally:
        box.close()
        os.environ.pop("TRL_MOS_TEST_SECRET", None)


def _sandbox_processes(box: Sandbox) -> list[int]:
    return [pid for uid in box.uids for pid in runtime._live_pids_of(uid)]


def _job_dirs(box: Sandbox) -> list[str]:
    return [name for name in os.listdir(box._tmp_root) if name.startswith("job-")]


def _run_escape_attempt(box: Sandbox, attempt: str, escaped: str):
    """Runs a program that first tries something (`attempt`) and whose check passes only if `escaped` (an expression
    on what the attempt left behind) is true, i.e. only if containment failed. Returns (results, start time)."""
    program = textwrap.dedent(attempt) + "\ndef f(x):\n    return x + 1\n"
    test = f"def check(candidate):\n    assert {escaped}\n"
    started = time.monotonic()
    return box.check([ProgramCheck(program, test=test, entry_point="f")]), started


def _assert_contained(box: Sandbox, results, started: float, budget: float):
    assert all(not result.passed for result in results), [result.reason for result in results]
    assert time.monotonic() - started < budget
    assert _sandbox_processes(box) == []
    assert _job_dirs(box) == []


# ----------------------------------------------------------------------------------------------------------------------
# Basic behaviour
# ----------------------------------------------------------------------------------------------------------------------


def test_capabilities_on_this_machine(sandbox):
    caps = sandbox.capabilities
    probe = caps["probe"]
    assert probe["imports"] is True
    if os.geteuid() == 0:
        # as root, programs run under their own uid, and the probe sees it from the inside
        assert caps["uid"] is not None and probe["uid"] == caps["uid"] != 0
    if caps["pid_namespace"]:
        assert probe["pid"] == 1
    if caps["uid"] is not None or caps["user_namespace"]:
        assert int(probe["capabilities"], 16) == 0  # no capability left to undo the mounts with
    if caps["private_proc"]:
        assert probe["visible_pids"] == 1
    if caps["readonly_root"]:
        assert probe["root_writable"] is False and probe["writable_mounts"] == []
    if caps["network_namespace"]:
        assert probe["network"] is False


def test_pass_and_fail(sandbox):
    good = ProgramCheck("def f(x):\n    return x + 1\n", test=CHECK_F, entry_point="f")
    bad = ProgramCheck("def f(x):\n    return x\n", test=CHECK_F, entry_point="f")
    stdio = ProgramCheck("print(sum(map(int, input().split())))", inputs=["1 2\n", "3 4\n"], outputs=["3", "7\n"])
    wrong = ProgramCheck("print(int(input()) * 2)", inputs=["1\n", "2\n"], outputs=["2", "5"])
    results = sandbox.check([good, bad, stdio, wrong])
    assert [r.passed for r in results] == [True, False, True, False]
    assert results[0].status == "passed" and results[0].reason == ""
    assert "AssertionError" in results[1].reason
    assert (results[2].tests_passed, results[2].tests_total) == (2, 2)
    assert results[3].tests_passed == 1 and results[3].reason.startswith("test case 1: wrong output")
    assert _sandbox_processes(sandbox) == [] and _job_dirs(sandbox) == []


def test_outputs_match():
    assert outputs_match("1 2 \n3\n\n", "1 2\n3")
    assert outputs_match("  a\r\nb", "a\nb")
    assert not outputs_match("1\n2", "1 2")
    assert not outputs_match("", "0")


def test_programs_see_a_minimal_environment(sandbox):
    program = "import os, json\nprint(json.dumps(dict(os.environ)))\nprint(os.getcwd())\nprint(os.listdir('.'))"
    result = sandbox.run(program)
    assert result["returncode"] == 0, result
    env_line, cwd, listing = result["stdout"].splitlines()
    assert SECRET not in env_line and "TRL_MOS_TEST_SECRET" not in env_line
    assert set(eval(env_line)) <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR"}
    assert listing == "[]"  # a fresh, empty working directory


def test_malformed_checks(sandbox):
    results = sandbox.check(
        [
            ProgramCheck("def f(x): return x", test="def check(c:\n", entry_point="f"),
            ProgramCheck("def f(x): return x", test="x = 1\n", entry_point="f"),
            ProgramCheck("def f(x): return x", test="   "),
            ProgramCheck("print(1)", inputs=["a", "b"], outputs=["1"]),
            ProgramCheck("print(1)", inputs=[], outputs=[]),
            ProgramCheck("print(1)"),
            ProgramCheck("def g(x): return x", test=CHECK_F, entry_point="f"),
        ]
    )
    reasons = [r.reason for r in results]
    assert not any(r.passed for r in results)
    assert reasons[0].startswith("malformed test: it does not compile")
    assert reasons[1] == "malformed test: it defines no `check(candidate)` function"
    assert reasons[2] == "malformed test: the test code is empty"
    assert reasons[3] == "malformed test: 2 inputs but 1 outputs"
    assert reasons[4] == "malformed test: no test cases"
    assert reasons[5].startswith("malformed test: neither")
    assert reasons[6] == "the solution does not define `f`"


def test_mbpp_style_plain_asserts(sandbox):
    program = "def square(x):\n    return x * x\n"
    ok, bad = sandbox.check(
        [
            ProgramCheck(program, test="assert square(3) == 9\nassert square(-2) == 4\n"),
            ProgramCheck(program, test="assert square(3) == 10\n"),
        ]
    )
    assert ok.passed and not bad.passed


def test_program_size_limit():
    with Sandbox(SandboxConfig(max_program_bytes=100, num_workers=1)) as box:
        result = box.check([ProgramCheck("x = 1\n" * 50, test="assert True")])[0]
        assert not result.passed and "longer than 100 bytes" in result.reason
        assert box.uids == []  # rejected before any worker started


def test_non_utf8_and_odd_programs(sandbox):
    results = sandbox.check(
        [
            ProgramCheck("x = '\udcff'\ndef f(x):\n    return x + 1\n", test=CHECK_F, entry_point="f"),
            ProgramCheck("def f(x):\n    return x + 1\x00\n", test=CHECK_F, entry_point="f"),
            ProgramCheck("", test=CHECK_F, entry_point="f"),
            ProgramCheck("print(input())", inputs=["\udcff\n"], outputs=["?"]),
        ]
    )
    assert not any(r.passed for r in results)
    assert all(r.status in ("failed", "error") and r.reason for r in results)


def test_config_validation():
    with pytest.raises(ValueError, match="timeout"):
        SandboxConfig(timeout=0)
    with pytest.raises(ValueError, match="uid_range"):
        SandboxConfig(uid_range=(10, 5))
    with pytest.raises(ValueError, match="max_processes"):
        SandboxConfig(max_processes=0)


def test_usable_from_threads(sandbox):
    outcomes = []

    def work():
        outcomes.append(sandbox.check([ProgramCheck("print(6 * 7)", inputs=[""], outputs=["42"])])[0].passed)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [True] * 4


# ----------------------------------------------------------------------------------------------------------------------
# Hostile programs
# ----------------------------------------------------------------------------------------------------------------------


def test_infinite_loop_times_out(sandbox):
    started = time.monotonic()
    results = sandbox.check(
        [
            ProgramCheck("def f(x):\n    while True:\n        pass\n", test=CHECK_F, entry_point="f"),
            ProgramCheck("import time\nwhile True:\n    time.sleep(0.1)\n", inputs=[""], outputs=[""]),
        ]
    )
    assert [r.status for r in results] == ["timeout", "timeout"]
    assert all(r.duration < WALL + 1.0 for r in results)
    _assert_contained(sandbox, results, started, WALL + 3)


def test_fork_bomb_is_bounded_and_cleaned_up(sandbox):
    # counts how many children it can fork (they sleep), and reports it; then fork-bombs until killed
    program = textwrap.dedent(
        """
        import os, sys, time
        n = 0
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            n += 1
        print(n, flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """
    )
    started = time.monotonic()
    result = sandbox.check([ProgramCheck(program, inputs=[""], outputs=["200"])])[0]
    assert result.status == "timeout"
    if sandbox.uids:  # RLIMIT_NPROC is exact when programs run under their own uid
        assert int(result.stdout.split()[0]) < MAX_PROCESSES
    _assert_contained(sandbox, [result], started, WALL + 3)


def test_memory_bomb_fails_fast(sandbox):
    started = time.monotonic()
    results = sandbox.check(
        [
            ProgramCheck(
                "def f(x):\n    return x + 1\nblob = bytearray(2 * 1024 ** 3)\n", test=CHECK_F, entry_point="f"
            ),
            ProgramCheck(
                "def f(x):\n    a = []\n    while True:\n        a.append(bytearray(10 ** 7))\n",
                test=CHECK_F,
                entry_point="f",
            ),
        ]
    )
    assert all(r.status == "failed" and "MemoryError" in r.reason for r in results), [r.reason for r in results]
    assert all(r.duration < WALL for r in results)
    _assert_contained(sandbox, results, started, WALL + 3)


def test_memory_of_all_processes_together_is_capped(sandbox):
    if not sandbox.capabilities["cgroup"]:
        pytest.skip("no writable cgroup file system here: memory is capped per process only (RLIMIT_AS)")
    # six children each try to hold 100 MiB; the run as a whole may use 256 MiB. A child that got its memory may be
    # killed later to make room for another, so what counts is how many hold their 100 MiB at the same time.
    program = textwrap.dedent(
        """
        import os, select, time
        children = []
        for _ in range(6):
            ready_r, ready_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                block = bytearray(100 * 1024 * 1024)
                block[::4096] = b"x" * len(block[::4096])
                os.write(ready_w, b"1")  # it holds its 100 MiB now
                time.sleep(30)
                os._exit(0)
            os.close(ready_w)
            children.append((pid, ready_r))
        time.sleep(1.0)
        holding = 0
        for pid, ready_r in children:
            reported = bool(select.select([ready_r], [], [], 0)[0]) and os.read(ready_r, 1) == b"1"
            holding += reported and os.waitpid(pid, os.WNOHANG) == (0, 0)
        print(holding)
        """
    )
    result = sandbox.run(program)
    assert result["returncode"] == 0, result
    assert int(result["stdout"]) <= 2
    assert _sandbox_processes(sandbox) == []


def test_disk_writes_are_capped(sandbox):
    if not sandbox.capabilities["private_tmp"]:
        pytest.skip("no mount namespace here: programs write to a directory on the host's temporary file system")
    program = textwrap.dedent(
        """
        import os
        written = 0
        try:
            for i in range(20):
                with open(f"file{i}", "wb") as handle:
                    handle.write(b"x" * (8 << 20))
                written += 8
        except OSError as error:
            print(written, error.errno)
        """
    )
    result = sandbox.run(program)
    written, errno_value = result["stdout"].split()
    assert int(written) <= 64 and int(errno_value) == 28  # ENOSPC: the private /tmp holds 64 MiB
    assert _job_dirs(sandbox) == []


def test_output_flood_is_capped(sandbox):
    started = time.monotonic()
    results = sandbox.check(
        [
            ProgramCheck("while True:\n    print('x' * 10000)\n", inputs=[""], outputs=["x"]),
            ProgramCheck("import sys\nsys.stdout.write('y' * 50_000_000)\n", inputs=[""], outputs=["y"]),
            ProgramCheck(
                "def f(x):\n    import sys\n    sys.stderr.write('z' * 10_000_000)\n    return x + 1\n",
                test=CHECK_F,
                entry_point="f",
            ),
        ]
    )
    assert not results[0].passed and not results[1].passed
    assert results[1].reason.endswith("the output exceeded 4096 bytes")
    assert results[2].passed  # noisy but correct: it passes, and its output is capped
    assert all(len(r.stdout.encode()) <= 4096 and len(r.stderr.encode()) <= 4096 for r in results)
    assert _sandbox_processes(sandbox) == [] and time.monotonic() - started < WALL + 3


def _victims(tmp_path, world_writable: bool) -> list:
    """Sentinel files: one in pytest's tmp dir (outside the program's view when /tmp is private) and, when we may
    write there, one in a directory on the root file system that programs can see."""
    places = [tmp_path / "victim"]
    if os.access("/", os.W_OK):
        places.append(pathlib.Path(tempfile.mkdtemp(prefix="trl-mos-sandbox-victim-", dir="/")))
    sentinels = []
    for place in places:
        place.mkdir(exist_ok=True)
        sentinel = place / "sentinel.txt"
        sentinel.write_text("keep me")
        os.chmod(place, 0o777 if world_writable else 0o755)
        os.chmod(sentinel, 0o666 if world_writable else 0o644)
        sentinels.append(sentinel)
    os.chmod(tmp_path, 0o777 if world_writable else 0o755)
    return sentinels


def test_cannot_touch_files_outside_its_directory(sandbox, tmp_path):
    caps = sandbox.capabilities
    if not (sandbox.uids or caps["readonly_root"]):
        pytest.skip(
            "programs run as your own user without read-only mounts here, so they can write your files (see docs)"
        )
    # with a read-only root even world-writable files are safe; otherwise the sandbox uid protects root's files
    sentinels = _victims(tmp_path, world_writable=bool(caps["readonly_root"]))
    try:
        attempt = f"""
            import os, shutil
            done = []
            for path in {[str(s) for s in sentinels]!r}:
                for action in (lambda: os.remove(path), lambda: open(path, "w").write("overwritten"),
                               lambda: shutil.rmtree(os.path.dirname(path)), lambda: os.rename(path, path + ".x")):
                    try:
                        action()
                        done.append(path)
                    except OSError:
                        pass
            try:
                shutil.rmtree(os.path.dirname(os.getcwd()))
                done.append("parent")
            except OSError:
                pass
            """
        results, started = _run_escape_attempt(sandbox, attempt, "done")
        assert [s.read_text() for s in sentinels] == ["keep me"] * len(sentinels)
        assert all(sorted(os.listdir(s.parent)) == ["sentinel.txt"] for s in sentinels)
        _assert_contained(sandbox, results, started, WALL + 3)
    finally:
        for sentinel in sentinels[1:]:
            shutil.rmtree(sentinel.parent, ignore_errors=True)


def test_cannot_read_the_parents_environment(sandbox):
    if not (sandbox.uids or sandbox.capabilities["private_proc"]):
        pytest.skip("programs run as your own user and see your processes here (no PID namespace; see docs)")
    harness = os.getpid()
    server = sandbox._all_slots[0].process.pid
    # a process whose initial environment (what /proc/PID/environ shows) holds the secret
    holder = subprocess.Popen(["sleep", "30"], env={"TRL_MOS_TEST_SECRET": SECRET})
    attempt = f"""
        import os
        found = os.environ.get("TRL_MOS_TEST_SECRET", "")
        for pid in ("self", "1", str(os.getppid()), "{harness}", "{server}", "{holder.pid}"):
            try:
                with open(f"/proc/{{pid}}/environ", "rb") as handle:
                    found += handle.read().decode("utf-8", "replace")
            except OSError:
                pass
        """
    try:
        results, started = _run_escape_attempt(sandbox, attempt, f"{SECRET!r} in found")
    finally:
        holder.kill()
        holder.wait()
    assert "AssertionError" in results[0].reason
    _assert_contained(sandbox, results, started, WALL + 3)


def test_cannot_open_network_connections(sandbox):
    if not sandbox.capabilities["network_namespace"]:
        pytest.skip("network namespaces are not available here, so programs keep network access (see docs)")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    attempt = f"""
        import socket
        connected = False
        for address in (("127.0.0.1", {port}), ("8.8.8.8", 53), ("1.1.1.1", 443)):
            try:
                socket.create_connection(address, timeout=0.5).sendall(b"hello")
                connected = True
            except OSError:
                pass
        """
    results, started = _run_escape_attempt(sandbox, attempt, "connected")
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()
    _assert_contained(sandbox, results, started, WALL + 3)


EARLY_EXITS = {
    "sys.exit(0) at import": "import sys\nsys.exit(0)\ndef f(x):\n    return x + 1\n",
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "exit() at import": "exit()\n",
    "raise SystemExit in the function": "def f(x):\n    raise SystemExit(0)\n",
    "os._exit(0) in the function": "import os\ndef f(x):\n    os._exit(0)\n",
    "os._exit from an atexit handler": "import atexit, os\natexit.register(lambda: os._exit(0))\ndef f(x):\n    os._exit(0)\n",
    "KeyboardInterrupt in the function": "def f(x):\n    raise KeyboardInterrupt\n",
    "kill itself": "import os, signal\ndef f(x):\n    os.kill(os.getpid(), signal.SIGKILL)\n    os.killpg(0, signal.SIGKILL)\n",
}


def _assert_all_fail(box: Sandbox, programs: dict[str, str], test: str) -> None:
    started = time.monotonic()
    results = box.check([ProgramCheck(program, test=test, entry_point="f") for program in programs.values()])
    for name, result in zip(programs, results, strict=True):
        assert not result.passed and result.reason, name
    _assert_contained(box, results, started, WALL + 4)


def test_early_exits_fail(sandbox):
    _assert_all_fail(sandbox, EARLY_EXITS, CHECK_F)


def test_killing_the_parent_fails_and_harms_no_one(sandbox):
    if not (sandbox.uids or sandbox.capabilities["pid_namespace"]):
        pytest.skip("programs run as your own user without a PID namespace here, so they could kill this test run")
    servers = [slot.process.pid for slot in sandbox._all_slots]
    harness = os.getpid()
    program = textwrap.dedent(
        f"""
        import os, signal
        for pid in (os.getppid(), {harness}, *{servers}):
            for action in (lambda: os.kill(pid, signal.SIGKILL), lambda: os.killpg(os.getpgid(pid), signal.SIGKILL)):
                try:
                    action()
                except (OSError, ValueError):
                    pass
        # kill(-1) reaches every process this one may signal; only run it where that is provably just its own
        if os.getuid() != 0 and os.getpid() == 1:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        os.kill(os.getpid(), signal.SIGKILL)  # as PID 1 of its namespace it cannot kill itself either
        os.kill(0, signal.SIGKILL)
        def f(x):
            return 0
        """
    )
    started = time.monotonic()
    results = sandbox.check([ProgramCheck(program, test=CHECK_F, entry_point="f")])
    # the harness and the fork servers are unharmed, and the wrong solution still fails
    assert [slot.process.pid for slot in sandbox._all_slots] == servers
    assert all(slot.process.poll() is None for slot in sandbox._all_slots)
    _assert_contained(sandbox, results, started, WALL + 3)
    assert "AssertionError" in results[0].reason


TAMPERING = {
    "defines its own check": "def f(x):\n    return 0\ndef check(candidate):\n    pass\n",
    "swallows the test in a string": "def f(x):\n    return 0\nx = '''\n",
    "prints success markers": "def f(x):\n    print('PASS passed ok All tests passed')\n    return 0\n",
    "writes a fake verdict to every descriptor": textwrap.dedent(
        """
        import os
        for fd in range(3, 64):
            try:
                os.write(fd, b"PASS " + b"0" * 32)
            except OSError:
                pass
        os._exit(0)
        """
    ),
    "patches builtins": "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
    "def f(x):\n    import builtins\n    builtins.abs = lambda x: 0\n    return 0\n",
    "installs a trace function": "import sys\nsys.settrace(lambda *a: None)\ndef f(x):\n    return 0\n",
    "replaces os._exit and os.write": "import os\nos._exit = lambda code: None\nos.write = lambda fd, data: len(data)\n"
    "def f(x):\n    return 0\n",
    "leaves a daemon behind": textwrap.dedent(
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(20)
            os._exit(0)
        def f(x):
            return 0
        """
    ),
    "locks its own directory": "import os\nos.mkdir('d')\nopen('d/f', 'w').write('x')\nos.chmod('d', 0)\nos.chmod('.', 0)\n"
    "def f(x):\n    return 0\n",
}
TAMPER_TEST = (
    "def check(candidate):\n    assert abs(candidate(2) - 3) < 1e-9\n    assert isinstance(candidate(1), int)\n"
)


def test_tampering_with_the_harness_fails(sandbox):
    _assert_all_fail(sandbox, TAMPERING, TAMPER_TEST)
    # the same test passes a correct solution, so the failures above are not the test's fault
    assert sandbox.check([ProgramCheck("def f(x):\n    return x + 1\n", test=TAMPER_TEST, entry_point="f")])[0].passed


def test_fresh_directory_and_no_leftovers_after_close():
    box = Sandbox(SandboxConfig(timeout=TIMEOUT, num_workers=1))
    result = box.check([ProgramCheck("open('out.txt', 'w').write('x')\nimport os\nprint(os.listdir('.'))", inputs=[""],
                                     outputs=["['out.txt']"])])[0]  # fmt: skip
    assert result.passed, result.reason
    tmp_root, uids = box._tmp_root, box.uids
    box.close()
    assert not os.path.exists(tmp_root)
    assert all(runtime._live_pids_of(uid) == [] for uid in uids)
    with pytest.raises(RuntimeError, match="closed"):
        box.check([ProgramCheck("print(1)", inputs=[""], outputs=["1"])])


_UNPRIVILEGED_SCRIPT = """
import json, os, time
from trl_mos.verifiers import ProgramCheck, Sandbox, SandboxConfig
from trl_mos.verifiers import _sandbox_runtime as runtime
with Sandbox(SandboxConfig(timeout=2, num_workers=1)) as box:
    capabilities = box.capabilities
    results = box.check([
        ProgramCheck("def f(x):\\n    return x + 1\\n", test="def check(c):\\n    assert c(2) == 3\\n", entry_point="f"),
        ProgramCheck("def f(x):\\n    return x\\n", test="def check(c):\\n    assert c(2) == 3\\n", entry_point="f"),
        ProgramCheck("import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(60)\\nprint(1)", inputs=[""],
                     outputs=["1"]),
        ProgramCheck("import socket\\nsocket.create_connection(('127.0.0.1', 22), timeout=0.5)\\nprint(1)", inputs=[""],
                     outputs=["1"]),
        ProgramCheck(f"open({SENTINEL!r}, 'w').write('x')\\nprint(1)", inputs=[""], outputs=["1"]),
    ])
    time.sleep(0.2)
    servers = (box._all_slots[0].process.pid, box._all_slots[0].judge.pid)
    descendants = [pid for pid in runtime._live_pids_of(os.getuid()) if pid not in (os.getpid(), *servers)]
after_close = [pid for pid in runtime._live_pids_of(os.getuid()) if pid != os.getpid()]
print(json.dumps({"uid": os.getuid(), "capabilities": capabilities, "passed": [r.passed for r in results],
                  "left": descendants, "after_close": after_close}))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")),
    reason="runs the sandbox as an unprivileged user: needs root to switch users, and util-linux's unshare and setpriv",
)
def test_sandbox_as_an_unprivileged_user():
    """The non-root code path (user namespaces where the kernel allows them), run as uid 65534 in a private mount
    namespace where the interpreter's closed parent directories are made reachable."""
    import json
    import shlex

    victim = pathlib.Path(tempfile.mkdtemp(prefix="trl-mos-sandbox-victim-", dir="/"))
    os.chmod(victim, 0o777)  # writable by anyone: only the sandbox's read-only mounts protect it
    sentinel = victim / "written-by-the-program.txt"
    script = f"SENTINEL = {str(sentinel)!r}\n" + _UNPRIVILEGED_SCRIPT
    # what the unprivileged user needs to reach: the interpreter (its prefix, the venv's), what Python imports from,
    # and this checkout; a folder on the way that other users cannot enter (mode 700 home, `mktemp -d`, /root) is
    # covered by an empty tmpfs in a private mount namespace, with only those directories bound back
    import trl_mos

    needed = {
        os.path.realpath(path)
        for path in (
            sys.base_prefix,
            sys.prefix,
            os.path.dirname(os.path.realpath(sys.executable)),
            os.path.dirname(os.path.dirname(os.path.abspath(trl_mos.__file__))),
            *(entry for entry in sys.path if entry and os.path.isdir(entry)),
            *os.environ.get("PYTHONPATH", "").split(os.pathsep),
        )
        if path and os.path.isdir(path)
    }
    closed = {path: runtime.closed_ancestor(path) for path in needed}
    ancestors = sorted({ancestor for ancestor in closed.values() if ancestor is not None})
    needed = sorted(path for path, ancestor in closed.items() if ancestor is not None)
    commands = ["mount --make-rprivate /"]
    stage = victim / "stage"  # only seen inside the private mount namespace of the command
    for index, path in enumerate(needed):
        commands.append(f"mkdir -p {stage}/{index} && mount --bind {shlex.quote(path)} {stage}/{index}")
    commands += [f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(a)}" for a in ancestors]
    for index, path in enumerate(needed):
        commands.append(f"mkdir -p {shlex.quote(path)} && mount --bind {stage}/{index} {shlex.quote(path)}")
    pythonpath = os.environ.get("PYTHONPATH", "")
    env = f"PYTHONPATH={shlex.quote(pythonpath)} " if pythonpath else ""
    commands.append(
        "cd / && exec setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=/tmp "
        f"HF_HUB_OFFLINE=1 {env}{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
    )
    try:
        completed = subprocess.run(
            ["unshare", "-m", "sh", "-c", " && ".join(commands)], capture_output=True, text=True, timeout=240
        )
        written = sentinel.exists()
    finally:
        shutil.rmtree(victim, ignore_errors=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    caps = report["capabilities"]
    assert report["uid"] == 65534 and caps["uid"] is None
    assert report["passed"][:3] == [True, False, True]
    assert report["left"] == []  # the daemon that called setsid is gone too
    assert report["after_close"] == []  # and after close(), the servers too
    if caps["user_namespace"]:  # unprivileged user namespaces allowed: the namespaces apply without root
        assert caps["pid_namespace"] and caps["network_namespace"] and caps["readonly_root"]
        assert caps["minimal_root"] and int(caps["probe"]["capabilities"], 16) == 0, str(
            caps
        )  # it cannot undo the mounts
        assert report["passed"][3:] == [False, False] and not written
