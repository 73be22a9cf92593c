"""The lab's agent: takes the kernel's requests over a pipe and starts and drives lab parents.

    python -m labkit.agent --fds R,W     (started by the lab root, never by hand)

Standard library only, single-threaded, so that forking here is safe and fast: the Jupyter
kernel is multi-threaded and never forks lab processes itself. Each lab parent is a fork of this
small interpreter, with a pipe pair of its own; the agent relays requests to it.
"""

from __future__ import annotations

import os
import select
import signal
import sys

from labkit import linux, parent
from labkit.wire import Channel


class Agent:
    def __init__(self, kernel: Channel) -> None:
        self.kernel = kernel
        self.parents: dict[int, Channel] = {}
        self.statuses: dict[int, int] = {}  # parents that ended, by exit code (or -signal)
        self.wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # SIGCHLD wakes select() through it

    def handle(self, request: dict) -> dict:
        op = request["op"]
        if op == "parent":
            return self.start_parent(request["policy"])
        if op in ("fork", "reap", "exit"):
            pid = request["parent"]
            if pid not in self.parents:
                return self.gone(pid)
            if op == "exit":
                return self.end_parent(pid)
            return self.relay(pid, request)
        return {"ok": False, "error": f"unknown request {op!r}"}

    def start_parent(self, policy: str) -> dict:
        if policy not in parent.POLICIES:
            return {"ok": False, "error": f"unknown policy {policy!r}"}
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            return {"ok": False, "errno": exc.errno, "error": os.strerror(exc.errno)}
        if pid == 0:
            self.become_parent(Channel(down_r, up_w), policy, (down_w, up_r))
        os.close(down_r)
        os.close(up_w)
        self.parents[pid] = Channel(up_r, down_w)
        return {"ok": True, "pid": pid}

    def become_parent(self, channel: Channel, policy: str, unused: tuple[int, int]) -> None:
        try:
            signal.set_wakeup_fd(-1)
            # Drop everything that belongs to the agent: its pipe to the kernel and the other
            # parents' pipes, so that each pipe's EOF means what it says.
            for fd in (self.kernel.rfd, self.kernel.wfd, *self.wake, *unused):
                os.close(fd)
            for other in self.parents.values():
                other.close()
            linux.set_parent_death_signal(signal.SIGKILL)  # the agent died: so do we
            parent.serve(channel, policy)
        finally:
            os._exit(70)

    def relay(self, pid: int, request: dict) -> dict:
        channel = self.parents[pid]
        try:
            channel.send(request)
            reply = channel.receive()
        except OSError:
            reply = None
        return reply if reply is not None else self.gone(pid)

    def end_parent(self, pid: int) -> dict:
        channel = self.parents.pop(pid)
        try:
            channel.send({"op": "exit"})
        except OSError:
            pass
        channel.close()
        self.wait_for(pid)
        return {"ok": True, "status": self.statuses.get(pid)}

    def gone(self, pid: int) -> dict:
        """A parent we do not know, or one that died under us (a learner's kill -9)."""
        channel = self.parents.pop(pid, None)
        if channel is not None:  # its pipe hit EOF: it has exited, or is about to
            channel.close()
            self.wait_for(pid)
        status = self.statuses.get(pid)
        how = "" if status is None else (
            f" (exit status {status})" if status >= 0 else f" (killed by signal {-status})")
        return {"ok": False, "gone": True, "error": f"parent {pid} is gone{how}"}

    def wait_for(self, pid: int) -> None:
        try:
            _, status = os.waitpid(pid, 0)
            self.statuses[pid] = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            pass

    def reap(self) -> None:
        """Reap our own children (the parents): only they are ours; orphans go to the root."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.statuses[pid] = os.waitstatus_to_exitcode(status)
            channel = self.parents.pop(pid, None)
            if channel is not None:
                channel.close()

    def serve(self) -> int:
        wake_r, wake_w = self.wake
        signal.signal(signal.SIGCHLD, lambda signo, frame: None)
        signal.set_wakeup_fd(wake_w)
        self.kernel.send({"ok": True, "agent": os.getpid(), "root": os.getppid()})
        while True:
            if not self.kernel.has_line():
                ready = select.select([self.kernel.rfd, wake_r], [], [])[0]
                if wake_r in ready:
                    parent._drain_wakeups(wake_r)
                    self.reap()
                    if self.kernel.rfd not in ready:
                        continue
            request = self.kernel.receive()
            if request is None or request["op"] == "quit":
                return 0  # the kernel is gone or done; the root drains what is left
            try:
                reply = self.handle(request)
            except Exception as exc:  # a bad request must not take the lab down
                reply = {"ok": False, "error": f"the agent failed: {exc!r}"}
            reply["id"] = request.get("id")
            self.kernel.send(reply)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--fds":
        print("usage: python -m labkit.agent --fds R,W (the lab root starts it)", file=sys.stderr)
        return 64
    rfd, wfd = (int(fd) for fd in argv[1].split(","))
    linux.set_name("lab-agent")
    linux.set_parent_death_signal(signal.SIGKILL)  # the root died: nothing here may outlive it
    if os.getppid() == 1:
        return 1
    return Agent(Channel(rfd, wfd)).serve()


if __name__ == "__main__":
    sys.exit(main())
