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
   └─ python -m labkit.capstone_trial witness WORKDIR -- python -S INIT COMMAND...
       └─ the init: forked by the witness, made a child subreaper (prctl(2)
          PR_SET_CHILD_SUBREAPER, which survives execve), then exec'd: orphans below it come
          to it, as they would to PID 1 of a namespace, on any machine
           └─ COMMAND (sh, or a workload of this module), whose children become its orphans

The witness reaps the init, writes down its wait status (exit code, or -signal) and lives on
until the grader has seen what became of the command; the lab's pause adopts whatever the init
leaves and, once the witness exits, kills and reaps every process still there. A hint names the
rule that was broken and where it is written, never the code that keeps it.

Here, the public face: grade(), join(), Grade and Check. The checks and their hints are in
labkit.capstone_checks, one run of the init under the harness in labkit.capstone_run, and the
witness and the workloads, which run inside the lab (standard library only), in
labkit.capstone_trial.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from labkit import i18n
from labkit.capstone_checks import RUNNERS, Check
from labkit.i18n import _

CHECKS = ("exit-code", "killed-by-signal", "orphans", "orphan-storm", "sigterm", "sigint")


@dataclass
class Grade:
    """Every check's outcome; true when all passed."""

    init: str
    checks: list[Check] = field(default_factory=list)
    # The language the checks' measurements and hints were written in: the summary and the
    # labels are printed in it too, wherever the grade is printed.
    language: str = field(default_factory=i18n.language)

    @property
    def correct(self) -> bool:
        return all(check.passed for check in self.checks)

    def __bool__(self) -> bool:
        return self.correct

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(_("no check {name!r} in this grade: it ran {names}").format(
            name=name, names=self.names()))

    def names(self) -> list[str]:
        return [check.name for check in self.checks]

    def passed(self, *names: str) -> bool:
        """Whether each named check ran and passed."""
        return all(self[name].passed for name in names)

    def __str__(self) -> str:
        done = sum(check.passed for check in self.checks)
        with i18n.use(self.language):
            head = _("{init}: {done} of {total} checks pass").format(init=self.init, done=done,
                                                                      total=len(self.checks))
            return "\n".join([head] + [str(check) for check in self.checks])

    def __repr__(self) -> str:
        return str(self)


# --- the learner's program -----------------------------------------------------------------

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def join(out: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """Write the files `parts`, in order, into one program `out`: its path."""
    if not parts:
        raise ValueError(_("join needs at least one part to write into the program"))
    texts = []
    for part in parts:
        if not isinstance(part, (str, os.PathLike)):
            raise TypeError(_("a part is the path of a file, not {part!r}").format(part=part))
        if not os.path.isfile(part):
            raise ValueError(_("there is no file {path!r} (in {cwd}): run the cell that writes "
                               "it first").format(path=os.fspath(part), cwd=os.getcwd()))
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
            raise TypeError(_("the init's path must be text, not {path!r}").format(path=path))
        if not os.path.isfile(path):
            raise ValueError(_("there is no file {path!r} (in {cwd}): write your init there "
                               "first, or pass its source text (several lines)").format(
                                   path=path, cwd=os.getcwd()))
        return Path(path).read_text(), path
    if not isinstance(init, str):
        raise TypeError(_("give the init as the path of a Python file or as its source text, "
                          "not {init!r} of type {kind}").format(init=init,
                                                               kind=type(init).__name__))
    return init, _("your init")


def choose(checks: object) -> tuple[str, ...]:
    if checks is None:
        return CHECKS
    if isinstance(checks, str) or not all(isinstance(c, str) for c in checks):
        raise TypeError(_("checks is a list of check names, from {names}").format(
            names=", ".join(CHECKS)))
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(_("unknown check {name!r}: choose from {names}").format(
            name=unknown[0], names=", ".join(CHECKS)))
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
        where = (_("line {line}: {why}").format(line=exc.lineno, why=exc.msg)
                 if isinstance(exc, SyntaxError) else str(exc))
        report.checks = [Check(name, False, _("not run"),
                               _("your init does not compile: {where}").format(where=where))
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
