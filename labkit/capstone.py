"""The capstone's grader: a learner's own init, run on real processes and checked the way tini's
and dumb-init's tests check theirs (notebooks/09-capstone-init.ipynb).

    grade(init, checks=None) -> Grade     init: a path to a Python file, or its source text
    join(out, *parts) -> Path             several cells' files, one program

The rules an init must keep, one check each (CHECKS):
  exit-code         the command exits with 7: so does the init (tini test/exit-code)
  killed-by-signal  the command is killed by SIGKILL: the init exits with 128 + 9 (tini)
  orphans           3 orphans adopted by the init exit: it reaps them while its command runs
                    (tini test/reaping, dumb-init tests/test-zombies)
  orphan-storm      STORM orphans exit together, their SIGCHLDs coalesce: it reaps every one
  sigterm, sigint   the init is sent the signal: its command receives it, and the init is not
                    killed by it (dumb-init tests/proxies_signals_test.py, tini test/signals)

Each check runs a fresh copy of the init (this process never forks: a notebook's kernel is
threaded), four layers deep:

  python -m labkit.pause --subreaper --drain --owner KERNEL --
   └─ python -m labkit.capstone witness WORKDIR -- python -S INIT COMMAND...
       └─ the init: forked by the witness, made a child subreaper (prctl(2)
          PR_SET_CHILD_SUBREAPER, which survives execve), then exec'd: orphans below it come
          to it, as they would to PID 1 of a namespace, on any machine
           └─ COMMAND (sh, or a workload of this module), whose children become its orphans

The witness reaps the init, writes down its wait status (exit code, or -signal) and lives on
until the grader has seen what became of the command; the lab's pause adopts whatever the init
leaves and, once the witness exits, kills and reaps every process still there. A hint names the
rule that was broken and where it is written, never the code that keeps it.

Run as a program (`python -m labkit.capstone ...`) this module is the witness and the
workloads: standard library and labkit.linux only.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from labkit import linux, procfs, programs
from labkit.errors import LabError

CHECKS = ("exit-code", "killed-by-signal", "orphans", "orphan-storm", "sigterm", "sigint")
EXIT_CODE = 7                 # what the command of the exit-code check exits with
ORPHANS = 3
STORM = 500                   # orphans released at once (fewer if the machine allows fewer)
START_SECONDS = 15.0          # the init and its command start (a loaded machine, cold caches)
REAP_SECONDS = 5.0            # exited orphans are reaped
EXIT_SECONDS = 10.0           # the init exits once its command has
DRAIN_SECONDS = 10.0          # labkit.pause kills and reaps what is left (its own bound)
NOTE_SECONDS = 3.0            # a command that was sent a signal notes it
WORKLOAD_LIFETIME = 120       # seconds: a workload left behind by a broken harness ends itself
PAUSE_WARNING = "Warning: pause should be the first process"
WITNESS_PIDS, WITNESS_STATUS = "pids.json", "status.json"  # written by the witness, in WORKDIR


@dataclass
class Check:
    """One rule, tried on a fresh run of the init."""

    name: str
    passed: bool
    measured: str
    hint: str = ""

    def __str__(self) -> str:
        line = f"{'pass' if self.passed else 'NOT YET'}  {self.name}: {self.measured}"
        return line + (f"\n          hint: {self.hint}" if self.hint else "")


@dataclass
class Grade:
    """Every check's outcome; true when all passed."""

    init: str
    checks: list[Check] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return all(check.passed for check in self.checks)

    def __bool__(self) -> bool:
        return self.correct

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check {name!r} in this grade: it ran {self.names()}")

    def names(self) -> list[str]:
        return [check.name for check in self.checks]

    def passed(self, *names: str) -> bool:
        """Whether each named check ran and passed."""
        return all(self[name].passed for name in names)

    def __str__(self) -> str:
        done = sum(check.passed for check in self.checks)
        head = f"{self.init}: {done} of {len(self.checks)} checks pass"
        return "\n".join([head] + [str(check) for check in self.checks])

    def __repr__(self) -> str:
        return str(self)


# --- the learner's program -----------------------------------------------------------------

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def join(out: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """Write the files `parts`, in order, into one program `out`: its path."""
    if not parts:
        raise ValueError("join needs at least one part to write into the program")
    texts = []
    for part in parts:
        if not isinstance(part, (str, os.PathLike)):
            raise TypeError(f"a part is the path of a file, not {part!r}")
        if not os.path.isfile(part):
            raise ValueError(f"there is no file {os.fspath(part)!r} (in {os.getcwd()}): run the "
                             "cell that writes it first")
        # nbgrader's solution markers are comments that a cell's %%writefile copied: the
        # program reads better without them.
        lines = [line for line in Path(part).read_text().split("\n")
                 if line.strip() not in SOLUTION_MARKERS]
        texts.append("\n".join(lines).rstrip("\n") + "\n")
    target = Path(out)
    target.write_text("\n".join(texts))
    return target


def init_source(init: str | os.PathLike) -> tuple[str, str]:
    """(source text, name to show) of an init given as a file's path or as source text."""
    if isinstance(init, os.PathLike) or (isinstance(init, str) and "\n" not in init.strip()):
        path = os.fspath(init)
        if not isinstance(path, str):
            raise TypeError(f"the init's path must be text, not {path!r}")
        if not os.path.isfile(path):
            raise ValueError(f"there is no file {path!r} (in {os.getcwd()}): write your init "
                             "there first, or pass its source text (several lines)")
        return Path(path).read_text(), path
    if not isinstance(init, str):
        raise TypeError(f"give the init as the path of a Python file or as its source text, not "
                        f"{init!r} of type {type(init).__name__}")
    return init, "your init"


def choose(checks: object) -> tuple[str, ...]:
    if checks is None:
        return CHECKS
    if isinstance(checks, str) or not all(isinstance(c, str) for c in checks):
        raise TypeError(f"checks is a list of check names, from {', '.join(CHECKS)}")
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}: choose from {', '.join(CHECKS)}")
    return tuple(checks)


def grade(init: str | os.PathLike, checks: list[str] | None = None) -> Grade:
    """Run the init (a file's path, or its source text) once per check, as
    `python -S INIT COMMAND [ARG...]`, on real processes; every check's outcome."""
    names = choose(checks)
    source, shown = init_source(init)
    report = Grade(shown)
    try:
        compile(source, shown, "exec")
    except (SyntaxError, ValueError) as exc:
        where = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, SyntaxError) else str(exc)
        report.checks = [Check(name, False, "not run", f"your init does not compile: {where}")
                         for name in names]
        return report
    with tempfile.TemporaryDirectory(prefix="capstone-") as tmp:
        program = Path(tmp) / "init.py"
        program.write_text(source)
        for name in names:
            workdir = Path(tmp) / name
            workdir.mkdir()
            report.checks.append(RUNNERS[name](str(program), workdir))
    return report


# --- one run of the init under the harness -------------------------------------------------

def wait_for(predicate, seconds: float, interval: float = 0.01):
    """Poll `predicate` until it is truthy or `seconds` pass; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Run:
    """The init running one command, under the witness and the lab's pause; ended and reaped,
    with everything it left, by finish()."""

    def __init__(self, program: str, command: list[str], workdir: Path) -> None:
        self.workdir = workdir
        self.err_path = workdir / "stderr"
        argv = [*programs.keeper(os.getpid()), "--", *programs.witness(str(workdir)), "--",
                *programs.bare_python(program, *command)]
        # Files, not pipes: a process the init leaves behind must not hold our reading end.
        with open(workdir / "stdout", "wb") as out, open(self.err_path, "wb") as err:
            self.pause = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          env=programs.environment(), cwd=workdir,
                                          start_new_session=True)
        self.pid = self.witness = 0
        self.pidfd: int | None = None
        found = wait_for(lambda: read_json(workdir / WITNESS_PIDS) or self.pause.poll() is not None,
                         START_SECONDS)
        if not isinstance(found, dict):  # the harness failed, not the learner's init
            self.finish()
            raise LabError(f"the check could not start your init under labkit.pause (exit "
                           f"{self.pause.returncode}): {self.said() or 'no message'}")
        self.pid, self.witness = found["init"], found["witness"]
        try:  # signals go by pidfd: once reaped, the init's PID may be anyone's
            self.pidfd = os.pidfd_open(self.pid)
        except (OSError, AttributeError):  # gone already, or Linux < 5.3
            self.pidfd = None

    def status(self) -> int | None:
        """The init's wait status as the witness reaped it (exit code, or -signal); None while
        it runs."""
        found = read_json(self.workdir / WITNESS_STATUS)
        return None if found is None else found["status"]

    def reported(self) -> bool:
        return self.status() is not None or self.pause.poll() is not None

    def exited(self) -> bool:
        """Whether the init has ended: its pidfd polls readable from its exit on
        (pidfd_open(2)), before the witness has reaped it and said so."""
        if self.pidfd is not None:
            ready = select.poll()  # poll(2), not select(2): a kernel may hold fds above 1024
            ready.register(self.pidfd, select.POLLIN)
            if ready.poll(0):
                return True
        return self.reported()

    def wait(self, seconds: float) -> int | None:
        """The init's status once the witness has it (None if it still runs by then)."""
        wait_for(self.reported, seconds)
        return self.status()

    def send(self, signo: int) -> None:
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signo)
            elif self.status() is None:  # no pidfd: by PID, while the witness has not reaped it
                os.kill(self.pid, signo)
        except ProcessLookupError:
            pass

    def said(self) -> str:
        """The last lines the init (or its command) wrote to stderr, less pause's own."""
        try:
            text = self.err_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        lines = [line for line in text.splitlines() if line and PAUSE_WARNING not in line
                 and not line.startswith("Shutting down, got signal")]
        return " / ".join(lines[-3:])[-400:]

    def finish(self) -> None:
        """End the init if it still runs, then the witness: pause then kills and reaps every
        process left below it, and exits."""
        if self.pause.poll() is None and self.pid and self.status() is None:
            self.send(signal.SIGKILL)
            self.wait(EXIT_SECONDS)
        if self.witness and self.pause.poll() is None:
            try:  # the witness lives until told: its PID is still its own
                os.kill(self.witness, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:  # pause's drain gives up after its own 10 s (labkit.pause.DRAIN_SECONDS)
            self.pause.wait(EXIT_SECONDS + DRAIN_SECONDS)
        except subprocess.TimeoutExpired:
            self.pause.kill()  # the last resort: what was below it goes to our own reaper
            self.pause.wait()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def describe(status: int | None) -> str:
    if status is None:
        return "was still running"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return f"exited with {status}"


def crashed(run: Run, status: int | None) -> str:
    """A hint for an init that ended with a Python error, or ''."""
    said = run.said()
    if "NotImplementedError" in said:
        return ("your init raised NotImplementedError: write the parts that still say "
                "`raise NotImplementedError()`")
    if "Traceback" in said or "Error" in said:
        return f"your init {describe(status)} after an error: {said}"
    return ""


# --- the checks ----------------------------------------------------------------------------

def check_exit_code(program: str, workdir: Path) -> Check:
    command = ["sh", "-c", f"exit {EXIT_CODE}"]
    return status_check("exit-code", program, workdir, command, EXIT_CODE,
                        f"its command (`sh -c 'exit {EXIT_CODE}'`) exited with {EXIT_CODE}")


def check_killed(program: str, workdir: Path) -> Check:
    command = ["sh", "-c", "kill -KILL $$"]
    return status_check("killed-by-signal", program, workdir, command, 128 + signal.SIGKILL,
                        "its command (`sh -c 'kill -KILL $$'`) was killed by SIGKILL (9)")


def status_check(name: str, program: str, workdir: Path, command: list[str], expected: int,
                 what: str) -> Check:
    run = Run(program, command, workdir)
    try:
        status = run.wait(START_SECONDS + EXIT_SECONDS)
        error = crashed(run, status)
    finally:
        run.finish()
    measured = f"{what}; your init {describe(status)}"
    if status == expected:
        return Check(name, True, measured)
    if error:
        return Check(name, False, measured, error)
    if status is None:
        hint = ("an init lives as long as its command, no longer: when the command has ended "
                "(and been waited for, waitpid(2)), the init's work is done and it exits")
    elif name == "exit-code":
        hint = ("whoever started the init (docker, the kubelet, a shell) sees only the init's "
                "exit status, so the init passes its command's exit code on as its own: the "
                "status that waitpid(2) returns holds it")
    elif status == (-signal.SIGKILL) % 256:
        hint = (f"{status} is -9 taken modulo 256: a negative code is Python's way of saying "
                "'killed by signal 9' (Popen.returncode, os.waitstatus_to_exitcode), but an exit "
                "status is one byte, 0-255 (_exit(2)). A process killed by signal N has no exit "
                "code; shells, tini and dumb-init report it as 128 + N")
    elif status == 0:
        hint = ("a command killed by a signal has no exit code (waitpid(2): WIFSIGNALED, not "
                "WIFEXITED): reporting 0 tells its starter all went well. Shells, tini and "
                "dumb-init report 'killed by signal N' as 128 + N")
    else:
        hint = ("a command killed by signal N has no exit code (waitpid(2): WIFSIGNALED); "
                "shells, tini and dumb-init report it as 128 + N")
    return Check(name, False, measured, hint)


def check_orphans(program: str, workdir: Path) -> Check:
    return orphan_check("orphans", program, workdir, ORPHANS)


def check_storm(program: str, workdir: Path) -> Check:
    count, fewer = storm_size()
    check = orphan_check("orphan-storm", program, workdir, count)
    if fewer:
        check.measured += f" ({count} orphans, not {STORM}: {fewer})"
    return check


def storm_size() -> tuple[int, str]:
    from labkit import limits  # the kernel side only: the programs below never need it
    ceiling, why = limits.ceiling()
    return (STORM, "") if STORM <= ceiling - 10 else (max(ORPHANS, ceiling - 10), why)


def orphan_check(name: str, program: str, workdir: Path, count: int) -> Check:
    report_path = workdir / "orphans.json"
    run = Run(program, programs.workload("orphans", str(report_path), str(count)), workdir)
    try:
        return orphan_outcome(name, run, read_report(run, report_path), count)
    finally:
        run.finish()


def read_report(run: Run, path: Path) -> dict | None:
    """The workload's report, once it is written (None if the init ended first or never)."""
    found = wait_for(lambda: read_json(path) or run.exited(), START_SECONDS)
    return found if isinstance(found, dict) else None


def orphan_state(pid: int, started: int | None, parent: int) -> str:
    """'alive' or 'zombie' (the parent's child), 'gone' (reaped), or 'elsewhere' (another's
    child: the parent has exited and the orphan was passed on up). A PID with another start
    time is another process: ours is gone."""
    stat = procfs.read_stat(pid)
    if stat is None or stat.starttime != started:
        return "gone"
    if stat.ppid != parent:
        return "elsewhere"
    return "zombie" if stat.state == "Z" else "alive"


def orphan_outcome(name: str, run: Run, report: dict | None, count: int) -> Check:
    if report is None:
        status = run.wait(EXIT_SECONDS)
        said = crashed(run, status)
        return Check(name, False, f"your init {describe(status)} before its command could "
                     f"start its {count} children", said or
                     "an init starts its command (sys.argv[1:]) and lives as long as it does")
    if "error" in report:
        return Check(name, False, f"the command could not start its children: {report['error']}",
                     "this machine refused the processes the check needs; try again later")
    # Each blocks on a pipe that only the command can close: alive, whoever's child it is.
    started = {pid: procfs.start_time(pid) for pid in report["orphans"]}

    def states() -> list[str]:
        return [orphan_state(pid, when, run.pid) for pid, when in started.items()]

    adopted = wait_for(lambda: run.exited() or states().count("alive") == count, START_SECONDS)
    if not adopted or run.exited():
        status = run.wait(EXIT_SECONDS)
        return Check(name, False, f"your init {describe(status)} before its command's "
                     f"{count} children were its orphans", crashed(run, status) or
                     "an init lives as long as its command, and reaps meanwhile")
    os.kill(report["command"], signal.SIGUSR1)  # the command lets its orphans exit, together

    # Settled: every orphan is reaped, or the init has ended (an orphan passed on up shows it
    # before the init's own exit is reported).
    wait_for(lambda: run.exited() or "elsewhere" in states() or states().count("gone") == count,
             REAP_SECONDS)
    now = states()
    zombies = now.count("zombie")
    ended_early = run.exited() or "elsewhere" in now
    if not ended_early:
        os.kill(report["command"], signal.SIGUSR2)  # the command exits 0: the init may end
    measured = (f"{count} orphans of your init exited together while its command ran; "
                f"{zombies} stayed zombies")
    if ended_early:
        status = run.wait(EXIT_SECONDS)
        measured += f"; your init {describe(status)} before its command did"
        return Check(name, False, measured, crashed(run, status) or (
            "an orphan's exit is not the command's: an init reaps it and carries on, and exits "
            "only when its command does"))
    if not zombies:
        return Check(name, True, measured)
    if zombies == count:
        hint = ("orphans are adopted by the nearest living ancestor that is a child subreaper, "
                "else by PID 1 of the namespace (prctl(2); kernel/exit.c find_new_reaper): here "
                "your init. Only a process's parent can reap it, so an init waits for any child "
                "that has exited, not just for the one it started (waitpid(2))")
    else:
        hint = (f"your init reaped {count - zombies} and left {zombies}: signals coalesce. While "
                "one SIGCHLD is pending, more exits add nothing (signal(7): standard signals are "
                "not queued), so one SIGCHLD may stand for many exited children: reap until no "
                "exited child is left (waitpid(2))")
    return Check(name, False, measured, hint)


def check_sigterm(program: str, workdir: Path) -> Check:
    return signal_check("sigterm", program, workdir, signal.SIGTERM)


def check_sigint(program: str, workdir: Path) -> Check:
    return signal_check("sigint", program, workdir, signal.SIGINT)


def signal_check(name: str, program: str, workdir: Path, signo: signal.Signals) -> Check:
    report_path, got_path = workdir / "ready.json", workdir / "received"
    run = Run(program, programs.workload("signals", str(report_path), str(got_path)), workdir)
    try:
        report = read_report(run, report_path)
        if report is None:
            status = run.wait(EXIT_SECONDS)
            return Check(name, False, f"your init {describe(status)} before its command was "
                         "ready", crashed(run, status) or "an init starts its command "
                         "(sys.argv[1:]) and lives as long as it does")
        command = report["command"]
        started = procfs.start_time(command)
        run.send(signo)
        status = run.wait(EXIT_SECONDS)

        def received() -> list[str]:
            return got_path.read_text().split() if got_path.exists() else []

        # Passed on or not, the command is left alive until the witness is told to go: give it
        # the time to note a signal it was sent, or to end.
        wait_for(lambda: signo.name in received() or procfs.start_time(command) != started
                 or procfs.state(command) in (None, "Z"), NOTE_SECONDS)
        return signal_outcome(name, run, signo, status, received())
    finally:
        run.finish()


def signal_outcome(name: str, run: Run, signo: signal.Signals, status: int | None,
                   received: list[str]) -> Check:
    sig = signo.name
    forwarded = sig in received
    measured = (f"{sig} sent to your init: its command {'received' if forwarded else 'never got'}"
                f" it, and your init {describe(status)}")
    if forwarded and status is not None and status != -signo:
        return Check(name, True, measured)
    if forwarded and status == -signo:
        return Check(name, False, measured, f"your init passed {sig} on, but was then killed by "
                     "it itself: an init outlives the signals it forwards, and exits once its "
                     "command has ended, with the command's status")
    if forwarded:  # the command got it and died of it; the init lives on
        return Check(name, False, measured, "your init passed the signal on, and its command "
                     "died of it; an init lives only as long as its command: when the command "
                     "has ended, the init exits too")
    error = crashed(run, status)
    if "KeyboardInterrupt" in run.said():
        hint = ("your init ended with KeyboardInterrupt: unless a program sets its own handler, "
                "Python turns SIGINT into that exception (the signal module's documentation), and "
                "the command was left behind. ")
    elif error:
        hint = error + ". "
    elif status == -signo:
        hint = (f"your init was killed by {sig} itself, and its command was left behind, "
                f"running. A program with no handler for {sig} dies of it (its default action, "
                "signal(7)); as PID 1 of a container it would instead be ignored, since the "
                "kernel drops the signals PID 1 has no handler for (pid_namespaces(7)), and "
                "`docker stop` would wait 10 s and then SIGKILL everything. ")
    elif status is None:
        hint = f"your init kept running, and its command never learned of {sig}. "
    else:
        hint = (f"your init exited on {sig} without passing it on: its command was left behind, "
                "running, now an orphan. ")
    hint += ("An init stands between its command and whoever stops it: it catches SIGTERM and "
             "SIGINT and sends each on to its command (kill(2)), then ends when the command ends")
    return Check(name, False, measured, hint)


RUNNERS = {"exit-code": check_exit_code, "killed-by-signal": check_killed,
           "orphans": check_orphans, "orphan-storm": check_storm,
           "sigterm": check_sigterm, "sigint": check_sigint}


# --- the programs: run inside the checks (standard library and labkit.linux only) -----------

def write_json(path: str, data: dict) -> None:
    """All at once: the grader polls for the file and must never read half of it."""
    with open(path + ".tmp", "w") as out:
        json.dump(data, out)
    os.rename(path + ".tmp", path)


def orphans_workload(report: str, count: int) -> int:
    """Leave `count` children as orphans of our parent (the init), blocked on a pipe; let them
    exit together on SIGUSR1; exit 0 on SIGUSR2."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    go_r, go_w = os.pipe()
    rep_r, rep_w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(rep_r)
        pids, error = [], ""
        for _ in range(count):
            try:
                pid = os.fork()
            except OSError as exc:
                error = f"fork: {exc.strerror} after {len(pids)} children"
                break
            if pid == 0:
                os.close(go_w)  # only the command may hold it: its close is the release
                os.close(rep_w)
                os.read(go_r, 1)
                os._exit(0)
            pids.append(pid)
        os.write(rep_w, json.dumps({"pids": pids, "error": error}).encode())
        os._exit(0)
    os.close(go_r)
    os.close(rep_w)
    chunks = []
    while chunk := os.read(rep_r, 65536):
        chunks.append(chunk)
    os.waitpid(middle, 0)  # the middle is gone: its children are the init's orphans now
    told = json.loads(b"".join(chunks) or b'{"pids": [], "error": "the middle died"}')
    report_data = {"command": os.getpid(), "orphans": told["pids"]}
    if told["error"]:
        report_data["error"] = told["error"]
    write_json(report, report_data)
    signal.sigwait({signal.SIGUSR1})
    os.close(go_w)
    signal.sigwait({signal.SIGUSR2})
    return 0


def signals_workload(report: str, received: str) -> int:
    """Note SIGTERM or SIGINT in `received`, then die of it, as a program without a handler
    would; otherwise sleep."""
    def note(signo: int, frame) -> None:
        with open(received, "a") as out:
            out.write(signal.Signals(signo).name + "\n")
        signal.signal(signo, signal.SIG_DFL)
        os.kill(os.getpid(), signo)

    for signo in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signo, note)
    write_json(report, {"command": os.getpid()})
    while True:
        signal.pause()


def witness(workdir: str, argv: list[str]) -> int:
    """Start argv (the init) as a child subreaper, reap it, write down its status, and live on
    until SIGTERM: our exit is pause's signal to kill and reap what is left, and the grader
    first looks at what the init left."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # taken by sigwait, below
    init = os.fork()
    if init == 0:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())  # a mask survives execve
            linux.set_child_subreaper()  # survives execve (prctl(2)); fork would clear it
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    write_json(os.path.join(workdir, WITNESS_PIDS), {"init": init, "witness": os.getpid()})
    _, status = os.waitpid(init, 0)
    write_json(os.path.join(workdir, WITNESS_STATUS),
               {"status": os.waitstatus_to_exitcode(status)})
    signal.alarm(WORKLOAD_LIFETIME)  # alone, it ends itself (SIGALRM's default action)
    signal.sigwait({signal.SIGTERM})
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["witness"] and argv[2:3] == ["--"] and len(argv) > 3:
        return witness(argv[1], argv[3:])
    if argv[:1] == ["workload"] and len(argv) >= 4:
        # Alone, a workload ends itself: SIGALRM's default action kills (signal(7)).
        signal.alarm(WORKLOAD_LIFETIME)
        if argv[1] == "orphans":
            return orphans_workload(argv[2], int(argv[3]))
        if argv[1] == "signals":
            return signals_workload(argv[2], argv[3])
    print("usage: python -m labkit.capstone witness WORKDIR -- COMMAND...\n"
          "       python -m labkit.capstone workload orphans REPORT COUNT\n"
          "       python -m labkit.capstone workload signals REPORT RECEIVED", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
