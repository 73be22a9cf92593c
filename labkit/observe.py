"""What a reading of the process table becomes: Snapshot (one moment), Series and Recorder
(over time).

Observation only: nothing here creates or signals a process. The table is read by a Reader:
labkit.labtable.LabTable reads a lab's own processes (what Lab uses), labkit.fullscan every
process on the machine (the oracle in tests, and the fallback). psutil stays the reference
(tests check that both agree) and gives the state names used everywhere: "zombie", "sleeping",
"running", ...
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import psutil

from labkit import procfs
from labkit.errors import LabClosedError
from labkit.fullscan import (  # noqa: F401 (STAT_HEAD, VERIFY_EVERY, ProcReader: re-exported)
    STAT_HEAD,
    VERIFY_EVERY,
    ProcReader,
    census,
    lab_pids,
    namespace_pid,
    read_table,
)

# /proc/PID/stat state letters (proc(5)) to the names psutil gives them on Linux (a test checks
# this table against psutil's own).
STATES = {
    "R": "running", "S": "sleeping", "D": "disk-sleep", "T": "stopped", "t": "tracing-stop",
    "Z": "zombie", "X": "dead", "x": "dead", "K": "wake-kill", "W": "waking", "I": "idle",
    "P": "parked",
}
ZOMBIE = psutil.STATUS_ZOMBIE


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


def with_namespace_pids(snap: Snapshot, reader: Reader | None = None) -> Snapshot:
    """`snap` with each process's PID inside the lab's PID namespace filled in."""
    find = reader.ns_pid if reader is not None else (lambda pid: namespace_pid(pid) or pid)
    procs = tuple(p._replace(ns_pid=find(p.pid)) for p in snap.procs)
    return Snapshot(procs, snap.root_pid, snap.time)
