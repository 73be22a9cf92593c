"""The lab's agent: takes the kernel's requests over a pipe and starts and drives lab parents.

    python -m labkit.agent --fds R,W     (started by the lab root, never by hand)

Standard library only, single-threaded, so that forking here is safe and fast: the Jupyter
kernel is multi-threaded and never forks lab processes itself. Each lab parent is a fork of this
small interpreter, with a pipe pair of its own; the agent relays requests to it.

The kernel knows processes by their host PIDs. In a PID-namespace lab, fork() and waitpid()
here return PIDs of the namespace, so each parent tells the agent its host PID when it starts
(labkit.linux.host_pid) and the agent keeps both.
"""

from __future__ import annotations

import os
import select
import signal
import sys

from labkit import linux, parent, procfs, programs
from labkit.wire import Channel


def wait_readable(fds: list[int]) -> list[int]:
    """The fds of `fds` that are readable, waiting until one is. poll(2), not select(2): the
    pipes may come from a kernel holding fds >= 1024, which select cannot watch."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll()]


def pid_lists(words: list[str]) -> dict:
    """{"pids": host PIDs, "ns_pids": PIDs in our namespace} from PID or HOSTPID:NSPID words
    (a child that died before it could tell its host PID is left out of "pids")."""
    pairs = [w.split(":") if ":" in w else (w, w) for w in words]
    return {"pids": [int(h) for h, _ in pairs if h != "?"],
            "ns_pids": [int(n) for h, n in pairs if h != "?"]}


class Agent:
    def __init__(self, kernel: Channel) -> None:
        self.kernel = kernel
        self.parents: dict[int, Channel] = {}  # by host PID
        self.ns_pid: dict[int, int] = {}       # host PID -> PID here (they differ in a namespace)
        self.statuses: dict[int, int] = {}     # parents that ended (host PID), by exit code
        self.wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # SIGCHLD wakes select() through it

    def handle(self, request: dict) -> dict:
        op = request["op"]
        if op == "parent":
            return self.start_parent(request["policy"])
        if op == "actor":
            return self.start_actor(request["address"], request["name"])
        if op in ("fork", "reap", "exit"):
            pid = request["parent"]
            if pid not in self.parents:
                return self.gone(pid)
            if op == "exit":
                return self.end_parent(pid)
            return self.relay(pid, request)
        return {"ok": False, "error": f"unknown request {op!r}"}

    def start_parent(self, policy: str) -> dict:
        """Start a parent: a fresh, bare interpreter (labkit.parent says why) on two new pipes.

        Only its own ends of the pipes are inheritable; the kernel's pipe and the other parents'
        are close-on-exec, so that each pipe's EOF means what it says.
        """
        if policy not in parent.POLICIES:
            return {"ok": False, "error": f"unknown policy {policy!r}"}
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        os.set_inheritable(down_r, True)
        os.set_inheritable(up_w, True)
        argv = programs.parent(down_r, up_w, policy)
        try:
            pid = os.posix_spawn(argv[0], argv, os.environ)
        except OSError as exc:
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            return {"ok": False, "errno": exc.errno, "error": os.strerror(exc.errno)}
        finally:
            for fd in (down_r, up_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        channel = Channel(up_r, down_w)
        try:
            hello = channel.receive_line(10.0)  # the parent's first words: its host PID
        except TimeoutError:
            hello = None
        if not hello or not hello.startswith("hello "):
            channel.close()
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"ok": False, "error": "the new parent did not start"}
        host = int(hello.split()[1])
        self.parents[host] = channel
        self.ns_pid[host] = pid
        return {"ok": True, "pid": host, "ns_pid": pid}

    def start_actor(self, address: str, name: str) -> dict:
        """Start the first actor of labkit.actions (labkit.actor): a bare interpreter that forks
        it and exits at once, so the actor is an orphan adopted by the lab root. It connects to
        the kernel's socket at `address` by itself; we only wait for the launcher."""
        argv = programs.actor(address, name)
        try:
            pid = os.posix_spawn(argv[0], argv, os.environ, setsigdef=(signal.SIGCHLD,))
        except OSError as exc:
            return {"ok": False, "errno": exc.errno, "error": os.strerror(exc.errno)}
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if code != 0:
            return {"ok": False, "error": f"the actor's launcher exited with status {code}"}
        return {"ok": True}

    def relay(self, pid: int, request: dict) -> dict:
        """Ask parent `pid` (fork n lifetime | reap) and turn its words into a reply."""
        channel = self.parents[pid]
        line = (f"fork {request['n']} {request['lifetime']!r}" if request["op"] == "fork"
                else "reap")
        try:
            channel.send_line(line)
            answer = channel.receive_line()
        except OSError:
            answer = None
        if answer is None:
            return self.gone(pid)
        words = answer.split()
        if request["op"] == "reap":
            return {"ok": True, "reaped": int(words[1])}
        if words[0] == "ok":
            return {"ok": True, **pid_lists(words[1:])}
        err = int(words[1])
        return {"ok": False, "errno": err, "error": os.strerror(err), **pid_lists(words[2:])}

    def end_parent(self, host: int) -> dict:
        channel = self.parents.pop(host)
        try:
            channel.send_line("exit")
        except OSError:
            pass
        channel.close()
        self.wait_for(host)
        return {"ok": True, "status": self.statuses.get(host)}

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

    def wait_for(self, host: int) -> None:
        try:
            _, status = os.waitpid(self.ns_pid.pop(host), 0)
            self.statuses[host] = os.waitstatus_to_exitcode(status)
        except (ChildProcessError, KeyError):
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
            host = next((h for h, n in self.ns_pid.items() if n == pid), pid)
            self.ns_pid.pop(host, None)
            self.statuses[host] = os.waitstatus_to_exitcode(status)
            channel = self.parents.pop(host, None)
            if channel is not None:
                channel.close()

    def serve(self) -> int:
        wake_r, wake_w = self.wake
        signal.signal(signal.SIGCHLD, lambda signo, frame: None)
        signal.set_wakeup_fd(wake_w)
        me = parent.host_pid()
        root = os.getppid() if parent.host_proc() is None else procfs.read_stat(
            me, proc=parent.host_proc()).ppid
        self.kernel.send({"ok": True, "agent": me, "root": root, "ns_pid": os.getpid()})
        while True:
            if not self.kernel.has_line():
                ready = wait_readable([self.kernel.rfd, wake_r])
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
    for fd in (rfd, wfd):  # the kernel's pipe is ours alone: the parents must not inherit it
        os.set_inheritable(fd, False)
    linux.set_name("lab-agent")
    linux.set_parent_death_signal(signal.SIGKILL)  # the root died: nothing here may outlive it
    if str(os.getppid()) != os.environ.get("LABKIT_INIT_PID", str(os.getppid())):
        return 1  # it died before we asked to be told
    return Agent(Channel(rfd, wfd)).serve()


if __name__ == "__main__":
    sys.exit(main())
