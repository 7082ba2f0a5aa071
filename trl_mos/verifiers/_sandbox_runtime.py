# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Runtime of the code sandbox: a fork server that runs untrusted programs, one at a time, in isolated children.

This file is standalone (standard library only). The harness ([`~trl_mos.verifiers.Sandbox`]) runs it as a script with
`python -I -S -X utf8 _sandbox_runtime.py FD_IN FD_OUT` and an almost empty environment; the harness and the math
workers also import it as a module for the message framing (`write_message` / `read_message`).

Process tree of one program run:

    harness (your training process)
     └─ fork server (one per worker slot; trusted; started once, reused; own network namespace)
         └─ supervisor S (forked per run; trusted; enters a fresh PID namespace; enforces the wall-clock limit)
             └─ runner R (PID 1 of that namespace; sets up isolation, drops privileges, then runs the program)
                 └─ anything the program forks (dies with R: the kernel kills a PID namespace with its init)

Only R (and what it forks) runs untrusted code. Expected outputs never enter the fork server (the harness compares
them), so no process that runs untrusted code has them in memory. The verdict of an assert-style test is a random
token that S generates after it is forked and that only a runner that reached the end of `check()` writes back; exit
codes and printed text are never trusted.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import fcntl
import os
import pickle
import re
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback


_HEADER = struct.Struct("<Q")

# Linux clone / mount / prctl constants (from <sched.h>, <sys/mount.h>, <sys/prctl.h>)
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

_READ_CHUNK = 1 << 16
_MAX_REPORT_BYTES = 1 << 16


# ----------------------------------------------------------------------------------------------------------------------
# Message framing (shared with the harness and the math workers)
# ----------------------------------------------------------------------------------------------------------------------


def write_message(fd: int, obj: object) -> None:
    """Writes one length-prefixed pickled message to a file descriptor (blocking)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    chunks, remaining = [], size
    poller = None
    while remaining:
        if deadline is not None:
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
            timeout_ms = max(0.0, deadline - time.monotonic()) * 1000
            if not poller.poll(timeout_ms):
                raise TimeoutError("no answer before the deadline")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            if remaining == size:
                return None
            raise EOFError("message cut off")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int, deadline: float | None = None) -> object | None:
    """Reads one message written by `write_message`; `None` at end of file. Raises `TimeoutError` past `deadline`
    (a `time.monotonic()` value)."""
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    data = _read_exact(fd, size, deadline)
    if data is None:
        raise EOFError("message cut off")
    return pickle.loads(data)


# ----------------------------------------------------------------------------------------------------------------------
# Low-level helpers
# ----------------------------------------------------------------------------------------------------------------------

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    """`unshare(2)` through ctypes (`os.unshare` only exists from Python 3.12)."""
    _check(_libc().unshare(flags), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def blocked_python_dirs(uid: int | None) -> dict[str, list[str]]:
    """The directories Python imports from (`sys.path`) that `uid` cannot reach because an ancestor is closed to
    others (e.g. an interpreter installed under `/root`), grouped by the topmost closed ancestor."""
    if uid is None:
        return {}
    blocked: dict[str, list[str]] = {}
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        path = os.path.realpath(entry)
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:depth])
            try:
                mode = os.stat(ancestor).st_mode
            except OSError:
                break
            if not mode & 0o001:
                blocked.setdefault(ancestor, [])
                if path not in blocked[ancestor]:
                    blocked[ancestor].append(path)
                break
    return blocked


_MOUNT_FLAGS = {
    "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024, "nodiratime": 2048,
    "relatime": 1 << 21, "strictatime": 1 << 24,
}  # fmt: skip


def _mount_points() -> list[tuple[str, list[str]]]:
    """(mount point, per-mount options) of every mount visible to this process."""
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), fields[4])
            points.append((point, fields[5].split(",")))
    return points


def _remount_all_readonly() -> None:
    """Makes every mount read-only in this mount namespace (not only `/`: also /home, /data, ... on other file
    systems), keeping each mount's other flags (the kernel refuses to drop locked ones)."""
    for point, options in _mount_points():
        if point == "/proc" or point.startswith("/proc/"):
            continue  # replaced by a private /proc, or left as the kernel's
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in options:
            flags |= _MOUNT_FLAGS.get(option, 0)
        try:
            _mount(None, point, None, flags)
        except OSError:
            if point == "/":
                raise
            # a mount under another one that is gone from view (over-mounted): nothing reachable to protect


def _set_no_new_privs() -> None:
    _check(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def _read_available(fd: int, buffer: bytearray, cap: int) -> tuple[bool, int]:
    """Reads what is there; keeps at most `cap` bytes in `buffer`. Returns (eof, bytes dropped)."""
    try:
        data = os.read(fd, _READ_CHUNK)
    except BlockingIOError:
        return False, 0
    except OSError:
        return True, 0
    if not data:
        return True, 0
    room = cap - len(buffer)
    if room > 0:
        buffer += data[:room]
    return False, max(0, len(data) - max(room, 0))


def _remove_tree(path: str) -> None:
    def _retry(function, failed_path, _exc_info):
        # a program may have removed permissions from its own files; give them back and retry once
        try:
            os.chmod(os.path.dirname(failed_path), 0o700)
            os.chmod(failed_path, 0o700)
            function(failed_path)
        except OSError:
            pass

    shutil.rmtree(path, onerror=_retry)


def _live_pids_of(uid: int) -> list[int]:
    """Processes (not zombies) owned by `uid`, from /proc (none where there is no /proc)."""
    pids = []
    if not os.path.isdir("/proc/self"):
        return pids
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            pids.append(int(name))
    return pids


def _kill_uid(uid: int) -> None:
    """Kills every process owned by `uid`, including ones that left the process group. A helper that switches to that
    uid calls `kill(-1, SIGKILL)`, which the kernel delivers to all processes of the uid in one pass over the task list
    (no fork can slip through it); then we wait until /proc shows none of them alive."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        remaining = _live_pids_of(uid)
        if not remaining:
            return
        for other in remaining:
            try:
                os.kill(other, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.002)


def make_cgroups(name: str, memory_bytes: int | None, processes: int | None) -> list[str]:
    """Creates (or reuses) control groups that cap the total memory and the number of tasks of one run, all its
    processes together; returns their directories (empty where cgroups cannot be written). cgroup v2 is used when it
    is mounted with the memory / pids controllers enabled for children of the root, else cgroup v1."""
    made = []
    try:
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            with open("/sys/fs/cgroup/cgroup.subtree_control") as handle:
                enabled = handle.read().split()
            settings = {}
            if memory_bytes and "memory" in enabled:
                settings["memory.max"] = memory_bytes
            if processes and "pids" in enabled:
                settings["pids.max"] = processes
            if settings:
                path = f"/sys/fs/cgroup/{name}"
                os.makedirs(path, exist_ok=True)
                for key, value in settings.items():
                    with open(os.path.join(path, key), "w") as handle:
                        handle.write(str(value))
                made.append(path)
        else:
            for controller, key, value in (
                ("memory", "memory.limit_in_bytes", memory_bytes),
                ("pids", "pids.max", processes),
            ):
                base = f"/sys/fs/cgroup/{controller}"
                if value and os.path.isdir(base) and os.access(base, os.W_OK):
                    path = os.path.join(base, name)
                    os.makedirs(path, exist_ok=True)
                    with open(os.path.join(path, key), "w") as handle:
                        handle.write(str(value))
                    made.append(path)
    except OSError:
        remove_cgroups(made)
        return []
    return made


def remove_cgroups(paths: list[str]) -> None:
    for path in paths:
        try:
            os.rmdir(path)
        except OSError:
            pass


def _join_cgroups(paths: list[str]) -> None:
    for path in paths:
        with open(os.path.join(path, "cgroup.procs"), "w") as handle:
            handle.write("0")


# ----------------------------------------------------------------------------------------------------------------------
# Runner R: isolation set-up, then the program (never returns)
# ----------------------------------------------------------------------------------------------------------------------


def _set_limits(limits: dict) -> None:
    def _set(resource_id: int, value: int | None) -> None:
        if value is None:
            return
        soft, hard = resource.getrlimit(resource_id)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(resource_id, (value, value))

    _set(resource.RLIMIT_CORE, 0)
    if limits.get("cpu") is not None:
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        cpu = limits["cpu"]
        hard_cpu = cpu + 1 if hard == resource.RLIM_INFINITY else min(cpu + 1, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (min(cpu, hard_cpu), hard_cpu))
    _set(resource.RLIMIT_AS, limits.get("address_space"))
    _set(resource.RLIMIT_FSIZE, limits.get("file_size"))
    _set(resource.RLIMIT_NOFILE, limits.get("open_files"))
    _set(resource.RLIMIT_NPROC, limits.get("processes"))


def _isolate(setup: dict, caps: dict, workdir: str, fds: tuple[int, int, int, int], state: dict) -> None:
    """Everything between the fork and the first line of untrusted code. Raises on any failure (fail closed)."""
    # stdin, stdout, stderr, report pipe -> 0, 1, 2, 3; every other descriptor (the fork server's pipes) closed
    state["report_fd"] = fds[3]
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
    state["report_fd"] = 3
    os.closerange(4, max(1 << 16, os.sysconf("SC_OPEN_MAX")))

    os.setpgid(0, 0)  # own process group (setsid would also work but costs ~3 ms with scheduler autogroups)
    cwd = workdir
    if caps.get("mount_namespace"):
        unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        if caps.get("python_binds"):
            # cover each closed ancestor with an empty tmpfs and bind back only the directories Python imports from
            blocked = setup["python_dirs"]
            keep = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for paths in blocked.values() for path in paths}
            for ancestor in blocked:
                _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
            for path, fd in keep.items():
                os.makedirs(path, 0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
                os.close(fd)
        if caps.get("readonly_root"):
            _remount_all_readonly()
        if caps.get("private_proc"):
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        if caps.get("private_tmp"):
            # a fresh, size-limited tmpfs as /tmp (also seen as /var/tmp and /dev/shm): the working directory
            owner = "" if setup.get("uid") is None else f",uid={setup['uid']},gid={setup['gid']}"
            options = f"size={setup['disk_mb']}m,nr_inodes=16384,mode=700{owner}"
            _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options)
            for target in ("/dev/shm", "/var/tmp"):
                if os.path.isdir(target) and not os.path.islink(target):
                    _mount("/tmp", target, None, MS_BIND)
            cwd = "/tmp"
    os.chdir(cwd)

    _set_limits(setup["limits"])
    uid, gid = setup.get("uid"), setup.get("gid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid):
            raise OSError("could not drop privileges")
    if sys.platform.startswith("linux"):
        # die with the supervisor even if it is killed (set after the uid change, which clears it)
        _check(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if caps.get("no_new_privs"):
        _set_no_new_privs()
    os.umask(0o077)
    os.environ.clear()
    os.environ.update(setup.get("env") or {})
    os.environ["HOME"] = cwd
    os.environ["TMPDIR"] = cwd


def _probe(setup: dict) -> dict:
    """Runs inside an isolated runner: reports what the isolation achieved, tested from the inside."""
    report = {"uid": os.getuid(), "pid": os.getpid()}
    try:
        import socket

        report["imports"] = True
    except ImportError:
        report["imports"] = False
        return report
    try:
        report["visible_pids"] = sum(name.isdigit() for name in os.listdir("/proc"))
    except OSError:
        report["visible_pids"] = -1
    report["root_writable"] = os.access("/", os.W_OK)
    private = ("/tmp", "/var/tmp", "/dev/shm", "/proc")
    report["writable_mounts"] = sorted(
        point
        for point, _ in _mount_points()
        if not any(point == p or point.startswith(p + "/") for p in private) and os.access(point, os.W_OK)
    )
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        sock.connect(("127.0.0.1", 9))
        report["network"] = True
    except ConnectionRefusedError:
        report["network"] = True  # the loopback device answered
    except OSError:
        report["network"] = False
    return report


def _safe_text(obj: object, limit: int = 400) -> str:
    try:
        text = str(obj)
    except BaseException:
        text = "<unprintable>"
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(exc: BaseException) -> str:
    name = type.__dict__["__name__"].__get__(type(exc))
    if isinstance(exc, SystemExit):
        return f"SystemExit({_safe_text(exc.code)})"
    message = _safe_text(exc)
    return f"{name}: {message}" if message else name


def _run_assert(job: dict, token: bytes) -> None:
    """HumanEval-style test: runs the solution, then the test code (compiled separately, so that a solution cannot
    swallow or redefine it), then `check(candidate)`. Writes the token only once `check` has returned."""
    write, exit_now = os.write, os._exit  # bound before untrusted code can patch `os`
    saved_builtins = dict(builtins.__dict__)
    settrace, setprofile, get_modules = sys.settrace, sys.setprofile, sys.modules.get

    def fail(reason: str) -> None:
        try:
            write(3, b"FAIL " + reason.encode("utf-8", "replace")[:4000])
        finally:
            exit_now(1)

    def reset_hooks() -> None:
        settrace(None)
        setprofile(None)
        threading = get_modules("threading")
        if threading is not None:
            try:
                threading.settrace(None)
                threading.setprofile(None)
            except BaseException:
                pass
        builtins.__dict__.clear()
        builtins.__dict__.update(saved_builtins)

    try:
        test_code = compile(job["test"], "<test>", "exec", dont_inherit=True)
    except BaseException as exc:
        fail(f"malformed test: it does not compile ({_describe(exc)})")
    try:
        solution_code = compile(job["program"], "<solution>", "exec", dont_inherit=True)
    except BaseException as exc:
        fail(f"the solution does not compile ({_describe(exc)})")

    namespace = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(solution_code, namespace)
    except BaseException as exc:
        fail(f"the solution raised {_describe(exc)} while loading")
    reset_hooks()
    test_namespace = dict(namespace)
    test_namespace["__builtins__"] = dict(saved_builtins)  # private copy: later patches of `builtins` do not reach it
    test_namespace["__name__"] = "__test__"
    try:
        exec(test_code, test_namespace)
    except BaseException as exc:
        fail(f"the test raised {_describe(exc)} while loading")

    entry_point = job.get("entry_point")
    check = test_namespace.get("check")
    if entry_point:
        if check is None or check is namespace.get("check") or not callable(check):
            fail("malformed test: it defines no `check(candidate)` function")
        if entry_point not in test_namespace:
            fail(f"the solution does not define `{entry_point}`")
        candidate = test_namespace[entry_point]
        reset_hooks()
        try:
            check(candidate)
        except BaseException as exc:
            fail(f"test failed: {_describe(exc)}")
        reset_hooks()
    write(3, b"PASS " + token)
    exit_now(0)


def _run_stdio(job: dict) -> None:
    """Standard-input program: runs it as `__main__`; the harness compares what it printed."""
    exit_now = os._exit
    stdout, stderr = sys.stdout, sys.stderr
    status = 0
    try:
        code = compile(job["program"], "<solution>", "exec", dont_inherit=True)
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as exc:
        if exc.code is None or exc.code == 0:
            status = 0
        elif isinstance(exc.code, int):
            status = exc.code & 0xFF or 1
        else:
            status = 1
            try:
                stderr.write(_safe_text(exc.code) + "\n")
            except BaseException:
                pass
    except BaseException:
        status = 1
        try:
            traceback.print_exc(file=stderr)
        except BaseException:
            pass
    for stream in (stdout, stderr, sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    exit_now(status)


def _runner(job: dict, setup: dict, caps: dict, workdir: str, fds: tuple[int, int, int, int], token: bytes) -> None:
    state: dict = {"report_fd": None}
    try:
        _isolate(setup, caps, workdir, fds, state)
    except BaseException as exc:
        try:
            if state["report_fd"] is not None:
                os.write(state["report_fd"], b"SETUP " + _describe(exc).encode("utf-8", "replace"))
        finally:
            os._exit(71)
    try:
        if job["kind"] == "probe":
            os.write(3, b"PROBE " + repr(_probe(setup)).encode())
            os._exit(0)
        elif job["kind"] == "assert":
            _run_assert(job, token)
        else:
            _run_stdio(job)
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
    os._exit(70)


# ----------------------------------------------------------------------------------------------------------------------
# Supervisor S: one per run
# ----------------------------------------------------------------------------------------------------------------------


def _encode(text: str) -> bytes:
    """UTF-8, keeping bytes that were decoded with `surrogateescape`; other lone surrogates become `?`."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _supervise(job: dict, setup: dict, caps: dict) -> dict:
    timeout = float(job.get("timeout", setup["timeout"]))
    cap = int(setup["max_output_bytes"])
    uid, gid = setup.get("uid"), setup.get("gid")
    if caps.get("cgroup"):
        _join_cgroups(setup["cgroups"])  # the runner and everything it starts inherit them
    if caps.get("pid_namespace"):
        unshare(CLONE_NEWPID)
    workdir = tempfile.mkdtemp(prefix="job-", dir=setup["tmp_root"])
    try:
        if uid is not None:
            os.chown(workdir, uid, gid)
        os.chmod(workdir, 0o700)
        stdin = None if job.get("stdin") is None else _encode(job["stdin"])
        if stdin is not None and hasattr(os, "memfd_create"):
            stdin_fd = os.memfd_create("stdin", 0)
            view = memoryview(stdin)
            while view:
                view = view[os.write(stdin_fd, view) :]
            os.lseek(stdin_fd, 0, os.SEEK_SET)
        elif stdin is not None:
            path = os.path.join(workdir, ".stdin")
            with open(path, "wb") as handle:
                handle.write(stdin)
            stdin_fd = os.open(path, os.O_RDONLY)
        else:
            stdin_fd = os.open(os.devnull, os.O_RDONLY)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rep_r, rep_w = os.pipe()
        token = os.urandom(16).hex().encode()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            for fd in (out_r, err_r, rep_r):
                os.close(fd)
            _runner(job, setup, caps, workdir, (stdin_fd, out_w, err_w, rep_w), token)
            os._exit(70)  # not reached
        for fd in (stdin_fd, out_w, err_w, rep_w):
            os.close(fd)
        result = _watch(pid, (out_r, err_r, rep_r), start + timeout, cap, uid, bool(caps.get("pid_namespace")))
    finally:
        _remove_tree(workdir)
    report = bytes(result.pop("report"))
    result["duration"] = time.monotonic() - start
    result["token_ok"] = report == b"PASS " + token
    result["report"] = "" if result["token_ok"] else report.decode("utf-8", "replace")
    return result


def _watch(pid: int, fds: tuple[int, int, int], deadline: float, cap: int, uid: int | None, pid_namespace: bool):
    """Collects the runner's output until it exits or the deadline passes, then makes sure nothing of it survives."""
    buffers = {fds[0]: bytearray(), fds[1]: bytearray(), fds[2]: bytearray()}
    caps = {fds[0]: cap, fds[1]: cap, fds[2]: _MAX_REPORT_BYTES}
    dropped = {fd: 0 for fd in fds}
    poller = select.poll()
    for fd in fds:
        os.set_blocking(fd, False)
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
            poller.register(pidfd, select.POLLIN)
        except OSError:
            pidfd = None
    open_fds, status, timed_out = set(fds), None, False

    def reap(block: bool):
        try:
            waited, wstatus = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return -1
        return wstatus if waited == pid else None

    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = reap(True)
            break
        wait_ms = remaining * 1000 if pidfd is not None else min(remaining, 0.01) * 1000
        for fd, _event in poller.poll(wait_ms):
            if fd == pidfd:
                continue
            eof, lost = _read_available(fd, buffers[fd], caps[fd])
            dropped[fd] += lost
            if eof:
                poller.unregister(fd)
                open_fds.discard(fd)
        status = reap(False)
    if pidfd is not None:
        poller.unregister(pidfd)
        os.close(pidfd)
    # the runner is gone: with a PID namespace the kernel has killed everything it started; otherwise kill its
    # process group and (when it ran under its own uid) every process of that uid, including ones that left the group
    if not pid_namespace:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if uid is not None:
            _kill_uid(uid)
    drain_deadline = time.monotonic() + 1.0
    while open_fds and time.monotonic() < drain_deadline:
        for fd, _event in poller.poll(50):
            eof, lost = _read_available(fd, buffers[fd], caps[fd])
            dropped[fd] += lost
            if eof:
                poller.unregister(fd)
                open_fds.discard(fd)
    for fd in fds:
        os.close(fd)
    returncode = signal_number = None
    if status is not None and status >= 0:
        if os.WIFEXITED(status):
            returncode = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            signal_number = os.WTERMSIG(status)
    return {
        "timed_out": timed_out,
        "returncode": returncode,
        "signal": signal_number,
        "stdout": bytes(buffers[fds[0]]),
        "stderr": bytes(buffers[fds[1]]),
        "stdout_truncated": dropped[fds[0]] > 0,
        "stderr_truncated": dropped[fds[1]] > 0,
        "report": buffers[fds[2]],
    }


# ----------------------------------------------------------------------------------------------------------------------
# Fork server
# ----------------------------------------------------------------------------------------------------------------------


def _run_one(job: dict, setup: dict, caps: dict, out_fd: int) -> None:
    """Forks a supervisor for one run; the supervisor writes the answer to the harness itself."""
    pid = os.fork()
    if pid == 0:
        try:
            try:
                result = _supervise(job, setup, caps)
            except BaseException as exc:
                result = {"error": f"sandbox error: {_describe(exc)}"}
            write_message(out_fd, result)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        write_message(out_fd, {"error": f"sandbox error: supervisor ended with status {status}"})


_FEATURES = (
    "cgroup", "pid_namespace", "mount_namespace", "private_proc", "python_binds", "private_tmp", "readonly_root",
)  # fmt: skip


def _probe_capabilities(setup: dict, wanted: dict) -> dict:
    """Finds out which isolation features work here by running the probe job with each one switched on in turn."""
    caps = dict.fromkeys(_FEATURES, False)
    read_fd, write_fd = os.pipe()
    try:
        for feature in _FEATURES:
            if not wanted.get(feature):
                continue
            if feature == "private_proc" and not caps.get("pid_namespace"):
                continue
            if feature not in ("cgroup", "pid_namespace", "mount_namespace") and not caps.get("mount_namespace"):
                continue
            trial = dict(caps, **{feature: True})
            _run_one({"kind": "probe", "timeout": 10}, setup, trial, write_fd)
            answer = read_message(read_fd)
            caps[feature] = bool(answer.get("returncode") == 0 and answer.get("report", "").startswith("PROBE "))
        caps["no_new_privs"] = False
        if sys.platform.startswith("linux"):
            _run_one({"kind": "probe", "timeout": 10}, setup, dict(caps, no_new_privs=True), write_fd)
            caps["no_new_privs"] = bool(read_message(read_fd).get("returncode") == 0)
        _run_one({"kind": "probe", "timeout": 10}, setup, caps, write_fd)
        answer = read_message(read_fd)
        inside = {}
        if answer.get("returncode") == 0 and answer.get("report", "").startswith("PROBE "):
            inside = ast.literal_eval(answer["report"][len("PROBE ") :])
        caps["probe"] = inside
    finally:
        os.close(read_fd)
        os.close(write_fd)
    return caps


def main(argv: list[str]) -> None:
    if argv[1] == "--kill-uid":
        uid = int(argv[2])
        if uid > 0:
            _kill_uid(uid)
        return
    in_fd, out_fd = int(argv[1]), int(argv[2])
    _libc()  # load once here rather than in every forked child
    setup = read_message(in_fd)
    if setup is None:
        return
    caps: dict = {"user_namespace": False, "network_namespace": False}
    is_root = os.geteuid() == 0
    linux = sys.platform.startswith("linux")
    if linux and (setup.get("isolate_network") or setup.get("namespaces")):
        if is_root:
            if setup.get("isolate_network"):
                try:
                    unshare(CLONE_NEWNET)
                    caps["network_namespace"] = True
                except OSError:
                    pass
        elif setup.get("namespaces"):
            # unprivileged: a user namespace (where the kernel allows it) gives us the rights to make the others
            uid, gid = os.getuid(), os.getgid()
            flags = CLONE_NEWUSER | (CLONE_NEWNET if setup.get("isolate_network") else 0)
            try:
                unshare(flags)
                with open("/proc/self/setgroups", "w") as handle:
                    handle.write("deny")
                with open("/proc/self/uid_map", "w") as handle:
                    handle.write(f"0 {uid} 1")
                with open("/proc/self/gid_map", "w") as handle:
                    handle.write(f"0 {gid} 1")
                caps["user_namespace"] = True
                caps["network_namespace"] = bool(setup.get("isolate_network"))
            except OSError:
                pass
    if not hasattr(builtins, "exit"):  # started with -S: give programs the `exit()` / `quit()` that `site` adds
        import _sitebuiltins

        builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
        builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    for name in setup.get("preload", ()):
        try:
            __import__(name)
        except BaseException:
            pass
    wanted = {}
    setup["cgroups"] = []
    if setup.get("namespaces") and linux:
        wanted = dict.fromkeys(_FEATURES, True)
        setup["python_dirs"] = blocked_python_dirs(setup.get("uid"))
        wanted["python_binds"] = bool(setup["python_dirs"])
        if is_root and setup.get("cgroup_name"):
            limits = setup["limits"]
            processes = None if limits.get("processes") is None else limits["processes"] + 1  # + the supervisor
            setup["cgroups"] = make_cgroups(setup["cgroup_name"], limits.get("address_space"), processes)
        wanted["cgroup"] = bool(setup["cgroups"])
    caps.update(_probe_capabilities(setup, wanted))
    write_message(out_fd, {"ready": True, "pid": os.getpid(), "capabilities": caps})
    try:
        while True:
            job = read_message(in_fd)
            if job is None:
                break
            _run_one(job, setup, caps, out_fd)
    finally:
        remove_cgroups(setup["cgroups"])


if __name__ == "__main__":
    main(sys.argv)
