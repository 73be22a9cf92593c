"""Reading every process on the machine: the reference, and the fallback of a lab-scoped read.

labkit.labtable reads a lab's own processes; this module lists /proc and reads every
/proc/PID/stat (one read per process, what psutil reads too, without its per-process object
overhead). Tests and benchmarks use it as the oracle that a lab-scoped read must agree with,
and a LabTable falls back to it on a kernel without children files. It is apart from
labkit.observe, which holds what a reading becomes (Snapshot, Tally, Series, Recorder).

Raises ProcUnreadable when /proc cannot be read for any reason but a process gone or hidden
(procfs.absent): EMFILE is no exit, and a table missing processes is worse than none.
"""

from __future__ import annotations

import os
import resource
import threading
from collections import Counter

from labkit import procfs
from labkit.errors import ProcUnreadable

# How much of /proc/PID/stat we read: pid, (comm), state and ppid come first and fit in 64 bytes
# (comm is at most 15). Reading less than the whole line also keeps Python's buffer small
# enough for its own allocator, which made a read ~2x cheaper (measured: bench/).
STAT_HEAD = 128
VERIFY_EVERY = 10  # a recorder re-reads even trusted zombies once in this many samples


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
            return remembered_ns_pid(self._ns, pid, keep=pid in self._fds)

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


def census(table: dict[int, tuple[int, str, str]], root: int) -> Counter[str]:
    """How many of `root` and its descendants in `table` are in each state (letters)."""
    return Counter(table[pid][1] for pid in lab_pids(table, root))


def remembered_ns_pid(cache: dict[int, int], pid: int, keep: bool) -> int:
    """`pid`'s PID in its own namespace, from `cache` or read (its own PID when unreadable);
    kept in `cache` when `keep`: only while the reader holds the process's stat file open, since
    a PID reused by a new process may be in another namespace."""
    known = cache.get(pid)
    if known is None:
        known = namespace_pid(pid) or pid
        if keep:
            cache[pid] = known
    return known


def namespace_pid(pid: int) -> int | None:
    """The PID of host process `pid` in its own (innermost) PID namespace: NSpid's last field.

    None if the process is gone or hidden; ProcUnreadable for any other error (EMFILE)."""
    try:
        found = procfs.nspid(pid)
    except OSError as exc:
        raise ProcUnreadable.about(exc, f"/proc/{pid}/status") from exc
    return found[-1] if found else None
