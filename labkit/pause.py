"""pause.py: the Kubernetes pause container's init, ported from the seed's pause.c.

    python -m labkit.pause [-v] [--subreaper] [--no-reap] [--events PATH|fd:N]
                           [--drain] [--owner PID] [--cgroup DIR] [--nproc N]
                           [-- COMMAND [ARG...]]

With no option it behaves as pause.c: warn when not PID 1, reap every exited child (and, unlike
pause.c, one that exited before it started), exit 0 with psignal's message on SIGINT/SIGTERM, and
otherwise sleep without using the CPU. The options are the lab's (all off by default):

  --subreaper      become the reaper of orphaned descendants (prctl(2) PR_SET_CHILD_SUBREAPER),
                   so orphans come here instead of to PID 1.
  --no-reap        the broken init: never reap (zombies stay, to show why reaping matters).
                   Only COMMAND, and everything at --drain, is still reaped.
  --events DEST    one JSON line per reaped child: pid, status (exit code, or -signal), time.
  --drain          on stop, kill every descendant and reap until none is left, then exit. A
                   subreaper that simply exits would hand its descendants to the next reaper up.
                   With COMMAND, the stop is COMMAND's exit: SIGTERM and SIGINT go to it as the
                   others do, so it may end cleanly. A second SIGTERM/SIGINT, or one sent because
                   the owner died, drains at once, whatever COMMAND does with the first.
  --owner PID      get SIGTERM when process PID, our parent, dies (PR_SET_PDEATHSIG): a stop.
  --cgroup DIR     join the cgroup DIR before starting anything, so that its pids.max counts
                   every process we start, from the first (a lab's PID budget).
  --nproc N        set RLIMIT_NPROC (soft and hard) to N before starting anything: fork fails
                   with EAGAIN once our real uid has N tasks (in our user namespace, on Linux
                   >= 5.14). Root and CAP_SYS_RESOURCE/CAP_SYS_ADMIN are exempt (kernel/fork.c).
  -- COMMAND       start one child, as tini does: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1,
                   SIGUSR2 and SIGWINCH (what a container runtime or a terminal sends) go to it,
                   and pause exits when it exits, with its status (128+N if signal N killed it).

Standard library only, single-threaded: an init must start in milliseconds and must not fork
from a threaded process. The file reads top to bottom as pause.c does (block the signals, wait,
reap, stop); the lab's options follow it.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time

from labkit import __version__, linux, procfs

USAGE = (
    "usage: python -m labkit.pause [-v] [--subreaper] [--no-reap] [--events PATH|fd:N]\n"
    "                              [--drain] [--owner PID] [--cgroup DIR] [--nproc N]\n"
    "                              [-- COMMAND [ARG...]]\n"
)

# Exit codes. 0-3 are pause.c's (its 42 needs its endless loop to end: see serve); the rest are
# ours, one per cause (tini's habit).
EXIT_SIGINT_SETUP, EXIT_SIGTERM_SETUP, EXIT_SIGCHLD_SETUP = 1, 2, 3
EXIT_USAGE = 64
EXIT_SUBREAPER = 65
EXIT_EVENTS = 66
EXIT_BUDGET = 67  # --cgroup or --nproc refused: the PID budget cannot be set
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

DRAIN_SECONDS = 10.0  # a D-state process can outlive SIGKILL for a while; we do not wait forever
DRAIN_QUIET = 0.5     # no child reaped for this long while the group lives: look in /proc

WAITED = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
# With COMMAND, these go to it (tini's wait_and_forward_signal forwards all it does not use).
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)
STOPS = (signal.SIGINT, signal.SIGTERM)
EVENT = '{"pid": %d, "status": %d, "time": %r, "monotonic": %r}\n'  # --events, one per reap


# --- pause.c ---------------------------------------------------------------------------------

def block_signals() -> int:
    """Block the signals we wait for, one by one with pause.c's exit codes (1, 2, 3).

    A blocked signal stays pending until sigwaitinfo takes it: nothing is lost between setup
    steps, and there is no window between checking and sleeping (signal.pause() has one). A
    blocked signal is queued even for PID 1 of a namespace, which otherwise drops signals it has
    no handler for (pid_namespaces(7)).
    """
    codes = (EXIT_SIGINT_SETUP, EXIT_SIGTERM_SETUP, EXIT_SIGCHLD_SETUP)
    for code, signo in zip(codes, WAITED, strict=True):
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signo})
            # SIGCHLD may arrive as SIG_IGN across exec, which makes the kernel auto-reap and
            # hide exits from us; take the defaults back (pause.c installs handlers instead).
            signal.signal(signo, signal.SIG_DFL)
        except (OSError, ValueError):
            return code
    return 0


class Pause:
    """The init's state: what it reaps, where it reports, the child it started."""

    def __init__(self, opts: Options, events_fd: int | None) -> None:
        self.opts = opts
        self.events_fd = events_fd
        self.child: int | None = None
        self.child_status: int | None = None
        self.waited = set(WAITED) | (set(FORWARDED) if opts.command else set())
        self.asked_to_stop = False
        self.reaped = 0  # children reaped so far (the drain watches it grow)

    def reap(self, everyone: bool | None = None) -> bool:
        """pause.c's sigreap: waitpid(-1, WNOHANG) until nothing is left; whether any child
        of the ones waited for is still there (False: ECHILD).

        Signals coalesce: while SIGCHLD is pending, more exits add nothing, so one signal may
        stand for many children (signal(7)). Only a loop empties the table. With --no-reap only
        COMMAND is waited for (`everyone` overrides that: the drain reaps all).
        """
        target = -1 if (self.opts.reap if everyone is None else everyone) else self.child
        if target is None:
            return False
        reaped = []
        left = True
        while True:
            try:
                pid, status = os.waitpid(target, os.WNOHANG)
            except ChildProcessError:
                left = False
                break
            if pid == 0:
                break
            reaped.append((pid, status))
            self.reaped += 1
            if pid == self.child:
                self.child_status = status
        self.report(reaped)
        return left

    def forwards(self, signo: int) -> bool:
        """Whether `signo` goes to COMMAND, rather than stopping us.

        Under --drain a SIGTERM/SIGINT stops us when it repeats one already passed on (the
        sender insists: COMMAND may ignore it), or when it is the owner's death signal (no one
        waits for a clean end, and nothing of the lab may outlive its owner).
        """
        if self.child is None:
            return False
        if not self.opts.drain or signo not in STOPS:
            return True
        owner_gone = self.opts.owner is not None and os.getppid() != self.opts.owner
        insisted, self.asked_to_stop = self.asked_to_stop, True
        return not (owner_gone or insisted)

    def stop(self) -> int:
        if self.opts.drain:
            drain(self)
        return 0

    def child_exit_code(self) -> int:
        # tini's convention, the shell's: the exit code, or 128+N if signal N killed it
        # (krallin/tini src/tini.c, reap_zombies: "Emulate what sh / bash would do").
        code = os.waitstatus_to_exitcode(self.child_status)
        return code if code >= 0 else 128 - code

    def report(self, reaped: list[tuple[int, int]]) -> None:
        if self.events_fd is None or not reaped:
            return
        now, mono = time.time(), time.monotonic()
        # One line per child: a drain writes thousands, and this is a third of json.dumps's
        # cost. The same JSON: a finite float's repr is its JSON number.
        lines = "".join(EVENT % (pid, os.waitstatus_to_exitcode(status), now, mono)
                        for pid, status in reaped)
        try:
            os.write(self.events_fd, lines.encode())
        except OSError:
            pass  # a reader that went away must not stop the init from reaping


def serve(init: Pause) -> int:
    """pause.c's `for (;;) pause();`, with the signals taken one at a time by sigwaitinfo.

    pause.c's "Error: infinite loop terminated" (exit 42) cannot happen here either: the loop
    ends only when COMMAND has exited.
    """
    # A child that exited before SIGCHLD was blocked will never be signalled again: its SIGCHLD
    # was discarded (the default action is to ignore it) or went to the program that exec'd us,
    # as when an entrypoint script starts background work and then execs its init. Reap now.
    init.reap()
    while init.child_status is None:
        signo = signal.sigwaitinfo(init.waited).si_signo
        if signo == signal.SIGCHLD:
            init.reap()
            continue
        if init.forwards(signo):
            # Not yet reaped, so the PID is still the command's own: kill(2) cannot miss.
            os.kill(init.child, signo)
            continue
        print(f"Shutting down, got signal: {signal.strsignal(signo)}", file=sys.stderr,
              flush=True)
        return init.stop()
    init.stop()
    return init.child_exit_code()


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        sys.stderr.write(f"pause: {exc}\n{USAGE}")
        return EXIT_USAGE
    if opts.version:
        print(f"pause.py {__version__}", flush=True)
        return 0
    if os.getpid() != 1:
        # Not an error because pause sees use outside of infra containers.
        print("Warning: pause should be the first process", file=sys.stderr, flush=True)
    code = block_signals()
    if code:
        return code
    if opts.command:  # blocked before it starts, so none of its signals is lost or kills us
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    linux.set_name("pause")  # what ps shows, as for the C pause
    code = become_subreaper(opts)
    if code:
        return code
    try:
        events_fd = open_events(opts.events) if opts.events else None
    except (OSError, ValueError) as exc:
        print(f"pause: cannot write events to {opts.events!r}: {exc}", file=sys.stderr, flush=True)
        return EXIT_EVENTS
    init = Pause(opts, events_fd)
    if opts.owner is not None:
        linux.set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != opts.owner:  # the owner died before we asked to be told
            return init.stop()
    try:
        set_budget(opts)
    except (OSError, ValueError) as exc:
        print(f"pause: cannot set the PID budget: {exc}", file=sys.stderr, flush=True)
        return EXIT_BUDGET
    if opts.command:
        code = spawn(init, opts.command)
        if code:
            return code
    return serve(init)


# --- the lab's options -------------------------------------------------------------------------

class Options:
    version = False
    subreaper = False
    reap = True
    events: str | None = None
    drain = False
    owner: int | None = None
    cgroup: str | None = None
    nproc: int | None = None
    command: list[str] = []


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> Options:
    opts = Options()
    if "--" in argv:
        cut = argv.index("--")
        argv, opts.command = argv[:cut], argv[cut + 1:]
        if not opts.command:
            raise UsageError("'--' must be followed by a command to run")
    # pause.c answers -v/-V anywhere before anything else (newer versions print their version).
    if any(arg.lower() == "-v" for arg in argv):
        opts.version = True
        return opts
    args = iter(argv)
    for arg in args:
        if arg == "--subreaper":
            opts.subreaper = True
        elif arg == "--no-reap":
            opts.reap = False
        elif arg == "--drain":
            opts.drain = True
        elif arg in ("--events", "--owner", "--cgroup", "--nproc"):
            value = next(args, None)
            if value is None:
                raise UsageError(f"{arg} needs a value")
            if arg == "--events":
                opts.events = value
            elif arg == "--cgroup":
                opts.cgroup = value
            elif not (value.isdigit() and int(value) > 0):
                what = "a PID" if arg == "--owner" else "a number of processes"
                raise UsageError(f"{arg} needs {what} (a positive integer), not {value!r}")
            elif arg == "--owner":
                opts.owner = int(value)
            else:
                opts.nproc = int(value)
        else:
            raise UsageError(f"unknown argument {arg!r}")
    return opts


def become_subreaper(opts: Options) -> int:
    """--subreaper: orphaned descendants come to us (prctl(2)); an exit code if refused."""
    if opts.subreaper:
        try:
            linux.set_child_subreaper()
        except OSError as exc:
            print(f"pause: cannot become a subreaper: {exc}", file=sys.stderr, flush=True)
            return EXIT_SUBREAPER
    return 0


def open_events(dest: str) -> int:
    """An fd for reap events: "fd:N" is an inherited descriptor, anything else a file to append."""
    if dest.startswith("fd:"):
        fd = int(dest[3:])
        os.fstat(fd)  # EBADF now, not at the first reap
        # Ours alone: the command must not hold the pipe open, and a reader that stops reading
        # must cost it events, never block the init's reaping.
        os.set_inheritable(fd, False)
        os.set_blocking(fd, False)
        return fd
    return os.open(dest, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def set_budget(opts: Options) -> None:
    """Put ourselves under the PID budget before we start anything: both the cgroup and the
    rlimit are inherited at fork, so everything the command starts is counted from the first."""
    if opts.cgroup is not None:
        # "0" is the writer itself (v1 and v2 alike): no PID to translate in a PID namespace.
        with open(os.path.join(opts.cgroup, "cgroup.procs"), "w") as f:
            f.write("0")
    if opts.nproc is not None:
        # The hard limit too: a lab process may not raise it back (that needs CAP_SYS_RESOURCE
        # in the initial user namespace).
        resource.setrlimit(resource.RLIMIT_NPROC, (opts.nproc, opts.nproc))


def on_path(name: str) -> bool:
    """Whether some directory of PATH that we may search holds a file called `name`."""
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return any(os.path.isfile(os.path.join(d or ".", name)) for d in dirs)


def spawn(init: Pause, command: list[str]) -> int:
    """Start COMMAND as a fresh program would start: no signal blocked, none ignored.

    The signals we block are unblocked again (it must get them normally), and SIGPIPE and
    SIGXFSZ, which the Python interpreter ignores at startup, get their default action back:
    an ignored disposition survives exec, so the command would otherwise inherit it (as
    subprocess's restore_signals and tini's signal reset prevent).
    """
    # posix_spawnp takes setpgroup=None as "not an integer" (TypeError): pass it only when
    # it is wanted.
    group = {"setpgroup": 0} if init.opts.drain else {}
    try:
        init.child = os.posix_spawnp(
            command[0], command, dict(os.environ, LABKIT_INIT_PID=str(os.getpid())),
            setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ), **group)
    except FileNotFoundError:
        print(f"pause: cannot run {command[0]!r}: not found", file=sys.stderr, flush=True)
        return EXIT_NOT_FOUND
    except PermissionError:
        # execvp(3) answers EACCES when a PATH directory may not be searched (root's PATH
        # kept after su or setpriv) even if no directory holds the name: the shell says
        # "not found" (127) then, and so do we. A file that exists but cannot be run is 126.
        if "/" not in command[0] and not on_path(command[0]):
            print(f"pause: cannot run {command[0]!r}: not found", file=sys.stderr, flush=True)
            return EXIT_NOT_FOUND
        print(f"pause: cannot run {command[0]!r}: permission denied",
              file=sys.stderr, flush=True)
        return EXIT_NOT_EXECUTABLE
    # The child has what it needs; our copies of inherited descriptors would only keep pipes
    # open after it dies (the lab's owner would then never see EOF).
    keep = init.events_fd if init.events_fd is not None else 2
    os.closerange(3, max(3, keep))
    os.closerange(max(3, keep + 1), 65536)
    return 0


def drain(init: Pause) -> None:
    """--drain: kill every descendant and reap until none is left.

    The child command runs in its own process group, and a group kill cannot be outrun by
    fork (the kernel makes a forking member take the pending signal first), so one killpg
    ends the agent, the parents and their children: then we only reap, woken by SIGCHLD. Each
    member comes back to us to be reaped (its parent dies too; orphans come to a subreaper or
    to PID 1), and once we have no child (ECHILD) we have no descendant. Something left the
    group (setsid) only if children remain when the group is empty, or when none has come
    back for DRAIN_QUIET s (a member's parent may be one that left): then, and only then, the
    PPID chains in /proc (labkit.procfs) find what is left, and each is killed through a
    pidfd. So a lab of thousands costs one signal and a wait(2) each, and no /proc read.
    """
    group = init.child
    if group is not None:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            group = None
    deadline = time.monotonic() + DRAIN_SECONDS
    progress = (init.reaped, time.monotonic())  # (how many reaped, when that last grew)
    while init.reap(everyone=True):
        now = time.monotonic()
        if now > deadline:
            left = procfs.descendants(os.getpid())
            print(f"pause: could not drain {len(left)} processes: {left[:10]}",
                  file=sys.stderr, flush=True)
            return
        # While children come back, only reap: the group check walks every member.
        if init.reaped != progress[0]:
            progress = (init.reaped, now)
        elif group is None or now - progress[1] > DRAIN_QUIET or not group_alive(group):
            left = procfs.descendants(os.getpid())
            family = {os.getpid(), *left}
            for pid in left:
                kill_descendant(pid, family)
        signal.sigtimedwait([signal.SIGCHLD], 0.05)


def group_alive(group: int) -> bool:
    """Whether process group `group` has a member, a zombie not yet reaped included: kill(2)
    with signal 0 checks without sending, and a zombie keeps its group until it is reaped."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: it is there
        return True
    return True


def kill_descendant(pid: int, family: set[int]) -> bool:
    """SIGKILL `pid`, found in a /proc scan whose PIDs (and ours) are `family`; whether it was.

    Between the scan and the kill the process may exit, be reaped by its parent, and its PID go
    to a stranger: procfs.kill checks the parent (one of `family`) through a pidfd, so the signal
    reaches that process or nobody.
    """
    return procfs.kill(pid, signal.SIGKILL, lambda stat: stat.ppid in family)


if __name__ == "__main__":
    linux.exit_now(main())
