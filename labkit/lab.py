"""Lab and Parent: the controller a notebook holds over a tree of real processes.

    kernel (this process; threaded, never forks lab processes)
     └─ launcher: the keeper, python -m labkit.pause --subreaper --drain --owner KERNEL
        (labkit.unshare in a PID-namespace lab)
         └─ lab root: python -m labkit.pause --subreaper --drain   (orphans come here)
             └─ agent: python -m labkit.agent                     (forks the parents)
                 └─ parent (a policy)  └─ children

The kernel starts the launcher with subprocess and talks to the agent over two pipes. Closing
the lab (or leaving `with`, or the interpreter exiting, or this process dying: PR_SET_PDEATHSIG)
makes the root kill and reap every lab process before it exits.

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

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import NamedTuple

from labkit import budget, checks, limits, linux, procfs, programs, unshare
from labkit.errors import (
    AgentError,
    BudgetUnavailable,
    CapacityError,
    ForkRefused,
    LabClosedError,
    LabError,
    NamespaceUnavailable,
    ParentGoneError,
)
from labkit.labtable import LabTable
from labkit.observe import (
    Recorder,
    Snapshot,
    Tally,
    count_lab,
    take_snapshot,
    take_tally,
    with_namespace_pids,
)
from labkit.parent import POLICIES
from labkit.wire import Channel

MODES = ("auto", "subreaper", "pid-namespace")
MAX_LIFETIME = 3600.0   # every child's life is bounded: nothing of a lab outlives an hour
START_TIMEOUT = 10.0    # seconds for the root and agent to come up (a slow Binder start)
CLOSE_TIMEOUT = 10.0
RUNTIME_PREFIX = "labkit-lab-"  # a lab's folder: + the owner's linux.owner_tag() + "-" + random


class ReapEvent(NamedTuple):
    """The lab root reaped a process: its PID, exit status (or -signal) and when."""

    pid: int | None   # host PID (None: a process the lab did not make, in a PID namespace)
    status: int
    time: float       # time.time()
    monotonic: float  # time.monotonic(), comparable with Snapshot.time
    ns_pid: int       # PID inside the lab's PID namespace (the host PID in subreaper mode)


class KillReport(NamedTuple):
    """What kill -9 did to a zombie (Lab.kill_zombie): the kernel's answer, read after it."""

    pid: int            # host PID of the zombie
    ns_pid: int         # its PID inside the lab's PID namespace (the host PID in subreaper mode)
    ppid: int           # its parent, the only one whose wait() can remove it
    sent: bool          # False: it was reaped before the signal could reach it
    still_zombie: bool  # read after the signal: a zombie has nothing left to kill (signal(7))


def read_events(path: str, offset: int) -> tuple[int, list[dict]]:
    """The reap events a pause wrote to `path` (--events) after `offset`: (new offset, events).
    A line still being written is left for the next call."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset, []
    complete = data[:data.rfind(b"\n") + 1]
    return offset + len(complete), [json.loads(line) for line in complete.splitlines()]


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
                    stdout=log, stderr=log, env=programs.environment(),
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

    def close(self) -> int | None:
        """Stop the root (it drains the lab), wait for its launcher, which exits after it (the
        keeper reaps what a killed root left first). Idempotent: the launcher's exit status."""
        if self.closed:
            return self.launcher.returncode
        self.closed = True
        try:
            self.stop_root()
            for stop in (self.launcher.terminate, self.launcher.kill):
                try:
                    self.launcher.wait(CLOSE_TIMEOUT)
                    break
                except subprocess.TimeoutExpired:
                    stop()  # the keeper drains on SIGTERM; SIGKILL ends a namespace
            self.launcher.wait()
        finally:
            self.channel.close()
            if self.root_pidfd is not None:
                os.close(self.root_pidfd)
        return self.launcher.returncode

    def remove_files(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def root_log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


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
        session.close()
    finally:
        reader.close()
        session.remove_files()
        if session.budget is not None:  # after close: rmdir needs the lab's cgroup empty
            session.budget.release()


class Lab:
    """A tree of real processes under its own init (the Python pause), that cannot leak.

    Use it as a context manager, or call close(); it is also closed when the interpreter exits,
    and its root drains the lab by itself if this process dies (PR_SET_PDEATHSIG).

    `pid_limit=N`: a PID budget the kernel enforces (labkit.budget): the lab's processes,
    zombies included, hold at most N PIDs, and a fork past it fails with EAGAIN (ForkRefused).
    `lab.limit_mechanism` says what enforces it: a cgroup's pids.max, or RLIMIT_NPROC.
    """

    def __init__(self, mode: str = "auto", max_procs: int = limits.DEFAULT_MAX_PROCS,
                 reap: bool = True, pid_limit: int | None = None) -> None:
        mode = checks.choice(mode, "mode", MODES)
        ceiling, why = limits.ceiling()
        self.max_procs = checks.count(max_procs, "max_procs", low=limits.MIN_PROCS,
                                      high=ceiling, why_high=f"on this machine now: {why}")
        self.reap = checks.flag(reap, "reap")
        self.pid_limit = None if pid_limit is None else budget.check_limit(pid_limit,
                                                                           self.max_procs)
        self._lock = threading.RLock()
        self._parents: dict[int, Parent] = {}
        self._actions: list[tuple[float, str]] = []
        self._events: list[ReapEvent] = []
        self._events_offset = 0
        self._recorders: list[Recorder] = []
        self._next_id = 0
        self.mode_reason = ""  # why "auto" chose what it chose
        sweep_leftovers()
        # The mechanism is chosen (a cgroup made) before any process: BudgetUnavailable if none.
        self.budget = None if self.pid_limit is None else budget.plan(self.pid_limit)
        try:
            if mode == "auto":
                try:
                    hello = self._start("pid-namespace")
                except NamespaceUnavailable as exc:
                    self.mode_reason = str(exc)
                    hello = self._start("subreaper")
            else:
                hello = self._start("subreaper" if mode == "auto" else mode)
        except BaseException:
            if self.budget is not None:
                self.budget.release()
            raise
        self.mode: str = self._session.mode
        self.limit_mechanism = None if self.budget is None else self.budget.describe()
        self.root_pid: int = hello["root"]
        self.agent_pid: int = hello["agent"]
        self._session.know_root(self.root_pid)
        # Namespace PID -> host PID of what the lab made: the root reports PIDs as it sees them.
        self._host_pid: dict[int, int] = {hello["ns_pid"]: self.agent_pid}
        self.started = time.monotonic()

    def _start(self, mode: str) -> dict:
        """Start the root and the agent in `mode`; the agent's hello (its and the root's PIDs)."""
        self._session = _Session(mode, self.reap, self.budget)
        self._reader = LabTable()
        self._finalizer = weakref.finalize(self, _finalize, self._session, self._reader)
        try:
            hello = self._session.channel.receive(START_TIMEOUT)
        except TimeoutError:
            hello = None
        except BaseException:
            self._finalizer()
            raise
        if hello and hello.get("ok"):
            return hello
        # EOF on the pipe comes as the root exits, a moment before wait(2) can report its
        # status: wait for it, or a namespace refusal would pass for a failure to start.
        try:
            code = self._session.launcher.wait(1.0)
        except subprocess.TimeoutExpired:
            code = None
        log = self._session.root_log().strip()
        self._finalizer()
        if mode == "pid-namespace" and code in unshare.REFUSED:
            said = log.splitlines()[-1] if log else f"labkit.unshare exited with status {code}"
            raise NamespaceUnavailable(
                f"a PID-namespace lab is not possible here: {said}. What still "
                "works: Lab(mode='subreaper'), where the lab root adopts orphans as a child "
                "subreaper (prctl(2) PR_SET_CHILD_SUBREAPER)")
        if code == budget.ROOT_REFUSED and self.budget is not None:
            raise BudgetUnavailable(f"the lab root could not enter its PID budget "
                                    f"({self.budget.mechanism}): {log}")
        why = (f"its root exited with status {code}" if code is not None else
               f"it did not start within {START_TIMEOUT:g} s")
        raise AgentError(f"the lab could not start: {why}; its root said: {log or '(nothing)'}")

    # --- requests ---------------------------------------------------------------------------

    def _request(self, message: dict, timeout: float = 30.0) -> dict:
        """Send one request to the agent and wait for its reply (replies carry the request id,
        so one abandoned by a KeyboardInterrupt is skipped, not mistaken for the next)."""
        with self._lock:
            self._check_open()
            self._next_id += 1
            message["id"] = self._next_id
            channel = self._session.channel
            try:
                channel.send(message)
                deadline = time.monotonic() + timeout
                while True:
                    reply = channel.receive(max(0.0, deadline - time.monotonic()))
                    if reply is None:
                        raise AgentError(self._died("the lab's agent"))
                    if reply.get("id") == message["id"]:
                        return reply
            except TimeoutError:
                raise AgentError(f"the lab's agent did not answer within {timeout:g} s "
                                 f"(request {message['op']!r})") from None
            except BrokenPipeError:
                raise AgentError(self._died("the lab's agent")) from None

    def _died(self, who: str) -> str:
        code = self._session.launcher.poll()
        if code is None:
            return f"{who} ended unexpectedly; close the lab and start a new one"
        return (f"{who} ended: the lab root exited with status {code}; close the lab and start "
                f"a new one. Root's log: {self._session.root_log().strip()}")

    def _check_open(self) -> None:
        if self._session.closed:
            raise LabClosedError("this lab is closed: its processes are gone. "
                                 "Start a new one with labkit.Lab()")

    def _note(self, label: str) -> None:
        self._actions.append((time.monotonic(), label))

    def _room_for(self, n: int) -> None:
        """Refuse a request that would take the lab past max_procs, before anything forks."""
        have = count_lab(self.root_pid, self._reader)
        if have + n > self.max_procs:
            raise CapacityError(
                f"this lab has {have} processes (zombies included) and max_procs={self.max_procs}:"
                f" {n} more would not fit. Reap the zombies, let a parent exit, or start a lab "
                f"with a larger max_procs (up to {limits.ceiling()[0]} on this machine)")

    def _budget_advice(self, err: int, exiting: Sequence[int] = ()) -> str | None:
        """What a fork refused with `err` means under the lab's PID budget (None: no budget).
        `exiting`: children that exit at once; the count waits (briefly) for their zombies."""
        if self.budget is None or err != errno.EAGAIN:
            return None
        deadline = time.monotonic() + 1.0
        while True:
            snap = self.snapshot()
            settled = all(p is None or p.state == "zombie" for p in map(snap.by_pid, exiting))
            if settled or time.monotonic() > deadline:
                return self.budget.full(len(snap.procs), len(snap.zombies))
            time.sleep(0.005)

    # --- public API -------------------------------------------------------------------------

    def parent(self, policy: str = "none") -> Parent:
        """A new lab parent that treats its children by `policy` (see labkit.parent)."""
        policy = checks.choice(policy, "policy", POLICIES)
        with self._lock:
            self._check_open()
            self._room_for(1)
            reply = self._request({"op": "parent", "policy": policy})
            if not reply["ok"]:
                if reply.get("errno") is not None:
                    self._note(f"parent refused ({linux.errno_name(reply['errno'])})")
                raise _refusal(reply, [], self, "No new parent could be started. ")
            proc = Parent(self, reply["pid"], policy)
            self._parents[proc.pid] = proc
            self._host_pid[reply["ns_pid"]] = proc.pid
            self._note(f"parent {proc.pid} ({policy})")
            return proc

    @property
    def parents(self) -> list[Parent]:
        return list(self._parents.values())

    # --- for processes the lab does not fork itself (labkit.action_runner's actors) ---------

    def room_for(self, n: int) -> None:
        """Refuse, before anything forks, `n` more processes that would not fit: LabClosedError
        if the lab is closed, CapacityError if they would take it past max_procs."""
        self._check_open()
        self._room_for(n)

    def start_actor(self, address: str, name: str) -> None:
        """Start the actor `name` (labkit.actor), adopted by the lab root; it connects to the
        Unix socket at `address` and says hello there. AgentError if it could not start."""
        reply = self._request({"op": "actor", "address": address, "name": name})
        if not reply["ok"]:
            raise AgentError(f"the actor {name} could not be started: {reply.get('error')}")

    def know_pid(self, ns_pid: int, host_pid: int) -> None:
        """Record that the lab's PID `ns_pid` is `host_pid` on the host, so lab.events names a
        process that something in the lab forked (the root reports PIDs as it sees them)."""
        self._host_pid[ns_pid] = host_pid

    def snapshot(self) -> Snapshot:
        """The lab's processes now: the root, the agent, parents, children, orphans."""
        self._check_open()
        roles = {self.root_pid: "root", self.agent_pid: "agent"}
        snap = take_snapshot(self.root_pid, roles,
                             [p.pid for p in self._parents.values() if p.alive], self._reader)
        if self.mode == "pid-namespace":
            snap = with_namespace_pids(snap, self._reader)
        return snap

    def kill_zombie(self, pid: int | None = None) -> KillReport:
        """SIGKILL a zombie of the lab (`pid`, host PID, or the first one) and report what the
        kernel did: nothing a zombie can feel. It has already exited; only its parent's wait()
        (or the lab root's, once that parent exits) removes it (wait(2), signal(7)).

        The signal goes through a pidfd opened and then checked (still that zombie, same parent),
        so a PID reaped and reused meanwhile is never hit. LabError if there is no such zombie.
        """
        if pid is not None:
            pid = checks.count(pid, "pid", low=1)
        zombies = [z for z in self.snapshot().zombies if pid is None or z.pid == pid]
        if not zombies:
            raise LabError("there is no zombie to kill right now" if pid is None else
                           f"PID {pid} is not a zombie of this lab")
        z = zombies[0]
        sent = procfs.kill(z.pid, signal.SIGKILL,
                           lambda stat: stat.state == "Z" and stat.ppid == z.ppid)
        return KillReport(z.pid, z.ns_pid, z.ppid, sent, sent and procfs.state(z.pid) == "Z")

    def _tally(self) -> Tally:
        self._check_open()
        return take_tally(self.root_pid, self._reader)

    def wait_for(self, predicate: Callable[[Snapshot], object], timeout: float = 5.0,
                 interval: float = 0.02) -> Snapshot:
        """Snapshots until `predicate(snapshot)` is true; that snapshot. Processes exit on their
        own time, so a notebook waits for what it expects instead of sleeping for luck."""
        timeout = checks.seconds(timeout, "timeout", high=MAX_LIFETIME)
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"not reached within {timeout:g} s; the lab now: {snap}")
            time.sleep(interval)

    def record(self, interval: float = 0.1) -> Recorder:
        """A context manager that samples the lab every `interval` s; `.series` is the result."""
        interval = checks.seconds(interval, "interval", low=0.01, high=60.0)
        self._check_open()
        recorder = Recorder(self._tally, interval, lambda: list(self._actions))
        self._recorders.append(recorder)
        return recorder

    @property
    def events(self) -> list[ReapEvent]:
        """Every process the lab root has reaped so far (orphans, and the drain at close)."""
        self._read_events()
        return list(self._events)

    def _read_events(self) -> None:
        self._events_offset, new = read_events(self._session.events_path, self._events_offset)
        for e in new:
            host = e["pid"] if self.mode == "subreaper" else self._host_pid.get(e["pid"])
            self._events.append(ReapEvent(host, e["status"], e["time"], e["monotonic"],
                                          e["pid"]))

    @property
    def closed(self) -> bool:
        return self._session.closed

    def close(self) -> None:
        """Kill and reap every process of the lab. Idempotent."""
        with self._lock:
            if self._session.closed:
                return
            for recorder in self._recorders:
                recorder.stop()
            for proc in self._parents.values():
                proc.alive = False
            self._session.close()
            self._read_events()
            self._finalizer()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"root {self.root_pid}, {len(self._parents)} parents"
        return f"<Lab mode={self.mode!r} max_procs={self.max_procs} reap={self.reap} ({state})>"


def _refusal(reply: dict, created: list[int], lab: Lab | None = None, what: str = "",
             exiting: Sequence[int] = ()) -> Exception:
    if reply.get("gone"):
        return ParentGoneError(reply["error"])
    if reply.get("errno") is not None:
        advice = lab._budget_advice(reply["errno"], exiting) if lab is not None else None
        return ForkRefused(reply["errno"], reply["error"], created, what + (
            advice or "Zombies and live processes hold PIDs: reap them or let their parent "
                      "exit, then try again"))
    return AgentError(reply.get("error", "the lab's agent refused the request"))


class Parent:
    """A lab parent process. Its policy decides what happens to its exited children."""

    def __init__(self, lab: Lab, pid: int, policy: str) -> None:
        self._lab = lab
        self.pid = pid
        self.policy = policy
        self.alive = True

    def _check(self) -> None:
        self._lab._check_open()
        if not self.alive:
            raise ParentGoneError(f"parent {self.pid} has exited; make a new one with "
                                  "lab.parent()")

    def fork(self, n: int = 1, lifetime: float = 0.0) -> list[int]:
        """Fork n children that each exit after `lifetime` seconds; returns their PIDs."""
        lab = self._lab
        n = checks.count(n, "n (the number of children)", high=lab.max_procs,
                         why_high="(the lab's max_procs)")
        lifetime = checks.seconds(lifetime, "lifetime", high=MAX_LIFETIME)
        with lab._lock:
            self._check()
            if n == 0:
                return []
            lab._room_for(n)
            reply = lab._request({"op": "fork", "parent": self.pid, "n": n,
                                  "lifetime": lifetime}, timeout=30.0 + n * 0.01)
            if not reply["ok"]:
                if reply.get("gone"):
                    self.alive = False
                lab._host_pid.update(zip(reply.get("ns_pids", []), reply.get("pids", []),
                                         strict=True))
                if reply.get("errno") is not None:
                    lab._note(f"fork refused ({linux.errno_name(reply['errno'])}) after "
                              f"{len(reply.get('pids', []))}")
                created = reply.get("pids", [])
                raise _refusal(reply, created, lab, exiting=created if lifetime == 0 else ())
            lab._note(f"fork {n}")
            lab._host_pid.update(zip(reply["ns_pids"], reply["pids"], strict=True))
            return reply["pids"]

    def reap(self) -> int:
        """The parent calls waitpid for every exited child now; returns how many it reaped."""
        lab = self._lab
        with lab._lock:
            self._check()
            reply = lab._request({"op": "reap", "parent": self.pid})
            if not reply["ok"]:
                if reply.get("gone"):
                    self.alive = False
                raise _refusal(reply, [])
            lab._note(f"reap {reply['reaped']}")
            return reply["reaped"]

    def exit(self) -> None:
        """The parent exits: its children are orphans, adopted by the lab root."""
        lab = self._lab
        with lab._lock:
            self._check()
            lab._request({"op": "exit", "parent": self.pid})
            self.alive = False
            lab._note(f"parent {self.pid} exits")

    def children(self) -> list[int]:
        """PIDs of this parent's children now (zombies included)."""
        return [p.pid for p in self._lab.snapshot().children(self.pid)]

    def __repr__(self) -> str:
        return f"<Parent {self.pid} policy={self.policy!r}{'' if self.alive else ' (exited)'}>"
