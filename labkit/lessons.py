"""The plumbing of notebooks 01-04, under names that say what each lesson shows.

Each function runs real processes and returns what it saw; the notebook prints it. Kept out of
the notebooks so that their cells stay a few lines long (pytudes' habit), and tested here.

Also a tiny program, run by `shell_adopts_and_reaps`:

    python -m labkit.lessons --subreaper -- COMMAND [ARG...]

becomes a child subreaper and execs COMMAND, which keeps the attribute: "The setting is preserved
across execve(2)" (PR_SET_CHILD_SUBREAPER(2const)). So a plain shell becomes an orphan's adopter.
As a program it imports only the standard library, labkit.linux and labkit.procfs, like every
program that runs inside the lab; the notebook helpers import what they need when called.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from labkit import linux, procfs, programs
from labkit.i18n import _

SHELL_TIMEOUT = 10.0  # seconds for any one step of the shell story; a step takes milliseconds

# The shell's script. `( ... & )` is a subshell that starts `cat` in the background and exits:
# cat is an orphan. It reads a pipe that the lesson holds open, so it exits exactly when the
# lesson closes it (no timing). `read` blocks in read(2), not in wait(2); running /bin/true in
# the foreground makes the shell wait (waitpid(-1, ...): dash's waitproc, bash's waitchld).
SHELL_SCRIPT = ("(cat /proc/self/fd/{fd} >/dev/null &); echo ready; read _; /bin/true; "
                "echo waited; read _; echo alive; read _")


# ---------------------------------------------------------------- reading /proc, polling (03)

def proc_status(pid: int) -> dict | None:
    """State and PPid of process `pid` from /proc/PID/status (proc(5)); None once it is gone."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 1:
        raise ValueError(_("a PID is a positive int, not {pid!r}").format(pid=pid))
    fields = procfs.status(pid)
    if fields is None:
        return None
    return {"State": fields["State"], "PPid": int(fields["PPid"])}


def is_zombie(pid: int) -> bool:
    """True while `pid` is a zombie: state Z in /proc/PID/status."""
    return (proc_status(pid) or {}).get("State", "").startswith("Z")


def poll_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Check `predicate()` every 10 ms until it is true; TimeoutError after `timeout` s.

    Processes exit on their own time: a lesson waits for what it expects, never sleeps for luck.
    """
    if not callable(predicate):
        raise TypeError(_("predicate must be a function of no arguments, not {predicate!r}")
                        .format(predicate=predicate))
    if not 0 < timeout <= 600:
        raise ValueError(_("timeout must be between 0 and 600 s, not {timeout!r}").format(
            timeout=timeout))
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(_("not true within {timeout:g} s").format(timeout=timeout))
        time.sleep(0.01)


# ---------------------------------------------------------------- the lab's init (04)

def where_orphans_go(lab) -> str:
    """One sentence: what the lab's root is to the lab's orphans, PID 1 or a subreaper, and why."""
    if lab.mode == "pid-namespace":
        root = lab.snapshot().by_pid(lab.root_pid)
        return _("The lab root is PID {pid} on this machine and PID {ns_pid} inside the lab's "
                 "PID namespace: its init, which adopts every orphan inside "
                 "(pid_namespaces(7)).").format(pid=lab.root_pid, ns_pid=root.ns_pid)
    if lab.mode_reason:
        return _("No PID namespace for this lab, so the lab root adopts its orphans as a child "
                 "subreaper (prctl(2)); in a PID-namespace lab it would be PID 1 inside. "
                 "Why: {why}").format(why=lab.mode_reason)
    return _("No PID namespace for this lab, so the lab root adopts its orphans as a child "
             "subreaper (prctl(2)); in a PID-namespace lab it would be PID 1 inside.")


# ---------------------------------------------------------------- a burst of exits (03)

def burst(lab, policy: str, n: int = 300, lifetime: float = 0.3):
    """A parent with `policy` forks n children that exit after `lifetime` s, nearly together.

    Returns (parent, snapshot, series): the parent, a snapshot taken once none of its children
    is still running (each is reaped or a zombie), and the recording of the whole burst. Starts
    from a lab without zombies, so that one burst's leftovers never count in the next.
    """
    try:
        lab.wait_for(lambda s: not s.zombies, timeout=3)  # a burst's last ones may be on their way
    except TimeoutError:
        left = len(lab.snapshot().zombies)
        raise RuntimeError(_("the lab still holds {left} zombies of an earlier parent, which "
                             "would count in this burst: let that parent reap (parent.reap()) or "
                             "exit (parent.exit()) first, or close the lab and start a new one")
                           .format(left=left)) from None
    parent = lab.parent(policy)
    with lab.record(interval=0.05) as recording:
        parent.fork(n, lifetime=lifetime)
        snap = lab.wait_for(lambda s: all(p.state == "zombie" for p in s.children(parent.pid)),
                            timeout=20)
        lab.wait_for(lambda s: s.time > snap.time + 0.25)  # record a moment more: what stays
    return parent, snap, recording.series


def zombies_of(parent, snap) -> list:
    """The children of `parent` that are zombies in `snap`."""
    return [p for p in snap.children(parent.pid) if p.state == "zombie"]


# ---------------------------------------------------------------- SIG_IGN loses the status (03)

def exit_status_seen(disposition) -> int:
    """The status wait() reports for a child that exits with 3, while SIGCHLD has `disposition`.

    Runs in the calling process (the Jupyter kernel) with subprocess (fork + exec, no Python
    code in the child), then puts the disposition back. With SIG_IGN the kernel reaps the child
    itself, waitpid fails with ECHILD, and subprocess reports 0 (wait(2), NOTES).
    """
    if disposition not in (signal.SIG_DFL, signal.SIG_IGN):
        raise ValueError(_("disposition must be signal.SIG_DFL or signal.SIG_IGN, not "
                           "{disposition!r}").format(disposition=disposition))
    old = signal.signal(signal.SIGCHLD, disposition)
    try:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]).wait()
    finally:
        signal.signal(signal.SIGCHLD, old)


# ---------------------------------------------------------------- a zombie's kernel memory (02)

@dataclass
class KernelMemory:
    """What the kernel keeps for each process until it is reaped, from /proc/slabinfo (bytes)."""

    objects: dict[str, int] = field(default_factory=dict)
    why_not: str = ""

    def __str__(self) -> str:
        if self.why_not:
            return self.why_not
        lines = [_("  {name:<14} {size:>6,} bytes").format(name=name, size=size)
                 for name, size in self.objects.items()]
        total = sum(self.objects.values())
        return "\n".join([_("kernel objects of one process (/proc/slabinfo, objsize):"), *lines,
                          _("  total          {total:>6,} bytes = {kib:.1f} KiB").format(
                              total=total, kib=total / 1024)])


# slab cache -> what it holds (kernel/fork.c allocates them; kernel/exit.c release_task and
# kernel/pid.c free_pid free them when the parent reaps)
SLABS = {"task_struct": "the task itself, with its exit code",
         "pid": "struct pid: the PID number, for every namespace level",
         "signal_cache": "signal_struct: the process's exit status (group_exit_code)"}


def kernel_memory_per_process(slabinfo: str = "/proc/slabinfo") -> KernelMemory:
    """The size of the kernel objects a zombie still holds, read from /proc/slabinfo.

    slabinfo is readable only by root (mode 0400): otherwise `why_not` says so.
    """
    try:
        with open(slabinfo) as f:
            text = f.read()
    except PermissionError:
        return KernelMemory(why_not=_("{path} is readable only by root (mode 0400, proc(5)), "
                                      "and this is uid {uid}: the sizes cannot be shown").format(
                                          path=slabinfo, uid=os.getuid()))
    except FileNotFoundError:
        return KernelMemory(why_not=_("{path} does not exist here (a kernel without SLUB "
                                      "statistics): the sizes cannot be shown").format(
                                          path=slabinfo))
    sizes = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in SLABS:
            sizes[fields[0]] = int(fields[3])  # name active_objs num_objs objsize ...
    return KernelMemory(objects={name: sizes[name] for name in SLABS if name in sizes})


# ---------------------------------------------------------------- a shell adopts and reaps (04)

@dataclass
class ShellStory:
    """What a real shell did with an adopted orphan: one line per observation."""

    title: str
    lines: list[str] = field(default_factory=list)
    orphan_state_while_reading: str = ""   # "zombie", or "reaped" if the shell already had
    reaped_when_it_waited: bool = False
    sigterm: str = ""                      # "killed" or "ignored"; "" if not tried
    refused: str = ""                      # what the machine refused, if it refused

    def __str__(self) -> str:
        return "\n".join([self.title, *(f"  {line}" for line in self.lines)])


def _launcher(shell: str, as_pid1: bool, fd: int) -> list[str]:
    command = [shell, "-c", SHELL_SCRIPT.format(fd=fd)]
    if as_pid1:
        user = [] if os.geteuid() == 0 else ["--user"]  # unprivileged: a user namespace first
        return programs.unshare(*user, "--pid", "--mount-proc", "--", *command)
    # pause is a subreaper above the shell: should the shell die early, its children go there
    # and are reaped and drained, never up to a host PID 1 that may not reap.
    return programs.pause("--subreaper", "--drain", "--", *programs.lessons_subreaper(), "--",
                          *command)


def _read_line(proc: subprocess.Popen, timeout: float = SHELL_TIMEOUT) -> str:
    """One line the shell printed, or '' at its end; never blocks longer than `timeout`."""
    fd = proc.stdout.fileno()
    # poll(2), never select(2): a Jupyter kernel's descriptors may be numbered above 1023.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise TimeoutError(_("the shell printed nothing within {timeout:g} s").format(
                timeout=timeout))
        chunk = os.read(fd, 1)
        if not chunk:
            break
        line += chunk
    return line.decode().strip()


def _tell(proc: subprocess.Popen, text: str = "\n") -> None:
    proc.stdin.write(text.encode())
    proc.stdin.flush()


def _state(pid: int) -> str:
    status = proc_status(pid)
    return "reaped" if status is None else status["State"].split("(")[-1].rstrip(")")


def shell_adopts_and_reaps(shell: str = "sh", as_pid1: bool = False) -> ShellStory:
    """Run a real shell that adopts an orphan, and watch when it reaps it.

    as_pid1=False: the shell is a child subreaper (allowed everywhere, Binder included).
    as_pid1=True: the shell is PID 1 of a new PID namespace (labkit.unshare), where the machine
    allows it; if it does not, the story says what was refused. Either way, at the end SIGTERM
    is sent to the shell: a subreaper dies of it, PID 1 without a handler ignores it.
    """
    import psutil  # a notebook helper: the lab's own programs never import psutil

    path = _which(shell)
    title = (_("{shell} ({path}) as PID 1 of a new PID namespace:") if as_pid1 else
             _("{shell} ({path}) as a child subreaper:"))
    story = ShellStory(title.format(shell=shell, path=os.path.realpath(path)))
    orphan_reads, orphan_ends = os.pipe()  # cat, the orphan, exits when we close our end
    proc = subprocess.Popen(_launcher(path, as_pid1, orphan_reads), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=(orphan_reads,), env=programs.environment(),
                            start_new_session=True)
    os.close(orphan_reads)
    try:
        if _read_line(proc) != "ready":
            proc.wait(timeout=SHELL_TIMEOUT)
            story.refused = (proc.stderr.read().decode().strip()
                             or _("exit status {code}").format(code=proc.returncode))
            story.lines.append(_("this machine refused it: {why}").format(why=story.refused))
            return story
        _watch_the_shell(story, proc, psutil, as_pid1, orphan_ends)
        return story
    finally:
        _close(orphan_ends)
        _end(proc)


def _watch_the_shell(story: ShellStory, proc: subprocess.Popen, psutil, as_pid1: bool,
                     orphan_ends: int) -> None:
    [sh] = psutil.Process(proc.pid).children()
    nspid = procfs.nspid(sh.pid) or []
    [orphan] = sh.children()  # the subshell has exited: cat is the shell's only child
    story.lines.append((
        _("the shell is PID {pid} (PID {ns_pid} inside its namespace); its subshell forked `cat` "
          "(PID {cat}) and exited.") if len(nspid) > 1 else
        _("the shell is PID {pid}; its subshell forked `cat` (PID {cat}) and exited.")).format(
            pid=sh.pid, ns_pid=nspid[-1] if nspid else sh.pid, cat=orphan.pid))
    story.lines.append((
        _("cat's parent is now {ppid}: the shell, its grandparent, which adopted it because it "
          "is PID 1 of its namespace") if as_pid1 else
        _("cat's parent is now {ppid}: the shell, its grandparent, which adopted it because it "
          "is a child subreaper")).format(ppid=orphan.ppid()))
    _close(orphan_ends)  # cat reads end-of-file and exits
    poll_until(lambda: _state(orphan.pid) in ("zombie", "reaped"), SHELL_TIMEOUT)
    story.orphan_state_while_reading = _state(orphan.pid)
    story.lines.append(
        _("cat exited while the shell sat in `read`, not waiting: it is a zombie of the shell")
        if story.orphan_state_while_reading == "zombie" else
        _("cat exited while the shell sat in `read`, not waiting: already reaped (this shell "
          "also reaps when SIGCHLD arrives)"))
    _tell(proc)
    if _read_line(proc) != "waited":
        raise RuntimeError(_("the shell did not run /bin/true"))
    story.reaped_when_it_waited = proc_status(orphan.pid) is None
    story.lines.append(
        _("the shell ran /bin/true and waited (waitpid(-1, ...)): cat is reaped, gone from /proc")
        if story.reaped_when_it_waited else
        _("the shell ran /bin/true and waited (waitpid(-1, ...)): cat is still there"))
    os.kill(sh.pid, signal.SIGTERM)
    story.sigterm = "ignored" if _answers(proc) else "killed"
    story.lines.append(
        _("SIGTERM to the shell: ignored: it is PID 1 and has no handler for it "
          "(pid_namespaces(7)); it still answers")
        if story.sigterm == "ignored" else
        _("SIGTERM to the shell: it died of it (the default action, signal(7)): it is not PID 1"))


def _answers(proc: subprocess.Popen) -> bool:
    """Whether the shell, sent a line, still prints "alive" (it has not died of a signal)."""
    try:
        _tell(proc)
    except BrokenPipeError:
        return False
    return _read_line(proc) == "alive"


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:  # already closed: closing twice is how a finally block stays simple
        pass


def _which(shell: str) -> str:
    import shutil

    if not isinstance(shell, str) or not shell:
        raise TypeError(_("shell must be a program name such as 'sh' or 'bash', not {shell!r}")
                        .format(shell=shell))
    path = shutil.which(shell)
    if path is None:
        raise ValueError(_("no program {shell!r} on PATH").format(shell=shell))
    return path


def _end(proc: subprocess.Popen) -> None:
    """Let the shell finish (EOF on its stdin); kill its whole session if it does not."""
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    try:
        proc.wait(timeout=SHELL_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        stream.close()


# ---------------------------------------------------------------- the program

def main(argv: list[str]) -> int:
    """`--subreaper -- COMMAND...`: become a child subreaper, then exec COMMAND."""
    if len(argv) < 3 or argv[:2] != ["--subreaper", "--"]:
        sys.stderr.write("usage: python -m labkit.lessons --subreaper -- COMMAND [ARG...]\n")
        return 64
    linux.set_child_subreaper()
    try:
        os.execvp(argv[2], argv[2:])
    except OSError as exc:
        sys.stderr.write(f"labkit.lessons: cannot run {argv[2]!r}: {exc.strerror}\n")
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
