"""The capstone's checks, one per rule an init must keep, and the hints that name the rule
(labkit.capstone lists them and grades with RUNNERS).

Each check runs the init once (labkit.capstone_run.Run) on a command of its own, looks at what
became of the command and its orphans, and returns a Check: what was measured and, when the
rule was broken, a hint that names the rule and where it is written, never the code that
keeps it. Apart from the public grade() because each check is a small experiment of its own.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from labkit import limits, procfs, programs
from labkit.capstone_run import (
    EXIT_SECONDS,
    START_SECONDS,
    Run,
    crashed,
    describe,
    read_json,
    wait_for,
)
from labkit.i18n import _

EXIT_CODE = 7                 # what the command of the exit-code check exits with
ORPHANS = 3
STORM = 500                   # orphans released at once (fewer if the machine allows fewer)
REAP_SECONDS = 5.0            # exited orphans are reaped
NOTE_SECONDS = 3.0            # a command that was sent a signal notes it


@dataclass
class Check:
    """One rule, tried on a fresh run of the init."""

    name: str
    passed: bool
    measured: str
    hint: str = ""

    def __str__(self) -> str:
        line = (_("pass  {name}: {measured}") if self.passed else
                _("NOT YET  {name}: {measured}")).format(name=self.name, measured=self.measured)
        return line + (_("\n          hint: {hint}").format(hint=self.hint) if self.hint else "")



def check_exit_code(program: str, workdir: Path) -> Check:
    command = ["sh", "-c", f"exit {EXIT_CODE}"]
    return status_check("exit-code", program, workdir, command, EXIT_CODE,
                        _("its command (`sh -c 'exit {code}'`) exited with {code}")
                        .format(code=EXIT_CODE))


def check_killed(program: str, workdir: Path) -> Check:
    command = ["sh", "-c", "kill -KILL $$"]
    return status_check("killed-by-signal", program, workdir, command, 128 + signal.SIGKILL,
                        _("its command (`sh -c 'kill -KILL $$'`) was killed by SIGKILL (9)"))


def status_check(name: str, program: str, workdir: Path, command: list[str], expected: int,
                 what: str) -> Check:
    run = Run(program, command, workdir)
    try:
        status = run.wait(START_SECONDS + EXIT_SECONDS)
        error = crashed(run, status)
    finally:
        run.finish()
    measured = _("{what}; your init {did}").format(what=what, did=describe(status))
    if status == expected:
        return Check(name, True, measured)
    if error:
        return Check(name, False, measured, error)
    if status is None:
        hint = _("an init lives as long as its command, no longer: when the command has ended "
                 "(and been waited for, waitpid(2)), the init's work is done and it exits")
    elif name == "exit-code":
        hint = _("whoever started the init (docker, the kubelet, a shell) sees only the init's "
                 "exit status, so the init passes its command's exit code on as its own: the "
                 "status that waitpid(2) returns holds it")
    elif status == (-signal.SIGKILL) % 256:
        hint = _("{status} is -9 taken modulo 256: a negative code is Python's way of saying "
                 "'killed by signal 9' (Popen.returncode, os.waitstatus_to_exitcode), but an exit "
                 "status is one byte, 0-255 (_exit(2)). A process killed by signal N has no exit "
                 "code; shells, tini and dumb-init report it as 128 + N").format(status=status)
    elif status == 0:
        hint = _("a command killed by a signal has no exit code (waitpid(2): WIFSIGNALED, not "
                 "WIFEXITED): reporting 0 tells its starter all went well. Shells, tini and "
                 "dumb-init report 'killed by signal N' as 128 + N")
    else:
        hint = _("a command killed by signal N has no exit code (waitpid(2): WIFSIGNALED); "
                 "shells, tini and dumb-init report it as 128 + N")
    return Check(name, False, measured, hint)


def check_orphans(program: str, workdir: Path) -> Check:
    return orphan_check("orphans", program, workdir, ORPHANS)


def check_storm(program: str, workdir: Path) -> Check:
    count, fewer = storm_size()
    check = orphan_check("orphan-storm", program, workdir, count)
    if fewer:
        check.measured += _(" ({count} orphans, not {storm}: {why})").format(
            count=count, storm=STORM, why=fewer)
    return check


def storm_size() -> tuple[int, str]:
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
        return Check(name, False, _("your init {did} before its command could start its "
                                    "{count} children").format(did=describe(status), count=count),
                     said or _("an init starts its command (sys.argv[1:]) and lives as long as "
                               "it does"))
    if "error" in report:
        return Check(name, False, _("the command could not start its children: fork failed "
                                    "after {started} of {count}: {error}").format(
                         started=len(report["orphans"]), count=count, error=report["error"]),
                     _("this machine refused the processes the check needs; try again later"))
    # Each blocks on a pipe that only the command can close: alive, whoever's child it is.
    started = {pid: procfs.start_time(pid) for pid in report["orphans"]}

    def states() -> list[str]:
        return [orphan_state(pid, when, run.pid) for pid, when in started.items()]

    adopted = wait_for(lambda: run.exited() or states().count("alive") == count, START_SECONDS)
    if not adopted or run.exited():
        status = run.wait(EXIT_SECONDS)
        return Check(name, False, _("your init {did} before its command's {count} children "
                                    "were its orphans").format(did=describe(status), count=count),
                     crashed(run, status) or
                     _("an init lives as long as its command, and reaps meanwhile"))
    os.kill(report["command"], signal.SIGUSR1)  # the command lets its orphans exit, together

    # Every orphan has exited (a zombie now, or reaped already): that is the machine's pace, not
    # the init's, and on a loaded machine 500 wake-ups take seconds.
    wait_for(lambda: run.exited() or "alive" not in states(), START_SECONDS)
    # Settled: every orphan is reaped, or the init has ended (an orphan passed on up shows it
    # before the init's own exit is reported). An init left runnable (R) by a busy machine has
    # not had its chance yet: a parent asleep in wait(2) is woken by each child's exit
    # (kernel/exit.c do_notify_parent), so only one asleep elsewhere leaves zombies for good.
    def settled() -> bool:
        return run.exited() or "elsewhere" in states() or states().count("gone") == count

    if not wait_for(settled, REAP_SECONDS):
        wait_for(lambda: settled() or procfs.state(run.pid) != "R", START_SECONDS)
    now = states()
    zombies = now.count("zombie")
    ended_early = run.exited() or "elsewhere" in now
    if not ended_early:
        os.kill(report["command"], signal.SIGUSR2)  # the command exits 0: the init may end
    measured = _("{count} orphans of your init exited together while its command ran; "
                 "{zombies} stayed zombies").format(count=count, zombies=zombies)
    if ended_early:
        status = run.wait(EXIT_SECONDS)
        measured += _("; your init {did} before its command did").format(did=describe(status))
        return Check(name, False, measured, crashed(run, status) or _(
            "an orphan's exit is not the command's: an init reaps it and carries on, and exits "
            "only when its command does"))
    if not zombies:
        return Check(name, True, measured)
    if zombies == count:
        hint = _("orphans are adopted by the nearest living ancestor that is a child "
                 "subreaper, else by PID 1 of the namespace (prctl(2); kernel/exit.c "
                 "find_new_reaper): here your init. Only a process's parent can reap it, so an "
                 "init waits for any child that has exited, not just for the one it started "
                 "(waitpid(2))")
    else:
        hint = _("your init reaped {reaped} and left {zombies}: signals coalesce. While one "
                 "SIGCHLD is pending, more exits add nothing (signal(7): standard signals are "
                 "not queued), so one SIGCHLD may stand for many exited children: reap until no "
                 "exited child is left (waitpid(2))").format(reaped=count - zombies,
                                                              zombies=zombies)
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
            return Check(name, False, _("your init {did} before its command was ready").format(
                did=describe(status)), crashed(run, status) or _(
                "an init starts its command (sys.argv[1:]) and lives as long as it does"))
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
    measured = (_("{sig} sent to your init: its command received it, and your init {did}")
                if forwarded else
                _("{sig} sent to your init: its command never got it, and your init {did}")
                ).format(sig=sig, did=describe(status))
    if forwarded and status is not None and status != -signo:
        return Check(name, True, measured)
    if forwarded and status == -signo:
        return Check(name, False, measured, _(
            "your init passed {sig} on, but was then killed by it itself: an init outlives the "
            "signals it forwards, and exits once its command has ended, with the command's "
            "status").format(sig=sig))
    if forwarded:  # the command got it and died of it; the init lives on
        return Check(name, False, measured, _(
            "your init passed the signal on, and its command died of it; an init lives only as "
            "long as its command: when the command has ended, the init exits too"))
    error = crashed(run, status)
    if "KeyboardInterrupt" in run.said():
        hint = _("your init ended with KeyboardInterrupt: unless a program sets its own "
                 "handler, Python turns SIGINT into that exception (the signal module's "
                 "documentation), and the command was left behind. ")
    elif error:
        hint = _("{error}. ").format(error=error)
    elif status == -signo:
        hint = _("your init was killed by {sig} itself, and its command was left behind, "
                 "running. A program with no handler for {sig} dies of it (its default action, "
                 "signal(7)); as PID 1 of a container it would instead be ignored, since the "
                 "kernel drops the signals PID 1 has no handler for (pid_namespaces(7)), and "
                 "`docker stop` would wait 10 s and then SIGKILL everything. ").format(sig=sig)
    elif status is None:
        hint = _("your init kept running, and its command never learned of {sig}. ").format(
            sig=sig)
    else:
        hint = _("your init exited on {sig} without passing it on: its command was left behind, "
                 "running, now an orphan. ").format(sig=sig)
    # Two sentences: what this init did, then the rule every init keeps.
    hint += _("An init stands between its command and whoever stops it: it catches SIGTERM and "
              "SIGINT and sends each on to its command (kill(2)), then ends when the command ends")
    return Check(name, False, measured, hint)


RUNNERS = {"exit-code": check_exit_code, "killed-by-signal": check_killed,
           "orphans": check_orphans, "orphan-storm": check_storm,
           "sigterm": check_sigterm, "sigint": check_sigint}
