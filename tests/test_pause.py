"""The Python pause init (`python -m labkit.pause`), on real processes, beside the seed's pause.c.

The C reference is built once per session from `<repo>/../shared/reference/pause.c`. Where both
programs can do a thing (the default behaviour), each test runs both and requires the same bytes
on stderr and the same exit status, and the text the C program is known to print. The lab's
options (--subreaper, --no-reap, --events, --drain, --owner, `-- COMMAND`) are the Python
port's own; their tests come with a negative control where one is cheap, so that a test is seen
to fail when the behaviour it proves is absent.

Readiness is observed, never guessed: the C program installs handlers (SigCgt in
/proc/PID/status); the Python port blocks the signals it waits for (SigBlk), renames itself
"pause" and sleeps in sigwaitinfo(2) (see is_ready for why SigBlk alone cannot tell). Every
wait polls with a deadline. The conftest harness makes pytest a subreaper and fails any test
that leaves a process behind, so each test also cleans up what it started.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import reap_adopted, wait_until
from support import child_env, sigmask

import labkit
from labkit import pause, procfs

pytestmark = pytest.mark.user  # PID 1 of a namespace: through a user namespace when not root

REPO = Path(__file__).resolve().parent.parent
PY_PAUSE = [sys.executable, "-m", "labkit.pause"]
PROGRAMS = ("pause.c", "pause.py")

WARNING = "Warning: pause should be the first process\n"
TERMINATED = "Shutting down, got signal: Terminated\n"
INTERRUPTED = "Shutting down, got signal: Interrupt\n"

DEADLINE = 10.0  # generous: a loaded CI machine, a cold interpreter start
ROOT = os.geteuid() == 0


WAITED = sigmask(signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)


# --- /proc, read through labkit.procfs (test_init_peers.py keeps an independent reader) ---------

state, start_time, children_of, all_pids = (
    procfs.state, procfs.start_time, procfs.children, procfs.all_pids)
proc_status = procfs.status


def ppid_of(pid: int) -> int | None:
    stat = procfs.read_stat(pid)
    return stat.ppid if stat else None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def zombies_of(parent: int) -> list[int]:
    """Every process in state Z whose PPID is `parent`, from a scan of the whole /proc."""
    return [pid for pid in all_pids()
            if (stat := procfs.read_stat(pid)) and stat.state == "Z" and stat.ppid == parent]


def identities(pids) -> dict[int, int]:
    """pid -> start time: with it, a PID reused by a stranger is not mistaken for ours."""
    return {pid: start_time(pid) for pid in pids}


def still_there(ids: dict[int, int]) -> list[int]:
    return [pid for pid, started in ids.items() if started is not None
            and start_time(pid) == started]


# --- running the programs ------------------------------------------------------------------------

@pytest.fixture
def argv_of(pause_c):
    """program name -> argv to run it with."""
    return {"pause.c": [pause_c], "pause.py": list(PY_PAUSE)}.__getitem__


@pytest.fixture(scope="module")
def outcomes() -> dict:
    """What each program did in each scenario: run once, compared by both programs' tests."""
    return {}


def side_by_side(outcomes: dict, scenario: str, program: str, run):
    """(this program's outcome, the other program's outcome), running each at most once."""
    other = PROGRAMS[1 - PROGRAMS.index(program)]
    for name in (program, other):
        if (scenario, name) not in outcomes:
            outcomes[(scenario, name)] = run(name)
    return outcomes[(scenario, program)], outcomes[(scenario, other)]


@pytest.fixture
def cleanup():
    """Processes a test started: SIGKILLed and waited for if the test did not end them."""
    popens: list[subprocess.Popen] = []
    pids: list[int] = []
    yield popens, pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for proc in popens:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()


def start(cleanup, argv, **kwargs) -> subprocess.Popen:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen(argv, env=child_env(), **kwargs)
    cleanup[0].append(proc)
    return proc


def wchan(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except OSError:
        return ""


def is_ready(pid: int, program: str) -> bool:
    """The program runs and waits for its signals: blocked (Python) or handled (C).

    The C program has handlers: SigCgt. The Python port blocks the signals (SigBlk), renames
    itself "pause" just after, and then sleeps in sigwaitinfo(2). While it sleeps there the
    kernel *unblocks* the awaited signals (do_sigtimedwait keeps the mask in real_blocked), so
    SigBlk reads 0 then: a sleeper in do_sigtimedwait counts as ready too.
    """
    status = proc_status(pid)
    if status is None:
        return False
    if program == "pause.py":
        return status["Name"] == "pause" and (
            int(status["SigBlk"], 16) & WAITED == WAITED
            or (status["State"][0] == "S" and "sigtimedwait" in wchan(pid)))
    return status["Name"] == "pause-c" and int(status["SigCgt"], 16) & WAITED == WAITED


def wait_ready(proc: subprocess.Popen, pid: int, program: str) -> None:
    ok = wait_until(lambda: is_ready(pid, program) or proc.poll() is not None, DEADLINE)
    assert ok and proc.poll() is None, (
        f"{program} (pid {pid}) never became ready: exit {proc.poll()}, "
        f"status {proc_status(pid)}")
    assert is_ready(pid, program)


def finish(proc: subprocess.Popen, timeout: float = DEADLINE) -> tuple[str, str, int]:
    """(stdout, stderr, returncode) once proc exits; fails (after killing it) if it does not."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"pid {proc.pid} did not exit within {timeout} s; stderr: {err!r}")
    return (out or b"").decode(), (err or b"").decode(), proc.returncode


def run_pause(args, timeout: float = DEADLINE, env: dict | None = None,
              **kwargs) -> subprocess.CompletedProcess:
    """The Python pause with `args`, to completion (for the cases that exit on their own)."""
    return subprocess.run(PY_PAUSE + list(args), env={**child_env(), **(env or {})},
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kwargs)


# --- 1. the default behaviour, byte for byte beside pause.c --------------------------------------

NOT_PID1 = {
    "SIGTERM": (signal.SIGTERM, WARNING + TERMINATED, 0),
    "SIGINT": (signal.SIGINT, WARNING + INTERRUPTED, 0),
    # The control: neither program handles SIGHUP, and outside PID 1 its default action kills.
    "SIGHUP": (signal.SIGHUP, WARNING, -signal.SIGHUP),
}


@pytest.mark.parametrize("scenario", list(NOT_PID1))
@pytest.mark.parametrize("program", PROGRAMS)
def test_same_stderr_and_exit_as_pause_c_when_not_pid1(program, scenario, argv_of, outcomes,
                                                       cleanup):
    """Not PID 1: the warning, then psignal's line and exit 0 on SIGTERM/SIGINT, as pause.c."""
    signo, expected_err, expected_code = NOT_PID1[scenario]

    def run(name):
        proc = start(cleanup, argv_of(name))
        wait_ready(proc, proc.pid, name)
        proc.send_signal(signo)
        return finish(proc)

    mine, reference = side_by_side(outcomes, scenario, program, run)
    assert mine == ("", expected_err, expected_code)
    assert mine == reference


# --- 2. as PID 1 of a new PID namespace ----------------------------------------------------------

def unshare_prefix() -> list[str]:
    # Root makes the PID namespace directly; anyone else first makes a user namespace.
    return ["unshare", "-pf", "--mount-proc"] if ROOT else ["unshare", "-Urpf", "--mount-proc"]


def nsenter_prefix(host_pid: int) -> list[str]:
    prefix = ["nsenter", "-t", str(host_pid), "-p"]
    return prefix if ROOT else prefix + ["-U", "--preserve-credentials"]


def start_as_pid1(cleanup, argv, program) -> tuple[subprocess.Popen, int]:
    """`argv` as PID 1 of a new PID namespace; (the unshare process, the program's host PID)."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare(1) (util-linux) is needed to make a PID namespace")
    proc = start(cleanup, unshare_prefix() + argv)
    found = wait_until(lambda: children_of(proc.pid) or proc.poll() is not None, DEADLINE)
    if proc.poll() is not None or not found:
        out, err, code = finish(proc)
        pytest.fail(f"unshare could not start a PID namespace (exit {code}): {err}")
    host_pid = children_of(proc.pid)[0]
    cleanup[1].append(host_pid)  # if the test fails: SIGKILL to PID 1 ends the namespace
    wait_ready(proc, host_pid, program)
    return proc, host_pid


# A helper run inside the namespace: it signals PID 1 there, after checking where it is (a
# helper that failed to enter must not signal the machine's own PID 1).
SIGNAL_PID1 = textwrap.dedent("""
    import os, signal, sys
    if os.readlink("/proc/self/ns/pid") != sys.argv[1]:
        sys.exit("not inside the lab's PID namespace")
    for name in sys.argv[2:]:
        os.kill(1, getattr(signal, name))
""")


def signal_from_inside(host_pid: int, *names: str, stops: bool = False) -> None:
    """Signal PID 1 from a process inside its namespace (entered with nsenter).

    When the signal `stops` PID 1, the kernel then SIGKILLs everything left in the namespace,
    which may include the helper itself, if it has not exited yet.
    """
    ns = os.readlink(f"/proc/{host_pid}/ns/pid")
    done = subprocess.run(nsenter_prefix(host_pid) + [sys.executable, "-c", SIGNAL_PID1, ns,
                                                      *names],
                          capture_output=True, text=True, timeout=DEADLINE)
    allowed = (0, -signal.SIGKILL) if stops else (0,)
    assert done.returncode in allowed, (
        f"nsenter/kill inside the namespace failed ({done.returncode}): {done.stderr}")


@pytest.mark.parametrize("stop_from", ["outside", "inside"])
@pytest.mark.parametrize("program", PROGRAMS)
def test_pid1_no_warning_and_drops_unhandled_signals_like_pause_c(program, stop_from, argv_of,
                                                                   outcomes, cleanup):
    """As PID 1 of a PID namespace: no warning; SIGHUP/SIGUSR1 are dropped; SIGTERM stops it.

    pid_namespaces(7): the init of a PID namespace gets only the signals it has a handler for,
    whether they come from inside the namespace or from an ancestor namespace (from there
    SIGKILL and SIGSTOP alone are forced through). The kernel discards the others at send time
    (sig_task_ignored with SIGNAL_UNKILLABLE), so SIGHUP, whose default action would kill
    (see the SIGHUP control of the previous test), leaves both programs running, with nothing
    pending. A *blocked* signal is never discarded (sig_ignored), which is why the Python port,
    which blocks SIGTERM instead of handling it, still gets SIGTERM as PID 1 like pause.c does.
    """
    def run(name):
        proc, host_pid = start_as_pid1(cleanup, argv_of(name), name)
        os.kill(host_pid, signal.SIGHUP)
        os.kill(host_pid, signal.SIGUSR1)
        signal_from_inside(host_pid, "SIGHUP", "SIGUSR1")
        # kill(2) has returned: each signal is now queued or discarded, never in flight.
        status = proc_status(host_pid)
        dropped = sigmask(signal.SIGHUP, signal.SIGUSR1)
        survived = (status is not None and status["State"][0] in "SR"
                    and not int(status["SigPnd"], 16) & dropped
                    and not int(status["ShdPnd"], 16) & dropped)
        if stop_from == "outside":
            os.kill(host_pid, signal.SIGTERM)
        else:
            signal_from_inside(host_pid, "SIGTERM", stops=True)
        return (survived, *finish(proc))

    mine, reference = side_by_side(outcomes, f"pid1-{stop_from}", program, run)
    assert mine == (True, "", TERMINATED, 0)
    assert mine == reference


# --- 3. version and usage ------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["-v"], ["-V"], ["--subreaper", "-v"], ["--no-reap", "--drain", "-V"], ["--bogus", "-v"],
])
def test_version_flag_anywhere_prints_version_and_runs_nothing(args, tmp_path):
    """-v/-V anywhere before `--`: `pause.py <version>` on stdout, exit 0, no fork, no warning."""
    marker = tmp_path / "forked"
    done = run_pause(args + ["--", "sh", "-c", f"touch {marker}"])
    assert (done.returncode, done.stdout, done.stderr) == (0, f"pause.py {labkit.__version__}\n",
                                                           "")
    assert not marker.exists()


@pytest.mark.parametrize("args, complaint", [
    (["--bogus"], "unknown argument '--bogus'"),
    (["--subreaper", "extra"], "unknown argument 'extra'"),
    (["--owner", "abc"], "--owner needs a PID"),
    (["--owner", "0"], "--owner needs a PID"),
    (["--events"], "--events needs a value"),
    ([], "'--' must be followed by a command"),
])
def test_bad_arguments_exit_64_with_usage_before_any_fork(args, complaint, tmp_path):
    """A usage error exits 64 with what was wrong and the usage, and starts no command."""
    marker = tmp_path / "forked"
    command = ["sh", "-c", f"touch {marker}"] if args else []
    done = run_pause(args + ["--"] + command)
    assert done.returncode == 64
    assert done.stdout == ""
    assert done.stderr.startswith(f"pause: {complaint}")
    assert "usage: python -m labkit.pause" in done.stderr
    assert not marker.exists()


# --- 4. idle means idle --------------------------------------------------------------------------

@pytest.mark.slow
def test_idle_pause_uses_no_cpu_and_never_wakes(argv_of, cleanup):
    """Idle for 5 s: not one wakeup (no polling), like pause.c. A sleeping task runs only when
    woken, and every run ends in a context switch: voluntary when it sleeps again, involuntary
    when it is preempted (proc(5), /proc/PID/status). Both counts must stand still."""
    procs = {name: start(cleanup, argv_of(name)) for name in PROGRAMS}
    for name, proc in procs.items():
        wait_ready(proc, proc.pid, name)
    ready = time.monotonic()

    def sample():
        return {name: (proc_status(p.pid)["voluntary_ctxt_switches"],
                       proc_status(p.pid)["nonvoluntary_ctxt_switches"])
                for name, p in procs.items()}

    time.sleep(max(0.0, ready + 1.0 - time.monotonic()))  # the measured window: t=1 s .. t=6 s
    before = sample()
    time.sleep(max(0.0, ready + 6.0 - time.monotonic()))
    after = sample()
    for name, proc in procs.items():
        assert state(proc.pid) == "S", f"{name} is not asleep"
        assert after[name] == before[name], (
            f"{name} woke while idle: (voluntary, involuntary switches) {before[name]} -> "
            f"{after[name]}")
        proc.send_signal(signal.SIGTERM)
        assert finish(proc) == ("", WARNING + TERMINATED, 0)


# --- 5. coalesced SIGCHLDs -----------------------------------------------------------------------

BURST = 2000

# The pause's command: an intermediate forks BURST children that exit at once and then exits
# itself, so BURST zombies are handed to the subreaper together (one pending SIGCHLD stands for
# them all). The command writes their PIDs to a file, then waits for EOF on stdin.
BURST_SCRIPT = textwrap.dedent("""
    import os, sys
    count, pidfile = int(sys.argv[1]), sys.argv[2]
    r, w = os.pipe()
    mid = os.fork()
    if mid == 0:
        os.close(r)
        pids = []
        for _ in range(count):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            pids.append(pid)
        with os.fdopen(w, "w") as out:
            out.write(" ".join(map(str, pids)))
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as inp:
        pids = inp.read()
    os.waitpid(mid, 0)
    with open(pidfile + ".tmp", "w") as out:
        out.write(pids)
    os.rename(pidfile + ".tmp", pidfile)
    sys.stdin.read()
""")


def read_events(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def start_burst(cleanup, tmp_path, options) -> tuple[subprocess.Popen, list[int], int, Path]:
    """A pause running BURST_SCRIPT; (pause, the burst's PIDs, the command's PID, events)."""
    script = tmp_path / "burst.py"
    script.write_text(BURST_SCRIPT)
    pidfile, events = tmp_path / "burst.pids", tmp_path / "events.jsonl"
    proc = start(cleanup, PY_PAUSE + options + ["--events", str(events), "--", sys.executable,
                                                str(script), str(BURST), str(pidfile)],
                 stdin=subprocess.PIPE)
    assert wait_until(lambda: pidfile.exists() or proc.poll() is not None, 30.0)
    assert proc.poll() is None, finish(proc)
    burst = [int(p) for p in pidfile.read_text().split()]
    assert len(burst) == BURST
    command = [p for p in children_of(proc.pid) if cmdline(p)[1:2] == [str(script)]]
    assert len(command) == 1
    return proc, burst, command[0], events


def test_reaps_a_burst_of_2000_orphans_despite_coalesced_sigchld(tmp_path, cleanup):
    """2,000 orphans reparented at once (signals coalesce): the reap loop reaps every one."""
    proc, burst, command, events = start_burst(cleanup, tmp_path, ["--subreaper"])

    def all_reaped():
        reported = {e["pid"] for e in read_events(events)}
        return reported >= set(burst) and not zombies_of(proc.pid)

    assert wait_until(all_reaped, DEADLINE), (
        f"{len(zombies_of(proc.pid))} zombies left under the pause; "
        f"{len(read_events(events))} events")
    assert children_of(proc.pid) == [command]  # nothing but the live command is left
    # EOF on its stdin (finish closes it): the command exits 0, and the pause with its status.
    assert finish(proc) == ("", WARNING, 0)
    lines = read_events(events)
    assert len(lines) == BURST + 1
    for event in lines:
        assert set(event) == {"pid", "status", "time", "monotonic"}
        assert event["status"] == 0
    assert sorted(e["pid"] for e in lines) == sorted(burst + [command])


def test_no_reap_leaves_the_2000_zombies_until_drain_reaps_them(tmp_path, cleanup):
    """Control: --no-reap keeps exactly 2,000 zombies under the pause, until --drain reaps them
    (SIGTERM goes to the command; once it has exited, the drain reaps everything)."""
    proc, burst, command, events = start_burst(
        cleanup, tmp_path, ["--subreaper", "--no-reap", "--drain"])
    # All 2,000 are zombies of the pause at the same moment: none was reaped.
    assert wait_until(lambda: len(zombies_of(proc.pid)) == BURST, DEADLINE), (
        f"{len(zombies_of(proc.pid))} zombies under the pause, expected {BURST}")
    assert sorted(zombies_of(proc.pid)) == sorted(burst)
    assert read_events(events) == []
    ids = identities(burst + [command])
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == ("", WARNING, 128 + signal.SIGTERM)
    assert still_there(ids) == []
    lines = read_events(events)
    assert sorted(e["pid"] for e in lines) == sorted(burst + [command])
    assert {e["pid"]: e["status"] for e in lines}[command] == -signal.SIGTERM
    assert {e["status"] for e in lines if e["pid"] != command} == {0}


# --- 6. -- COMMAND -------------------------------------------------------------------------------

@pytest.mark.parametrize("command, code", [
    (["sh", "-c", "exit 7"], 7),
    (["sh", "-c", "exit 0"], 0),
    (["sh", "-c", "kill -KILL $$"], 128 + signal.SIGKILL),
    (["sh", "-c", "exit 5", "-v"], 5),  # after `--`, -v belongs to the command
])
def test_exits_with_the_commands_exit_code(command, code):
    """`-- COMMAND`: the pause exits when the command does, with its code (128+N if killed)."""
    done = run_pause(["--"] + command)
    assert (done.returncode, done.stdout, done.stderr) == (code, "", WARNING)


def test_missing_command_exits_127_and_unexecutable_126(tmp_path):
    """A command that cannot be found exits 127, one that cannot be run 126, each said why.

    PATH starts with a directory we may not search: execvp(3) then answers EACCES for a name
    found nowhere, which must still be "not found" (127), as the shell says. (Root may search
    any directory, so only the unprivileged run exercises that part.)
    """
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        done = run_pause(["--", "no-such-command-zombie-lab"],
                         env={"PATH": f"{locked}{os.pathsep}{os.environ.get('PATH', '')}"})
    finally:
        locked.chmod(0o700)
    assert done.returncode == 127
    assert done.stderr == WARNING + "pause: cannot run 'no-such-command-zombie-lab': not found\n"
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)  # no x bit at all: execve(2) refuses it even to root (EACCES)
    done = run_pause(["--", str(script)])
    assert done.returncode == 126
    assert done.stderr == WARNING + f"pause: cannot run {str(script)!r}: permission denied\n"


def ignored_and_blocked(lines: str) -> tuple[int, int]:
    fields = dict(line.split(":\t") for line in lines.splitlines())
    return int(fields["SigIgn"], 16), int(fields["SigBlk"], 16)


def test_command_starts_with_no_signal_blocked_or_newly_ignored():
    """The command gets no blocked signal from the pause, nor the SIGPIPE/SIGXFSZ that Python
    ignores at startup (SIG_IGN survives exec): it starts as it would from a shell.

    Signals 32 and up are left out: glibc's posix_spawn ignores its own internal ones.
    """
    probe = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
    standard = (1 << 31) - 1
    done = run_pause(["--"] + probe)
    assert (done.returncode, done.stderr) == (0, WARNING)
    ignored, blocked = ignored_and_blocked(done.stdout)
    # What a program started directly from here ignores (whatever pytest's own parent set).
    reference, _ = ignored_and_blocked(subprocess.run(probe, capture_output=True, text=True,
                                                      check=True).stdout)
    assert blocked == 0
    assert not ignored & sigmask(signal.SIGPIPE, signal.SIGXFSZ)
    assert ignored & standard & ~(reference & standard) == 0


# --- 7. --drain ----------------------------------------------------------------------------------

# The pause's command: it leaves live descendants of every kind, writes their PIDs, then sleeps.
TREE_SCRIPT = textwrap.dedent("""
    import json, os, sys, time

    def fork(body):
        pid = os.fork()
        if pid == 0:
            try:
                body()
            finally:
                os._exit(0)
        return pid

    def sleep60():
        os.execvp("sleep", ["sleep", "60"])

    def tell(w, name, wait):
        def body():
            pid = fork(sleep60)
            os.write(w, f"{name} {pid}\\n".encode())
            if wait:
                os.waitpid(pid, 0)
        return body

    def own_session():
        os.setsid()
        sleep60()

    r, w = os.pipe()
    pids = {"child": fork(sleep60), "setsid": fork(own_session),
            "middle": fork(tell(w, "grandchild", True)),
            "orphan-parent": fork(tell(w, "orphan", False))}
    os.close(w)
    with os.fdopen(r) as inp:  # "middle" keeps the pipe open: read two lines, not to EOF
        for _ in range(2):
            name, pid = inp.readline().split()
            pids[name] = int(pid)
    os.waitpid(pids.pop("orphan-parent"), 0)  # the orphan is now the pause's (a subreaper)
    with open(sys.argv[1] + ".tmp", "w") as out:
        json.dump(pids, out)
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(60)
""")


@pytest.mark.parametrize("drain", [True, False], ids=["drain", "no-drain-control"])
def test_drain_kills_and_reaps_every_descendant_before_exiting(drain, tmp_path, cleanup):
    """--drain: SIGTERM ends the command (it is forwarded), and then every descendant left
    (setsid'd, grandchild, orphan) is killed and reaped before the pause exits.

    The control without --drain shows the test can fail: the pause exits with the command, and
    the command's descendants live on.
    """
    script, pidfile = tmp_path / "tree.py", tmp_path / "tree.json"
    script.write_text(TREE_SCRIPT)
    options = ["--subreaper"] + (["--drain"] if drain else [])
    # Files, not pipes, for its output: in the control, survivors would hold a pipe open.
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = start(cleanup, PY_PAUSE + options + ["--", sys.executable, str(script),
                                                    str(pidfile)], stdout=out, stderr=err)
    assert wait_until(lambda: pidfile.exists() or proc.poll() is not None, DEADLINE)
    assert proc.poll() is None, finish(proc)
    pids = json.loads(pidfile.read_text())
    (command,) = [p for p in children_of(proc.pid) if p not in pids.values()]
    # Every one of them is alive: the sleeps (once they have exec'd) and the command.
    sleepers = [pid for name, pid in pids.items() if name != "middle"]
    assert wait_until(lambda: all(cmdline(pid) == ["sleep", "60"] and state(pid) == "S"
                                  for pid in sleepers), DEADLINE)
    pids["command"] = command
    assert state(command) in ("S", "R") and state(pids["middle"]) in ("S", "R")
    assert os.getsid(pids["setsid"]) == pids["setsid"]
    assert ppid_of(pids["orphan"]) == proc.pid
    ids = identities(pids.values())
    proc.send_signal(signal.SIGTERM)
    finish(proc, timeout=20.0)  # --drain gives up after 10 s
    assert (out_path.read_text(), err_path.read_text(), proc.returncode) == (
        "", WARNING, 128 + signal.SIGTERM)
    survivors = still_there(ids)
    if drain:
        assert survivors == []
        return
    # Control: all but the command outlived the pause. End them here (they are ours now:
    # subreaper).
    assert sorted(survivors) == sorted(pid for name, pid in pids.items() if name != "command")
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: (reap_adopted(), not still_there(ids))[1], DEADLINE)


# --- 8. --owner ----------------------------------------------------------------------------------

OWNER_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys
    owner = ["--owner", str(os.getpid())] if sys.argv[1] == "owner" else []
    pause = subprocess.Popen([sys.executable, "-m", "labkit.pause", *owner, "--subreaper",
                              "--drain", "--", "sleep", "60"])
    print(pause.pid, flush=True)
    sys.stdin.read()
""")


@pytest.mark.parametrize("owned", [True, False], ids=["owner", "no-owner-control"])
def test_pause_drains_and_exits_when_its_owner_is_killed(owned, tmp_path, cleanup):
    """--owner: SIGKILL the owner, and PR_SET_PDEATHSIG makes the pause drain and exit 0.

    Under --drain a SIGTERM is the command's first, but the owner's death signal drains at once.
    The test process is a subreaper, so it adopts the pause and reaps its zombie here. The
    control without --owner shows the pause and its sleep outliving the owner, until our own
    SIGTERM ends the sleep (exit 128+15), and with it the pause.
    """
    script, errfile = tmp_path / "owner.py", tmp_path / "stderr"
    script.write_text(OWNER_SCRIPT)
    with open(errfile, "wb") as err:
        owner = start(cleanup, [sys.executable, str(script), "owner" if owned else "none"],
                      stdin=subprocess.PIPE, stderr=err)
    assert select.select([owner.stdout], [], [], DEADLINE)[0], "the owner never started a pause"
    pause_pid = int(owner.stdout.readline())
    cleanup[1].append(pause_pid)

    def the_sleep():
        kids = [p for p in children_of(pause_pid) if cmdline(p) == ["sleep", "60"]]
        return kids and state(kids[0]) == "S" and kids[0]

    assert wait_until(lambda: the_sleep() and (proc_status(pause_pid) or {}).get("Name")
                      == "pause", DEADLINE)
    ids = identities([pause_pid, the_sleep()])
    owner.kill()
    assert owner.wait(DEADLINE) == -signal.SIGKILL

    if not owned:
        # Control: adopted by us, the pause lives on with its sleep; stop it ourselves.
        assert wait_until(lambda: ppid_of(pause_pid) == os.getpid(), DEADLINE)
        # Alive: asleep, or caught running for a moment (its reparenting can wake it).
        assert state(pause_pid) in ("S", "R") and sorted(still_there(ids)) == sorted(ids)
        os.kill(pause_pid, signal.SIGTERM)

    def reaped():
        pid, status = os.waitpid(pause_pid, os.WNOHANG)
        return pid and (status,)

    got = wait_until(reaped, DEADLINE)
    assert got, f"the pause (state {state(pause_pid)}) did not exit after its owner died"
    assert os.waitstatus_to_exitcode(got[0]) == (0 if owned else 128 + signal.SIGTERM)
    assert still_there(ids) == []
    assert errfile.read_text() == WARNING + (TERMINATED if owned else "")


# --- 9. --events ---------------------------------------------------------------------------------

def test_events_to_an_inherited_fd(cleanup):
    """--events fd:N writes one JSON line per reaped child to a descriptor it inherited."""
    r, w = os.pipe()
    try:
        proc = start(cleanup, PY_PAUSE + ["--events", f"fd:{w}", "--", "sh", "-c",
                                          "echo $$; exit 3"], pass_fds=(w,))
    finally:
        os.close(w)
    out, err, code = finish(proc)
    assert (err, code) == (WARNING, 3)
    chunks = []
    with os.fdopen(r, "rb") as inp:  # every writer has exited: EOF comes, but never hang
        while select.select([inp], [], [], DEADLINE)[0]:
            chunk = os.read(inp.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            pytest.fail("the events pipe never reached EOF")
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert set(event) == {"pid", "status", "time", "monotonic"}
    assert (event["pid"], event["status"]) == (int(out), 3)


@pytest.mark.parametrize("dest", ["/nonexistent/dir/x", "fd:999", "fd:x"])
def test_events_destination_that_cannot_be_opened_exits_66(dest, tmp_path):
    """An events destination that cannot be written: exit 66 with a message, no fork."""
    marker = tmp_path / "forked"
    done = run_pause(["--events", dest, "--", "sh", "-c", f"touch {marker}"])
    assert done.returncode == 66
    assert done.stderr.startswith(WARNING + f"pause: cannot write events to {dest!r}: ")
    assert not marker.exists()


# --- 10. children that exited before the pause started -----------------------------------------

# An entrypoint script's shape: start background work, let it end, then exec the init. The
# launcher waits until the kernel shows its child as a zombie, so the child's SIGCHLD has come and
# gone before the exec: SIGCHLD's default action is to ignore it, so the kernel discarded it
# (signal(7)), and the pause inherits a zombie child and no pending signal. (Python, not sh: dash
# reaps its own background jobs while it runs, so the zombie would not survive to the exec.)
ZOMBIE_THEN_EXEC = textwrap.dedent("""
    import os, signal, sys, time
    from labkit import procfs
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    while procfs.state(pid) != "Z":
        time.sleep(0.001)
    if signal.SIGCHLD in signal.sigpending():
        sys.exit("SIGCHLD is pending: the pause would be told, and the test would prove nothing")
    print(pid, flush=True)
    os.execvp(sys.argv[1], sys.argv[1:])
""")


def asleep_in_sigwaitinfo(pid: int) -> bool:
    """The pause has finished starting (the reap pass included) and waits for signals."""
    status = proc_status(pid)
    return (status is not None and status["Name"] == "pause" and status["State"][0] == "S"
            and "sigtimedwait" in wchan(pid))


def start_with_a_zombie(cleanup, options) -> tuple[subprocess.Popen, dict[int, int]]:
    """A pause exec'd by a process that already has a zombie child; (pause, {zombie: start})."""
    proc = start(cleanup, [sys.executable, "-c", ZOMBIE_THEN_EXEC] + PY_PAUSE + options)
    assert select.select([proc.stdout], [], [], DEADLINE)[0], finish(proc)
    zombie = int(proc.stdout.readline() or 0)
    assert zombie, finish(proc)
    ids = identities([zombie])
    assert still_there(ids) == [zombie]  # it was a zombie of this very process when it exec'd
    return proc, ids


def test_reaps_a_zombie_it_inherits_at_exec_at_once(cleanup):
    """A child that died before the pause blocked SIGCHLD is reaped at start, with no signal.

    pause.c leaves it (its SIGCHLD handler comes too late, and nothing else ever wakes it);
    tini reaps it at its first 1 s sigtimedwait timeout. The pause reaps it before it sleeps.
    """
    proc, ids = start_with_a_zombie(cleanup, [])
    wait_until(lambda: not still_there(ids) or proc.poll() is not None, DEADLINE)
    assert proc.poll() is None and still_there(ids) == [], (
        f"the inherited zombie {list(ids)} is still there (pause exit status {proc.poll()})")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == ("", WARNING + TERMINATED, 0)


def test_no_reap_leaves_the_inherited_zombie(cleanup):
    """Control: --no-reap reaps only its command, so the inherited zombie stays a zombie."""
    proc, ids = start_with_a_zombie(cleanup, ["--no-reap"])
    assert wait_until(lambda: asleep_in_sigwaitinfo(proc.pid) or proc.poll() is not None,
                      DEADLINE), f"the pause never went to sleep: exit {proc.poll()}"
    (zombie,) = ids
    assert state(zombie) == "Z" and ppid_of(zombie) == proc.pid
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == ("", WARNING + TERMINATED, 0)
    # Its parent gone, the zombie comes to us (the conftest's subreaper): reap it here.
    assert wait_until(lambda: (reap_adopted(), not still_there(ids))[1], DEADLINE)


# --- 11. signals for COMMAND ---------------------------------------------------------------------

FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")

# The pause's command: it handles the signals named in argv, says "ready" once it does, and
# prints each signal it gets. On the first one it exits with that signal's number, unless told to
# "stay" (then it lives on, as a program that ignores SIGTERM does).
TRAP_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    stay = sys.argv[1] == "stay"

    def on(signo, frame):  # os.write: a handler may run inside a print, which is not reentrant
        os.write(1, signal.Signals(signo).name.encode() + b"\\n")
        if not stay:
            sys.exit(signo)

    for name in sys.argv[2:]:
        signal.signal(getattr(signal, name), on)
    os.write(1, b"ready\\n")
    while True:
        signal.pause()
""")


def read_line(proc: subprocess.Popen) -> str:
    assert select.select([proc.stdout], [], [], DEADLINE)[0], f"no line from pid {proc.pid}"
    return proc.stdout.readline().decode().strip()


def start_trap(cleanup, options, mode: str = "exit") -> subprocess.Popen:
    """A pause with TRAP_SCRIPT as its command, once the command handles every FORWARDED."""
    proc = start(cleanup, PY_PAUSE + options + ["--", sys.executable, "-c", TRAP_SCRIPT, mode,
                                                *FORWARDED])
    assert read_line(proc) == "ready", finish(proc)
    return proc


@pytest.mark.parametrize("drain", [False, True], ids=["plain", "drain"])
@pytest.mark.parametrize("name", FORWARDED)
def test_signals_a_runtime_sends_go_to_the_command_and_its_status_comes_back(name, drain,
                                                                             cleanup):
    """With COMMAND, each signal a container runtime sends reaches it, as with tini; the pause
    exits when it does, with its exit code, and prints no shutdown line of its own."""
    proc = start_trap(cleanup, ["--drain"] if drain else [])
    proc.send_signal(getattr(signal, name))
    assert read_line(proc) == name, finish(proc)
    assert finish(proc) == ("", WARNING, getattr(signal, name))


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130), ("SIGHUP", 129)])
def test_a_command_killed_by_a_forwarded_signal_gives_128_plus_n(name, code, cleanup, tmp_path):
    """tini's convention: a command killed by signal N makes the pause exit 128+N."""
    proc = start(cleanup, PY_PAUSE + ["--", "sleep", "60"])
    # The command is started after its signals are blocked in the pause: none can kill the pause.
    assert wait_until(lambda: children_of(proc.pid) or proc.poll() is not None, DEADLINE)
    proc.send_signal(getattr(signal, name))
    assert finish(proc) == ("", WARNING, code)


def test_drain_stops_at_once_on_a_second_sigterm_the_command_ignored(cleanup):
    """--drain: the first SIGTERM is the command's; a second one drains and exits 0 at once, so
    a command that ignores SIGTERM cannot keep the lab alive."""
    proc = start_trap(cleanup, ["--drain"], mode="stay")
    (command,) = children_of(proc.pid)
    ids = identities([command])
    proc.send_signal(signal.SIGTERM)
    assert read_line(proc) == "SIGTERM"
    assert proc.poll() is None and still_there(ids) == [command]
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == ("", WARNING + TERMINATED, 0)
    assert still_there(ids) == []


# --- 12. the drain's kill never hits a reused PID ------------------------------------------------

# Run as PID 1 of a new PID namespace (with its own /proc), where writing N-1 to
# /proc/sys/kernel/ns_last_pid makes the next fork get PID N (pid_namespaces(7); allowed to a
# process with CAP_SYS_ADMIN, or CAP_CHECKPOINT_RESTORE, over the namespace's owner): a PID is
# reused for certain, not by luck. Prints what it saw, as JSON.
REUSE_SCRIPT = textwrap.dedent("""
    import json, os, signal, time
    from labkit import pause, procfs

    def sleeper():
        pid = os.fork()
        if pid == 0:
            os.execvp("sleep", ["sleep", "60"])
        return pid

    def next_pid_is(pid):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))

    def gone(pid):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    def killer(status):  # a test's SIGTERM, or a kill that came first
        return signal.Signals(-os.waitstatus_to_exitcode(status)).name

    me, seen = os.getpid(), {}
    # 1. The pidfd is opened; then its process dies, is reaped, and a new child gets its PID.
    old = sleeper()
    fd = procfs.open_checked(old, lambda stat: stat.ppid == me)
    seen["opened"] = fd is not None
    gone(old)
    next_pid_is(old)
    new = sleeper()
    seen["reused"] = new == old
    seen["sent"] = procfs.signal_pidfd(fd, signal.SIGKILL)
    os.kill(new, signal.SIGTERM)
    seen["new_ended_by"] = killer(os.waitpid(new, 0)[1])
    # 2. The scan saw `old`; before the kill, it died, was reaped, and a stranger (the child of
    # a process outside the scan) got its PID.
    old = sleeper()
    family = {me, old}
    gone(old)
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.read(r, 1)
        os._exit(-os.waitstatus_to_exitcode(os.waitpid(sleeper(), 0)[1]))
    next_pid_is(old)
    os.write(w, b"go")
    while (procfs.read_stat(old) or procfs.Stat(0, "", "", 0, 0, 0, None)).ppid != middle:
        time.sleep(0.001)
    seen["killed"] = pause.kill_descendant(old, family)
    os.kill(old, signal.SIGTERM)
    seen["stranger_ended_by"] = signal.Signals(
        os.waitstatus_to_exitcode(os.waitpid(middle, 0)[1])).name
    print(json.dumps(seen))
""")


def test_drain_kill_uses_pidfds_and_never_hits_a_reused_pid():
    """A process found by the drain's scan is killed through a pidfd opened after a parent check:
    a pidfd whose process has been reaped signals nobody, even when its PID is taken again, and a
    stranger that took a scanned PID before the kill is left alone."""
    done = subprocess.run(unshare_prefix() + [sys.executable, "-c", REUSE_SCRIPT],
                          env=child_env(), capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "opened": True, "reused": True, "sent": False, "new_ended_by": "SIGTERM",
        "killed": False, "stranger_ended_by": "SIGTERM"}


def test_drain_kill_falls_back_to_the_pid_without_pidfds(monkeypatch):
    """Where pidfd_open fails with ENOSYS (Linux < 5.3), a descendant is killed by its PID."""
    def no_pidfds(pid, flags=0):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(os, "pidfd_open", no_pidfds)
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert pause.kill_descendant(child.pid, {os.getpid()})
        assert child.wait(DEADLINE) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# The drain, counted: a group of GROUP sleeping processes; with "setsid", one of them left it;
# with "setsid-parent", it left after forking a child, which stays in the group.
GROUP = 100
DRAIN_COUNT_SCRIPT = textwrap.dedent(f"""
    import json, os, signal, sys, time
    from labkit import linux, pause, procfs

    leave = sys.argv[1] != "stay"
    group_kills, one_by_one, scans = [], [], []
    real_killpg, real_kill, real_scan = os.killpg, procfs.kill, procfs.descendants

    def killpg(group, signo):
        if signo:  # signal 0 only asks whether the group still has a member
            group_kills.append(signo)
        return real_killpg(group, signo)

    def kill(pid, signo, check):
        one_by_one.append(pid)
        return real_kill(pid, signo, check)

    def scan(root):
        scans.append(root)
        return real_scan(root)

    os.killpg, procfs.kill, procfs.descendants = killpg, kill, scan
    pause.block_signals()  # as the pause does: the drain waits for SIGCHLD with sigtimedwait
    linux.set_child_subreaper()
    r, w = os.pipe()
    leader = os.fork()
    if leader == 0:
        os.setpgid(0, 0)
        for i in range({GROUP}):
            pid = os.fork()
            if pid == 0:
                if i == 0 and sys.argv[1] == "setsid-parent" and os.fork() == 0:
                    time.sleep(60)  # in the group, a child of one that is not
                    os._exit(0)
                if i == 0 and leave:
                    os.setsid()  # leaves the group, as a lab process may
                time.sleep(60)
                os._exit(0)
            if i == 0:
                os.write(w, b"%d\\n" % pid)
        time.sleep(60)
        os._exit(0)
    os.setpgid(leader, leader)
    first = int(os.read(r, 64))
    size = {GROUP} + 1 + (sys.argv[1] == "setsid-parent")
    while len(real_scan(os.getpid())) < size or (leave and os.getsid(first) != first):
        time.sleep(0.01)
    opts = pause.Options()
    opts.drain = True
    init = pause.Pause(opts, None)
    init.child = leader
    pause.drain(init)
    print(json.dumps({{"group_kills": group_kills, "one_by_one": sorted(set(one_by_one)),
                      "scans": len(scans), "first": first, "left": real_scan(os.getpid())}}))
""")


@pytest.mark.parametrize("leave", ["stay", "setsid", "setsid-parent"])
def test_drain_kills_with_one_group_signal_and_scans_only_for_what_left_the_group(leave):
    """--drain sends one SIGKILL to the command's process group, then only reaps until ECHILD:
    a lab of thousands costs no /proc scan and no kill one by one. Only when something left the
    group (setsid) is it found in /proc and killed on its own (through a pidfd); so is a member
    whose parent left (it cannot come back to be reaped while that parent lives). Either way
    nothing is left."""
    done = subprocess.run([sys.executable, "-c", DRAIN_COUNT_SCRIPT, leave], env=child_env(),
                          capture_output=True, text=True, timeout=3 * DEADLINE)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["group_kills"] == [signal.SIGKILL]
    assert seen["left"] == []
    if leave == "stay":
        assert (seen["one_by_one"], seen["scans"]) == ([], 0)
    else:
        assert seen["first"] in seen["one_by_one"] and seen["scans"] >= 1
    if leave == "setsid":
        assert seen["one_by_one"] == [seen["first"]]
