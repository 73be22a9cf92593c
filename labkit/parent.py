"""A lab parent: a process that forks children and reaps them (or not) by one policy.

    python -S /PATH/TO/labkit/parent.py R W POLICY    (the agent starts it: programs.parent)

The policies are the ways a real parent treats its children:
  none          never waits: every exited child stays a zombie
  wait          its main loop reaps with waitpid whenever a child exits (no signal handler)
  sigchld       a SIGCHLD handler that loops waitpid(WNOHANG), as pause.c does
  sigchld-once  a SIGCHLD handler that calls waitpid once: signals coalesce, zombies remain
  ignore        SIGCHLD set to SIG_IGN: the kernel reaps at exit and no status is kept (wait(2))

A fresh, bare interpreter (-S: no site, and only os, select, _signal and time imported here): a
parent forks as fast as a bare `os.fork()` loop only when it maps as little memory, since fork
copies the page table entries of every mapping that holds pages it wrote (copy_page_range,
mm/memory.c), and every child unmaps them again when it dies (exit_mmap, mm/mmap.c: a closing
lab's 5,000 sleeping children do it all at once).
So no json (a line protocol of words), no ctypes (the name is written to /proc/self/comm), no
labkit.linux; it runs as a file, not imported from the labkit package (whose __init__ imports
importlib); it takes the C module _signal, not signal, whose enums import enum, functools,
collections and a dozen more; and the lab runs a compiled copy of this file, so that the
compiler's memory is not touched either (labkit.runtime.write_parent_code). A child now inherits
661 anonymous pages, not 1,057 (1,350 resident, not 1,630; measured with smaps_rollup, proc(5)).

Protocol, one line each way, over the two pipes the agent gives us:
  parent:  hello HOSTPID                       once, at start
  agent:   fork N LIFETIME | reap | exit
  parent:  ok PID...  |  err ERRNO PID...      (fork: the children made, by host PID; in a
                                               PID namespace each as HOSTPID:NSPID)
           ok COUNT                            (reap: how many were reaped)

In a PID namespace, fork() returns the children's PIDs there, and the kernel side needs their
host PIDs. Under "none" and "wait" no child can leave our children list while we answer a fork
request (only our own wait removes one, and we make none until the reply is sent), so the
parent learns them all at once: one read of its children file through the host's /proc, one
through ours. Both list the same children in the same order, fork order (proc(5); kernel/fork.c
adds each new child at the tail), so they pair up. The children make no call of their own. Under
"sigchld", "sigchld-once" and "ignore" a child may be reaped before we could read it, so each
child tells its own host PID (a readlink and a write) before it exits.
"""

import sys

if __name__ == "__main__":  # run as a file: its folder, labkit/, must not shadow a module
    del sys.path[0]

import _signal as signal  # noqa: E402  (the C half of signal: no enums, see above)
import os  # noqa: E402
import select  # noqa: E402
import time  # noqa: E402

POLICIES = ("none", "wait", "sigchld", "sigchld-once", "ignore")


def host_proc() -> int | None:
    """A descriptor of the host's /proc, which labkit.unshare hands down into a namespace."""
    fd = os.environ.get("LABKIT_HOST_PROC_FD")
    return int(fd) if fd else None


def host_pid() -> int:
    """Our PID on the host (/proc/self resolves in the namespace of its /proc: proc(5))."""
    fd = host_proc()
    return os.getpid() if fd is None else int(os.readlink("self", dir_fd=fd))


def set_comm(name: bytes) -> None:
    """Name this process for ps (the comm field); children inherit it at fork (proc(5))."""
    fd = os.open("/proc/self/comm", os.O_WRONLY)
    try:
        os.write(fd, name)
    finally:
        os.close(fd)


def reap_all() -> int:
    """waitpid(-1, WNOHANG) until nothing is left; how many children were reaped."""
    count = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return count
        if pid == 0:
            return count
        count += 1


def reap_once() -> int:
    try:
        return 1 if os.waitpid(-1, os.WNOHANG)[0] else 0
    except ChildProcessError:
        return 0


def _on_sigchld_loop(signo, frame) -> None:
    reap_all()


def _on_sigchld_once(signo, frame) -> None:
    # The bug: one call per delivered signal, but the kernel keeps at most one SIGCHLD pending,
    # and Python runs the handler once per check however many arrived (signal(7)).
    reap_once()


def _nothing(signo, frame) -> None:
    pass


HANDLERS = {"sigchld": _on_sigchld_loop, "sigchld-once": _on_sigchld_once, "wait": _nothing}


def install(policy: str) -> int | None:
    """Set up SIGCHLD for `policy`; for the handled ones, an fd that becomes readable on SIGCHLD.

    Python runs a handler between bytecodes, so a SIGCHLD that lands just before select()
    would wait for the next request. The C-level handler also writes a byte to this pipe, which
    wakes select() at once (signal.set_wakeup_fd). For "wait" the handler does nothing and the
    main loop calls waitpid; for "sigchld" the handler itself reaps, as the lesson says.
    """
    if policy == "ignore":
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        return None
    if policy not in HANDLERS:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        return None
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, HANDLERS[policy])
    signal.set_wakeup_fd(wfd)
    return rfd


# Policies under which no child leaves our children list while a fork request is answered.
KEEPS_CHILDREN = ("none", "wait")


def fork_children(n: int, lifetime: float, close: tuple[int, ...], report: int | None = None,
                  batch: bool = False) -> tuple[list, OSError | None]:
    """Fork n children that each live `lifetime` seconds then exit 0; stop at the first refusal.

    The children are named lab-child by naming ourselves so before the loop (comm is inherited),
    which costs them nothing. `report`: a host /proc descriptor, when we are in a namespace; the
    PIDs returned are then HOSTPID:NSPID, learned from our children files when `batch` (the
    policy keeps every child listed: see the module's docstring), else told by each child.
    """
    if report is not None and batch:
        pids, error = fork_children(n, lifetime, close)
        try:
            return host_pairs(pids, report), error
        except OSError:  # EMFILE...: the children are made; their host PIDs stay unknown
            return [f"?:{pid}" for pid in pids], error
    pids: list[int] = []
    append = pids.append
    fork = os.fork
    reports = os.pipe() if report is not None else None
    set_comm(b"lab-child")
    try:
        for _ in range(n):
            pid = fork()
            if pid == 0:
                _child(lifetime, close, report, reports)
            append(pid)
    except OSError as exc:  # EAGAIN: a PID budget (RLIMIT_NPROC, pids.max) or pid_max is spent
        return _hosts(pids, reports), exc
    finally:
        set_comm(b"lab-parent")
    return _hosts(pids, reports), None


def _child(lifetime: float, close: tuple[int, ...], report: int | None,
           reports: tuple[int, int] | None) -> None:
    try:
        if reports is not None:
            host = os.readlink("self", dir_fd=report)
            os.write(reports[1], b"%d %s\n" % (os.getpid(), host.encode()))
            os.close(reports[1])
        if lifetime > 0:  # a child that exits at once closes everything in _exit anyway
            for fd in close:  # the parent's pipes: a child must not keep them open
                os.close(fd)
            time.sleep(lifetime)
    finally:
        os._exit(0)


def _hosts(pids: list[int], reports: tuple[int, int] | None) -> list:
    """The children's PIDs as HOSTPID:NSPID, from their reports (read until every child has
    closed its end); just the PIDs outside a namespace, where the two are the same."""
    if reports is None:
        return pids
    os.close(reports[1])
    data = b""
    while chunk := os.read(reports[0], 1 << 16):
        data += chunk
    os.close(reports[0])
    host = dict(line.split() for line in data.decode().splitlines())
    return [f"{host.get(str(pid), '?')}:{pid}" for pid in pids]


def read_all(path: str, dir_fd: int | None = None) -> bytes:
    fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    try:
        data = b""
        while chunk := os.read(fd, 1 << 16):
            data += chunk
        return data
    finally:
        os.close(fd)


def host_pairs(pids: list[int], host: int) -> list[str]:
    """`pids`, our newest children, as HOSTPID:NSPID, from our children file read once through
    the host's /proc (`host`, a descriptor) and once through ours.

    /proc/PID/task/TID/children shows the PIDs of the namespace of the /proc it is read through
    (proc(5)). Both reads list the same children in fork order when none left the list between
    them; the check that ours ends with `pids` and both have the same length proves it. If it
    fails, each child still listed is looked up by its NSpid (proc(5)), and one already gone is
    "?" (the agent leaves it out).
    """
    me, mine = os.getpid(), int(os.readlink("self", dir_fd=host))
    outside = read_all(f"{mine}/task/{mine}/children", host).split()
    inside = [int(pid) for pid in read_all(f"/proc/{me}/task/{me}/children").split()]
    if len(outside) == len(inside) and inside[len(inside) - len(pids):] == pids:
        outside = outside[len(outside) - len(pids):]
        return [f"{h.decode()}:{pid}" for h, pid in zip(outside, pids, strict=True)]
    known = {}
    for h in outside:
        ns = nspid_inside(h.decode(), host)
        if ns is not None:
            known[ns] = h.decode()
    return [f"{known.get(pid, '?')}:{pid}" for pid in pids]


def nspid_inside(pid: str, host: int) -> int | None:
    """The innermost PID of host process `pid` (the last NSpid of /proc/PID/status), None if
    it is gone."""
    try:
        data = read_all(f"{pid}/status", host)
    except OSError:
        return None
    for line in data.splitlines():
        if line.startswith(b"NSpid:"):
            return int(line.split()[-1])
    return None


def batches(policy: str, host: int | None) -> bool:
    """Whether a fork under `policy` learns the host PIDs from our children files: only where
    the policy keeps every child listed, and both files can be read (CONFIG_PROC_CHILDREN)."""
    if host is None or policy not in KEEPS_CHILDREN:
        return False
    try:
        read_all(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
        mine = os.readlink("self", dir_fd=host)
        read_all(f"{mine}/task/{mine}/children", host)
    except OSError:
        return False
    return True


def handle(words: list[str], close: tuple[int, ...], batch: bool = False) -> str:
    if words[0] == "fork":
        pids, error = fork_children(int(words[1]), float(words[2]), close, host_proc(), batch)
        head = "ok" if error is None else f"err {error.errno}"
        return " ".join([head, *map(str, pids)])
    if words[0] == "reap":
        return f"ok {reap_all()}"
    return "err 0"


def serve(rfd: int, wfd: int, policy: str) -> None:
    """The parent's main loop: answer requests until told to exit (or the agent is gone)."""
    set_comm(b"lab-parent")
    os.write(wfd, b"hello %d\n" % host_pid())  # short: a pipe writes it whole
    wake = install(policy)
    batch = batches(policy, host_proc())
    close = tuple(fd for fd in (rfd, wfd, wake) if fd is not None)
    poller = select.poll()  # not select(2): it cannot watch an fd >= 1024
    for fd in [rfd] + ([wake] if wake is not None else []):
        poller.register(fd, select.POLLIN)
    pending = b""
    while True:
        if b"\n" not in pending:
            ready = [fd for fd, _ in poller.poll()]
            if wake in ready:
                _drain_wakeups(wake)
                if policy == "wait":
                    reap_all()
            if rfd not in ready:
                continue
            chunk = os.read(rfd, 4096)
            if not chunk:
                os._exit(0)  # the agent is gone: so are we
            pending += chunk
            if b"\n" not in pending:
                continue
        line, pending = pending.split(b"\n", 1)
        words = line.decode().split()
        if words[0] == "exit":
            os._exit(0)  # our children become orphans: the kernel reparents them (prctl(2))
        reply = (handle(words, close, batch) + "\n").encode()
        while reply:  # a long reply may be written in parts (a signal handler interrupts it)
            reply = reply[os.write(wfd, reply):]


def _drain_wakeups(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def main() -> None:
    rfd, wfd, policy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    try:
        serve(rfd, wfd, policy)
    finally:
        os._exit(70)


if __name__ == "__main__":
    main()
