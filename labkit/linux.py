"""Linux mechanics the lab stands on: prctl, rlimits, namespaces, mounts (/proc is labkit.procfs).

Standard library only (os, ctypes): the programs that run inside the lab import this module, and
they must start in milliseconds. Every wrapper raises ``OSError`` with the kernel's errno, so a
caller can show the learner exactly what the kernel refused.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

from labkit import procfs

# prctl(2) options (include/uapi/linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
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


def errno_name(err: int) -> str:
    return errno.errorcode.get(err, str(err))


# --- mounts, identity maps, process start times (used by labkit.probe and the doctor) --------

# mount(2) flags (include/uapi/linux/mount.h).
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); raises OSError on failure (Python has no wrapper)."""
    fn = libc().mount
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                   ctypes.c_char_p]

    def raw(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    _check(fn(raw(source), raw(target), raw(fstype), flags, raw(data)), f"mount {target}")


def map_root(uid: int, gid: int) -> None:
    """In a new user namespace, map root inside to `uid`/`gid` outside, as `unshare -r` does.

    An unprivileged process may map only its own IDs, and must deny setgroups(2) before it may
    write gid_map (user_namespaces(7), "The /proc/[pid]/setgroups file").
    """
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
    except FileNotFoundError:  # Linux < 3.19 has no setgroups file
        pass
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


# --- namespaces: what labkit.unshare and the pod need -----------------------------------------

SIOCGIFFLAGS = 0x8913  # netdevice(7)
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def sethostname(name: str) -> None:
    """sethostname(2), for a new UTS namespace (Python has only socket.sethostname)."""
    import socket

    socket.sethostname(name)


def loopback_up() -> None:
    """Bring up `lo` in a new network namespace, where it starts down (netdevice(7))."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def host_pid(host_proc: int) -> int:
    """This process's PID in the namespace of a /proc opened there (an fd kept from outside).

    /proc/self resolves in the PID namespace of the /proc instance, not of the caller
    (proc(5)), so a process inside a new PID namespace can learn its host PID from the host's
    /proc.
    """
    return int(os.readlink("self", dir_fd=host_proc))


def mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, type, options) of each mount of ours (proc(5), /proc/self/mounts)."""
    try:
        with open("/proc/self/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [(fields[1], fields[2], fields[3].split(",")) for fields in map(str.split, lines)
            if len(fields) >= 4]


# --- owners: what a process leaves behind is named after it ----------------------------------

def pid_namespace_id() -> int:
    """The inode of our PID namespace (namespaces(7)): a PID means something only inside one."""
    return os.stat("/proc/self/ns/pid").st_ino


def owner_tag() -> str:
    """'PID-START-NAMESPACE' of this process, for the names of files and cgroups it must remove
    itself. A reused PID has another start time, and a PID of another PID namespace another
    namespace, so neither passes for us once we are gone (see owner_gone)."""
    pid = os.getpid()
    return f"{pid}-{procfs.start_time(pid)}-{pid_namespace_id()}"


def owner_gone(name: str, prefix: str) -> bool:
    """Whether `name`, made as PREFIX + owner_tag() + '-' + anything, names an owner that has
    ended. False when that cannot be known: not such a name (older labkit, or someone else's),
    or an owner in another PID namespace."""
    if not name.startswith(prefix):
        return False
    parts = name[len(prefix):].split("-", 3)
    if len(parts) != 4 or not all(part.isdigit() for part in parts[:3]):
        return False
    pid, start, namespace = (int(part) for part in parts[:3])
    try:
        if namespace != pid_namespace_id():
            return False
    except OSError:
        return False
    return procfs.start_time(pid) != start  # a zombie owner still has its start time: not gone yet


def exit_now(code: int) -> None:
    """Exit with `code` at once, as pause.c's exit(0) does: no interpreter teardown (the lab's
    init and the namespace launcher end so).

    Finalising the interpreter (freeing every object, module by module) takes 5-10 ms and more
    on a busy machine: it was nearly all of our stop latency, SIGTERM to exit, against pause.c's
    0.5 ms (bench/bench_inits.py). The kernel frees all of it at once. What the interpreter would
    still do for us is flush the standard streams, and that is done here; we register no atexit
    handler. A stream that cannot be flushed (a closed pipe) costs its output, not the exit.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
