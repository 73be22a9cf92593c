"""A container's PID 1, by hand: the pause as PID 1 of a new PID namespace, and `docker stop`.

Notebook 05's experiments, each a function that starts real processes, stops them, and returns a
plain dict (JSON, so that tools/record_runs.py can keep a run from a machine that allows
namespaces): its "lines" are what the notebook prints, the other keys what it checks.

    kernel (this process; never forks lab processes)
     └─ python -m labkit.unshare --pid --mount-proc [--user] -- COMMAND   (the launcher)
         └─ COMMAND, PID 1 of the new PID namespace

The launcher exits with its PID 1's status, as unshare(1) -f does. Where the kernel refuses the
namespace (mybinder.org, Docker's default seccomp profile: EPERM) it exits at once with its own
code, and start_as_pid1 raises NamespaceUnavailable naming the refused step: no waiting.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable

from labkit import procfs, programs, unshare
from labkit.errors import AgentError, NamespaceUnavailable
from labkit.i18n import N_, _

START_TIMEOUT = 10.0   # seconds for a process to come up (a slow Binder start)
STOP_TIMEOUT = 10.0
PAUSE = programs.pause()
TERMINATED = "Shutting down, got signal: Terminated"

# A C init written for this lab that does what the seed's pause.c does, in its own words: the
# same three sigaction(2) calls (SIGINT and SIGTERM end it, SIGCHLD reaps in a loop, with
# SA_NOCLDSTOP) around a pause(2) loop. Not the reference file, which stays out of the
# repository (../shared/reference/pause.c; tests/test_pause.py runs that one beside ours).
C_INIT = r"""#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) { psignal(signo, "Shutting down, got signal"); exit(0); }

static void reap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {}   /* one SIGCHLD may stand for many exits */
}

int main(void) {
    struct sigaction on_stop = {.sa_handler = stop};
    struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    if (getpid() != 1) fprintf(stderr, "Warning: pause should be the first process\n");
    if (sigaction(SIGINT, &on_stop, NULL) || sigaction(SIGTERM, &on_stop, NULL)) return 1;
    if (sigaction(SIGCHLD, &on_child, NULL)) return 3;
    for (;;) pause();
}
"""

_started: list[subprocess.Popen] = []  # every launcher and process started here (stop_all)


def comm(pid: int) -> str | None:
    """The name of process `pid` (proc(5): /proc/PID/comm), or None once it is gone."""
    stat = procfs.read_stat(pid)
    return None if stat is None else stat.comm


def wait_until(condition: Callable[[], object], what: str, timeout: float = START_TIMEOUT):
    """Poll `condition()` until it returns something true, and return that; after `timeout`
    seconds raise AgentError saying `what` did not happen. Never a sleep "long enough"."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AgentError(_("{what} did not happen within {timeout:g} s").format(
                what=what, timeout=timeout))
        time.sleep(0.005)
    return result


def _popen(argv: list[str], **kwargs) -> subprocess.Popen:
    kwargs.setdefault("env", programs.environment())
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
    _started.append(proc)
    return proc


def start_pause(argv: list[str] | None = None, ready: Callable[[int], bool] | None = None,
                **kwargs) -> subprocess.Popen:
    """Start the Python pause (or `argv`) as an ordinary process; return once ready(its PID),
    by default once it has renamed itself "pause", which the Python pause does right after
    blocking its signals. Before that, SIGTERM would still have its default action and end it
    without a word."""
    proc = _popen(argv or PAUSE, **kwargs)
    ready = ready or _is_pause
    wait_until(lambda: proc.poll() is not None or ready(proc.pid),
               _("process {pid} ({name}) getting ready").format(pid=proc.pid,
                                                                 name=(argv or PAUSE)[-1]))
    if proc.returncode is not None:
        raise AgentError(_("{argv} exited at once with status {status}").format(
            argv=argv or PAUSE, status=proc.returncode))
    return proc


def unshare_command() -> list[str]:
    """The launcher: a new PID namespace with its own /proc (and, for an ordinary user, first a
    user namespace, the only way it may make the others: user_namespaces(7))."""
    return programs.unshare("--pid", "--mount-proc", *([] if os.geteuid() == 0 else ["--user"]))


def start_as_pid1(argv: list[str], ready: Callable[[int], bool]) -> tuple[subprocess.Popen, int]:
    """Start `argv` as PID 1 of a new PID namespace: (launcher, host PID of that PID 1), once
    ready(host PID) holds. Raises NamespaceUnavailable at once where namespaces are denied."""
    launcher = _popen(unshare_command() + ["--", *argv], stderr=subprocess.PIPE, text=True)
    found = wait_until(lambda: launcher.poll() is not None or
                       next((c for c in procfs.children(launcher.pid) if ready(c)), None),
                       _("{name} starting as PID 1").format(name=argv[0]))
    if launcher.returncode is not None:
        said = launcher.stderr.read().strip()
        launcher.stderr.close()
        if launcher.returncode in unshare.REFUSED:
            raise NamespaceUnavailable(_("no new PID namespace here: {said}").format(said=said))
        raise AgentError(_("labkit.unshare exited with {status}: {said}").format(
            status=launcher.returncode, said=said))
    return launcher, found


def ns_pids(pid: int) -> list[int]:
    """Process `pid`'s PID in each PID namespace it is in, outermost first (proc(5): NSpid)."""
    found = procfs.nspid(pid)
    if found is None:
        raise ProcessLookupError(errno.ESRCH, f"no process {pid}")
    return found


def _is_pause(pid: int) -> bool:
    return comm(pid) == "pause"


def _catches_sigterm(pid: int) -> bool:
    """pause.c is ready once its SIGTERM handler is installed (SigCgt, proc(5))."""
    try:
        return "SIGTERM" in signal_sets(pid)["SigCgt"]
    except OSError:  # gone
        return False


def exit_status(returncode: int) -> int:
    """A Popen returncode as a shell says it: killed by signal N is 128+N (-15 -> 143)."""
    return returncode if returncode >= 0 else 128 - returncode


def _finish(launcher: subprocess.Popen) -> list[str]:
    _, err = launcher.communicate(timeout=STOP_TIMEOUT)
    return err.splitlines()


def pause_as_pid1() -> dict:
    """The Python pause as PID 1 of a new PID namespace: its two PIDs, then SIGTERM."""
    launcher, pid1 = start_as_pid1(PAUSE, _is_pause)
    pids = ns_pids(pid1)
    os.kill(pid1, signal.SIGTERM)
    stderr = _finish(launcher)
    return {"ns_pids": pids, "stderr": stderr, "status": launcher.returncode,
            "lines": [_("the pause's PIDs, outside then inside: {pids}").format(pids=pids),
                      _("its standard error after SIGTERM:"), *(f"  {line}" for line in stderr),
                      _("exit status: {status}").format(status=launcher.returncode)]}


def sighup_then_sigterm_to_pid1() -> dict:
    """SIGHUP (no handler: PID 1 of a namespace drops it), then SIGTERM (blocked: delivered)."""
    launcher, pid1 = start_as_pid1(PAUSE, _is_pause)
    os.kill(pid1, signal.SIGHUP)
    os.kill(pid1, signal.SIGTERM)
    stderr = _finish(launcher)
    return {"stderr": stderr, "status": launcher.returncode,
            "lines": [_("sent SIGHUP, then SIGTERM, to the pause as PID 1"),
                      _("its standard error:"), *(f"  {line}" for line in stderr),
                      _("exit status: {status}").format(status=launcher.returncode)]}


def inits() -> tuple[dict[str, list[str]], list[str]]:
    """The `sleep 60` to stop, alone and under each init installed here: ({name: argv}, the
    inits that are missing)."""
    found = {"sleep": ["sleep", "60"], "labkit.pause -- sleep": PAUSE + ["--", "sleep", "60"]}
    missing = []
    for name, argv in (("tini", ["tini", "--"]), ("dumb-init", ["dumb-init"])):
        if shutil.which(name):
            found[f"{name} -- sleep"] = argv + ["sleep", "60"]
        else:
            missing.append(name)
    return found, missing


def _sleeping(pid: int) -> bool:
    """PID is `sleep`, or its child is: the application under its init is running."""
    return comm(pid) == "sleep" or any(comm(c) == "sleep" for c in procfs.children(pid))


def docker_stop(argv: list[str], grace: float = 1.0, as_pid1: bool = True) -> dict:
    """What `docker stop` does to a container: SIGTERM to its PID 1, `grace` seconds, SIGKILL.

    as_pid1=False runs `argv` as an ordinary process instead, for the contrast. Returns the exit
    status, the seconds from SIGTERM to the end, and the processes it left running (then killed).
    """
    if as_pid1:
        launcher, target = start_as_pid1(argv, _sleeping)
    else:
        launcher = _popen(argv, stderr=subprocess.DEVNULL, start_new_session=True)
        target = launcher.pid
        wait_until(lambda: launcher.poll() is not None or _sleeping(target), f"{argv} starting")
    family = [target, *procfs.descendants(target)]
    sent = time.monotonic()
    os.kill(target, signal.SIGTERM)
    try:
        launcher.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(target, signal.SIGKILL)  # SIGKILL from an ancestor namespace always gets through
        launcher.wait(STOP_TIMEOUT)
    seconds = round(time.monotonic() - sent, 2)
    left = [comm(pid) for pid in family if comm(pid) not in (None, "")
            and procfs.state(pid) != "Z"]
    _kill(family[1:])
    if launcher.stderr is not None:
        launcher.stderr.close()
    return {"status": exit_status(launcher.returncode), "seconds": seconds, "left": left}


def _kill(pids: list[int]) -> None:
    """SIGKILL what an init left running. Its adopter (the session's subreaper) reaps it."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def docker_stop_table(as_pid1: bool = True, grace: float = 1.0) -> dict:
    """docker_stop for `sleep` alone and under each init: one row each."""
    found, missing = inits()
    rows = {name: docker_stop(argv, grace, as_pid1) for name, argv in found.items()}
    lines = [_("docker stop with a {grace:g} s grace, each init as PID 1 of a new PID "
               "namespace:") if as_pid1 else
             _("docker stop with a {grace:g} s grace, each init as an ordinary process:")]
    lines[0] = lines[0].format(grace=grace)
    for name, row in rows.items():
        left = (_("  left running: {names}").format(names=", ".join(row["left"]))
                if row["left"] else "")
        lines.append(_("  {name:24} exit status {status:3}  after {seconds} s{left}").format(
            name=name, status=row["status"], seconds=row["seconds"], left=left))
    lines += [_("  ({name} is not installed here: apt-get install {name})").format(name=name)
              for name in missing]
    return {"rows": rows, "lines": lines}


# --- what the kernel knows of a process's signals --------------------------------------------

MASKS = {"SigCgt": N_("caught (a handler)"), "SigBlk": N_("blocked"), "SigIgn": N_("ignored")}
C_PAUSE = N_("a C pause (compiled here)")  # a key of signals_of_the_pauses()["sets"]


def signal_sets(pid: int) -> dict[str, list[str]]:
    """The SigCgt, SigBlk and SigIgn masks of /proc/PID/status (proc(5)), as signal names.

    Each is a hexadecimal bit mask: bit N-1 set means signal N is in the set. Only the standard
    signals, 1 to 31, are named (signal(7)); the real-time ones say nothing about an init.
    """
    fields = procfs.status(pid)
    if fields is None:
        raise ProcessLookupError(errno.ESRCH, f"no process {pid}")
    return {mask: [_signal_name(n) for n in range(1, 32) if (int(fields[mask], 16) >> (n - 1)) & 1]
            for mask in MASKS}


def _signal_name(signo: int) -> str:
    try:
        return signal.Signals(signo).name
    except ValueError:  # a real-time signal other than SIGRTMIN and SIGRTMAX
        return f"SIG{signo}"


def build_pause_c(directory: str) -> str | None:
    """Compile C_INIT (a pause in C) with the C compiler found here into `directory`; its
    path, or None when there is no compiler (cc or gcc)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    source = os.path.join(directory, "pause.c")
    with open(source, "w") as f:
        f.write(C_INIT)
    binary = os.path.join(directory, "pause")  # ps shows the name of the file
    subprocess.run([cc, "-O2", "-o", binary, source], check=True, capture_output=True,
                   timeout=120)
    return binary


def signals_of_the_pauses() -> dict:
    """The C pause (when a compiler exists), the Python pause and `sleep` side by side, as
    ordinary processes: which signals each has caught, blocked or ignored, read from /proc."""
    quiet = {"stderr": subprocess.DEVNULL}
    lines = []
    with tempfile.TemporaryDirectory(prefix="labkit-pause-c-") as directory:
        binary = build_pause_c(directory)
        procs = {}
        if binary is None:
            lines.append(_("(no C compiler here, so no C pause: apt-get install gcc)"))
        else:
            procs[C_PAUSE] = start_pause([binary], _catches_sigterm, **quiet)
        procs["labkit.pause (Python)"] = start_pause(**quiet)
        procs["sleep 60"] = start_pause(["sleep", "60"], lambda pid: comm(pid) == "sleep")
        sets = {name: signal_sets(proc.pid) for name, proc in procs.items()}
    for proc in procs.values():
        proc.terminate()
        proc.wait(STOP_TIMEOUT)
    for name, masks in sets.items():
        lines.append(_(name))
        lines += [f"  {_(MASKS[mask]):18} {' '.join(masks[mask]) or '-'}" for mask in MASKS]
    return {"sets": sets, "lines": lines}


def record() -> dict[str, dict]:
    """Every experiment of notebook 05 that needs a PID namespace, run now (tools/record_runs)."""
    return {"pause_as_pid1": pause_as_pid1(),
            "sighup_then_sigterm_to_pid1": sighup_then_sigterm_to_pid1(),
            "docker_stop_as_pid1": docker_stop_table(as_pid1=True)}


def stop_all() -> int:
    """Kill and wait for whatever this module started that still runs (after an interrupted
    cell); how many processes it started in all."""
    for proc in _started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return len(_started)
