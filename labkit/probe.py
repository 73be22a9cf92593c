"""Experiments the doctor runs in a fresh process, to learn what this kernel allows.

    python -m labkit.probe orphan FD | subreaper | userns | pidns [--user] | procmount [--user]

Each prints one JSON line, {"ok": true, ...} or {"ok": false, "errno": "EPERM", "error": ...},
and exits 0; a refusal by the kernel is a result, not a failure of the probe.

They run here, not in the caller, for two reasons: unshare(2) and prctl(2) change the process
that tries them for good, and the caller may be a multi-threaded Jupyter kernel, where fork is
unsafe and unshare(CLONE_NEWUSER) fails with EINVAL (unshare(2)). Standard library only, and
single-threaded, like every program that runs inside the lab.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys

from labkit import linux, procfs

USAGE = ("usage: python -m labkit.probe orphan FD | subreaper | userns | pidns [--user]"
         " | procmount [--user]\n")
ORPHAN_MAX_LIFE = 60.0  # the orphan waits for the doctor at most this long, then exits anyway


def refused(exc: OSError) -> dict:
    """What the kernel said, as the doctor reports it: errno's name and its message."""
    err = exc.errno or 0
    return {"ok": False, "errno": linux.errno_name(err), "error": os.strerror(err)}


def orphan(fd: int) -> dict:
    """Fork a grandchild-to-be that blocks reading `fd`; the caller orphans it by reaping us.

    When we exit, the kernel reparents it to the nearest living child-subreaper ancestor, or to
    PID 1 of its PID namespace (prctl(2) PR_SET_CHILD_SUBREAPER): its PPID then names its adopter.
    """
    pid = os.fork()
    if pid == 0:
        _orphan_life(fd)
    return {"ok": True, "pid": pid, "start": procfs.start_time(pid)}


def _orphan_life(fd: int) -> None:
    try:
        # Let go of our stdout at once: the doctor reads it to EOF, which must come when *we*
        # exit, not when the orphan does.
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        linux.set_name("labkit-orphan")
        wait_for_eof(fd, ORPHAN_MAX_LIFE)
    finally:
        os._exit(0)


def wait_for_eof(fd: int, timeout: float) -> bool:
    """Block until `fd` (a pipe's read end) is readable or hung up; False after `timeout` s.

    EOF on the pipe (the doctor closed its end, or died) is the orphan's signal to exit.
    poll(2), not select(2): the doctor passes its own descriptor number, which is above 1024
    once its process holds many files (a big lab's snapshots do), and select's fd_set cannot
    hold it (select(2), BUGS); Python's select.select refuses it with ValueError.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def subreaper() -> dict:
    """PR_SET_CHILD_SUBREAPER, then PR_GET_CHILD_SUBREAPER to see that it held."""
    linux.set_child_subreaper(True)
    return {"ok": linux.is_child_subreaper()}


def userns() -> dict:
    linux.unshare(linux.CLONE_NEWUSER)
    return {"ok": True}


def pidns(user: bool) -> dict:
    """unshare(CLONE_NEWPID): the namespace starts with our first child, which must be PID 1."""
    _enter(linux.CLONE_NEWPID, user)
    answer = in_first_child(lambda: {"pid_inside": os.getpid()})
    if "pid_inside" in answer:
        answer["ok"] = answer["pid_inside"] == 1
    return answer


def procmount(user: bool) -> dict:
    """Mount a fresh /proc in a new mount and PID namespace, as `unshare --mount-proc` does.

    A refusal says at which step ("step": "namespaces" or "mount"): unshare and ID maps, or mount.
    """
    try:
        _enter(linux.CLONE_NEWNS | linux.CLONE_NEWPID, user)
    except OSError as exc:
        return {**refused(exc), "step": "namespaces"}
    return in_first_child(_mount_proc)


def _mount_proc() -> dict:
    # A new mount namespace starts as a copy whose mounts may still be shared with the host's:
    # make them all private first, so the proc mount below propagates nowhere
    # (mount_namespaces(7), "Shared subtrees").
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    except OSError as exc:
        return {**refused(exc), "step": "mount"}
    # The new /proc shows the namespace's own PIDs: we are 1 there.
    me = os.readlink("/proc/self")
    return {"ok": me == "1", "proc_self": me}


def _enter(flags: int, user: bool) -> None:
    """unshare(flags), with a new user namespace first when asked (as `unshare -U -r`)."""
    uid, gid = os.getuid(), os.getgid()
    # With CLONE_NEWUSER the kernel creates the user namespace first and makes it the owner of
    # the others, so the capabilities we gain there are enough for them (user_namespaces(7)).
    linux.unshare(flags | (linux.CLONE_NEWUSER if user else 0))
    if user:
        linux.map_root(uid, gid)


def in_first_child(work) -> dict:
    """Run work() in a forked child (after unshare(CLONE_NEWPID) it is PID 1 there); its answer."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(work, wfd)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    try:
        return json.loads(data)
    except ValueError:
        return {"ok": False, "error": "the child ended without an answer"}


def _child(work, wfd: int) -> None:
    try:
        # Die with the probe: if the doctor kills it on a timeout, nothing may stay behind.
        linux.set_parent_death_signal(signal.SIGKILL)
        try:
            answer = work()
        except OSError as exc:
            answer = refused(exc)
        os.write(wfd, json.dumps(answer).encode())
    finally:
        os._exit(0)


def run(argv: list[str]) -> dict:
    name, *rest = argv
    if name == "orphan" and len(rest) == 1 and rest[0].isdigit():
        return orphan(int(rest[0]))
    user = rest == ["--user"]
    if rest and not user:
        raise ValueError(f"unexpected arguments {rest}")
    if name == "subreaper" and not rest:
        return subreaper()
    if name == "userns" and not rest:
        return userns()
    if name == "pidns":
        return pidns(user)
    if name == "procmount":
        return procmount(user)
    raise ValueError(f"unknown probe {name!r}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv:
            raise ValueError("which probe?")
        answer = run(argv)
    except ValueError as exc:
        sys.stderr.write(f"probe: {exc}\n{USAGE}")
        return 64
    except OSError as exc:
        answer = refused(exc)
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
