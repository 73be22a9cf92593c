"""Lab: the controller a notebook holds over a tree of real processes.

    kernel (this process; threaded, never forks lab processes)
     └─ launcher: the keeper, python -m labkit.pause --subreaper --drain --owner KERNEL
        (labkit.unshare in a PID-namespace lab)
         └─ lab root: python -m labkit.pause --subreaper --drain   (orphans come here)
             └─ agent: python -m labkit.agent                     (forks the parents)
                 └─ parent (a policy)  └─ children

The kernel starts the launcher with subprocess and talks to the agent over two pipes. Closing
the lab (or leaving `with`, or the interpreter exiting, or this process dying: PR_SET_PDEATHSIG)
makes the root kill and reap every lab process before it exits.

The launcher, the root's command line and the lab's files are labkit.runtime (why a keeper
stands above the root is told there); the Parent handle is labkit.handles. Both are importable
from here as before.
"""

from __future__ import annotations

import errno
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import NamedTuple

from labkit import budget, checks, limits, linux, procfs, unshare
from labkit.errors import (
    AgentError,
    BudgetUnavailable,
    CapacityError,
    LabClosedError,
    LabError,
    NamespaceUnavailable,
)
from labkit.handles import MAX_LIFETIME, Parent, _refusal
from labkit.i18n import _
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
from labkit.runtime import RUNTIME_PREFIX as RUNTIME_PREFIX  # re-exported: tests use it
from labkit.runtime import (
    ReapEvent,
    _finalize,
    _Session,
    event_lines,
    parse_events,
    read_events,
    sweep_leftovers,
)

MODES = ("auto", "subreaper", "pid-namespace")
START_TIMEOUT = 10.0    # seconds for the root and agent to come up (a slow Binder start)


class KillReport(NamedTuple):
    """What kill -9 did to a zombie (Lab.kill_zombie): the kernel's answer, read after it."""

    pid: int            # host PID of the zombie
    ns_pid: int         # its PID inside the lab's PID namespace (the host PID in subreaper mode)
    ppid: int           # its parent, the only one whose wait() can remove it
    sent: bool          # False: it was reaped before the signal could reach it
    still_zombie: bool  # read after the signal: a zombie has nothing left to kill (signal(7))


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
                                      high=ceiling,
                                      why_high=_("on this machine now: {why}").format(why=why))
        self.reap = checks.flag(reap, "reap")
        self.pid_limit = None if pid_limit is None else budget.check_limit(pid_limit,
                                                                           self.max_procs)
        self._lock = threading.RLock()
        self._parents: dict[int, Parent] = {}
        self._actions: list[tuple[float, str]] = []
        self._events: list[ReapEvent] = []
        self._events_offset = 0
        self._unread = b""  # the events file's end, kept at close
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
            said = log.splitlines()[-1] if log else _(
                "labkit.unshare exited with status {code}").format(code=code)
            raise NamespaceUnavailable(_(
                "a PID-namespace lab is not possible here: {said}. What still works: "
                "Lab(mode='subreaper'), where the lab root adopts orphans as a child subreaper "
                "(prctl(2) PR_SET_CHILD_SUBREAPER)").format(said=said))
        if code == budget.ROOT_REFUSED and self.budget is not None:
            raise BudgetUnavailable(_("the lab root could not enter its PID budget ({mechanism}): "
                                      "{log}").format(mechanism=self.budget.mechanism, log=log))
        why = (_("its root exited with status {code}").format(code=code) if code is not None else
               _("it did not start within {seconds:g} s").format(seconds=START_TIMEOUT))
        raise AgentError(_("the lab could not start: {why}; its root said: {log}").format(
            why=why, log=log or _("(nothing)")))

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
                        raise AgentError(self._died())
                    if reply.get("id") == message["id"]:
                        return reply
            except TimeoutError:
                raise AgentError(_("the lab's agent did not answer within {seconds:g} s "
                                   "(request {op!r})").format(seconds=timeout, op=message["op"])
                                 ) from None
            except BrokenPipeError:
                raise AgentError(self._died()) from None

    def _died(self) -> str:
        code = self._session.launcher.poll()
        if code is None:
            return _("the lab's agent ended unexpectedly; close the lab and start a new one")
        return _("the lab's agent ended: the lab root exited with status {code}; close the lab "
                 "and start a new one. Root's log: {log}").format(
                     code=code, log=self._session.root_log().strip())

    def _check_open(self) -> None:
        if self._session.closed:
            raise LabClosedError(_("this lab is closed: its processes are gone. Start a new "
                                   "one with labkit.Lab()"))

    def _note(self, label: str) -> None:
        self._actions.append((time.monotonic(), label))

    def _room_for(self, n: int) -> None:
        """Refuse a request that would take the lab past max_procs, before anything forks."""
        have = count_lab(self.root_pid, self._reader)
        if have + n > self.max_procs:
            raise CapacityError(_(
                "this lab has {have} processes (zombies included) and max_procs={max_procs}: {n} "
                "more would not fit. Reap the zombies, let a parent exit, or start a lab with a "
                "larger max_procs (up to {most} on this machine)").format(
                    have=have, max_procs=self.max_procs, n=n, most=limits.ceiling()[0]))

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
                raise _refusal(reply, [], self, _("No new parent could be started. "))
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
            raise AgentError(_("the actor {name} could not be started: {error}").format(
                name=name, error=reply.get("error")))

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
            raise LabError(_("there is no zombie to kill right now") if pid is None else
                           _("PID {pid} is not a zombie of this lab").format(pid=pid))
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
                raise TimeoutError(_("not reached within {seconds:g} s; the lab now: {snap}")
                                   .format(seconds=timeout, snap=snap))
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
        if self._session.closed:  # the file went with the lab's folder: close() kept its end
            new, self._unread = parse_events(self._unread), b""
        else:
            self._events_offset, new = read_events(self._session.events_path,
                                                   self._events_offset)
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
            self._session.close(meanwhile=self._reader.close)
            # Kept, not parsed: the drain's events are one line per process, and only a caller
            # of lab.events needs them (parsed then).
            self._unread = event_lines(self._session.events_path, self._events_offset)
            self._finalizer()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"root {self.root_pid}, {len(self._parents)} parents"
        return f"<Lab mode={self.mode!r} max_procs={self.max_procs} reap={self.reap} ({state})>"

