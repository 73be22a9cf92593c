"""Linux mechanics the lab stands on: prctl, rlimits, namespaces, /proc.

Standard library only (os, ctypes): the programs that run inside the lab import this module, and
they must start in milliseconds. Every wrapper raises ``OSError`` with the kernel's errno, so a
caller can show the learner exactly what the kernel refused.
"""

from __future__ import annotations

import ctypes
import errno
import os

# prctl(2) options (include/uapi/linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

# clone(2) / unshare(2) flags (include/uapi/linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

_libc = None


def libc() -> ctypes.CDLL:
    """The C library, loaded once, with errno preserved for OSError.

    dlopen(NULL) finds libc among the interpreter's own libraries; ctypes.util.find_library
    would run `ldconfig -p` in a subprocess, far too slow for an init or a forked child.
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); raises OSError on failure."""
    fn = libc().prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return _check(fn(option, arg2, arg3, arg4, arg5), "prctl")


def set_child_subreaper(on: bool = True) -> None:
    """Become the reaper of orphaned descendants (prctl(2) PR_SET_CHILD_SUBREAPER, Linux >= 3.4).

    Unprivileged: any process may ask. Orphans are then reparented to the nearest living
    subreaper ancestor instead of to PID 1 of the namespace.
    """
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def is_child_subreaper() -> bool:
    value = ctypes.c_int(0)
    fn = libc().prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _check(fn(PR_GET_CHILD_SUBREAPER, ctypes.addressof(value), 0, 0, 0), "prctl")
    return bool(value.value)


def set_parent_death_signal(signo: int) -> None:
    """Ask for `signo` when the parent *thread* dies (prctl(2) PR_SET_PDEATHSIG).

    The kernel sends it when the thread that forked us exits, not the whole process: the lab is
    therefore always started from the thread that owns it (the kernel's main thread).
    """
    prctl(PR_SET_PDEATHSIG, signo)


def set_name(name: str) -> None:
    """Set this process's comm (what `ps -o comm` and psutil's name() show; 15 bytes at most)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    fn = libc().prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _check(fn(PR_SET_NAME, buf, 0, 0, 0), "prctl")


def unshare(flags: int) -> None:
    """unshare(2) (os.unshare exists only from Python 3.12)."""
    if hasattr(os, "unshare"):
        os.unshare(flags)
        return
    fn = libc().unshare
    fn.argtypes = [ctypes.c_int]
    _check(fn(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) (os.setns exists only from Python 3.12)."""
    if hasattr(os, "setns"):
        os.setns(fd, nstype)
        return
    fn = libc().setns
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    _check(fn(fd, nstype), "setns")


# --- /proc ---------------------------------------------------------------------------------

def read_stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state letter, ppid) from /proc/PID/stat, or None if the process is gone.

    comm sits in parentheses and may itself contain ')' or spaces, so the fields after it are
    found from the *last* ')' (proc(5)).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:  # gone (ENOENT/ESRCH), or hidden from us (hidepid=: EACCES)
        return None
    lpar = data.find(b"(")
    rpar = data.rfind(b")")
    fields = data[rpar + 2:].split(b" ", 2)
    return data[lpar + 1:rpar].decode(errors="replace"), fields[0].decode(), int(fields[1])


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> list[int]:
    """PIDs of every living (or zombie) descendant of `root`, by the PPID chains in /proc."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        stat = read_stat(pid)
        if stat is not None:
            children.setdefault(stat[2], []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def tasks_in_use() -> int:
    """Threads alive on the machine: each holds a PID (the 4th field of /proc/loadavg)."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[1])


def errno_name(err: int) -> str:
    return errno.errorcode.get(err, str(err))
