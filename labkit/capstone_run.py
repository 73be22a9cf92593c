"""One run of a learner's init under the capstone's harness (labkit.capstone grades with it):
started below the lab's pause and the witness (labkit.capstone_trial), watched through the
files the witness writes and the init's pidfd, and ended, with all it left, by Run.finish().

Apart from the checks (labkit.capstone_checks) because it is how an init is run, not what is
asked of it: the timing bounds and the reading of what the init said live here.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

from labkit import programs
from labkit.capstone_trial import WITNESS_PIDS, WITNESS_STATUS
from labkit.errors import LabError
from labkit.i18n import _

START_SECONDS = 15.0          # the init and its command start (a loaded machine, cold caches)
EXIT_SECONDS = 10.0           # the init exits once its command has
DRAIN_SECONDS = 10.0          # labkit.pause kills and reaps what is left (its own bound)
PAUSE_WARNING = "Warning: pause should be the first process"


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
            raise LabError(_("the check could not start your init under labkit.pause (exit "
                             "{code}): {said}").format(code=self.pause.returncode,
                                                       said=self.said() or _("no message")))
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
    """What became of the init, as the predicate of "your init ...": its place in a sentence is
    the same in English and in Chinese (subject, then this)."""
    if status is None:
        return _("was still running")
    if status < 0:
        try:
            return _("was killed by {name}").format(name=signal.Signals(-status).name)
        except ValueError:
            return _("was killed by signal {number}").format(number=-status)
    return _("exited with {status}").format(status=status)


def crashed(run: Run, status: int | None) -> str:
    """A hint for an init that ended with a Python error, or ''."""
    said = run.said()
    if "NotImplementedError" in said:
        return _("your init raised NotImplementedError: write the parts that still say "
                 "`raise NotImplementedError()`")
    if "Traceback" in said or "Error" in said:
        return _("your init {did} after an error: {said}").format(did=describe(status), said=said)
    return ""
