"""A lab parent: a process that forks children and reaps them (or not) by one policy.

Standard library only, single-threaded. The agent forks it and talks to it over a Channel;
`serve` never returns (the process ends with os._exit).

The policies are the ways a real parent treats its children:
  none          never waits: every exited child stays a zombie
  wait          its main loop reaps with waitpid whenever a child exits (no signal handler)
  sigchld       a SIGCHLD handler that loops waitpid(WNOHANG), as pause.c does
  sigchld-once  a SIGCHLD handler that calls waitpid once: signals coalesce, zombies remain
  ignore        SIGCHLD set to SIG_IGN: the kernel reaps at exit and no status is kept (wait(2))
"""

from __future__ import annotations

import os
import select
import signal
import time

from labkit import linux
from labkit.wire import Channel

POLICIES = ("none", "wait", "sigchld", "sigchld-once", "ignore")


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


def install(policy: str) -> int | None:
    """Set up SIGCHLD for `policy`; for "wait", return an fd that becomes readable on SIGCHLD."""
    if policy == "sigchld":
        signal.signal(signal.SIGCHLD, _on_sigchld_loop)
    elif policy == "sigchld-once":
        signal.signal(signal.SIGCHLD, _on_sigchld_once)
    elif policy == "ignore":
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    elif policy == "wait":
        # The handler does nothing; the C-level handler writes a byte to this pipe, which wakes
        # the main loop's select() so that *it* calls waitpid.
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, _nothing)
        signal.set_wakeup_fd(wfd)
        return rfd
    else:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    return None


def fork_children(n: int, lifetime: float,
                  close: tuple[int, ...]) -> tuple[list[int], OSError | None]:
    """Fork n children that each live `lifetime` seconds then exit 0; stop at the first refusal."""
    pids: list[int] = []
    fork = os.fork
    try:
        for _ in range(n):
            pid = fork()
            if pid == 0:
                _child(lifetime, close)
            pids.append(pid)
    except OSError as exc:  # EAGAIN: a PID budget (RLIMIT_NPROC, pids.max) or pid_max is spent
        return pids, exc
    return pids, None


def _child(lifetime: float, close: tuple[int, ...]) -> None:
    try:
        for fd in close:  # the parent's pipes: a child must not keep them open
            os.close(fd)
        linux.set_name("lab-child")
        if lifetime > 0:
            time.sleep(lifetime)
    finally:
        os._exit(0)


def serve(channel: Channel, policy: str) -> None:
    """The parent's main loop: answer fork/reap/exit requests until told to exit."""
    linux.set_name("lab-parent")
    wake = install(policy)
    close = tuple(fd for fd in (channel.rfd, channel.wfd, wake) if fd is not None)
    watched = [channel.rfd] + ([wake] if wake is not None else [])
    while True:
        if not channel.has_line():
            ready = select.select(watched, [], [])[0]
            if wake in ready:
                _drain_wakeups(wake)
                reap_all()
                if channel.rfd not in ready:
                    continue
        request = channel.receive()
        if request is None or request["op"] == "exit":
            os._exit(0)  # our children become orphans: the kernel reparents them (prctl(2))
        channel.send(handle(request, close))


def handle(request: dict, close: tuple[int, ...]) -> dict:
    op = request["op"]
    if op == "fork":
        pids, error = fork_children(request["n"], request["lifetime"], close)
        if error is not None:
            return {"ok": False, "errno": error.errno, "error": os.strerror(error.errno),
                    "pids": pids}
        return {"ok": True, "pids": pids}
    if op == "reap":
        return {"ok": True, "reaped": reap_all()}
    return {"ok": False, "error": f"unknown request {op!r}"}


def _drain_wakeups(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
