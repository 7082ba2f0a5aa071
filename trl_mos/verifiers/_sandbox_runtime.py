# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Runtime of the code sandbox: a fork server that runs untrusted programs, one at a time, in isolated children, and a
judge server that runs the (trusted) tests in processes of their own.

This file is standalone (standard library only). The harness ([`~trl_mos.verifiers.Sandbox`]) runs it as a script with
`python -I -S -X utf8 _sandbox_runtime.py [--judge] FD` (FD: a Unix socket to the harness) and an almost empty
environment; the math workers also import it as a module for the pickle message framing of trusted peers
(`write_message` / `read_message`).

Process trees of one assert-style run (HumanEval `check(candidate)`, MBPP asserts):

    harness (your training process)
     ├─ fork server F (per worker slot; trusted; never holds a test)
     │   └─ supervisor S (per run; trusted; CPU-time and wall-clock limits, output capture, the kill)
     │       └─ runner R (PID 1 of a fresh PID namespace; isolated, unprivileged; runs the program, then serves calls)
     │           └─ anything the program forks
     └─ judge server J (per worker slot; trusted; never runs untrusted code)
         └─ test process T (per run; runs the test code; calls the program's functions through the channel)

T and R talk through two pipes that the harness makes per run and hands to both: T sends a call (function name and
arguments), R answers with the return value or the exception, as JSON of literal values only (size-capped; never
pickle, never code). The verdict is T's: R cannot reach T's memory, its frames or its pipe to J. Standard-input programs
need no T: the harness compares their output. No process that runs untrusted code ever held a test or an expected
output in its memory.
"""

from __future__ import annotations

import ast
import base64
import builtins
import ctypes
import errno
import fcntl
import gc
import json
import os
import pickle
import platform
import re
import resource
import select
import shutil
import signal
import socket
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
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}

_READ_CHUNK = 1 << 16
_MAX_REPORT_BYTES = 1 << 16
_MAX_CONTROL_BYTES = 1 << 30
_CPU_POLL_S = 0.05


# ----------------------------------------------------------------------------------------------------------------------
# Message framing
# ----------------------------------------------------------------------------------------------------------------------


def write_message(fd: int, obj: object) -> None:
    """Writes one length-prefixed pickled message (trusted peers only: the math workers)."""
    _write_frame(fd, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def read_message(fd: int, deadline: float | None = None) -> object | None:
    """Reads one message written by `write_message`; `None` at end of file. Raises `TimeoutError` past `deadline`
    (a `time.monotonic()` value). Trusted peers only: it unpickles."""
    data = _read_frame(fd, deadline, _MAX_CONTROL_BYTES)
    return None if data is None else pickle.loads(data)


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


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


def _read_frame(fd: int, deadline: float | None, max_bytes: int) -> bytes | None:
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > max_bytes:
        raise ValueError(f"a message of {size} bytes exceeds the limit of {max_bytes} bytes")
    data = _read_exact(fd, size, deadline)
    if data is None:
        raise EOFError("message cut off")
    return data


def _json_default(obj: object) -> object:
    if isinstance(obj, (bytes, bytearray)):
        return {"$b64": base64.b64encode(bytes(obj)).decode("ascii")}
    raise TypeError(f"cannot encode a {type(obj).__name__}")


def _json_hook(obj: dict) -> object:
    if len(obj) == 1 and "$b64" in obj:
        return base64.b64decode(obj["$b64"])
    return obj


def send_json(fd: int, obj: object, fds: tuple[int, ...] = ()) -> None:
    """Writes one length-prefixed JSON message (bytes values allowed); `fds` follow it as `SCM_RIGHTS` on one byte
    (`fd` must then be a Unix socket)."""
    _write_frame(fd, json.dumps(obj, separators=(",", ":"), default=_json_default).encode("utf-8"))
    if fds:
        with socket.socket(fileno=os.dup(fd)) as sock:
            socket.send_fds(sock, [b"F"], list(fds))


def recv_json(fd: int, deadline: float | None = None, max_bytes: int = _MAX_CONTROL_BYTES, fds: bool = False):
    """Reads one message written by `send_json`; `None` at end of file. With `fds`, also the descriptors that follow a
    message that announces them (`"fds": N`); returns `(message, descriptors)` then."""
    data = _read_frame(fd, deadline, max_bytes)
    message = None if data is None else json.loads(data, object_hook=_json_hook)
    if not fds:
        return message
    received: list[int] = []
    if isinstance(message, dict) and message.get("fds"):
        with socket.socket(fileno=os.dup(fd)) as sock:
            _, received, _, _ = socket.recv_fds(sock, 1, int(message["fds"]))
    return message, received


# ----------------------------------------------------------------------------------------------------------------------
# The call channel between the test process T and the runner R: literal values only
# ----------------------------------------------------------------------------------------------------------------------

_MAX_DEPTH = 100
_TAGS = {"l": list, "t": tuple, "s": set, "f": frozenset}


class NotALiteral(TypeError):
    """A value that the call channel cannot carry (the message says which type)."""


def pack_value(obj: object, depth: int = 0) -> object:
    """The JSON form of a literal value: `None`, `bool`, `int`, `float`, `str`, `bytes`, `complex` and `list`, `tuple`,
    `set`, `frozenset` and `dict` of those (exact types, no subclasses). Raises [`NotALiteral`] for anything else."""
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str):
        return obj
    if depth > _MAX_DEPTH:
        raise NotALiteral(f"a value nested deeper than {_MAX_DEPTH} levels")
    if kind in (list, tuple, set, frozenset):
        tag = {list: "l", tuple: "t", set: "s", frozenset: "f"}[kind]
        return [tag, *(pack_value(item, depth + 1) for item in obj)]
    if kind is dict:
        packed = ["d"]
        for key, value in obj.items():
            packed += [pack_value(key, depth + 1), pack_value(value, depth + 1)]
        return packed
    if kind is bytes:
        return ["b", obj.hex()]
    if kind is complex:
        return ["c", obj.real, obj.imag]
    raise NotALiteral(f"a `{_type_name(obj)}`")


def unpack_value(data: object, depth: int = 0) -> object:
    """Inverse of [`pack_value`], for data from an untrusted peer: builds only literal values; raises `ValueError` on
    anything malformed."""
    if data is None or type(data) in (bool, int, float, str):
        return data
    if depth > _MAX_DEPTH or type(data) is not list or not data or type(data[0]) is not str:
        raise ValueError("malformed value")
    tag, items = data[0], data[1:]
    try:
        if tag in _TAGS:
            return _TAGS[tag](unpack_value(item, depth + 1) for item in items)
        if tag == "d" and len(items) % 2 == 0:
            pairs = zip(items[::2], items[1::2], strict=True)
            return {unpack_value(k, depth + 1): unpack_value(v, depth + 1) for k, v in pairs}
        if tag == "b" and len(items) == 1 and type(items[0]) is str:
            return bytes.fromhex(items[0])
        if tag == "c" and len(items) == 2 and all(type(x) in (int, float) for x in items):
            return complex(items[0], items[1])
    except TypeError as exc:  # an unhashable set element or dict key
        raise ValueError(f"malformed value ({exc})") from None
    raise ValueError("malformed value")


def _type_name(obj: object) -> str:
    try:
        return type.__dict__["__name__"].__get__(type(obj))
    except BaseException:
        return "?"


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
        ancestor = closed_ancestor(path)
        if ancestor is not None:
            blocked.setdefault(ancestor, [])
            if path not in blocked[ancestor]:
                blocked[ancestor].append(path)
    return blocked


def closed_ancestor(path: str) -> str | None:
    """The topmost proper ancestor of `path` that other users cannot enter (no `o+x`), or None."""
    parts = os.path.realpath(path).strip("/").split("/")
    for depth in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:depth])
        try:
            if not os.stat(ancestor).st_mode & 0o001:
                return ancestor
        except OSError:
            return None
    return None


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


def _mount_flags(options: list[str]) -> int:
    flags = 0
    for option in options:
        flags |= _MOUNT_FLAGS.get(option, 0)
    return flags


def _remount_all_readonly() -> None:
    """Makes every mount read-only in this mount namespace (not only `/`: also /home, /data, ... on other file
    systems), keeping each mount's other flags (the kernel refuses to drop locked ones)."""
    for point, options in _mount_points():
        if point == "/proc" or point.startswith("/proc/"):
            continue  # replaced by a private /proc, or left as the kernel's
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _mount_flags(options))
        except OSError:
            if point == "/":
                raise
            # a mount under another one that is gone from view (over-mounted): nothing reachable to protect


def _set_no_new_privs() -> None:
    _check(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def _drop_capabilities() -> None:
    """Clears every capability of this process (effective, permitted, inheritable, bounding): in a user namespace its
    "root" can then no longer mount, unmount or remount anything."""
    for cap in range(64):
        if _libc().prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP; EINVAL past the last capability
            break
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()
    _check(_libc().capset(header, data), "capset")


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
    _kill_until_gone(lambda: _live_pids_of(uid), timeout=5.0)


def _kill_until_gone(list_pids, timeout: float) -> None:
    """SIGKILLs the processes `list_pids()` returns until it returns none, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        remaining = list_pids()
        if not remaining:
            return
        for other in remaining:
            try:
                os.kill(other, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.001)


def _children() -> list[int]:
    """This process's children (every thread's), from /proc; empty where /proc does not list them."""
    pids = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as handle:
                pids += [int(pid) for pid in handle.read().split()]
    except OSError:
        pass
    return pids


def reap_all_children() -> None:
    """Kills and reaps every child until none is left. In a child subreaper that includes every orphaned
    descendant (they are re-parented to us as their parents die), so when this returns the whole tree is gone."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        for child in _children():
            for kill in (os.killpg, os.kill):
                try:
                    kill(child, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.001)


def _reap_zombies() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


# ----------------------------------------------------------------------------------------------------------------------
# Control groups
# ----------------------------------------------------------------------------------------------------------------------


def cgroup2_root() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid systems)."""
    try:
        with open("/proc/self/mounts") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return None


def make_cgroups(name: str, memory_bytes: int | None, processes: int | None) -> dict:
    """Creates (or reuses) the control groups of one worker slot's runs: `limits`, the directories that cap the total
    memory and the number of tasks of all the run's processes together (cgroup v2 with the memory / pids controllers
    enabled for children of its root, else cgroup v1); `v2`, a cgroup v2 directory whose `cgroup.kill`,
    `cgroup.events` and `cpu.stat` the supervisor uses to kill every process of the run, wait until they are gone and
    count their CPU time (None where cgroup v2 is not writable). `join`: every directory a run joins."""
    made: dict = {"limits": [], "v2": None, "join": []}
    v2 = cgroup2_root()
    try:
        if v2 is not None and os.access(v2, os.W_OK):
            path = os.path.join(v2, name)
            os.makedirs(path, exist_ok=True)
            if os.path.exists(os.path.join(path, "cgroup.kill")):
                made["v2"] = path
                made["join"].append(path)
                enabled = []
                try:
                    with open(os.path.join(v2, "cgroup.subtree_control")) as handle:
                        enabled = handle.read().split()
                except OSError:
                    pass
                settings = {}
                if memory_bytes and "memory" in enabled:
                    settings["memory.max"] = memory_bytes
                if processes and "pids" in enabled:
                    settings["pids.max"] = processes
                for key, value in settings.items():
                    with open(os.path.join(path, key), "w") as handle:
                        handle.write(str(value))
                if settings:
                    made["limits"].append(path)
                    return made
            else:
                os.rmdir(path)
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
                made["limits"].append(path)
                made["join"].append(path)
    except OSError:
        remove_cgroups(made)
        return {"limits": [], "v2": None, "join": []}
    return made


def remove_cgroups(made: dict, timeout: float = 5.0) -> None:
    """Removes the cgroups; one whose last processes are still exiting (EBUSY) is retried until `timeout`."""
    deadline = time.monotonic() + timeout
    for path in dict.fromkeys(made.get("join", []) + made.get("limits", []) + [made.get("v2")]):
        while path:
            try:
                os.rmdir(path)
            except OSError as exc:
                if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
            break


def remove_cgroups_named(name: str) -> None:
    """Removes the cgroups `make_cgroups(name, ...)` can make, where they are left (the harness's last sweep)."""
    root = cgroup2_root()
    paths = [os.path.join(root, name)] if root else []
    paths += [f"/sys/fs/cgroup/{controller}/{name}" for controller in ("memory", "pids")]
    remove_cgroups({"join": [path for path in paths if os.path.isdir(path)]})


def _join_cgroups(paths: list[str]) -> None:
    for path in paths:
        with open(os.path.join(path, "cgroup.procs"), "w") as handle:
            handle.write("0")


def _leave_cgroups(setup: dict) -> None:
    """Moves a fork server that joined its slot's cgroups back to their parents, so that they can be removed."""
    if not setup.get("server_in_cgroup"):
        return
    for path in setup["cgroups"]["join"]:
        try:
            _join_cgroups([os.path.dirname(path)])
        except OSError:
            pass


def _kill_strays(path: str, keep: set[int]) -> None:
    """SIGKILLs every process of a cgroup but `keep` (the servers) and waits until they are gone."""

    def strays() -> list[int]:
        with open(os.path.join(path, "cgroup.procs")) as handle:
            return [int(pid) for pid in handle.read().split() if int(pid) not in keep]

    _kill_until_gone(strays, timeout=10.0)


def cgroup_cpu_seconds(path: str) -> float:
    """CPU time (user + system) used by all processes of a cgroup v2 so far, in seconds."""
    with open(os.path.join(path, "cpu.stat")) as handle:
        for line in handle:
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
    return 0.0


def cgroup_kill(path: str, timeout: float = 10.0) -> bool:
    """Kills every process of a cgroup v2 (`cgroup.kill`) and waits until it is empty; True when it is."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(os.path.join(path, "cgroup.events")) as handle:
                populated = "populated 1" in handle.read()
        except OSError:
            return False
        if not populated:
            return True
        if time.monotonic() > deadline:
            return False
        try:
            with open(os.path.join(path, "cgroup.kill"), "w") as handle:
                handle.write("1")
        except OSError:
            pass
        time.sleep(0.001)


# ----------------------------------------------------------------------------------------------------------------------
# The minimal root file system of a runner
# ----------------------------------------------------------------------------------------------------------------------

_ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime", "passwd", "group", "nsswitch.conf")
_DEV_FILES = ("null", "zero", "full", "random", "urandom")


def minimal_root_plan(extra: tuple[str, ...] = ()) -> dict:
    """What a runner's minimal root file system holds: read-only binds of `/usr`, the library directories, the
    interpreter's directories (its prefix, `sys.path`, the shared objects it has loaded), a few files of `/etc`, the
    harmless devices of `/dev`; the symbolic links among `/bin`, `/lib`, ... Nothing else of the host (no `/run`,
    `/var`, `/home`, `/tmp`, `/sys`): host Unix sockets bound to a path outside these directories are unreachable."""
    dirs, links, files = set(), {}, []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            links[top] = os.readlink(top)
        elif os.path.isdir(top):
            dirs.add(top)
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *extra]
    candidates.append(os.path.dirname(os.path.realpath(sys.executable)))
    candidates += [entry if os.path.isdir(entry) else os.path.dirname(entry) for entry in sys.path if entry]
    try:
        with open("/proc/self/maps") as handle:
            for line in handle:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    candidates.append(os.path.dirname(fields[5].strip()))
    except OSError:
        pass
    for path in candidates:
        if path and os.path.isdir(path):
            dirs.add(os.path.realpath(path))
    kept = []
    for path in sorted(dirs):  # a directory inside one already kept comes with it
        if path != "/" and not any(path.startswith(other + "/") for other in kept):
            kept.append(path)
    for name in _ETC_FILES:
        path = f"/etc/{name}"
        if os.path.islink(path):
            links[path] = os.readlink(path)
        elif os.path.isfile(path):
            files.append(path)
    devices = [f"/dev/{name}" for name in _DEV_FILES if os.path.exists(f"/dev/{name}")]
    if "/" in dirs:
        raise OSError("the interpreter lives directly in /")
    return {"dirs": kept, "links": links, "files": files, "devices": devices}


def _mount_options_of(path: str, points: list[tuple[str, list[str]]]) -> list[str]:
    best, options = "", []
    for point, opts in points:
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, options = point, opts
    return options


def _bind_readonly(source: str, target: str, points: list[tuple[str, list[str]]]) -> None:
    try:
        _mount(source, target, None, MS_BIND)
        targets = [(target, source)]
    except OSError as exc:
        if exc.errno != 22:
            raise
        # EINVAL: in a user namespace, a directory with locked mounts below it can only be bound with them
        _mount(source, target, None, MS_BIND | MS_REC)
        targets = [
            (point, source + point[len(target) :])
            for point, _ in _mount_points()
            if point == target or point.startswith(target + "/")
        ]
    for point, original in targets:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        _mount(None, point, None, flags | _mount_flags(_mount_options_of(original, points)))


def build_root_template(plan: dict, new_root: str) -> None:
    """Builds the minimal root once, in the fork server's own mount namespace, on a tmpfs at `new_root`, and makes that
    mount read-only; each runner then copies it with its mount namespace and adds only what is its own
    ([`_enter_minimal_root`])."""
    points = _mount_points()
    _mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m,nr_inodes=4096")
    for path in plan["dirs"]:
        target = new_root + path
        os.makedirs(target, 0o755, exist_ok=True)
        _bind_readonly(path, target, points)
    for path in plan["files"] + plan["devices"]:
        target = new_root + path
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        with open(target, "w"):
            pass
        if path.startswith("/dev/"):
            _mount(path, target, None, MS_BIND)  # device nodes: keep the host mount's flags (no nodev)
        else:
            _bind_readonly(path, target, points)
    for path, target in plan["links"].items():
        os.makedirs(os.path.dirname(new_root + path), 0o755, exist_ok=True)
        os.symlink(target, new_root + path)
    for path in ("/proc", "/tmp", "/var/tmp", "/dev/shm", "/.old"):
        os.makedirs(new_root + path, 0o755, exist_ok=True)
    # read-only at the mount (not the superblock): copied so into every runner's mount namespace
    _mount(None, new_root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _enter_minimal_root(template: str, setup: dict, private_proc: bool) -> None:
    """Makes the fork server's root template (a copy of it, in this runner's new mount namespace) this namespace's `/`
    with the run's own `/proc` and private `/tmp` (pivot_root; the old root is detached, so no path leads back to it;
    `/.old` stays as an empty directory of the read-only root)."""
    if private_proc:
        _mount("proc", template + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount_private_tmp(setup, template)
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    _check(_libc().syscall(number, template.encode(), (template + "/.old").encode()), "pivot_root")
    os.chdir("/")
    _check(_libc().umount2(b"/.old", MNT_DETACH), "umount /.old")


def _mount_private_tmp(setup: dict, root: str = "") -> None:
    # a fresh, size-limited tmpfs as /tmp (also seen as /var/tmp and /dev/shm): the working directory
    owner = "" if setup.get("uid") is None else f",uid={setup['uid']},gid={setup['gid']}"
    options = f"size={setup['disk_mb']}m,nr_inodes=16384,mode=700{owner}"
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options)
    for target in ("/dev/shm", "/var/tmp"):
        if os.path.isdir(root + target) and not os.path.islink(root + target):
            _mount(root + "/tmp", root + target, None, MS_BIND)


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


def _isolate(setup: dict, caps: dict, workdir: str, fds: tuple[int, ...], state: dict) -> None:
    """Everything between the fork and the first line of untrusted code. Raises on any failure (fail closed)."""
    # stdin, stdout, stderr, report pipe[, call channel in, call channel out] -> 0, 1, 2, 3[, 4, 5]; every other
    # descriptor (the fork server's socket, the supervisor's pipes) closed
    state["report_fd"] = fds[3]
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
    state["report_fd"] = 3
    os.closerange(len(fds), max(1 << 16, os.sysconf("SC_OPEN_MAX")))

    if caps.get("server_in_cgroup"):
        # forked inside the slot's cgroups already (everything the program starts inherits them), beside the servers:
        # when the cgroup runs out of memory, the kernel kills the program's processes first (raising the score
        # needs no privilege, and every process the program starts inherits it)
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")
    elif caps.get("cgroup"):
        _join_cgroups(setup["cgroups"]["join"])  # everything the program starts inherits them
    os.setpgid(0, 0)  # own process group (setsid would also work but costs ~3 ms with scheduler autogroups)
    cwd = workdir
    if caps.get("mount_namespace"):
        unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        if caps.get("minimal_root"):
            _enter_minimal_root(setup["root_template"], setup, bool(caps.get("private_proc")))
            cwd = "/tmp"
        else:
            if caps.get("python_binds"):
                # cover each closed ancestor with an empty tmpfs and bind back only the directories Python imports from
                blocked = setup["python_dirs"]
                keep = {p: os.open(p, os.O_RDONLY | os.O_DIRECTORY) for paths in blocked.values() for p in paths}
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
                _mount_private_tmp(setup)
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
    elif caps.get("user_namespace"):
        _drop_capabilities()  # "root" of a user namespace: keep it from undoing the mounts above
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
        import socket as socket_module

        report["imports"] = True
    except ImportError:
        report["imports"] = False
        return report
    try:
        report["visible_pids"] = sum(name.isdigit() for name in os.listdir("/proc"))
    except OSError:
        report["visible_pids"] = -1
    report["root_writable"] = os.access("/", os.W_OK)
    try:
        with open("/proc/self/status") as handle:
            report["capabilities"] = [line.split()[1] for line in handle if line.startswith("CapEff:")][0]
    except (OSError, IndexError):
        report["capabilities"] = None
    report["root_entries"] = sorted(os.listdir("/"))
    private = ("/tmp", "/var/tmp", "/dev/shm", "/proc")
    try:
        points = _mount_points()
    except OSError:
        points = []
    report["writable_mounts"] = sorted(
        point
        for point, _ in points
        if not any(point == p or point.startswith(p + "/") for p in private)
        and os.path.isdir(point)
        and os.access(point, os.W_OK)
    )
    try:
        sock = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM)
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
    name = _type_name(exc)
    if isinstance(exc, SystemExit):
        return f"SystemExit({_safe_text(exc.code)})"
    message = _safe_text(exc)
    return f"{name}: {message}" if message else name


_MAX_NAMES = 2000
_MAX_NAME_VALUE_BYTES = 1 << 16


def _serve_calls(job: dict) -> None:
    """Assert-style runner: loads the program, tells T the names it defines, then answers T's calls until T closes the
    channel. Everything here runs in the untrusted process and is untrusted: T checks every answer."""
    write, exit_now = os.write, os._exit
    dumps = json.dumps

    def send(message: dict) -> None:
        data = dumps(message, separators=(",", ":")).encode("utf-8")
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[write(5, view) :]

    namespace = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        code = compile(job["program"], "<solution>", "exec", dont_inherit=True)
    except BaseException as exc:
        send({"loaded": False, "reason": f"the solution does not compile ({_describe(exc)})"})
        exit_now(1)
    try:
        exec(code, namespace)
    except BaseException as exc:
        send({"loaded": False, "reason": f"the solution raised {_describe(exc)} while loading"})
        exit_now(1)
    names = {}
    for name, value in list(namespace.items())[: _MAX_NAMES + 1]:
        if type(name) is not str or name.startswith("__"):
            continue
        if callable(value):
            names[name] = ["callable"]
            continue
        try:
            packed = pack_value(value)
            if len(dumps(packed)) <= _MAX_NAME_VALUE_BYTES:
                names[name] = ["value", packed]
        except BaseException:
            pass
    send({"loaded": True, "names": names})
    while True:
        try:
            data = _read_frame(4, None, _MAX_CONTROL_BYTES)
        except BaseException:
            exit_now(1)
        if data is None:
            exit_now(0)
        request = json.loads(data)
        function = namespace.get(request["name"])
        try:
            args = unpack_value(request["args"])
            kwargs = unpack_value(request["kwargs"])
            if not callable(function):
                raise NameError(f"name {request['name']!r} is not defined")
            value = function(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
            send({"exit": _describe(exc)})
            exit_now(1)
        except BaseException as exc:
            send({"raised": _type_name(exc), "message": _safe_text(exc)})
            continue
        try:
            send({"value": pack_value(value)})
        except NotALiteral as exc:
            send({"unsendable": str(exc)})
        except BaseException as exc:
            send({"unsendable": f"a value that could not be encoded ({_describe(exc)})"})


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


def _runner(job: dict, setup: dict, caps: dict, workdir: str, fds: tuple[int, ...]) -> None:
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
        # the report pipe only carries set-up failures: closed before the program can write "SETUP ..." to it (which
        # would turn its own failure into a sandbox error)
        os.close(3)
        if job["kind"] == "assert":
            _serve_calls(job)
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


def _supervise(job: dict, setup: dict, caps: dict, channel: list[int]) -> dict:
    cpu_limit = float(job.get("timeout", setup["timeout"]))
    wall_limit = float(job.get("wall_timeout") or setup["wall_timeout"])
    cap = int(setup["max_output_bytes"])
    uid, gid = setup.get("uid"), setup.get("gid")
    v2 = setup["cgroups"].get("v2") if caps.get("cgroup") else None
    if caps.get("pid_namespace"):
        unshare(CLONE_NEWPID)
    # the working directory: the private /tmp of the minimal root, else a fresh directory made here
    workdir = None if caps.get("minimal_root") else tempfile.mkdtemp(prefix="job-", dir=setup["tmp_root"])
    try:
        if workdir is not None:
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
            path = os.path.join(workdir, ".stdin")  # no memfd: not Linux, so no minimal root and a workdir
            with open(path, "wb") as handle:
                handle.write(stdin)
            stdin_fd = os.open(path, os.O_RDONLY)
        else:
            stdin_fd = os.open(os.devnull, os.O_RDONLY)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rep_r, rep_w = os.pipe()
        cpu_start = cgroup_cpu_seconds(v2) if v2 else 0.0
        if caps.get("server_in_cgroup"):
            cpu_start += _own_cpu_seconds()  # the cgroup also counts this supervisor, which is not the program
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            for fd in (out_r, err_r, rep_r):
                os.close(fd)
            _runner(job, setup, caps, workdir, (stdin_fd, out_w, err_w, rep_w, *channel))
            os._exit(70)  # not reached
        for fd in (stdin_fd, out_w, err_w, rep_w, *channel):
            os.close(fd)
        limits = {"cpu": cpu_limit, "wall": wall_limit, "cpu_start": cpu_start, "start": start}
        if caps.get("server_in_cgroup"):
            limits["servers_cgroup"] = setup["cgroups"]["join"][0]
        result = _watch(pid, (out_r, err_r, rep_r), limits, cap, uid, bool(caps.get("pid_namespace")), v2)
    finally:
        if workdir is not None:
            _remove_tree(workdir)
    report = bytes(result.pop("report"))
    result["duration"] = time.monotonic() - start
    result["report"] = report.decode("utf-8", "replace")
    return result


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _watch(pid: int, fds: tuple[int, int, int], limits: dict, cap: int, uid, pid_namespace: bool, v2):
    """Collects the runner's output until it exits or a limit is reached, then makes sure nothing of it survives.
    `limits["servers_cgroup"]`: the run shares its cgroups with this supervisor and the fork server (only with a PID
    namespace), so it is killed with the namespace rather than with `cgroup.kill`."""
    servers_cgroup = limits.get("servers_cgroup")
    kill_cgroup = v2 if servers_cgroup is None else None

    def cpu_used_now() -> float:
        used = cgroup_cpu_seconds(v2) - limits["cpu_start"]
        return used - _own_cpu_seconds() if servers_cgroup is not None else used

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
    open_fds, status, timed_out, cpu_used = set(fds), None, None, None
    deadline = limits["start"] + limits["wall"]

    def reap(block: bool):
        try:
            waited, wstatus = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return -1
        return wstatus if waited == pid else None

    while status is None:
        remaining = deadline - time.monotonic()
        if v2 is not None:
            cpu_used = cpu_used_now()
            if cpu_used > limits["cpu"]:
                timed_out = "cpu"
        if remaining <= 0:
            timed_out = timed_out or "wall"
        if timed_out:
            if kill_cgroup is not None:
                cgroup_kill(kill_cgroup)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = reap(True)
            break
        wait_s = remaining if pidfd is not None else min(remaining, 0.01)
        if v2 is not None:
            wait_s = min(wait_s, _CPU_POLL_S)
        for fd, _event in poller.poll(wait_s * 1000):
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
    # the runner is gone: kill everything that is left of the run (its cgroup; with a PID namespace the kernel has done
    # it already), its process group and (when it ran under its own uid) every process of that uid
    if v2 is not None:
        cpu_used = cpu_used_now()
    if kill_cgroup is not None:
        cgroup_kill(kill_cgroup)
    elif servers_cgroup is not None:
        _kill_strays(servers_cgroup, {os.getpid(), os.getppid()})  # none: the namespace died with its PID 1
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
            if signal_number == signal.SIGXCPU:
                timed_out = timed_out or "cpu"
    return {
        "timed_out": timed_out,
        "cpu_seconds": cpu_used,
        "returncode": returncode,
        "signal": signal_number,
        "stdout": bytes(buffers[fds[0]]),
        "stderr": bytes(buffers[fds[1]]),
        "stdout_truncated": dropped[fds[0]] > 0,
        "stderr_truncated": dropped[fds[1]] > 0,
        "report": buffers[fds[2]],
    }


# ----------------------------------------------------------------------------------------------------------------------
# Fork server F
# ----------------------------------------------------------------------------------------------------------------------


def _run_one(job: dict, setup: dict, caps: dict, out_fd: int, channel: list[int] = ()) -> None:
    """Forks a supervisor for one run; the supervisor says on a pipe that the run is over and cleaned up, writes the
    answer to the harness itself and exits. We return once it has said so (its answer and its own exit, ~1 ms of
    address-space teardown, overlap the next job; it is reaped later) or, if it ended before, answer for it."""
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(done_r)
            os.setpgid(0, 0)
            try:
                result = _supervise(job, setup, caps, list(channel))
            except BaseException as exc:
                result = {"error": f"sandbox error: {_describe(exc)}"}
            os.write(done_w, b".")  # first: the fork server can wait for the next job while the answer goes out
            send_json(out_fd, result)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(done_w)
    for fd in channel:
        os.close(fd)
    try:
        answered = os.read(done_r, 1) == b"."
    finally:
        os.close(done_r)
    if not answered:
        _, status = os.waitpid(pid, 0)
        send_json(out_fd, {"error": f"sandbox error: supervisor ended with status {status}"})
    _reap_zombies()  # earlier supervisors, and orphans re-parented to this subreaper


_FEATURES = (
    "cgroup", "pid_namespace", "mount_namespace", "private_proc", "minimal_root", "python_binds", "private_tmp",
    "readonly_root",
)  # fmt: skip


def _probe_capabilities(setup: dict, wanted: dict, base: dict) -> dict:
    """Finds out which isolation features work here by running the probe job with each one switched on in turn.
    `setup_errors` says why a wanted feature did not work."""
    caps = dict(base, **dict.fromkeys(_FEATURES, False))
    errors = {}
    read_fd, write_fd = os.pipe()
    try:
        for feature in _FEATURES:
            if not wanted.get(feature):
                continue
            if feature == "private_proc" and not caps.get("pid_namespace"):
                continue
            if feature not in ("cgroup", "pid_namespace", "mount_namespace") and not caps.get("mount_namespace"):
                continue
            if feature in ("python_binds", "private_tmp", "readonly_root") and caps.get("minimal_root"):
                caps[feature] = feature != "python_binds"  # the minimal root is read-only and has a private /tmp
                continue
            trial = dict(caps, **{feature: True})
            _run_one({"kind": "probe", "timeout": 10}, setup, trial, write_fd)
            answer = recv_json(read_fd)
            caps[feature] = bool(answer.get("returncode") == 0 and answer.get("report", "").startswith("PROBE "))
            if not caps[feature]:
                errors[feature] = answer.get("error") or answer.get("report", "")[:500]
        caps["no_new_privs"] = False
        if sys.platform.startswith("linux"):
            _run_one({"kind": "probe", "timeout": 10}, setup, dict(caps, no_new_privs=True), write_fd)
            caps["no_new_privs"] = bool(recv_json(read_fd).get("returncode") == 0)
        _run_one({"kind": "probe", "timeout": 10}, setup, caps, write_fd)
        answer = recv_json(read_fd)
        inside = {}
        if answer.get("returncode") == 0 and answer.get("report", "").startswith("PROBE "):
            inside = ast.literal_eval(answer["report"][len("PROBE ") :])
        caps["probe"] = inside
        caps["setup_errors"] = errors
    finally:
        os.close(read_fd)
        os.close(write_fd)
    return caps


def _enter_namespaces(setup: dict, caps: dict) -> None:
    """The fork server's (or judge server's) own network namespace, through a user namespace when not root."""
    if not sys.platform.startswith("linux") or not (setup.get("isolate_network") or setup.get("namespaces")):
        return
    if os.geteuid() == 0:
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


def _on_sigterm(signum, frame):
    raise SystemExit(0)


def main(argv: list[str]) -> None:
    if argv[1] == "--kill-uid":
        uid = int(argv[2])
        if uid > 0:
            _kill_uid(uid)
        return
    if argv[1] == "--judge":
        return judge_main(int(argv[2]))
    fd = int(argv[1])
    signal.signal(signal.SIGTERM, _on_sigterm)
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of our runs come back to us to be reaped
    setup = recv_json(fd)
    if setup is None:
        return
    setup["cgroups"] = {"limits": [], "v2": None, "join": []}
    try:
        _serve(fd, setup)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        reap_all_children()
        _leave_cgroups(setup)
        remove_cgroups(setup["cgroups"])
        _remove_root_template(setup)


def _make_root_template(setup: dict) -> str:
    """Gives the fork server its own mount namespace and builds the runners' minimal root in it (once: a runner only
    adds its `/proc` and `/tmp`). The template is a read-only tmpfs, seen only by this server and its runs; from the
    host it is an empty directory of the sandbox's temporary folder."""
    if _PIVOT_ROOT.get(platform.machine()) is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    plan = minimal_root_plan()
    unshare(CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    template = tempfile.mkdtemp(prefix="root-", dir=setup["tmp_root"])
    os.chmod(template, 0o755)
    try:
        build_root_template(plan, template)
    except BaseException:
        _remove_root_template({"root_template": template})
        raise
    return template


def _remove_root_template(setup: dict) -> None:
    template = setup.get("root_template")
    if not template:
        return
    _libc().umount2(template.encode(), MNT_DETACH)
    try:
        os.rmdir(template)
    except OSError:
        pass


def _serve(fd: int, setup: dict) -> None:
    caps: dict = {"user_namespace": False, "network_namespace": False}
    is_root = os.geteuid() == 0
    linux = sys.platform.startswith("linux")
    _enter_namespaces(setup, caps)
    if not hasattr(builtins, "exit"):  # started with -S: give programs the `exit()` / `quit()` that `site` adds
        import _sitebuiltins

        builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
        builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    for name in setup.get("preload", ()):
        try:
            __import__(name)
        except BaseException:
            pass
    wanted, root_error = {}, None
    if setup.get("namespaces") and linux:
        wanted = dict.fromkeys(_FEATURES, True)
        setup["python_dirs"] = blocked_python_dirs(setup.get("uid"))
        wanted["python_binds"] = bool(setup["python_dirs"])
        wanted["minimal_root"] = setup.get("minimal_root", True)
        if wanted["minimal_root"]:
            try:
                setup["root_template"] = _make_root_template(setup)
            except OSError as exc:
                wanted["minimal_root"] = False
                root_error = f"the root template could not be built: {_describe(exc)}"
        if is_root and setup.get("cgroup_name"):
            limits = setup["limits"]
            # + this fork server and the run's supervisor (and the previous one, still exiting), which share the
            # cgroups (see below)
            processes = None if limits.get("processes") is None else limits["processes"] + 4
            setup["cgroups"] = make_cgroups(setup["cgroup_name"], limits.get("address_space"), processes)
        wanted["cgroup"] = bool(setup["cgroups"]["join"])
    caps.update(_probe_capabilities(setup, wanted, caps))
    if root_error:
        caps["setup_errors"]["minimal_root"] = root_error
    if caps.get("cgroup") and caps.get("pid_namespace") and is_root:
        # Every run's processes are forked inside the slot's cgroups from here on: moving each runner into them would
        # cost a cgroup migration per run (an RCU grace period, often 5-15 ms). The run is then killed with its PID
        # namespace (its PID 1 is reaped only once the namespace is empty), not with `cgroup.kill`, which would kill
        # this server too; the runner makes its processes the out-of-memory killer's first choice.
        _join_cgroups(setup["cgroups"]["join"])
        caps["server_in_cgroup"] = setup["server_in_cgroup"] = True
    caps["cgroup_kill"] = bool(caps.get("cgroup") and setup["cgroups"]["v2"] and not caps.get("server_in_cgroup"))
    gc.freeze()  # forked children's collections then skip (and do not copy-on-write) everything loaded so far
    send_json(fd, {"ready": True, "pid": os.getpid(), "capabilities": caps})
    while True:
        job, channel = recv_json(fd, fds=True)
        if job is None:
            break
        _run_one(job, setup, caps, fd, channel)


# ----------------------------------------------------------------------------------------------------------------------
# Judge server J and test process T: the trusted side of assert-style tests
# ----------------------------------------------------------------------------------------------------------------------


class ProgramGone(BaseException):
    """The program can no longer be called (it ended, exited, timed out or sent something the channel cannot carry).
    A `BaseException`, so that a test's `except Exception` cannot swallow it; the verdict is a failure regardless."""


def _judge(job: dict, call_fd: int, result_fd: int, deadline: float) -> str:
    """Runs one assert-style test in this (trusted) process; returns `"PASS"` or `"FAIL <reason>"`."""
    max_value_bytes = int(job.get("max_value_bytes") or 1 << 20)
    try:
        test_code = compile(job["test"], "<test>", "exec", dont_inherit=True)
    except BaseException as exc:
        return f"FAIL malformed test: it does not compile ({_describe(exc)})"
    context_code = None
    if job.get("context"):
        try:
            context_code = compile(job["context"], "<context>", "exec", dont_inherit=True)
        except BaseException as exc:
            return f"FAIL malformed test: its context does not compile ({_describe(exc)})"
    broken: list[str] = []

    def receive() -> dict:
        try:
            data = _read_frame(result_fd, deadline, max_value_bytes)
        except TimeoutError:
            raise _gone("the program did not answer before the time limit") from None
        except ValueError as exc:
            raise _gone(f"the program sent too much ({exc})") from None
        except (EOFError, OSError):
            data = None
        if data is None:
            raise _gone("the program ended before the tests finished")
        try:
            message = json.loads(data)
            if type(message) is not dict:
                raise ValueError("not an object")
            return message
        except (ValueError, RecursionError) as exc:
            raise _gone(f"the program sent a malformed answer ({_safe_text(exc)})") from None

    def _gone(reason: str) -> ProgramGone:
        if not broken:
            broken.append(reason)
        return ProgramGone(broken[0])

    class Candidate:
        """Calls the program's function `name` in the program's process."""

        def __init__(self, name: str):
            self.__name__ = self.__qualname__ = name

        def __repr__(self) -> str:
            return f"<function {self.__name__} (in the sandboxed program)>"

        def __call__(self, *args, **kwargs):
            if broken:
                raise ProgramGone(broken[0])
            try:
                packed = {"name": self.__name__, "args": pack_value(list(args)), "kwargs": pack_value(dict(kwargs))}
            except NotALiteral as exc:
                raise _gone(
                    f"the test passes {exc} to `{self.__name__}`, which the process channel cannot carry (it carries "
                    "literal values only: None, bool, int, float, complex, str, bytes, and lists, tuples, sets, "
                    "dicts of them)"
                ) from None
            data = json.dumps(packed, separators=(",", ":")).encode("utf-8")
            try:
                _write_frame(call_fd, data)
            except OSError:
                raise _gone("the program ended before the tests finished") from None
            answer = receive()
            if "value" in answer:
                try:
                    return unpack_value(answer["value"])
                except (ValueError, RecursionError) as exc:
                    raise _gone(f"`{self.__name__}` returned a malformed value ({_safe_text(exc)})") from None
            if "raised" in answer:
                name, message = str(answer.get("raised"))[:100], _safe_text(answer.get("message", ""))
                kind = getattr(builtins, name, None)
                if not (isinstance(kind, type) and issubclass(kind, Exception)):
                    kind = CandidateError
                try:
                    error = kind(message)
                except BaseException:
                    error = CandidateError(f"{name}: {message}")
                raise error
            if "unsendable" in answer:
                raise _gone(
                    f"`{self.__name__}` returned {_safe_text(answer['unsendable'], 200)}, which the process channel "
                    "cannot carry (literal values only)"
                )
            if "exit" in answer:
                raise _gone(f"the program exited during a call ({_safe_text(answer['exit'], 200)})")
            raise _gone("the program sent a malformed answer")

    try:
        hello = receive()
    except ProgramGone as exc:
        return f"FAIL {exc}"
    if not hello.get("loaded"):
        return "FAIL " + _safe_text(hello.get("reason") or "the solution did not load", 2000)
    names = hello.get("names")
    if type(names) is not dict:
        return "FAIL the program sent a malformed answer"
    namespace: dict = {"__name__": "__test__", "__builtins__": builtins}
    if context_code is not None:
        try:
            exec(context_code, namespace)
        except BaseException as exc:
            return f"FAIL malformed test: its context raised {_describe(exc)}"
    trusted = set(namespace)
    for name, kind in list(names.items())[:_MAX_NAMES]:
        if type(name) is not str or not name.isidentifier() or name in trusted or type(kind) is not list or not kind:
            continue
        if kind[0] == "callable":
            namespace[name] = Candidate(name)
        elif kind[0] == "value" and len(kind) == 2:
            try:
                namespace[name] = unpack_value(kind[1])
            except (ValueError, RecursionError):
                pass
    entry_point = job.get("entry_point")
    if entry_point and names.get(entry_point, [None])[0] == "callable":
        namespace[entry_point] = Candidate(entry_point)  # the program's, not the context's stub (HumanEval/33)
    try:
        exec(test_code, namespace)
        if entry_point:
            check = namespace.get("check")
            if not callable(check) or isinstance(check, Candidate):
                return "FAIL malformed test: it defines no `check(candidate)` function"
            if names.get(entry_point, [None])[0] != "callable":
                return f"FAIL the solution does not define `{entry_point}`"
            check(Candidate(entry_point))
    except ProgramGone:
        pass
    except BaseException as exc:
        if broken:
            return f"FAIL {broken[0]}"
        return f"FAIL test failed: {_describe(exc)}"
    if broken:
        return f"FAIL {broken[0]}"
    return "PASS"


class CandidateError(Exception):
    """An exception the program raised that is not a built-in exception type (its name and message)."""


def _judge_one(job: dict, out_fd: int, channel: list[int]) -> None:
    """Forks a test process T for one job and answers the harness with its verdict."""
    verdict_r, verdict_w = os.pipe()
    start = time.monotonic()
    deadline = start + float(job["wall_timeout"])
    pid = os.fork()
    if pid == 0:
        try:
            os.close(verdict_r)
            os.close(out_fd)
            os.setpgid(0, 0)
            if sys.platform.startswith("linux"):
                _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if job.get("address_space"):
                resource.setrlimit(resource.RLIMIT_AS, (job["address_space"], job["address_space"]))
            os.chdir(tempfile.gettempdir())
            verdict = _judge(job, channel[0], channel[1], deadline)
        except BaseException as exc:
            verdict = f"FAIL test process error: {_describe(exc)}"
        for fd in channel:  # the program sees the end now, not after this process's memory is torn down
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.write(verdict_w, verdict.encode("utf-8", "replace")[:8000])
        finally:
            os._exit(0)
    os.close(verdict_w)
    for fd in channel:
        os.close(fd)
    verdict = b""
    try:
        while True:
            verdict_part = _read_exact_some(verdict_r, deadline + 1.0)
            if verdict_part is None:
                break
            verdict += verdict_part
    except TimeoutError:
        pass
    finally:
        os.close(verdict_r)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    os.waitpid(pid, 0)
    _reap_zombies()
    text = verdict.decode("utf-8", "replace") or "FAIL the test did not finish before the time limit"
    send_json(out_fd, {"verdict": text, "duration": time.monotonic() - start})


def _read_exact_some(fd: int, deadline: float) -> bytes | None:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
        raise TimeoutError("no verdict before the deadline")
    data = os.read(fd, 1 << 16)
    return data or None


def judge_main(fd: int) -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        setup = recv_json(fd)
        if setup is None:
            return
        caps: dict = {"user_namespace": False, "network_namespace": False}
        _enter_namespaces(setup, caps)
        for name in setup.get("preload", ()):
            try:
                __import__(name)
            except BaseException:
                pass
        tempfile.gettempdir()  # found once here (it probes the candidates by writing files), not in every test process
        gc.freeze()
        send_json(fd, {"ready": True, "pid": os.getpid(), "capabilities": caps})
        while True:
            job, channel = recv_json(fd, fds=True)
            if job is None:
                break
            if len(channel) != 2:
                send_json(fd, {"verdict": "FAIL sandbox error: the judge got no call channel"})
                continue
            _judge_one(job, fd, channel)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        reap_all_children()


if __name__ == "__main__":
    main(sys.argv)
