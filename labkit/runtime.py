"""The runtime of one lab: its processes and files, kept apart from the Lab a notebook holds.

What is here: the lab root's command line (the keeper or labkit.unshare above the pause), the
_Session that starts it, stops it and waits for it, the lab's folder (the events file and the
root's log) with the sweep of what killed kernels left behind, the finalizer that ends all of it,
and the events file's reader with its record, ReapEvent (labkit.pod reads a pod's the same way).
It is apart from labkit.lab because a weakref finalizer must end a lab without holding its Lab;
named `runtime`, not `session`, because a session is something else in this course (setsid(2):
the launcher starts in a new one).

The launcher is what still reaps when the root itself is killed (SIGKILL: it drains nothing).
In a PID-namespace lab the kernel does it: PID 1's death kills everything inside and its
exit waits until all of it is reaped (pid_namespaces(7); kernel/pid_namespace.c
zap_pid_ns_processes). A subreaper lab has no such rule: its orphans, and the zombies of
parents that die with the agent, would go to the next subreaper up or to PID 1, which on
Binder never reaps. So a second pause, the keeper, stands above the root as a child subreaper
(prctl(2) PR_SET_CHILD_SUBREAPER): everything the dead root leaves comes to it, and its drain
kills it and reaps it with its own waitpid. Not this process: a kernel that were a subreaper
would adopt the orphans of everything it runs (a notebook's `!cmd &`, the doctor's test
orphan, which is how the doctor measures PID 1), changing what the course shows.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import select
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from typing import NamedTuple

from labkit import budget, linux, procfs, programs
from labkit.labtable import LabTable
from labkit.wire import Channel

CLOSE_TIMEOUT = 10.0
RUNTIME_PREFIX = "labkit-lab-"  # a lab's folder: + the owner's linux.owner_tag() + "-" + random


class ReapEvent(NamedTuple):
    """The lab root reaped a process: its PID, exit status (or -signal) and when."""

    pid: int | None   # host PID (None: a process the lab did not make, in a PID namespace)
    status: int
    time: float       # time.time()
    monotonic: float  # time.monotonic(), comparable with Snapshot.time
    ns_pid: int       # PID inside the lab's PID namespace (the host PID in subreaper mode)


def read_events(path: str, offset: int) -> tuple[int, list[dict]]:
    """The reap events a pause wrote to `path` (--events) after `offset`: (new offset, events).
    A line still being written is left for the next call."""
    complete = event_lines(path, offset)
    return offset + len(complete), parse_events(complete)


def event_lines(path: str, offset: int) -> bytes:
    """The complete lines of `path` after `offset`, unparsed."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return b""
    return data[:data.rfind(b"\n") + 1]


def parse_events(lines: bytes) -> list[dict]:
    return [json.loads(line) for line in lines.splitlines()]


class _Session:
    """The processes and files of one lab; kept apart from Lab so a finalizer can end them."""

    def __init__(self, mode: str, reap: bool, pid_budget: budget.Budget | None = None) -> None:
        self.mode = mode
        self.budget = pid_budget  # released (its cgroup removed) once the lab is drained
        budget_options = [] if pid_budget is None else pid_budget.root_options(mode)
        # Named after us, so that the next lab can remove it if we are killed (sweep_leftovers).
        self.dir = tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{linux.owner_tag()}-")
        self.root_pid: int | None = None    # set once the agent names the root
        self.root_pidfd: int | None = None
        self.events_path = os.path.join(self.dir, "events.jsonl")
        self.log_path = os.path.join(self.dir, "root.log")
        env = programs.environment()
        code = write_parent_code(self.dir)
        if code is not None:
            env[programs.PARENT_CODE] = code
        to_agent_r, to_agent_w = os.pipe()
        from_agent_r, from_agent_w = os.pipe()
        command = (_root_command(mode, reap, self.events_path, budget_options) + ["--"]
                   + programs.agent(to_agent_r, from_agent_w))
        try:
            with open(self.log_path, "wb") as log:
                # A new session: a terminal's Ctrl-C reaches the kernel, which closes the lab,
                # rather than killing the root behind its back.
                self.launcher = subprocess.Popen(
                    command, pass_fds=(to_agent_r, from_agent_w), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, env=env,
                    start_new_session=True)
        except BaseException:
            for fd in (to_agent_r, to_agent_w, from_agent_r, from_agent_w):
                os.close(fd)
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        os.close(to_agent_r)
        os.close(from_agent_w)
        self.channel = Channel(from_agent_r, to_agent_w)
        self.closed = False

    def know_root(self, pid: int) -> None:
        self.root_pid = pid
        self.root_pidfd = procfs.pidfd_open(pid)

    def stop_root(self) -> None:
        """SIGTERM to the root itself, so that its drain reports what it reaps (lab.events).
        Through a pidfd where the kernel has them: a root already gone, its PID reused, is never
        hit. A root that is gone needs nothing: its launcher is ending by itself."""
        if self.root_pid is None:  # never started: stop the launcher, which drains
            self.launcher.terminate()
        elif self.root_pidfd is not None:
            procfs.pidfd_kill(self.root_pidfd, signal.SIGTERM)
        elif (info := procfs.read_stat(self.root_pid)) and info.ppid == self.launcher.pid:
            os.kill(self.root_pid, signal.SIGTERM)  # no pidfds (Linux < 5.3): still its child

    def close(self, meanwhile: Callable[[], object] | None = None) -> int | None:
        """Stop the root (it drains the lab), wait for its launcher, which exits after it (the
        keeper reaps what a killed root left first). `meanwhile` runs while the root drains
        (the kernel side's own cleanup: it waits anyway). Idempotent: the launcher's exit
        status."""
        if self.closed:
            return self.launcher.returncode
        self.closed = True
        try:
            self.stop_root()
            if meanwhile is not None:
                meanwhile()
            for stop in (self.launcher.terminate, self.launcher.kill):
                if self.wait_launcher(CLOSE_TIMEOUT):
                    break
                stop()  # the keeper drains on SIGTERM; SIGKILL ends a namespace
            self.launcher.wait()
        finally:
            self.channel.close()
            if self.root_pidfd is not None:
                os.close(self.root_pidfd)
        return self.launcher.returncode

    def wait_launcher(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the launcher to exit; whether it did. On its pidfd, which
        becomes readable when it exits (pidfd_open(2)): Popen.wait(timeout) polls instead,
        with sleeps that grow to 50 ms, a latency added to every close. Opened once poll()
        has found it not yet reaped: until we wait for it, its PID is not handed out again."""
        if self.launcher.poll() is not None:
            return True
        pidfd = procfs.pidfd_open(self.launcher.pid)
        if pidfd is None:  # Linux < 5.3, or already reaped
            try:
                self.launcher.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(int(timeout * 1000)):
                return False
        finally:
            os.close(pidfd)
        self.launcher.wait()
        return True

    def remove_files(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def root_log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


_parent_pyc: dict[tuple[int, int], bytes] = {}  # labkit.parent compiled, by (mtime, size)


def write_parent_code(folder: str) -> str | None:
    """Write labkit.parent, compiled, as `folder`/parent.pyc for the lab's agent to run; its path,
    or None if it cannot be (the parent then runs from its source).

    A script given as source is compiled at each start (an imported module's .pyc is cached; a
    script's never is, and PYTHONDONTWRITEBYTECODE keeps even the modules' from disk): the
    compiler's memory, some 190 pages, stays touched in the parent, and fork copies its page table
    entries into every child, which unmaps them again when it dies. `python file.pyc` runs the
    code object without compiling (it checks the magic number; the header is importlib's).
    optimize=2: no docstrings in the parent's memory either.
    """
    source = programs.parent_source()
    try:
        info = os.stat(source)
        key = (info.st_mtime_ns, info.st_size)  # an edited source is compiled again
        if key not in _parent_pyc:
            with open(source, "rb") as f:
                code = compile(f.read(), source, "exec", dont_inherit=True, optimize=2)
            header = importlib.util.MAGIC_NUMBER + bytes(12)  # flags, mtime, size: unused here
            _parent_pyc.clear()
            _parent_pyc[key] = header + marshal.dumps(code)
        path = os.path.join(folder, "parent.pyc")
        with open(path, "wb") as f:
            f.write(_parent_pyc[key])
        return path
    except (OSError, SyntaxError):
        return None


def _root_command(mode: str, reap: bool, events: str,
                  budget_options: Sequence[str] = ()) -> list[str]:
    """The lab root's command line behind its launcher: the pause as a subreaper under the
    keeper, or as PID 1 of a namespace. `budget_options` (--cgroup DIR or --nproc N) put the
    root, not its launcher, under a PID budget before it forks."""
    pause = programs.pause("--drain", "--events", events, *budget_options)
    if not reap:
        pause.append("--no-reap")
    if mode == "subreaper":
        # The keeper (see the module's docstring) dies with us and drains; the root, its
        # child, gets no --owner: its parent is the keeper, not us.
        return programs.keeper(os.getpid()) + ["--"] + pause + ["--subreaper"]
    # PID 1 of a new PID namespace, in a new user namespace when we are not root (the only way
    # an unprivileged user may create one), with a /proc of its own for `ps` inside. Its
    # launcher dies with us (PR_SET_PDEATHSIG), and takes the namespace with it.
    user = ["--user"] if os.geteuid() != 0 else []
    return programs.unshare("--pid", "--mount-proc", "--owner", str(os.getpid()), *user,
                            "--", *pause)


def sweep_leftovers() -> list[str]:
    """Remove what labs of an owner that has ended left behind: their folders (events, log) and
    their PID-budget cgroups. A kernel killed with SIGKILL never runs its finalizers; its labs'
    processes drain by themselves (PR_SET_PDEATHSIG), their files and cgroups stay until now.
    Only names made by this labkit (with the owner's PID and start time), only our own folders,
    never a live owner's. The paths removed."""
    top = tempfile.gettempdir()
    try:
        names = os.listdir(top)
    except OSError:
        names = []
    removed = []
    for name in names:
        path = os.path.join(top, name)
        if linux.owner_gone(name, RUNTIME_PREFIX) and _own_folder(path):
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.lexists(path):
                removed.append(path)
    return removed + budget.sweep()


def _own_folder(path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()


def _finalize(session: _Session, reader: LabTable) -> None:
    try:
        session.close(meanwhile=reader.close)
    finally:
        reader.close()
        session.remove_files()
        if session.budget is not None:  # after close: rmdir needs the lab's cgroup empty
            session.budget.release()
