# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Runs untrusted programs (model completions) in isolated, resource-limited processes, in parallel.

What each program gets (details and what holds where: `docs/verifiers.md`):

- its own process, forked from a small fork server that never held your training process's memory, environment or any
  test; for assert-style tests, the test runs in a separate trusted process that calls the program's functions through a
  channel of literal values (JSON), and decides the verdict;
- a CPU-time limit for all its processes together (counted by a cgroup v2 where there is one, else `RLIMIT_CPU` per
  process), a wall-clock backstop, and `setrlimit` limits on CPU time, address space, file size, open files and
  processes;
- its own PID namespace where the OS allows it (the kernel then kills everything it started when it ends), and as root
  a cgroup that is killed (`cgroup.kill`) and waited for until empty; otherwise its own process group plus a sweep over
  the sandbox uid;
- when the harness runs as root: its own unprivileged uid (one per worker slot, so `RLIMIT_NPROC` counts exactly its
  processes);
- where mount namespaces are available: a minimal read-only root file system (`/usr`, the library directories, the
  interpreter's directories, a few `/etc` files and harmless devices; no host `/run`, `/var`, `/home`, `/tmp`, `/sys`,
  so no host Unix socket bound to a path there), private `/tmp`, `/var/tmp`, `/dev/shm` (its working directory) and a
  private `/proc`;
- a fresh temporary working directory, removed afterwards; an environment with only `PATH`, `LANG`, `HOME`, `TMPDIR`;
- stdout and stderr read through pipes with a cap; no network (a network namespace with no interfaces up, which also
  hides the host's abstract Unix sockets) where the OS allows it.
"""

from __future__ import annotations

import atexit
import dataclasses
import math
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from transformers.utils import logging

from . import _sandbox_runtime as runtime
from .base import progress_bar


logger = logging.get_logger(__name__)

_RUNTIME_PATH = os.path.abspath(runtime.__file__)
_PROGRAM_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_DEFAULT_PRELOAD = (
    "typing", "math", "re", "collections", "itertools", "functools", "string", "heapq", "bisect", "random", "copy",
    "hashlib", "operator",
)  # fmt: skip


@dataclass
class SandboxConfig:
    r"""
    Configuration of the [`Sandbox`] that runs untrusted programs for the code verifiers.

    Parameters:
        > Parameters that control the limits of one program run

        timeout (`float`, *optional*, defaults to `10.0`):
            Time limit in seconds for one run (for standard-input tests: for each test case), counted in CPU time of
            all the program's processes together where a cgroup v2 can count it (root), else per process
            (`RLIMIT_CPU`, whole seconds). A loaded machine therefore does not make a correct program time out.
        wall_timeout (`float` or `None`, *optional*, defaults to `None`):
            Wall-clock backstop for one run (a program that sleeps or waits uses no CPU time). `None` uses
            `3 * timeout + 5`.
        memory_limit_mb (`int` or `None`, *optional*, defaults to `1024`):
            Address-space limit (`RLIMIT_AS`) in MiB. `None` sets no limit.
        cpu_time_limit (`int` or `None`, *optional*, defaults to `None`):
            CPU-time limit (`RLIMIT_CPU`) in seconds, per process. `None` uses `ceil(timeout) + 1`.
        max_processes (`int`, *optional*, defaults to `16`):
            Processes and threads the program may have at once (`RLIMIT_NPROC`). Exact when the harness runs as root
            (each worker slot has its own uid); otherwise added to the number your user already runs.
        max_file_size_mb (`int`, *optional*, defaults to `16`):
            Largest file the program may write (`RLIMIT_FSIZE`), in MiB.
        max_disk_mb (`int`, *optional*, defaults to `64`):
            Size of the program's private `/tmp` (a tmpfs, also mounted on `/var/tmp` and `/dev/shm`; its working
            directory), where mount namespaces are available.
        max_open_files (`int`, *optional*, defaults to `64`):
            Open file descriptors (`RLIMIT_NOFILE`).
        max_output_bytes (`int`, *optional*, defaults to `1048576`):
            Bytes of stdout and of stderr kept from one run; the rest is read and dropped. A standard-input test whose
            output is cut fails.
        max_program_bytes (`int`, *optional*, defaults to `1048576`):
            Longer programs (UTF-8 bytes) fail without being run.
        max_value_bytes (`int`, *optional*, defaults to `1048576`):
            Largest answer (JSON bytes) the program may send back for one call of an assert-style test.

        > Parameters that control the isolation

        isolate_network (`bool`, *optional*, defaults to `True`):
            Run programs in a network namespace with no interface up (needs root or unprivileged user namespaces).
        use_namespaces (`bool`, *optional*, defaults to `True`):
            Use PID and mount namespaces where the OS allows them (a PID namespace per run; a private `/proc`, `/tmp`,
            `/dev/shm` and a read-only root file system when root).
        use_cgroups (`bool`, *optional*, defaults to `True`):
            When root and the cgroup file system is writable, put each run in a control group that caps the memory
            of all its processes together at `memory_limit_mb` and its tasks at `max_processes` (RLIMIT_AS alone caps
            each process separately).
        drop_privileges (`bool`, *optional*, defaults to `True`):
            When the harness runs as root, run programs under an unused uid from `uid_range` (one per worker slot).
        uid_range (`tuple[int, int]`, *optional*, defaults to `(59000, 59999)`):
            Inclusive range of uids to run programs under; uids with an account in `/etc/passwd` or `/etc/group` or
            with running processes are skipped, and a lock file keeps two sandboxes from sharing one.
        site_packages (`bool`, *optional*, defaults to `False`):
            Let programs import third-party packages installed in this Python environment (e.g. `numpy`). By default
            only the standard library is importable.
        preload_modules (`tuple[str, ...]`, *optional*):
            Standard-library modules imported once in the fork server so that programs that import them start faster.
        python_executable (`str` or `None`, *optional*, defaults to `None`):
            Interpreter that runs the programs. `None` uses `sys.executable`.
        tmp_dir (`str` or `None`, *optional*, defaults to `None`):
            Where the per-run temporary directories are made. `None` uses the system default.

        > Parameters that control parallelism

        num_workers (`int` or `None`, *optional*, defaults to `None`):
            Programs run at once. `None` uses the CPU cores available to this process divided by the number of
            processes of this job on this node (environment variable `LOCAL_WORLD_SIZE`, set by `torchrun` and
            `accelerate launch`; 1 when unset), at least 1.
        max_runs_per_worker (`int`, *optional*, defaults to `5000`):
            A worker's fork server is replaced after this many runs.
        show_progress (`bool`, *optional*, defaults to `True`):
            Show a progress bar (main process only) for batches of at least 16 programs.
    """

    timeout: float = field(default=10.0, metadata={"help": "CPU-time limit in seconds for one run."})
    wall_timeout: float | None = field(default=None, metadata={"help": "Wall-clock backstop for one run."})
    memory_limit_mb: int | None = field(default=1024, metadata={"help": "Address-space limit in MiB."})
    cpu_time_limit: int | None = field(default=None, metadata={"help": "CPU-time limit in seconds per process."})
    max_processes: int = field(default=16, metadata={"help": "Processes the program may have at once."})
    max_file_size_mb: int = field(default=16, metadata={"help": "Largest file the program may write, in MiB."})
    max_disk_mb: int = field(default=64, metadata={"help": "Size of the program's private /tmp, in MiB."})
    max_open_files: int = field(default=64, metadata={"help": "Open file descriptors."})
    max_output_bytes: int = field(default=1 << 20, metadata={"help": "Bytes of stdout and of stderr kept."})
    max_program_bytes: int = field(default=1 << 20, metadata={"help": "Longer programs fail without being run."})
    max_value_bytes: int = field(default=1 << 20, metadata={"help": "Largest answer of one call, in bytes."})
    isolate_network: bool = field(default=True, metadata={"help": "Run programs without network access."})
    use_namespaces: bool = field(default=True, metadata={"help": "Use PID and mount namespaces where possible."})
    use_cgroups: bool = field(default=True, metadata={"help": "As root, cap a run's total memory and tasks."})
    drop_privileges: bool = field(default=True, metadata={"help": "As root, run programs under an unused uid."})
    uid_range: tuple[int, int] = field(default=(59000, 59999), metadata={"help": "Inclusive uid range."})
    site_packages: bool = field(default=False, metadata={"help": "Let programs import installed packages."})
    preload_modules: tuple[str, ...] = field(default=_DEFAULT_PRELOAD, metadata={"help": "Modules to preload."})
    python_executable: str | None = field(default=None, metadata={"help": "Interpreter for the programs."})
    tmp_dir: str | None = field(default=None, metadata={"help": "Where per-run directories are made."})
    num_workers: int | None = field(default=None, metadata={"help": "Programs run at once."})
    max_runs_per_worker: int = field(default=5000, metadata={"help": "Runs before a fork server is replaced."})
    show_progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def __post_init__(self):
        if not self.timeout > 0:
            raise ValueError(f"`timeout` must be positive, got {self.timeout}.")
        if self.wall_timeout is not None and not self.wall_timeout >= self.timeout:
            raise ValueError(f"`wall_timeout` must be at least `timeout` ({self.timeout}), got {self.wall_timeout}.")
        for name in ("memory_limit_mb", "cpu_time_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be at least 1 or None, got {value}.")
        names = ("max_processes", "max_file_size_mb", "max_disk_mb", "max_open_files", "max_output_bytes")
        for name in (*names, "max_program_bytes", "max_value_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        if self.num_workers is not None and self.num_workers < 1:
            raise ValueError(f"`num_workers` must be at least 1 or None, got {self.num_workers}.")
        self.uid_range = tuple(self.uid_range)
        if len(self.uid_range) != 2 or not 0 < self.uid_range[0] <= self.uid_range[1] < 2**31:
            raise ValueError(f"`uid_range` must be (first, last) with 0 < first <= last, got {self.uid_range}.")
        self.preload_modules = tuple(self.preload_modules)

    @property
    def workers(self) -> int:
        """The number of worker slots: `num_workers`, or the CPU cores available to this process divided by
        `LOCAL_WORLD_SIZE` (the processes of this job on this node), at least 1."""
        if self.num_workers is not None:
            return self.num_workers
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        try:
            local_world_size = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        except ValueError:
            local_world_size = 1
        return max(1, cores // local_world_size)

    def wall_timeout_for(self, timeout: float) -> float:
        """The wall-clock backstop of a run whose CPU-time limit is `timeout`."""
        return self.wall_timeout if self.wall_timeout is not None else 3 * timeout + 5


@dataclass
class ProgramCheck:
    """One program and the tests it must pass: either assert-style (`test`, optionally with `entry_point`) or
    standard-input style (`inputs` and `outputs`).

    Args:
        program (`str`):
            The complete program (for HumanEval: prompt + completion).
        test (`str`, *optional*):
            Test code. With `entry_point`, it must define `check(candidate)`, which is called with the program's
            `entry_point` function; without, its top-level asserts are the test (MBPP style).
        entry_point (`str`, *optional*):
            The function under test.
        context (`str`, *optional*):
            Trusted code run in the test's process before the test (not in the program's), e.g. a HumanEval prompt
            whose helper functions the test calls (`poly` in HumanEval/32). The program cannot replace what it defines.
        inputs (`list[str]`, *optional*):
            Standard input of each test case.
        outputs (`list[str]`, *optional*):
            Expected standard output of each test case (compared line by line after stripping).
        timeout (`float`, *optional*):
            Overrides [`SandboxConfig.timeout`] for this program.
    """

    program: str
    test: str | None = None
    entry_point: str | None = None
    context: str | None = None
    inputs: Sequence[str] | None = None
    outputs: Sequence[str] | None = None
    timeout: float | None = None


@dataclass
class CheckResult:
    """Outcome of a [`ProgramCheck`].

    Args:
        passed (`bool`): whether every test ran to the end and passed.
        status (`str`): `"passed"`, `"failed"`, `"timeout"` or `"error"` (the sandbox itself failed).
        reason (`str`): why it did not pass (empty when it passed).
        tests_passed (`int`): test cases passed (assert style counts as one case).
        tests_total (`int`): test cases.
        stdout (`str`): what the last run printed (capped, decoded with replacement).
        stderr (`str`): what the last run wrote to stderr (capped).
        duration (`float`): seconds spent running, over all test cases.
    """

    passed: bool
    status: str
    reason: str = ""
    tests_passed: int = 0
    tests_total: int = 0
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0


def outputs_match(actual: str, expected: str) -> bool:
    """Compares standard output the APPS / CodeContests way: line by line, each line stripped, ignoring leading and
    trailing blank lines.

    Args:
        actual (`str`): what the program printed.
        expected (`str`): the expected output.

    Returns:
        `bool`: whether they match.

    Example:

    ```python
    >>> outputs_match("1 2 \\n3\\n\\n", "1 2\\n3")
    True
    ```
    """
    return [line.strip() for line in actual.strip().splitlines()] == [
        line.strip() for line in expected.strip().splitlines()
    ]


# ----------------------------------------------------------------------------------------------------------------------
# Worker slots: one fork server each
# ----------------------------------------------------------------------------------------------------------------------


def _claim_uid(uid_range: tuple[int, int]) -> tuple[int, int]:
    """Claims an unused uid for one worker slot: no account, no group, no live process, and a lock file held by us."""
    import fcntl
    import grp
    import pwd
    import stat

    lock_dir = os.path.join(tempfile.gettempdir(), "trl-mos-sandbox-uids")
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    info = os.lstat(lock_dir)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{lock_dir} must be a directory owned by uid {os.geteuid()} and not writable by others.")
    first, last = uid_range
    for uid in range(first, last + 1):
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(uid)
            continue
        except KeyError:
            pass
        fd = os.open(os.path.join(lock_dir, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if runtime._live_pids_of(uid):
            os.close(fd)
            continue
        return uid, fd
    raise RuntimeError(f"No free sandbox uid in {uid_range}; widen `SandboxConfig.uid_range`.")


class SandboxUnavailableError(RuntimeError):
    """The sandbox cannot run programs on this machine (the message says why and what to change)."""


def _sandbox_error(message: str, judge_job: dict | None) -> tuple[dict, dict | None]:
    """The answer (and, for an assert-style test, the verdict) of a run the sandbox could not carry out."""
    error = {"error": f"sandbox error: {message}"}
    return error, None if judge_job is None else {"verdict": "FAIL " + error["error"]}


class _ForkServer:
    """One worker slot: a fork server F for the programs and a judge server J for the tests, each a process with a
    Unix socket to us. Used by one thread at a time."""

    def __init__(self, config: SandboxConfig, tmp_root: str):
        self.config = config
        self.tmp_root = tmp_root
        self.process: subprocess.Popen | None = None
        self.judge: subprocess.Popen | None = None
        self.capabilities: dict[str, Any] = {}
        self.uid: int | None = None
        self.runs = 0
        self._lock_fd: int | None = None
        self._socket: socket.socket | None = None
        self._judge_socket: socket.socket | None = None
        self.closed = False  # set by `Sandbox.close()`: a run still in flight then ends with an error, no restart
        self._stop_lock = threading.Lock()  # `close()` and a failing run may stop the servers at once

    def _setup_message(self) -> dict:
        config = self.config
        processes = config.max_processes
        if self.uid is None and os.geteuid() != 0:
            # RLIMIT_NPROC counts every process of the user, so the program's share comes on top of what runs already
            processes += len(runtime._live_pids_of(os.getuid()))
        cpu = config.cpu_time_limit or math.ceil(config.timeout) + 1
        return {
            "uid": self.uid,
            "gid": self.uid,
            "tmp_root": self.tmp_root,
            "isolate_network": config.isolate_network,
            "namespaces": config.use_namespaces,
            "limits": {
                "cpu": cpu,
                "address_space": None if config.memory_limit_mb is None else config.memory_limit_mb << 20,
                "file_size": config.max_file_size_mb << 20,
                "open_files": config.max_open_files,
                "processes": processes,
            },
            "max_output_bytes": config.max_output_bytes,
            "disk_mb": config.max_disk_mb,
            "cgroup_name": self._cgroup_name() if config.use_cgroups else None,
            "preload": list(config.preload_modules),
            "env": dict(_PROGRAM_ENV),
            "timeout": config.timeout,
            "wall_timeout": config.wall_timeout_for(config.timeout),
        }

    def _cgroup_name(self) -> str:
        # a claimed uid is ours alone, so its name can be reused after a crash; otherwise the name is per process
        if self.uid is not None:
            return f"trl-mos-sandbox-uid{self.uid}"
        return f"trl-mos-sandbox-pid{os.getpid()}-{id(self):x}"

    def _spawn(self, mode: list[str]) -> tuple[subprocess.Popen, socket.socket]:
        config = self.config
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        command = [config.python_executable or sys.executable, "-I"]
        if not config.site_packages:
            command.append("-S")
        command += ["-X", "utf8", _RUNTIME_PATH, *mode, str(theirs.fileno())]
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(theirs.fileno(),),
                env=dict(_PROGRAM_ENV),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return process, ours

    def start(self) -> None:
        config = self.config
        if os.geteuid() == 0 and config.drop_privileges:
            self.uid, self._lock_fd = _claim_uid(config.uid_range)
        try:
            self.process, self._socket = self._spawn([])
            self.judge, self._judge_socket = self._spawn(["--judge"])
            setup = self._setup_message()
            runtime.send_json(self._socket.fileno(), setup)
            runtime.send_json(self._judge_socket.fileno(), setup)
            ready = runtime.recv_json(self._socket.fileno(), deadline=time.monotonic() + 120)
            judge_ready = runtime.recv_json(self._judge_socket.fileno(), deadline=time.monotonic() + 120)
        except Exception as exc:
            ready = judge_ready = f"{type(exc).__name__}: {exc}"
        if not isinstance(ready, dict) or not ready.get("ready") or not isinstance(judge_ready, dict):
            self.stop()
            raise SandboxUnavailableError(f"The sandbox fork server did not start (answer: {ready!r}).")
        self.capabilities = ready["capabilities"]
        probe = self.capabilities.get("probe") or {}
        if self.uid is not None and not probe.get("imports", False):
            self.stop()
            raise SandboxUnavailableError(
                f"Programs running under the sandbox uid cannot import the Python standard library of "
                f"{sys.executable} (a parent directory is closed to other users and no mount namespace is available to "
                "work around it). Install Python in a world-readable place, or set "
                "`SandboxConfig(drop_privileges=False)` (weaker isolation)."
            )
        self.runs = 0
        with self._stop_lock:  # `close()` sets `closed` before it stops us: either it saw this server, or we see it
            if self.closed:
                self._stop()
                raise SandboxUnavailableError("The sandbox was closed while a worker slot was starting.")

    def request(self, job: dict, judge_job: dict | None = None) -> tuple[dict, dict | None]:
        """Runs one job (with `judge_job`: an assert-style test, whose verdict comes second); restarts the servers
        when they misbehave. Never raises for a program's behaviour."""
        if self.closed:
            return _sandbox_error("the sandbox was closed", judge_job)
        if (
            self.process is None
            or self.process.poll() is not None
            or self.judge.poll() is not None
            or self.runs >= self.config.max_runs_per_worker
        ):
            self.stop()
            try:
                self.start()
            except SandboxUnavailableError:
                if self.closed:
                    return _sandbox_error("the sandbox was closed", judge_job)
                raise
        self.runs += 1
        wall = job["wall_timeout"]
        channel: list[int] = []
        try:
            if judge_job is not None:
                call_r, call_w = os.pipe()
                result_r, result_w = os.pipe()
                channel = [call_r, call_w, result_r, result_w]
                runtime.send_json(self._socket.fileno(), {**job, "fds": 2}, fds=(call_r, result_w))
                runtime.send_json(self._judge_socket.fileno(), {**judge_job, "fds": 2}, fds=(call_w, result_r))
                for fd in channel:
                    os.close(fd)
                channel = []
            else:
                runtime.send_json(self._socket.fileno(), job)
            answer = runtime.recv_json(self._socket.fileno(), deadline=time.monotonic() + wall + 30)
            if not isinstance(answer, dict):
                raise EOFError("the fork server closed its socket")
            verdict = None
            if judge_job is not None:
                verdict = runtime.recv_json(self._judge_socket.fileno(), deadline=time.monotonic() + wall + 30)
                if not isinstance(verdict, dict):
                    raise EOFError("the judge server closed its socket")
            return answer, verdict
        except Exception as exc:  # broken pipe, end of file, timeout, garbled message: replace the servers
            for fd in channel:
                os.close(fd)
            self.stop()
            return _sandbox_error(f"the fork server failed ({type(exc).__name__}: {exc})", judge_job)

    def stop(self) -> None:
        """Stops both servers and returns once every process they started is gone: each is a child subreaper that, on
        SIGTERM or end of input, kills and reaps its whole tree before it exits; a server that does not exit in time is
        killed with its process group, and the sandbox uid is swept. A second caller waits for the first."""
        with self._stop_lock:
            self._stop()

    def _stop(self) -> None:
        for sock in (self._socket, self._judge_socket):
            if sock is not None:
                sock.close()
        self._socket = self._judge_socket = None
        for process in (self.process, self.judge):
            if process is not None and process.poll() is None:
                try:
                    process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in (self.process, self.judge):
            if process is None:
                continue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        self.process = self.judge = None
        if self.config.use_cgroups and os.geteuid() == 0:
            runtime.remove_cgroups_named(self._cgroup_name())  # the servers remove them; this covers a killed one
        if self.uid is not None:
            # normally nothing is left; this sweep covers a server that had to be killed
            command = [self.config.python_executable or sys.executable, "-I", "-S", _RUNTIME_PATH, "--kill-uid"]
            subprocess.run([*command, str(self.uid)], env=dict(_PROGRAM_ENV), check=False, timeout=60)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.uid = None


# ----------------------------------------------------------------------------------------------------------------------
# Sandbox
# ----------------------------------------------------------------------------------------------------------------------


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _failure_of_run(answer: dict, timeout: float, wall_timeout: float) -> tuple[str, str] | None:
    """The (status, reason) of a run that did not get to the end, or None."""
    if "error" in answer:
        return "error", answer["error"]
    if answer.get("timed_out") == "wall":
        return "timeout", f"timed out after {wall_timeout:g} s of wall-clock time"
    if answer.get("timed_out"):
        return "timeout", f"timed out after {timeout:g} s of CPU time"
    report = answer.get("report", "")
    if report.startswith("SETUP "):
        return "error", f"sandbox set-up failed: {report[6:]}"
    if answer.get("signal") is not None:
        name = _signal_name(answer["signal"])
        hint = " (CPU time limit)" if name in ("SIGXCPU", "SIGKILL") else ""
        return "failed", f"killed by {name}{hint}"
    return None


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class Sandbox:
    """Runs programs against tests in isolated processes, several at once.

    The worker slots (fork servers) start on first use and stay up until [`~Sandbox.close`] (also called at exit).
    A sandbox can be used from several threads; each run takes a free slot.

    Args:
        config ([`SandboxConfig`], *optional*):
            Limits and isolation settings. `None` uses the defaults.

    Example:

    ```python
    >>> from trl_mos.verifiers import ProgramCheck, Sandbox
    >>> with Sandbox() as sandbox:
    ...     result = sandbox.check([ProgramCheck("def f(x):\\n    return x + 1\\n",
    ...                                          test="def check(c):\\n    assert c(1) == 2\\n", entry_point="f")])[0]
    >>> result.passed
    True
    ```
    """

    def __init__(self, config: SandboxConfig | None = None):
        if os.name != "posix":
            raise SandboxUnavailableError("The code sandbox needs a POSIX system (Linux for full isolation).")
        self.config = config if config is not None else SandboxConfig()
        self._lock = threading.Lock()
        self._slots: queue.SimpleQueue[_ForkServer] | None = None
        self._all_slots: list[_ForkServer] = []
        self._tmp_root: str | None = None
        self._owner_pid: int | None = None
        self._closed = False

    # -- life cycle ----------------------------------------------------------------------------------------------------

    def _ensure_started(self) -> queue.SimpleQueue:
        with self._lock:
            if self._closed:
                raise RuntimeError("This sandbox is closed.")
            if self._slots is not None and self._owner_pid != os.getpid():
                # we are in a forked child: the parent's fork servers are not ours to talk to
                self._slots, self._all_slots, self._tmp_root = None, [], None
            if self._slots is None:
                self._tmp_root = tempfile.mkdtemp(prefix="trl-mos-sandbox-", dir=self.config.tmp_dir)
                os.chmod(self._tmp_root, 0o711)
                self._owner_pid = os.getpid()
                self._slots = queue.SimpleQueue()
                for _ in range(self.config.workers):
                    slot = _ForkServer(self.config, self._tmp_root)
                    self._all_slots.append(slot)
                    self._slots.put(slot)
                _live_sandboxes.add(self)
            return self._slots

    @property
    def capabilities(self) -> dict[str, Any]:
        """What the isolation achieves on this machine, as measured by a probe program run inside the sandbox:
        `network_namespace`, `pid_namespace`, `mount_namespace`, `private_proc`, `minimal_root`, `private_tmp`,
        `readonly_root`, `cgroup`, `server_in_cgroup` (runs are forked inside the slot's cgroups and killed with their
        PID namespace), `cgroup_kill` (runs are killed with `cgroup.kill` instead), `no_new_privs`, `user_namespace`,
        plus `uid` (the uid programs run under, `None` when not dropped) and `probe` (what the probe saw from the
        inside: its uid, visible processes, whether `/` is writable, whether a socket could reach the loopback
        device)."""
        slots = self._ensure_started()
        slot = slots.get()
        try:
            if slot.process is None:
                slot.start()
            return {**slot.capabilities, "uid": slot.uid}
        finally:
            slots.put(slot)

    @property
    def uids(self) -> list[int]:
        """The uids programs currently run under (one per started worker slot; empty when privileges are not dropped),
        e.g. to check that no process of theirs is left."""
        return [slot.uid for slot in self._all_slots if slot.uid is not None]

    def close(self) -> None:
        """Stops the fork and judge servers and removes the temporary directories. Returns only once every process the
        sandbox started (servers, supervisors, programs and whatever they forked) is gone."""
        with self._lock:
            if self._owner_pid == os.getpid():
                for slot in self._all_slots:
                    slot.closed = True  # before stopping: a check in flight must not start the servers again
                for slot in self._all_slots:
                    slot.stop()
                if self._tmp_root is not None:
                    shutil.rmtree(self._tmp_root, ignore_errors=True)
            self._slots, self._all_slots, self._tmp_root = None, [], None
            self._closed = True
            _live_sandboxes.discard(self)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- running -------------------------------------------------------------------------------------------------------

    def run(self, program: str, stdin: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Runs a program once as `__main__` and returns what happened (low level; most code wants [`~Sandbox.check`]).

        Args:
            program (`str`): the program.
            stdin (`str`, *optional*): its standard input (empty when `None`).
            timeout (`float`, *optional*): overrides the configured timeout.

        Returns:
            `dict`: `returncode` (`int` or `None`), `signal` (`int` or `None`), `timed_out` (`bool`), `stdout` and
            `stderr` (`str`, capped), `stdout_truncated` (`bool`), `duration` (`float`), and `error` (`str`) when
            the sandbox itself failed.
        """
        timeout = timeout or self.config.timeout
        answer = self._request(self._stdio_job(program, stdin or "", timeout))[0]
        for key in ("stdout", "stderr"):
            if key in answer:
                answer[key] = _decode(answer[key])
        answer["timed_out"] = bool(answer.get("timed_out"))
        answer.pop("report", None)
        return answer

    def _stdio_job(self, program: str, stdin: str, timeout: float) -> dict:
        wall = self.config.wall_timeout_for(timeout)
        return {"kind": "stdio", "program": program, "stdin": stdin, "timeout": timeout, "wall_timeout": wall}

    def _request(self, job: dict, judge_job: dict | None = None) -> tuple[dict, dict | None]:
        slots = self._ensure_started()
        slot = slots.get()
        try:
            return slot.request(job, judge_job)
        except SandboxUnavailableError:
            raise
        except Exception as exc:  # starting a fork server failed: report it for this program, keep going
            return _sandbox_error(f"{type(exc).__name__}: {exc}", judge_job)
        finally:
            slots.put(slot)

    def _check_one(self, check: ProgramCheck) -> CheckResult:
        timeout = check.timeout or self.config.timeout
        program = check.program if isinstance(check.program, str) else None
        if program is None:
            return CheckResult(False, "failed", "the program is not a string")
        if len(program) > self.config.max_program_bytes or (
            len(program.encode("utf-8", "surrogatepass")) > self.config.max_program_bytes
        ):
            return CheckResult(False, "failed", f"the program is longer than {self.config.max_program_bytes} bytes")
        if check.test is not None:
            return self._check_assert(check, program, timeout)
        if check.inputs is not None or check.outputs is not None:
            return self._check_stdio(check, program, timeout)
        return CheckResult(False, "failed", "malformed test: neither `test` nor `inputs`/`outputs` given")

    def _check_assert(self, check: ProgramCheck, program: str, timeout: float) -> CheckResult:
        if not isinstance(check.test, str) or not check.test.strip():
            return CheckResult(False, "failed", "malformed test: the test code is empty", tests_total=1)
        if check.entry_point is not None and (not isinstance(check.entry_point, str) or not check.entry_point):
            return CheckResult(False, "failed", "malformed test: `entry_point` must be a function name", tests_total=1)
        if check.context is not None and not isinstance(check.context, str):
            return CheckResult(False, "failed", "malformed test: `context` must be code (a string)", tests_total=1)
        wall = self.config.wall_timeout_for(timeout)
        # the program goes to the fork server, the test to the judge server: no process that runs the program ever
        # holds the test, and the verdict is the judge's
        job = {"kind": "assert", "program": program, "timeout": timeout, "wall_timeout": wall}
        judge_job = {
            "test": check.test,
            "entry_point": check.entry_point,
            "context": check.context,
            "wall_timeout": wall,
            "max_value_bytes": self.config.max_value_bytes,
            "address_space": None if self.config.memory_limit_mb is None else self.config.memory_limit_mb << 20,
        }
        answer, verdict = self._request(job, judge_job)
        stdout, stderr = _decode(answer.get("stdout", b"")), _decode(answer.get("stderr", b""))
        duration = answer.get("duration", 0.0)
        failure = _failure_of_run(answer, timeout, wall)
        text = str((verdict or {}).get("verdict", "FAIL sandbox error: no verdict"))
        if failure is None and text == "PASS":
            return CheckResult(True, "passed", "", 1, 1, stdout, stderr, duration)
        if failure is None or (failure[0] == "failed" and text.startswith("FAIL malformed test")):
            failure = ("failed", text[5:] if text.startswith("FAIL ") else text)
        return CheckResult(False, failure[0], failure[1], 0, 1, stdout, stderr, duration)

    def _check_stdio(self, check: ProgramCheck, program: str, timeout: float) -> CheckResult:
        inputs, outputs = check.inputs, check.outputs
        if inputs is None or outputs is None:
            return CheckResult(False, "failed", "malformed test: `inputs` and `outputs` must both be given")
        if isinstance(inputs, str) or isinstance(outputs, str):
            return CheckResult(False, "failed", "malformed test: `inputs` and `outputs` must be lists of strings")
        inputs, outputs = list(inputs), list(outputs)
        total = len(inputs)
        if len(inputs) != len(outputs):
            return CheckResult(
                False, "failed", f"malformed test: {len(inputs)} inputs but {len(outputs)} outputs", tests_total=total
            )
        if total == 0:
            return CheckResult(False, "failed", "malformed test: no test cases", tests_total=0)
        bad = [
            i
            for i, (x, y) in enumerate(zip(inputs, outputs, strict=True))
            if not isinstance(x, str) or not isinstance(y, str)
        ]
        if bad:
            return CheckResult(False, "failed", f"malformed test: case {bad[0]} is not a pair of strings", 0, total)
        duration, stdout, stderr = 0.0, "", ""
        for index, (stdin, expected) in enumerate(zip(inputs, outputs, strict=True)):
            answer = self._request(self._stdio_job(program, stdin, timeout))[0]
            duration += answer.get("duration", 0.0)
            stdout, stderr = _decode(answer.get("stdout", b"")), _decode(answer.get("stderr", b""))
            failure = _failure_of_run(answer, timeout, self.config.wall_timeout_for(timeout))
            if failure is None and answer.get("stdout_truncated"):
                failure = ("failed", f"the output exceeded {self.config.max_output_bytes} bytes")
            if failure is None and answer.get("returncode") != 0:
                last_line = stderr.strip().splitlines()[-1:] or [""]
                failure = ("failed", f"exited with code {answer.get('returncode')} {last_line[0][:200]}".rstrip())
            if failure is None and not outputs_match(stdout, expected):
                failure = ("failed", f"wrong output: expected {expected.strip()[:80]!r}, got {stdout.strip()[:80]!r}")
            if failure is not None:
                status, reason = failure
                return CheckResult(
                    False, status, f"test case {index}: {reason}", index, total, stdout, stderr, duration
                )
        return CheckResult(True, "passed", "", total, total, stdout, stderr, duration)

    def check(self, checks: Sequence[ProgramCheck], show_progress: bool | None = None) -> list[CheckResult]:
        """Runs each program against its tests, in parallel over the worker slots.

        A program passes only if every test ran to the end and passed: exiting early (whatever the exit code),
        printing a success marker, killing its parent or crashing fails it; so do a timeout and exceeding a limit.
        Standard-input cases of one program run one after the other and stop at the first failure.

        Args:
            checks (`list[ProgramCheck]`): the programs and their tests.
            show_progress (`bool`, *optional*): overrides [`SandboxConfig.show_progress`].

        Returns:
            `list[CheckResult]`: one per check, in order.
        """
        checks = list(checks)
        results: list[CheckResult | None] = [None] * len(checks)
        if not checks:
            return []
        self._ensure_started()
        enabled = self.config.show_progress if show_progress is None else show_progress
        with progress_bar(len(checks), "Running programs", enabled and len(checks) >= 16) as bar:
            if len(checks) == 1 or self.config.workers == 1:
                for i, item in enumerate(checks):
                    results[i] = self._check_one(item)
                    bar.update(1)
            else:
                with ThreadPoolExecutor(max_workers=min(self.config.workers, len(checks))) as executor:
                    futures = {executor.submit(self._check_one, item): i for i, item in enumerate(checks)}
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        bar.update(1)
        return results  # type: ignore[return-value]

    def __del__(self):
        try:
            if not self._closed and self._owner_pid == os.getpid():
                self.close()
        except Exception:
            pass


# sandboxes that have started fork servers; closed at interpreter exit
_live_sandboxes: weakref.WeakSet[Sandbox] = weakref.WeakSet()


def _close_all() -> None:
    for sandbox in list(_live_sandboxes):
        sandbox.close()


atexit.register(_close_all)


def replace_config(config: SandboxConfig | None, **overrides: Any) -> SandboxConfig:
    """A copy of `config` (or of the defaults) with the given fields replaced; `None` values are ignored.

    Args:
        config ([`SandboxConfig`], *optional*): the starting configuration (not modified).
        **overrides: field values to change.

    Returns:
        [`SandboxConfig`]: the new configuration.

    Example:

    ```python
    >>> replace_config(None, timeout=3.0).timeout
    3.0
    ```
    """
    overrides = {key: value for key, value in overrides.items() if value is not None}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(SandboxConfig)})
    if unknown:
        raise TypeError(f"Unknown sandbox settings {unknown}; see `SandboxConfig` for the valid ones.")
    return dataclasses.replace(config if config is not None else SandboxConfig(), **overrides)
