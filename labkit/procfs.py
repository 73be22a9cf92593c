"""The process table, read from /proc: the one place that knows its files (proc(5)).

psutil keeps each OS mechanism in one private module; this is ours for /proc. Every module of
labkit, the programs inside the lab and the tests read processes through it: one parser of
/proc/PID/stat into one named tuple (Stat), children, descendants, NSpid, start times, the
tasks in use, and a kill that goes through a pidfd. It is a module of its own rather than part
of labkit.linux because it needs no ctypes and no privilege: reading processes is one concern,
changing the kernel's settings (prctl, namespaces, mounts) another.

What counts as "gone" is decided here, once. An error reading /proc/PID/... means "no process to
see" only when it exited (ENOENT: its directory is gone; ESRCH: a file opened before it was
reaped) or is hidden from us (hidepid=, proc(5): EACCES/EPERM, never one of our own). Anything
else, EMFILE and ENFILE first (no descriptor left to open the file), is a failure to read and is
raised: never a process silently missing (labkit.errors.ProcUnreadable says why).

Standard library only: labkit.pause imports it, and an init must start in milliseconds.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from typing import NamedTuple

GONE = frozenset({errno.ENOENT, errno.ESRCH})
HIDDEN = frozenset({errno.EACCES, errno.EPERM})


def absent(exc: OSError) -> bool:
    """Whether `exc`, raised reading a process's /proc files, means it is gone or hidden."""
    return exc.errno in GONE or exc.errno in HIDDEN


class Stat(NamedTuple):
    """The fields of /proc/PID/stat the lab uses, named as proc(5) numbers them."""

    pid: int                # field 1
    comm: str               # field 2, without its parentheses
    state: str              # field 3: R, S, D, T, t, Z, X, I...
    ppid: int               # field 4
    pgrp: int               # field 5
    session: int            # field 6
    starttime: int | None   # field 22, clock ticks after boot; None if the line was cut short


def parse_stat(data: bytes) -> Stat:
    """Stat from the bytes of a /proc/PID/stat line, whole or its first bytes at least up to
    field 6 (a reader in a hurry reads 128 bytes; starttime is then None).

    comm sits in parentheses and may itself contain ')' or spaces, so the fields after it are
    found from the *last* ')' (proc(5)).
    """
    lpar, rpar = data.find(b"("), data.rfind(b")")
    rest = data[rpar + 2:].split(b" ", 20)  # rest[0] is field 3; rest[19] field 22
    return Stat(int(data[:lpar]), data[lpar + 1:rpar].decode(errors="replace"),
                rest[0].decode(), int(rest[1]), int(rest[2]), int(rest[3]),
                int(rest[19]) if len(rest) > 20 else None)


def read_stat(pid: int, proc: int | None = None) -> Stat | None:
    """Process `pid`'s Stat; None if it is gone or hidden, any other OSError (EMFILE) raised.

    `proc`: a descriptor of another /proc (the host's, seen from inside a PID namespace).
    """
    try:
        fd = os.open(f"{pid}/stat" if proc is not None else f"/proc/{pid}/stat", os.O_RDONLY,
                     dir_fd=proc)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError as exc:
        if absent(exc):
            return None
        raise
    return parse_stat(data)


def state(pid: int) -> str | None:
    """Process `pid`'s state letter (proc(5) field 3); None once it is gone (reaped)."""
    stat = read_stat(pid)
    return None if stat is None else stat.state


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (field 22); None if it is gone or hidden.

    (pid, start time) names one process for good: a PID is reused, its start time is not.
    """
    stat = read_stat(pid)
    return None if stat is None else stat.starttime


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> list[int]:
    """PIDs of `pid`'s children (zombies included); [] if it is gone.

    /proc/PID/task/PID/children (proc(5), Linux >= 4.2 with CONFIG_PROC_CHILDREN) lists the
    children of that one thread, which is all of them for the single-threaded programs we ask
    about; where the kernel has no such file, the PPIDs in /proc give the same answer, slower.
    """
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except FileNotFoundError:
        if not os.path.exists(f"/proc/{pid}"):
            return []
    except OSError as exc:
        if exc.errno in GONE:  # ESRCH: exited while we read
            return []
        raise
    return [p for p in all_pids() if (stat := read_stat(p)) is not None and stat.ppid == pid]


def descendants(root: int) -> list[int]:
    """PIDs of every living (or zombie) descendant of `root`, by the PPID chains in /proc (one
    scan: a walk of children files would miss a process whose parent exits mid-walk)."""
    kids: dict[int, list[int]] = {}
    for pid in all_pids():
        stat = read_stat(pid)
        if stat is not None:
            kids.setdefault(stat.ppid, []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for child in kids.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def nspid(pid: int) -> list[int] | None:
    """Process `pid`'s PID in each PID namespace it is in, outermost first (NSpid in
    /proc/PID/status, Linux >= 4.1); None if it is gone or hidden, other errors raised."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return [int(n) for n in line.split()[1:]]
    except OSError as exc:
        if absent(exc):
            return None
        raise
    return None


def status(pid: int) -> dict[str, str] | None:
    """The fields of /proc/PID/status (proc(5)), name -> value ("State" -> "Z (zombie)"); None
    if the process is gone or hidden, other errors raised."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        if absent(exc):
            return None
        raise
    return {name: value.strip() for name, _, value in (line.partition(":") for line in lines)}


def pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def tasks_in_use() -> int:
    """Threads alive on the machine: each holds a PID (the 4th field of /proc/loadavg)."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[1])


# --- signals through pidfds: a process named for good ----------------------------------------

def pidfd_open(pid: int) -> int | None:
    """A descriptor that names process `pid` itself, not whoever holds its PID later
    (pidfd_open(2), Linux >= 5.3); None if it is gone or the kernel has no pidfds (ENOSYS)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:  # ESRCH: gone; ENOSYS: too old a kernel; EMFILE: no room
        return None


def pidfd_kill(pidfd: int, signo: int) -> bool:
    """Send `signo` to the process of `pidfd` (pidfd_send_signal(2)); False if it has exited.
    A pidfd never reaches a process that got the PID later, as kill(2) might."""
    try:
        signal.pidfd_send_signal(pidfd, signo)
        return True
    except ProcessLookupError:
        return False


def open_checked(pid: int, check: Callable[[Stat], bool]) -> int | None:
    """A pidfd for `pid` if, once it is open, its Stat passes `check`; None if not, or if `pid`
    is gone. OSError (ENOSYS; EPERM from an older seccomp filter) where there are no pidfds."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        raise OSError(errno.ENOSYS, "no os.pidfd_open in this Python")
    try:
        fd = opener(pid)
    except ProcessLookupError:
        return None
    # Read after the open: if the pidfd's process still exists, these are its /proc files.
    try:
        stat = read_stat(pid)
        if stat is not None and check(stat):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def signal_pidfd(fd: int, signo: int) -> bool:
    """Send `signo` through pidfd `fd` (closed here); False if its process is gone (reaped)."""
    try:
        signal.pidfd_send_signal(fd, signo)
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        os.close(fd)
    return True


def kill(pid: int, signo: int, check: Callable[[Stat], bool]) -> bool:
    """Send `signo` to `pid` if it is still the process `check` recognizes; whether it was sent.

    Between reading /proc and signalling, the process may exit, be reaped, and its PID go to a
    stranger. A pidfd opened, then checked, then signalled reaches that process or, if it has
    died since, nobody (ESRCH). Without pidfds (ENOSYS, Linux < 5.3; EPERM from a seccomp
    filter older than them) the PID, checked just before, is all there is.
    """
    try:
        fd = open_checked(pid, check)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            return False  # EMFILE...: no answer; the caller may try again
        stat = read_stat(pid)
        if stat is None or not check(stat):
            return False
        try:
            os.kill(pid, signo)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    return fd is not None and signal_pidfd(fd, signo)


# --- what a lab-scoped reader needs (labkit.labtable) ----------------------------------------

def num_threads(data: bytes) -> int:
    """num_threads (field 20) of a stat line; 2 if the line was cut short (read every thread)."""
    fields = data[data.rfind(b")") + 2:].split(b" ", 18)
    return int(fields[17]) if len(fields) > 18 else 2


def is_thread(line: bytes) -> bool:
    """Whether a whole stat line is a thread's that is not its group's leader: exit_signal
    (field 38) is -1 for a task cloned with CLONE_THREAD (kernel/fork.c copy_process). A
    thread's /proc/TID/stat can be read, though /proc lists only thread-group leaders."""
    fields = line[line.rfind(b")") + 2:].split()
    return len(fields) > 35 and fields[35] == b"-1"


def stat_line(pid: int) -> bytes | None:
    """The whole stat line of `pid`; None if there is none (never handed out, gone, hidden);
    any other OSError (EMFILE) raised."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError as exc:
        if absent(exc):
            return None
        raise
    try:
        return os.read(fd, 4096)
    except OSError as exc:
        if absent(exc):
            return None
        raise
    finally:
        os.close(fd)


def read_whole(fd: int) -> bytes:
    """All of a /proc file opened as `fd`, read from its start. A seq_file read gives at most a
    page at a time, so a children file of a thousand children (six bytes each) takes two
    reads; an empty read is the end."""
    chunk = os.pread(fd, 8192, 0)
    if len(chunk) < 4000:
        return chunk
    parts = [chunk]
    offset = len(chunk)
    while chunk:
        chunk = os.pread(fd, 8192, offset)
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def pids_in(data: bytes) -> list[int]:
    """The PIDs of a children file's contents."""
    return [int(pid) for pid in data.split()]
