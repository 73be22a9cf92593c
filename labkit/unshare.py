"""unshare(1) in Python: new namespaces, and one command as PID 1 inside them.

    python -m labkit.unshare [--user] [--pid] [--mount-proc] [--uts] [--ipc] [--net]
                             [--hostname NAME] [--owner PID] -- COMMAND [ARG...]

The seed's `unshare --pid --uts --ipc --mount -f` done step by step (namespaces(7)):
  1. --user first: a new user namespace gives us every capability *inside* it, which an
     unprivileged user needs for the others. Root inside is mapped to us outside.
  2. unshare(2) the rest. CLONE_NEWPID moves only our future children: the next fork is PID 1.
  3. fork (unshare's -f). The child makes the mount table private (so nothing reaches the
     host's), mounts a /proc of its own PID namespace (so `ps` inside sees the inside), sets the
     hostname, brings up loopback, and execs COMMAND as PID 1. We wait and exit with its status.

Standard library only; run as a fresh program, never forked from a threaded Jupyter kernel
(unshare(CLONE_NEWUSER) refuses a multi-threaded caller with EINVAL). Each failure exits with
its own code and names the mechanism the kernel refused, with its errno.

The environment of COMMAND gets LABKIT_HOST_PROC_FD: a descriptor of the host's /proc, through
which a process inside can learn its host PID (labkit.linux.host_pid).
"""

from __future__ import annotations

import os
import signal
import sys

from labkit import linux

USAGE = ("usage: python -m labkit.unshare [--user] [--pid] [--mount-proc] [--uts] [--ipc] [--net]"
         "\n                                [--hostname NAME] [--owner PID] -- COMMAND [ARG...]\n")

FLAGS = {"--pid": linux.CLONE_NEWPID, "--uts": linux.CLONE_NEWUTS,
         "--ipc": linux.CLONE_NEWIPC, "--net": linux.CLONE_NEWNET}

EXIT_USAGE = 64
EXIT_USER_NS = 80    # unshare(CLONE_NEWUSER) or its ID maps refused
EXIT_NAMESPACES = 81  # unshare of the other namespaces refused
EXIT_FORK = 82
EXIT_MOUNT_PROC = 83
EXIT_HOSTNAME = 84
EXIT_LOOPBACK = 85
EXIT_EXEC = 127
# The codes of a namespace, ID map or /proc mount the kernel refused: the nearest real thing
# (a subreaper lab) still works.
REFUSED = (EXIT_USER_NS, EXIT_NAMESPACES, EXIT_MOUNT_PROC)


class Failure(Exception):
    """A step the kernel refused, here or in labkit.nsenter: the program's exit code for it,
    and what to tell the learner (the step, the errno's name and words)."""

    def __init__(self, code: int, what: str, exc: OSError) -> None:
        name = linux.errno_name(exc.errno) if exc.errno else "?"
        super().__init__(f"{what} refused: {name} ({os.strerror(exc.errno or 0)})")
        self.code = code


def say(failure: Failure) -> None:
    print(f"labkit.unshare: {failure}", file=sys.stderr, flush=True)


def parse(argv: list[str]) -> dict:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise ValueError("a command to run is required after '--'")
    cut = argv.index("--")
    opts = {"flags": 0, "user": False, "mount_proc": False, "hostname": None, "owner": None,
            "net": False, "command": argv[cut + 1:]}
    args = iter(argv[:cut])
    for arg in args:
        if arg in FLAGS:
            opts["flags"] |= FLAGS[arg]
            opts["net"] = opts["net"] or arg == "--net"
        elif arg == "--user":
            opts["user"] = True
        elif arg == "--mount-proc":
            opts["mount_proc"] = True
        elif arg in ("--hostname", "--owner"):
            value = next(args, None)
            if value is None:
                raise ValueError(f"{arg} needs a value")
            opts[arg[2:]] = value
        else:
            raise ValueError(f"unknown argument {arg!r}")
    if opts["hostname"] is not None:
        opts["flags"] |= linux.CLONE_NEWUTS
    if opts["mount_proc"]:
        opts["flags"] |= linux.CLONE_NEWNS
    if opts["owner"] is not None:
        if not opts["owner"].isdigit():
            raise ValueError(f"--owner needs a PID, not {opts['owner']!r}")
        opts["owner"] = int(opts["owner"])
    return opts


def enter(opts: dict) -> None:
    """Steps 1 and 2: the new namespaces (the PID one takes effect for our next child)."""
    uid, gid = os.getuid(), os.getgid()
    if opts["user"]:
        try:
            linux.unshare(linux.CLONE_NEWUSER)
            linux.map_root(uid, gid)
        except OSError as exc:
            what = "a new user namespace (unshare CLONE_NEWUSER)"
            raise Failure(EXIT_USER_NS, what, exc) from exc
    try:
        linux.unshare(opts["flags"])
    except OSError as exc:
        names = [n[2:] for n, f in FLAGS.items() if opts["flags"] & f]
        names += ["mount"] if opts["flags"] & linux.CLONE_NEWNS else []
        raise Failure(EXIT_NAMESPACES, f"new {'/'.join(names)} namespaces (unshare)", exc) from exc


def become_init(opts: dict) -> None:
    """Step 3, in the child: set up what the namespaces hold, then exec COMMAND as PID 1."""
    if opts["mount_proc"]:
        try:
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
            linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        except OSError as exc:
            raise Failure(EXIT_MOUNT_PROC, "mounting a new /proc", exc) from exc
    if opts["hostname"] is not None:
        try:
            linux.sethostname(opts["hostname"])
        except OSError as exc:
            raise Failure(EXIT_HOSTNAME, "sethostname in the new UTS namespace", exc) from exc
    if opts["net"]:
        try:
            linux.loopback_up()
        except OSError as exc:
            what = "bringing up lo in the new network namespace"
            raise Failure(EXIT_LOOPBACK, what, exc) from exc
    try:
        os.execvp(opts["command"][0], opts["command"])
    except OSError as exc:
        raise Failure(EXIT_EXEC, f"running {opts['command'][0]!r}", exc) from exc


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        sys.stderr.write(f"labkit.unshare: {exc}\n{USAGE}")
        return EXIT_USAGE
    if opts["owner"] is not None:
        linux.set_parent_death_signal(signal.SIGKILL)  # our owner died: so does the namespace
        if os.getppid() != opts["owner"]:
            return 1
    # Kept from before the mount: the host's /proc, for host PIDs (see the module's docstring).
    host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(host_proc, True)
    os.environ["LABKIT_HOST_PROC_FD"] = str(host_proc)
    try:
        enter(opts)
        pid = os.fork()
    except Failure as exc:
        say(exc)
        return exc.code
    except OSError as exc:
        say(Failure(EXIT_FORK, "fork into the new PID namespace", exc))
        return EXIT_FORK
    if pid == 0:
        try:
            linux.set_parent_death_signal(signal.SIGKILL)  # we are its link to the owner
            become_init(opts)
        except Failure as exc:
            say(exc)
            os._exit(exc.code)
        os._exit(EXIT_EXEC)
    return wait_for(pid)


def wait_for(pid: int) -> int:
    """Wait for PID 1 of the namespace; its end ends everything inside (pid_namespaces(7))."""
    # Pass on a stop request to the init inside; it decides what a stop means.
    for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signo, lambda s, f: os.kill(pid, s))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return 0
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    linux.exit_now(main())  # a lab's close waits for this launcher to exit
