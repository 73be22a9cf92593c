"""nsenter(1) in Python: run a command inside the namespaces of a running process.

    python -m labkit.nsenter --target PID [--user] [--uts] [--ipc] [--net] [--pid] [--mount]
                             [--own-mount] [--status-fd N] -- COMMAND [ARG...]

How `docker run --net=container:pause --ipc=container:pause --pid=container:pause` puts a
container into a pod (the seed's recipe; setns(2), namespaces(7)):
  1. Open /proc/PID/ns/<name> for every namespace to join, all before joining any: once we are
     in the target's mount namespace, /proc is the pod's, where PID names another process.
  2. setns(2) each one. The user namespace first: joining the others needs CAP_SYS_ADMIN in the
     user namespace that owns them, which an unprivileged caller gains only by joining it
     (user_namespaces(7)). The mount namespace last: joining it moves our root and working
     directory to the namespace's root (setns(2)), so we then go back to our working directory.
     --own-mount then leaves it for a copy of our own (unshare(2) CLONE_NEWNS) whose mounts
     propagate nowhere (MS_PRIVATE, mount_namespaces(7)): a container of a real pod has a mount
     namespace of its own, with its own image; only the pod's volumes are shared. The copy
     keeps the pod's /proc, so `ps` in it still lists the pod's processes.
  3. fork. setns to a PID namespace moves only our future children (pid_namespaces(7)): the
     child is the pod's member (`ps` inside shows it) and execs COMMAND. We stay outside, pass
     SIGTERM/SIGINT/SIGHUP on to it, and exit with its status.

The member's parent is this process, outside the pod, so inside its PPID reads 0. The member's
own children are inside: when the member dies they are orphans of the pod, adopted and reaped by
the pod's PID 1. But if *this* process died first, the member would be adopted outside the pod:
the kernel picks an orphan's new parent from the PID namespace of the parent that died
(kernel/exit.c, find_child_reaper). So we never exit before the member does.

--status-fd N: an inherited pipe that says whether the member started. It reaches end-of-file
with nothing written once COMMAND is exec'd (our copy is close-on-exec, as subprocess's error
pipe), or gets one line "CODE MESSAGE" when a step failed.

Exit status: COMMAND's (128+N when signal N killed it, as a shell says), or one of ours, each
naming the refused step: 64 usage, 90 the target's namespaces cannot be opened, 91 setns refused,
92 fork refused (ENOMEM: the pod's PID 1 has exited, pid_namespaces(7)), 93 a mount namespace of
its own refused, 126 COMMAND cannot run,
127 COMMAND not found.

Standard library only, and a fresh single-threaded program: setns(2) refuses to move a
multi-threaded process into another user or mount namespace (EINVAL).
"""

from __future__ import annotations

import os
import signal
import sys

from labkit import linux
from labkit.pause import on_path
from labkit.unshare import Failure

USAGE = ("usage: python -m labkit.nsenter --target PID [--user] [--uts] [--ipc] [--net] [--pid]"
         "\n                                [--mount] [--own-mount] [--status-fd N]"
         " -- COMMAND [ARG...]\n")

# The order of joining: user first, mount last (see the module's docstring). The names are the
# files in /proc/PID/ns (namespaces(7)).
NAMESPACES = (
    ("--user", "user", linux.CLONE_NEWUSER),
    ("--uts", "uts", linux.CLONE_NEWUTS),
    ("--ipc", "ipc", linux.CLONE_NEWIPC),
    ("--net", "net", linux.CLONE_NEWNET),
    ("--pid", "pid", linux.CLONE_NEWPID),
    ("--mount", "mnt", linux.CLONE_NEWNS),
)

EXIT_USAGE = 64
EXIT_TARGET = 90
EXIT_SETNS = 91
EXIT_FORK = 92
EXIT_OWN_MOUNT = 93
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def parse(argv: list[str]) -> dict:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise ValueError("a command to run is required after '--'")
    cut = argv.index("--")
    opts: dict = {"target": None, "join": [], "status_fd": None, "own_mount": False,
                  "command": argv[cut + 1:]}
    flags = {flag for flag, _, _ in NAMESPACES}
    args = iter(argv[:cut])
    for arg in args:
        if arg in flags:
            opts["join"].append(arg)
        elif arg == "--own-mount":
            opts["own_mount"] = True
        elif arg in ("--target", "--status-fd"):
            value = next(args, None)
            if value is None or not value.isdigit():
                raise ValueError(f"{arg} needs a number, not {value!r}")
            opts[arg[2:].replace("-", "_")] = int(value)
        else:
            raise ValueError(f"unknown argument {arg!r}")
    if not opts["target"]:
        raise ValueError("--target PID is required")
    if not opts["join"]:
        raise ValueError("name at least one namespace to join (--user, --uts, --ipc, ...)")
    return opts


def open_namespaces(target: int, join: list[str]) -> list[tuple[str, int, int]]:
    """Step 1: (name, fd, CLONE_* type) for each namespace to join, in the order of joining."""
    opened = []
    for flag, name, nstype in NAMESPACES:
        if flag not in join:
            continue
        path = f"/proc/{target}/ns/{name}"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise Failure(EXIT_TARGET, f"opening {path}", exc) from exc
        if name == "user" and same_file(fd, "/proc/self/ns/user"):
            # Already ours (root's pod has no user namespace of its own): setns(2) refuses to
            # "join" the user namespace one is in (EINVAL), and there is nothing to gain.
            os.close(fd)
            continue
        opened.append((name, fd, nstype))
    return opened


def same_file(fd: int, path: str) -> bool:
    """Whether `fd` and `path` are one namespace: same device and inode (namespaces(7))."""
    mine, theirs = os.fstat(fd), os.stat(path)
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def join(target: int, opened: list[tuple[str, int, int]]) -> None:
    """Step 2: setns(2) into each, then back to our working directory if the mount one moved it.

    Passing the CLONE_* type makes the kernel check that the file is the namespace we meant.
    """
    cwd = os.getcwd()
    for name, fd, nstype in opened:
        try:
            linux.setns(fd, nstype)
        except OSError as exc:
            raise Failure(EXIT_SETNS, f"joining the {name} namespace of PID {target} (setns)",
                          exc) from exc
        finally:
            os.close(fd)
    if any(name == "mnt" for name, _, _ in opened):
        try:
            os.chdir(cwd)  # the pod's mount namespace began as a copy of ours: the path exists
        except OSError:
            os.chdir("/")


def own_mount_namespace() -> None:
    """Step 2b: a mount namespace of our own, a copy of the one we are in, sharing nothing.

    unshare(2) needs CAP_SYS_ADMIN in our user namespace: joining the pod's gave us that
    (setns(2)). Propagation is made private at once, as unshare(1) does by default, so that
    what this member mounts reaches no other namespace and nothing reaches it
    (mount_namespaces(7), "Shared subtrees").
    """
    try:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    except OSError as exc:
        raise Failure(EXIT_OWN_MOUNT, "a mount namespace of its own (unshare CLONE_NEWNS)",
                      exc) from exc


def report(status_fd: int | None, code: int, message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    if status_fd is not None:
        try:
            os.write(status_fd, f"{code} {message}\n".encode())
        except OSError:
            pass  # nobody listens: stderr and the exit code still say it


def run(command: list[str], status_fd: int | None) -> int:
    """Step 3: fork the member, exec COMMAND in it, wait for it here, outside the pod."""
    # Blocked before the fork, so that no signal sent to us between the fork and the wait is
    # lost or kills us (which would leave the member to be adopted outside the pod). SIGCHLD
    # gets its default back: an ignored SIGCHLD inherited across exec makes the kernel reap
    # our child itself, hiding its exit status from us.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    waited = {signal.SIGCHLD, *FORWARDED}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        pid = os.fork()
    except OSError as exc:
        raise Failure(EXIT_FORK, "fork into the PID namespace", exc) from exc
    if pid == 0:
        become_member(command, status_fd, old_mask)
    if status_fd is not None:
        os.close(status_fd)  # the member's copy closes at its exec: end-of-file means started
    while True:
        info = signal.sigwaitinfo(waited)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(pid, info.si_signo)
            except ProcessLookupError:
                pass
            continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def become_member(command: list[str], status_fd: int | None, mask: set) -> None:
    """In the child: COMMAND starts as a fresh program would, with no signal blocked or ignored.

    The interpreter ignores SIGPIPE and SIGXFSZ at startup, and an ignored disposition survives
    exec; subprocess's restore_signals gives them back the same way.
    """
    try:
        for signo in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signo, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.execvp(command[0], command)
    except FileNotFoundError as exc:
        report(status_fd, EXIT_NOT_FOUND, f"labkit.nsenter: cannot run {command[0]!r}: "
               f"not found ({exc.strerror})")
        os._exit(EXIT_NOT_FOUND)
    except PermissionError as exc:
        # execvp(3) says EACCES when a PATH directory may not be searched even if no directory
        # holds the name (root's PATH kept after setpriv): a shell says "not found" then.
        code = EXIT_NOT_FOUND if "/" not in command[0] and not on_path(command[0]) else \
            EXIT_NOT_EXECUTABLE
        what = "not found" if code == EXIT_NOT_FOUND else "permission denied"
        report(status_fd, code, f"labkit.nsenter: cannot run {command[0]!r}: {what} "
               f"({exc.strerror})")
        os._exit(code)
    except BaseException as exc:  # never return into the caller's code in a forked child
        report(status_fd, EXIT_NOT_EXECUTABLE, f"labkit.nsenter: cannot run {command[0]!r}: "
               f"{exc}")
        os._exit(EXIT_NOT_EXECUTABLE)


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        sys.stderr.write(f"labkit.nsenter: {exc}\n{USAGE}")
        return EXIT_USAGE
    status_fd = opts["status_fd"]
    if status_fd is not None:
        try:
            os.set_inheritable(status_fd, False)  # the member must not hold it past its exec
        except OSError:
            sys.stderr.write(f"labkit.nsenter: --status-fd {status_fd} is not open\n")
            return EXIT_USAGE
    try:
        join(opts["target"], open_namespaces(opts["target"], opts["join"]))
        if opts["own_mount"]:
            own_mount_namespace()
        return run(opts["command"], status_fd)
    except Failure as exc:
        report(status_fd, exc.code, f"labkit.nsenter: {exc}")
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
