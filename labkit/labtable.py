"""The lab's part of the process table, read at a cost that grows with the lab, not the machine.

A lab of ten processes on a server with 5,000 others must not pay for the 5,000: a classroom
server holds every student's processes, and a dashboard reads its lab five times a second.
So nothing here lists /proc. LabTable knows the lab's processes and reads only theirs:

- read(root): the lab now, exactly. From the lab root down through each process's children
  file, /proc/PID/task/TID/children (proc(5): Linux >= 3.5 with CONFIG_PROC_CHILDREN; one file
  per thread, each listing the children that thread forked). A process orphaned while we walk
  is handed to the lab root (the lab's reaper: kernel/exit.c find_new_reaper), so the root's
  children are read once more at the end. A zombie has no children (exit_notify hands them on
  before the task becomes a zombie), so its file is not read.
- follow(root): the recorder's, ten times a second. It reads only what changed, as the kernel
  tells it: a pidfd becomes readable when its process exits and, since Linux 6.9, reports
  POLLHUP when it is reaped (pidfd_open(2)); /proc/loadavg's last field is the last PID the
  kernel handed out (proc(5)), so the PIDs handed out since the last sample are exactly those
  after the previous one, and only they can be new processes of the lab. An idle lab then
  costs one read and one epoll_wait(2) a sample. A live process's state (running, sleeping,
  stopped) raises no event: it is read again while the process is young (YOUNG) and by the
  full read() that follow() makes every FULL_EVERY seconds, which also catches anything the
  shortcuts might miss.

Every file stays open between reads: pread(2) on a /proc file makes the kernel write it anew,
one syscall instead of three, and an open /proc/PID/stat names one process for good (ESRCH once
it is reaped). Descriptors are bounded by `max_open`; processes beyond it are read the plain way
each sample. A kernel without children files falls back to reading every process (the doctor
says so); errors other than a process gone or hidden raise ProcUnreadable, as in observe.
"""

from __future__ import annotations

import os
import resource
import select
import threading
import time
from collections import Counter

from labkit import procfs
from labkit.fullscan import ProcReader, _skip_or_raise, lab_pids, remembered_ns_pid

Entry = tuple[int, str, str]  # (ppid, state letter, comm), as observe's tables hold them

STAT_READ = 256       # bytes of /proc/PID/stat: up to num_threads (field 20) with room to spare
FULL_EVERY = 1.0      # seconds between follow()'s full reads
YOUNG = 0.5           # seconds a new process is read every sample (it runs, then settles)
NEW_SCAN = 1024       # more new PIDs than this since the last sample: a full read is cheaper
FDS_PER_PROCESS = 3   # its stat file, its children file, its pidfd


def scoped() -> bool:
    """Whether this kernel has children files (else a lab is found by reading every process)."""
    me = os.getpid()
    return os.path.exists(f"/proc/{me}/task/{me}/children")


def pidfd_events() -> bool:
    """Whether pidfds can be polled here (pidfd_open(2), Linux >= 5.3)."""
    fd = procfs.pidfd_open(os.getpid())
    if fd is None:
        return False
    os.close(fd)
    return True


def reap_events() -> bool:
    """Whether a pidfd reports POLLHUP once its process is reaped (Linux >= 6.9)."""
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (6, 9)
    except (IndexError, ValueError):
        return False


def describe() -> dict:
    """How this machine lets a lab be observed, for the doctor."""
    return {"scoped": scoped(), "pidfd_events": pidfd_events(), "reap_events": reap_events()}


class LabTable:
    """The lab's processes: pid -> (ppid, state letter, comm), the root and its descendants.

    read() and follow() return a new dict each time something changed (never one they later
    change), so a caller may keep it while another thread reads again.
    """

    def __init__(self, max_open: int | None = None) -> None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        room = 20000 if soft == resource.RLIM_INFINITY else soft - 256
        self.max_open = max(0, min(room, 20000) if max_open is None else max_open)
        self.scoped = scoped()
        self.events = self.scoped and pidfd_events()
        self.reap_events = self.events and reap_events()
        self._stat: dict[int, int] = {}     # pid -> its /proc/PID/stat, kept open
        self._kids: dict[int, int] = {}     # pid -> its main thread's children file
        self._pidfd: dict[int, int] = {}    # pid -> pidfd, registered in _epoll
        self._fd_pid: dict[int, int] = {}   # pidfd -> pid
        self._last: dict[int, tuple[bytes, Entry]] = {}  # the last line read, parsed
        self._ns: dict[int, int] = {}       # pid -> PID in its own namespace
        self._born: dict[int, float] = {}   # pid -> when follow() first saw it
        self._table: dict[int, Entry] = {}
        self._mark = (0, 0)                 # (last PID handed out, tasks), from /proc/loadavg
        self._full_at = -1e9
        self._watching = False              # pidfds are opened once follow() is first used
        self._epoll = select.epoll() if self.events else None
        self._loadavg = os.open("/proc/loadavg", os.O_RDONLY)
        self._pid_max = procfs.pid_max()
        self._fallback = None if self.scoped else ProcReader(max_open)
        self._lock = threading.Lock()
        self._counted: tuple[dict, Counter[str]] = ({}, Counter())
        self.full_reads = 0                 # how many walks follow() and read() made

    # --- the two ways to read ---------------------------------------------------------------

    def read(self, root: int) -> dict[int, Entry]:
        """The lab's processes now, each read afresh."""
        with self._lock:
            if self._fallback is not None:
                table = self._fallback.table()
                return {pid: table[pid] for pid in lab_pids(table, root)}
            return self._full(root)

    def follow(self, root: int) -> dict[int, Entry]:
        """The lab's processes now, reading only what may have changed since the last call."""
        with self._lock:
            if self._fallback is not None:
                table = self._fallback.table(trust_zombies=True)
                return {pid: table[pid] for pid in lab_pids(table, root)}
            if not self.events:
                return self._full(root)
            if not self._watching:
                self._watching = True
                return self._full(root)
            if time.monotonic() - self._full_at >= FULL_EVERY:
                return self._full(root)
            return self._changes(root)

    def census(self, root: int) -> Counter[str]:
        """How many of the lab's processes are in each state (letters), as follow() sees them.
        A recorder asks ten times a second; an idle lab's table is the same object each time,
        and so are its counts."""
        table = self.follow(root)
        if table is not self._counted[0]:
            self._counted = (table, Counter(entry[1] for entry in table.values()))
        return self._counted[1]

    # --- read(): the walk -------------------------------------------------------------------

    def _full(self, root: int) -> dict[int, Entry]:
        mark = self._read_mark()
        table = self._walk(root)
        for pid in [pid for pid in self._stat if pid not in table]:
            self._forget(pid)
        for pid in [pid for pid in self._pidfd if pid not in table]:
            self._forget(pid)
        self._table, self._mark, self._full_at = table, mark, time.monotonic()
        self.full_reads += 1
        return table

    def _walk(self, root: int) -> dict[int, Entry]:
        table: dict[int, Entry] = {}
        order, seen = [root], {root}
        i = 0
        while True:
            while i < len(order):
                pid = order[i]
                i += 1
                known = self._last.get(pid) if self.reap_events and pid in self._pidfd else None
                if known is not None and known[1][1] == "Z" and _live(table.get(known[1][0])):
                    # A zombie cannot change but for being reaped (its pidfd will say) or handed
                    # on when its parent exits: its parent was just read, alive.
                    table[pid] = known[1]
                    continue
                data = self._stat_of(pid)
                if data is None:
                    continue
                entry = self._parse(pid, data)
                table[pid] = entry
                if entry[1] != "Z" or procfs.num_threads(data) > 1:
                    for kid in self._children(pid, data):
                        if kid not in seen:
                            seen.add(kid)
                            order.append(kid)
            # Orphaned while we walked: adopted by the root, after we read its children.
            late = [kid for kid in self._children(root, None) if kid not in seen]
            if not late or root not in table:
                return table
            seen.update(late)
            order.extend(late)

    def _children(self, pid: int, data: bytes | None) -> list[int]:
        """PIDs of `pid`'s children, from the children file of each of its threads."""
        if data is not None and procfs.num_threads(data) > 1:
            return self._all_threads_children(pid)
        fd = self._kids.get(pid)
        if fd is None:
            try:
                fd = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY)
            except OSError as exc:
                _skip_or_raise(exc, f"/proc/{pid}/task/{pid}/children")
                return []
            if self._room():
                self._kids[pid] = fd
            else:
                try:
                    return procfs.pids_in(procfs.read_whole(fd))
                finally:
                    os.close(fd)
        try:
            return procfs.pids_in(procfs.read_whole(fd))
        except OSError as exc:
            _skip_or_raise(exc, f"/proc/{pid}/task/{pid}/children")
            return []

    def _all_threads_children(self, pid: int) -> list[int]:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError as exc:
            _skip_or_raise(exc, f"/proc/{pid}/task")
            return []
        kids: list[int] = []
        for tid in tids:
            path = f"/proc/{pid}/task/{tid}/children"
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                _skip_or_raise(exc, path)
                continue
            try:
                kids.extend(procfs.pids_in(procfs.read_whole(fd)))
            except OSError as exc:
                _skip_or_raise(exc, path)
            finally:
                os.close(fd)
        return kids

    # --- follow(): what changed ----------------------------------------------------------------

    def _changes(self, root: int) -> dict[int, Entry]:
        mark = self._read_mark()
        fired = self._epoll.poll(0)
        young = self._young()
        if not fired and mark == self._mark and not young and not self._unwatched():
            return self._table
        table = dict(self._table)
        moved = self._exits(table, fired)
        if not self.reap_events and mark[1] != self._mark[1]:
            moved.update(pid for pid, entry in table.items() if entry[1] == "Z")
        moved.update(young)
        moved.update(self._unwatched())
        for pid in moved:
            self._reread(pid, table)
        if mark[0] != self._mark[0]:
            span = (mark[0] - self._mark[0]) % self._pid_max
            if span > NEW_SCAN:
                return self._full(root)
            self._adopt_new(table, self._mark[0], span)
        self._table, self._mark = table, mark
        return table

    def _exits(self, table: dict[int, Entry], fired: list[tuple[int, int]]) -> set[int]:
        """Apply the pidfd events to `table`; the PIDs to read again (exited, or orphaned)."""
        reread: set[int] = set()
        parents: set[int] = set()
        for fd, events in fired:
            pid = self._fd_pid.get(fd)
            if pid is None:
                continue
            if table.get(pid, ("", "Z"))[1] != "Z":
                parents.add(pid)  # it had children, perhaps: they now have another parent
            if events & select.EPOLLHUP:  # reaped: gone for good
                table.pop(pid, None)
                self._forget(pid)
            else:  # exited: a zombie now; only its reaping is left to hear of
                reread.add(pid)
                if self.reap_events:
                    self._epoll.modify(fd, 0)
                else:
                    self._unwatch(pid)
                kids = self._kids.pop(pid, None)
                if kids is not None:
                    os.close(kids)
        if parents:
            reread.update(pid for pid, entry in table.items() if entry[0] in parents)
        return reread

    def _reread(self, pid: int, table: dict[int, Entry]) -> None:
        data = self._stat_of(pid)
        if data is None:
            table.pop(pid, None)
        else:
            table[pid] = self._parse(pid, data)

    def _adopt_new(self, table: dict[int, Entry], after: int, span: int) -> None:
        """Add to `table` the processes among the `span` PIDs handed out after `after` whose
        parent is in the lab (a thread's PID is handed out too: exit_signal -1 tells it)."""
        found: dict[int, tuple[int, bytes]] = {}
        for k in range(1, span + 1):
            pid = (after + k) % self._pid_max
            if pid in table:
                continue
            line = procfs.stat_line(pid)
            if line is not None and not procfs.is_thread(line):
                found[pid] = (procfs.parse_stat(line).ppid, line)
        added = True
        while added:  # a child may have a lower PID than its parent once PIDs wrap
            added = False
            for pid, (ppid, _) in list(found.items()):
                if ppid in table:
                    del found[pid]
                    if self._join(pid, table):
                        added = True

    def _join(self, pid: int, table: dict[int, Entry]) -> bool:
        """Start following new process `pid`: open its files, then read it (so that the pidfd
        names the process whose stat file is open: it held the PID all along)."""
        data = self._stat_of(pid)
        if data is None:
            return False
        table[pid] = self._parse(pid, data)
        self._born[pid] = time.monotonic()
        return True

    def _young(self) -> list[int]:
        now = time.monotonic()
        for pid in [pid for pid, t in self._born.items() if now - t > YOUNG]:
            del self._born[pid]
        return list(self._born)

    def _unwatched(self) -> list[int]:
        """Processes of the lab without a pidfd (no room for one): read every sample."""
        if len(self._pidfd) >= len(self._table):
            return []
        # A zombie has no pidfd on a kernel without reap events: the tasks count tells of it.
        return [pid for pid, entry in self._table.items()
                if pid not in self._pidfd and (entry[1] != "Z" or self.reap_events)]

    # --- files ----------------------------------------------------------------------------------

    def _stat_of(self, pid: int) -> bytes | None:
        """Process `pid`'s stat line (its first STAT_READ bytes); None if it is gone.

        While following, a process gets its pidfd here, opened before the stat line is read:
        a read that succeeds proves that the process of the stat file held the PID all along,
        so both name the same process."""
        path = f"/proc/{pid}/stat"
        fd = self._stat.get(pid)
        fresh = fd is None
        if fresh:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                _skip_or_raise(exc, path)
                return None
        pidfd = self._new_pidfd(pid)
        try:
            data = os.pread(fd, STAT_READ, 0)
        except OSError as exc:  # ESRCH: reaped
            if pidfd is not None:
                os.close(pidfd)
            if fresh:
                os.close(fd)
            else:
                self._forget(pid)
            _skip_or_raise(exc, path)
            return None if fresh else self._stat_of(pid)  # the PID may name a new process
        if pidfd is not None:
            self._register(pid, pidfd, data)
        if fresh:
            if self._room():
                self._stat[pid] = fd
            else:
                os.close(fd)
        return data

    def _new_pidfd(self, pid: int) -> int | None:
        if not self._watching or pid in self._pidfd or not self._room():
            return None
        return procfs.pidfd_open(pid)

    def _register(self, pid: int, pidfd: int, data: bytes) -> None:
        """Watch `pid` through `pidfd`: for its exit if it lives, for its reaping if it is a
        zombie and the kernel reports that (POLLHUP comes whatever the mask asks)."""
        zombie = data[data.rfind(b")") + 2:].startswith(b"Z")
        if zombie and not self.reap_events:
            os.close(pidfd)  # nothing left to hear: its reaping is seen in the tasks count
            return
        self._pidfd[pid], self._fd_pid[pidfd] = pidfd, pid
        self._epoll.register(pidfd, 0 if zombie else select.EPOLLIN)

    def _unwatch(self, pid: int) -> None:
        fd = self._pidfd.pop(pid, None)
        if fd is not None:
            del self._fd_pid[fd]
            self._epoll.unregister(fd)
            os.close(fd)

    def _forget(self, pid: int) -> None:
        for kept in (self._stat, self._kids):
            fd = kept.pop(pid, None)
            if fd is not None:
                os.close(fd)
        self._unwatch(pid)
        self._last.pop(pid, None)
        self._ns.pop(pid, None)
        self._born.pop(pid, None)

    def _room(self) -> bool:
        return len(self._stat) + len(self._kids) + len(self._pidfd) < self.max_open

    def _parse(self, pid: int, data: bytes) -> Entry:
        # A zombie's line never changes, an idle sleeper's seldom: parse only what did.
        seen = self._last.get(pid)
        if seen is None or seen[0] != data:
            stat = procfs.parse_stat(data)
            seen = self._last[pid] = (data, (stat.ppid, stat.state, stat.comm))
        return seen[1]

    def _read_mark(self) -> tuple[int, int]:
        """(the last PID handed out, the tasks that exist) from /proc/loadavg (proc(5))."""
        fields = os.pread(self._loadavg, 128, 0).split()
        return int(fields[4]), int(fields[3].split(b"/")[1])

    def ns_pid(self, pid: int) -> int:
        """Process `pid`'s PID in its own namespace (kept while its stat file is kept open)."""
        with self._lock:
            return remembered_ns_pid(self._ns, pid, keep=pid in self._stat)

    def close(self) -> None:
        with self._lock:
            for pid in list(self._stat) + list(self._kids) + list(self._pidfd):
                self._forget(pid)
            if self._epoll is not None:
                self._epoll.close()
            if self._loadavg >= 0:
                os.close(self._loadavg)
                self._loadavg = -1
            if self._fallback is not None:
                self._fallback.close()
            self._table = {}


def _live(entry: Entry | None) -> bool:
    return entry is not None and entry[1] != "Z"
