"""Reading the process table: Snapshot (one moment), Series and Recorder (over time).

Observation only: nothing here creates or signals a process. The lab's part of the table is read
straight from /proc/PID/stat (one read per process), which is what psutil reads too, without its
per-process object overhead; psutil stays the reference (tests check that both agree) and gives
the state names used everywhere: "zombie", "sleeping", "running", ...
"""

from __future__ import annotations

import math
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import psutil

from labkit import procfs
from labkit.errors import LabClosedError, ProcUnreadable

# /proc/PID/stat state letters (proc(5)) to the names psutil gives them on Linux (a test checks
# this table against psutil's own).
STATES = {
    "R": "running", "S": "sleeping", "D": "disk-sleep", "T": "stopped", "t": "tracing-stop",
    "Z": "zombie", "X": "dead", "x": "dead", "K": "wake-kill", "W": "waking", "I": "idle",
    "P": "parked",
}
ZOMBIE = psutil.STATUS_ZOMBIE

# How much of /proc/PID/stat we read: pid, (comm), state and ppid come first and fit in 64 bytes
# (comm is at most 15). Reading less than the whole line also keeps Python's buffer small
# enough for its own allocator, which made a read ~2x cheaper (measured: bench/).
STAT_HEAD = 128
VERIFY_EVERY = 10  # a recorder re-reads even trusted zombies once in this many samples

ROLES = ("root", "agent", "parent", "child", "orphan", "descendant")


class Reader(Protocol):
    """What reads the table for a lab: ProcReader (every process) or labtable.LabTable."""

    def read(self, root: int) -> dict[int, tuple[int, str, str]]: ...
    def follow(self, root: int) -> dict[int, tuple[int, str, str]]: ...
    def census(self, root: int) -> Counter[str]: ...
    def ns_pid(self, pid: int) -> int: ...


class Proc(NamedTuple):
    """One process of the lab, as the kernel reported it at the snapshot's moment."""

    pid: int          # PID on the host
    ppid: int         # parent's PID on the host
    state: str        # psutil's name: "zombie", "sleeping", ...
    role: str         # root, agent, parent, child, orphan (adopted by the root), descendant
    name: str         # comm: lab-child, lab-parent, ...
    ns_pid: int       # PID inside the lab's PID namespace (the host PID in subreaper mode)


def read_table() -> dict[int, tuple[int, str, str]]:
    """Every process on the machine: pid -> (ppid, state letter, comm), from /proc/PID/stat.

    Raises ProcUnreadable when /proc cannot be read for any reason but a process gone or
    hidden (procfs.absent): EMFILE is no exit, and a table missing processes is
    worse than none.
    """
    table = {}
    opened = os.open
    for name in _proc_names():
        if not name.isdigit():
            continue
        try:
            fd = opened(f"/proc/{name}/stat", os.O_RDONLY)
        except OSError as exc:
            _skip_or_raise(exc, f"/proc/{name}/stat")
            continue
        try:
            data = os.read(fd, STAT_HEAD)
        except OSError as exc:
            _skip_or_raise(exc, f"/proc/{name}/stat")
            continue
        finally:
            os.close(fd)
        table[int(name)] = _parse_stat(data)
    return table


def _proc_names() -> list[str]:
    try:
        return os.listdir("/proc")
    except OSError as exc:
        raise ProcUnreadable.about(exc, "/proc") from exc


def _skip_or_raise(exc: OSError, path: str) -> None:
    """Return if `exc` says the process is gone or hidden; raise ProcUnreadable otherwise."""
    if procfs.absent(exc):
        return
    raise ProcUnreadable.about(exc, path) from exc


def _parse_stat(data: bytes) -> tuple[int, str, str]:
    stat = procfs.parse_stat(data)
    return stat.ppid, stat.state, stat.comm


class ProcReader:
    """read_table() for a lab that is read again and again (a Recorder, a dashboard).

    Each /proc/PID/stat stays open between reads, and pread(2) on it makes the kernel write the
    file anew: one syscall a process instead of open, read and close. An open file names one
    process for good: once that process is reaped, reading it fails (ESRCH) and the PID, if
    reused, is opened afresh. At most `max_open` files are kept open, well under this process's
    RLIMIT_NOFILE; beyond that, processes are read the plain way. The namespace PID of a process
    (NSpid, from the heavier /proc/PID/status) is read once and kept as long as its file is.
    Any error but a process gone or hidden (EMFILE first) raises ProcUnreadable, as read_table.
    """

    def __init__(self, max_open: int | None = None) -> None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        room = 20000 if soft == resource.RLIM_INFINITY else soft - 256
        self.max_open = max(0, min(room, 20000) if max_open is None else max_open)
        self._fds: dict[int, int] = {}
        self._ns: dict[int, int] = {}
        self._last: dict[int, tuple[bytes, tuple[int, str, str]]] = {}  # the last line, parsed
        self._passes = 0
        self._lock = threading.Lock()

    def table(self, trust_zombies: bool = False) -> dict[int, tuple[int, str, str]]:
        """pid -> (ppid, state letter, comm) for every process.

        trust_zombies: a recorder's shortcut. A zombie cannot change state, only vanish (its
        /proc directory goes when it is reaped) or be handed to a new parent (when its parent
        exits). So a known zombie whose parent was read this pass as the same live process is
        not read again. One pass in VERIFY_EVERY reads everything all the same.
        """
        with self._lock:
            self._passes += 1
            return self._table(trust_zombies and self._passes % VERIFY_EVERY != 0)

    def read(self, root: int) -> dict[int, tuple[int, str, str]]:
        """Every process now (what labkit.labtable.LabTable.read gives for one lab)."""
        return self.table()

    def follow(self, root: int) -> dict[int, tuple[int, str, str]]:
        """Every process, trusting zombies that cannot have changed (a recorder's read)."""
        return self.table(trust_zombies=True)

    def census(self, root: int) -> Counter[str]:
        """census() of follow(root): what a recorder's sample needs."""
        return census(self.follow(root), root)

    def _table(self, trust_zombies: bool) -> dict[int, tuple[int, str, str]]:
        table = {}
        same: set[int] = set()  # read through a file kept open: the very process seen before
        deferred: list[int] = []
        fds, last = self._fds, self._last
        for name in _proc_names():
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in fds:
                seen = last.get(pid)
                if trust_zombies and seen is not None and seen[1][1] == "Z":
                    deferred.append(pid)  # decided once its parent has been read
                    continue
                if self._reread(pid, table):
                    same.add(pid)
                    continue
            data = self._open_and_read(pid, name)
            if data is not None:
                table[pid] = _parse_stat(data)
        for pid in deferred:
            ppid = last[pid][1][0]
            if ppid in same and table[ppid][1] != "Z":
                table[pid] = last[pid][1]
            else:
                self._reread(pid, table)
        return table

    def _reread(self, pid: int, table: dict) -> bool:
        """pread the kept file of `pid` into `table`; False if that process is gone."""
        try:
            data = os.pread(self._fds[pid], STAT_HEAD, 0)
        except OSError as exc:  # ESRCH: reaped, this file named the process that is gone
            _skip_or_raise(exc, f"/proc/{pid}/stat")
            self._forget(pid)
            return False
        # A zombie's line never changes, an idle sleeper's seldom: parse only what did.
        seen = self._last.get(pid)
        if seen is None or seen[0] != data:
            seen = self._last[pid] = (data, _parse_stat(data))
        table[pid] = seen[1]
        return True

    def _open_and_read(self, pid: int, name: str) -> bytes | None:
        try:
            fd = os.open(f"/proc/{name}/stat", os.O_RDONLY)
        except OSError as exc:
            _skip_or_raise(exc, f"/proc/{name}/stat")
            return None  # exited since listdir, or hidden from us
        try:
            data = os.read(fd, STAT_HEAD)
        except OSError as exc:
            os.close(fd)
            _skip_or_raise(exc, f"/proc/{name}/stat")
            return None
        if len(self._fds) < self.max_open:
            self._fds[pid] = fd
        else:
            os.close(fd)
        return data

    def _forget(self, pid: int) -> None:
        os.close(self._fds.pop(pid))
        self._ns.pop(pid, None)
        self._last.pop(pid, None)

    def ns_pid(self, pid: int) -> int:
        """PID `pid`'s PID in its own namespace (kept while its stat file is kept open)."""
        with self._lock:
            known = self._ns.get(pid)
            if known is None:
                known = namespace_pid(pid) or pid
                if pid in self._fds:
                    self._ns[pid] = known
            return known

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self._ns.clear()
            self._last.clear()


def lab_pids(table: dict[int, tuple[int, str, str]], root: int) -> list[int]:
    """The root and its descendants, parents before children."""
    if root not in table:
        return []
    children: dict[int, list[int]] = {}
    get = children.get
    for pid, entry in table.items():
        kids = get(entry[0])
        if kids is None:
            children[entry[0]] = [pid]
        else:
            kids.append(pid)
    order = [root]
    extend = order.extend
    for pid in order:  # grows while we walk it: a breadth-first walk
        kids = get(pid)
        if kids is not None:
            kids.sort()  # our own lists; /proc lists PIDs in order, so this is one pass
            extend(kids)
    return order


@dataclass(frozen=True)
class Snapshot:
    """The lab's processes at one moment."""

    procs: tuple[Proc, ...]
    root_pid: int
    time: float = field(default_factory=time.monotonic)  # time.monotonic() when taken

    @property
    def counts(self) -> dict[str, int]:
        """How many processes are in each state (psutil's names)."""
        return dict(Counter(p.state for p in self.procs))

    @property
    def zombies(self) -> list[Proc]:
        return [p for p in self.procs if p.state == ZOMBIE]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __len__(self) -> int:
        return len(self.procs)

    def by_pid(self, pid: int) -> Proc | None:
        return next((p for p in self.procs if p.pid == pid), None)

    def children(self, pid: int) -> list[Proc]:
        return [p for p in self.procs if p.ppid == pid]

    def tree(self, limit: int = 12) -> str:
        """pstree-like text: PID, name, [role], state; at most `limit` children shown per parent."""
        lines: list[str] = []
        kids: dict[int, list[Proc]] = {}
        for p in self.procs:
            kids.setdefault(p.ppid, []).append(p)

        def walk(proc: Proc, prefix: str, last: bool, top: bool) -> None:
            branch = "" if top else ("└─ " if last else "├─ ")
            lines.append(f"{prefix}{branch}{_label(proc)}")
            below = kids.get(proc.pid, [])
            deeper = prefix if top else prefix + ("   " if last else "│  ")
            shown = below if len(below) <= limit else below[:limit - 1]
            for i, child in enumerate(shown):
                walk(child, deeper, i == len(below) - 1, False)
            if len(shown) < len(below):
                rest = below[len(shown):]
                states = ", ".join(f"{n} {s}" for s, n in Counter(p.state for p in rest).items())
                lines.append(f"{deeper}└─ … {len(rest)} more ({states})")

        root = self.by_pid(self.root_pid)
        if root is not None:
            walk(root, "", True, True)
        return "\n".join(lines)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        return f"Snapshot of {len(self.procs)} lab processes ({counts})"


def _label(p: Proc) -> str:
    ns = f" (pid {p.ns_pid} inside)" if p.ns_pid != p.pid else ""
    return f"{p.pid}{ns} {p.name} [{p.role}] {p.state}"


def take_snapshot(root: int, roles: dict[int, str], parents: Iterable[int] = (),
                  reader: Reader | None = None) -> Snapshot:
    """Snapshot of `root` and its descendants; `roles` names the lab's known processes.
    `reader`: a ProcReader, or a labkit.labtable.LabTable that reads the lab's processes only."""
    now = time.monotonic()
    table = read_table() if reader is None else reader.read(root)
    parents = set(parents)
    states = STATES
    role_of = roles.get
    new = tuple.__new__  # what Proc._make does, without a Python-level call per process
    procs = []
    append = procs.append
    for pid in lab_pids(table, root):
        ppid, letter, name = table[pid]
        role = role_of(pid) or ("parent" if pid in parents else
                                "child" if ppid in parents else
                                "orphan" if ppid == root else "descendant")
        append(new(Proc, (pid, ppid, states.get(letter, letter), role, name, pid)))
    return Snapshot(tuple(procs), root, now)


class Tally(NamedTuple):
    """What a recording keeps of one moment: how many lab processes are in each state."""

    time: float
    counts: dict[str, int]
    total: int

    def __len__(self) -> int:
        return self.total


def take_tally(root: int, reader: Reader | None = None) -> Tally:
    """A Tally of `root` and its descendants: a Snapshot's counts without building its Procs
    (a recorder samples 10 times a second; the reader follows what changed)."""
    now = time.monotonic()
    letters = census(read_table(), root) if reader is None else reader.census(root)
    return Tally(now, {STATES.get(k, k): n for k, n in letters.items()}, sum(letters.values()))


def census(table: dict[int, tuple[int, str, str]], root: int) -> Counter[str]:
    """How many of `root` and its descendants in `table` are in each state (letters)."""
    return Counter(table[pid][1] for pid in lab_pids(table, root))


def count_lab(root: int, reader: Reader | None = None) -> int:
    """How many processes the lab has now (the root included)."""
    return len(lab_pids(read_table() if reader is None else reader.read(root), root))


@dataclass
class Series:
    """The lab's process table over time: one entry per sample in every list.

    `times` are seconds since recording started (strictly increasing); `counts` maps a state to
    the number of lab processes in it at each sample; `total` is the lab's size; `pids_in_use`
    the machine's tasks (each holds a PID, of `pid_max`); `marks` are (time, label) of the lab's
    actions during the recording (fork, reap, parent exit).
    """

    times: list[float] = field(default_factory=list)
    counts: dict[str, list[int]] = field(default_factory=dict)
    total: list[int] = field(default_factory=list)
    pids_in_use: list[int] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    start: float = 0.0  # time.monotonic() of the first sample

    def add(self, snap: Snapshot | Tally, pids_in_use: int) -> None:
        if not self.times:
            self.start = snap.time
        t = snap.time - self.start
        if self.times and t <= self.times[-1]:
            t = math.nextafter(self.times[-1], math.inf)
        self.times.append(t)
        counts = snap.counts
        for state in counts:
            if state not in self.counts:
                self.counts[state] = [0] * (len(self.times) - 1)
        for state, values in self.counts.items():
            values.append(counts.get(state, 0))
        self.total.append(len(snap))
        self.pids_in_use.append(pids_in_use)

    def state(self, name: str) -> list[int]:
        """The counts of one state at every sample (zeros where it never occurred)."""
        return self.counts.get(name, [0] * len(self.times))

    @property
    def zombies(self) -> list[int]:
        return self.state(ZOMBIE)

    def __len__(self) -> int:
        return len(self.times)

    def to_dict(self) -> dict:
        return {"times": self.times, "counts": self.counts, "total": self.total,
                "pids_in_use": self.pids_in_use, "marks": self.marks}


class Recorder:
    """Samples a lab in a background thread (observation only: threads never fork here).

    Use as a context manager; `.series` grows while it runs and is complete after exit.

    A sample that cannot be taken (ProcUnreadable: no file descriptor left, EMFILE) is not "the
    lab has no processes": the recorder stops there, keeps the reason in `.error`, and leaving
    the `with` block raises it (stop() does not, so that closing a lab never fails for it). The
    series then ends at the last sample that was read in full. A lab closed under the recorder
    simply ends the series, with no error.
    """

    def __init__(self, sample, interval: float, marks=None) -> None:
        self._sample = sample  # () -> Snapshot
        self._marks = marks    # () -> list of (monotonic time, label)
        self.interval = interval
        self.series = Series()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: Exception | None = None  # why sampling stopped early, if it did

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.stop()
        if self.error is not None and exc_type is None:
            raise self.error

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this recorder has already been started")
        self._take()
        self._thread = threading.Thread(target=self._run, name="labkit-recorder", daemon=True)
        self._thread.start()

    def _take(self) -> None:
        try:
            snap = self._sample()
            in_use = procfs.tasks_in_use()
        except LabClosedError:  # the lab closed under us: the series simply ends
            self._stop.set()
            return
        except Exception as exc:  # kept, and raised by __exit__: a short series is no answer
            self.error = exc
            self._stop.set()
            return
        with self._lock:
            self.series.add(snap, in_use)

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self._take()
            next_at = max(next_at + self.interval, time.monotonic())

    def stop(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.set()
            return
        self._stop.set()
        self._thread.join()
        self._take_final()

    def _take_final(self) -> None:
        self._stop.clear()
        self._take()
        self._stop.set()
        if self._marks is not None:
            start = self.series.start
            end = start + (self.series.times[-1] if self.series.times else 0.0)
            self.series.marks = [(t - start, label) for t, label in self._marks()
                                 if start <= t <= end]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def namespace_pid(pid: int) -> int | None:
    """The PID of host process `pid` in its own (innermost) PID namespace: NSpid's last field.

    None if the process is gone or hidden; ProcUnreadable for any other error (EMFILE)."""
    try:
        found = procfs.nspid(pid)
    except OSError as exc:
        raise ProcUnreadable.about(exc, f"/proc/{pid}/status") from exc
    return found[-1] if found else None


def with_namespace_pids(snap: Snapshot, reader: Reader | None = None) -> Snapshot:
    """`snap` with each process's PID inside the lab's PID namespace filled in."""
    find = reader.ns_pid if reader is not None else (lambda pid: namespace_pid(pid) or pid)
    procs = tuple(p._replace(ns_pid=find(p.pid)) for p in snap.procs)
    return Snapshot(procs, snap.root_pid, snap.time)
