"""An actor: a lab process named by one letter that forks, exits and waits when the kernel says.

    python -S -c "from labkit.actor import main; main()" ADDRESS NAME    (the agent starts it)

labkit.actions runs OSTEP-style scripts ("a+b; b+c; b-; a~") on these. The first actor is
started by the lab's agent through a launcher, this same program, which forks the actor and
exits at once: the actor is then an orphan, adopted by the lab root, and its parent in the
script's tree ("init") is its real parent. Every actor forks its children itself (no exec), and
each child opens a connection of its own to the kernel, so the kernel can still reach it after its
parent has exited.

Standard library only and a bare interpreter (-S), like labkit.parent, whose helpers it borrows.

Protocol: one line each way over a Unix stream socket to the kernel.
  actor:   hello NAME HOSTPID PID          once, on connecting (PID: in the lab's namespace)
  kernel:  fork NAME   -> ok PID | err ERRNO     (the child connects and says hello itself)
           exit        -> (no answer: the connection closes as the process exits)
           wait        -> ok PID...          (waitpid(-1, WNOHANG) until nothing is left)
           wait PID    -> ok PID | err ERRNO (waitpid(PID, 0): that child has already exited)
End of file from the kernel (it closed the run, or died) makes an actor exit.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from labkit.parent import host_pid, set_comm

CONNECT_TIMEOUT = 10.0


def connect(address: str, name: str) -> socket.socket:
    """A connection of our own to the kernel, on which we say who we are."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    sock.connect(address)
    sock.settimeout(None)
    set_comm(f"actor-{name}".encode())
    sock.sendall(f"hello {name} {host_pid()} {os.getpid()}\n".encode())
    return sock


def reap_exited() -> list[int]:
    """waitpid(-1, WNOHANG) until no exited child is left: the PIDs reaped."""
    reaped = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def serve(address: str, name: str) -> None:
    sock = connect(address, name)
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = sock.recv(4096)
            if not chunk:
                os._exit(0)  # the kernel is gone or done with us
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        words = line.decode().split()
        if words[0] == "exit":
            # Our children become orphans: the kernel hands them to the nearest subreaper, or
            # to PID 1 of our namespace (prctl(2), pid_namespaces(7)); the lab root, here.
            os._exit(0)
        if words[0] == "fork":
            try:
                pid = os.fork()
            except OSError as exc:  # EAGAIN: a PID budget is spent
                reply = f"err {exc.errno}"
            else:
                if pid == 0:  # the child: drop our parent's connection and open our own
                    sock.close()
                    name, pending = words[1], b""
                    sock = connect(address, name)
                    continue
                reply = f"ok {pid}"
        elif words[0] == "wait" and len(words) == 2:
            try:
                reply = f"ok {os.waitpid(int(words[1]), 0)[0]}"
            except OSError as exc:
                reply = f"err {exc.errno}"
        elif words[0] == "wait":
            reply = " ".join(["ok", *map(str, reap_exited())])
        else:
            reply = "err 0"
        sock.sendall((reply + "\n").encode())


def main() -> None:
    address, name = sys.argv[1], sys.argv[2]
    # Zombies are the lesson: SIGCHLD must not be ignored (SIG_IGN makes the kernel reap).
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        if os.fork() != 0:
            os._exit(0)  # the launcher: our child, the first actor, is orphaned at once
        serve(address, name)
    finally:
        os._exit(70)


if __name__ == "__main__":
    main()
