"""The capstone's grader (labkit.capstone), on real processes: the model init passes every check,
each tempting wrong init fails exactly the checks of the rule it breaks, and the hint names that
rule, never the code that keeps it.

The inits are files in tests/capstone_solutions/ (the model, and the three wrong inits a learner
is most tempted by, each saying why in its header); a few more controls are given as source
text, so that every check is seen to fail for some init. The conftest's no_leaks fixture proves
that no process of any run is left behind, whatever the init did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import capstone

pytestmark = pytest.mark.user  # learners grade their init as uid 1000 (Binder, a hub)

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "tests" / "capstone_solutions"
NOTEBOOK = REPO / "notebooks" / "09-capstone-init.ipynb"

# Words of code a hint must never contain: they would be the answer, not the rule.
ANSWERS = ("os.wait(", "waitpid(-1", "WNOHANG", "signal.signal(", "128 - code", "128 + -",
           "os.kill(")

# wrong init -> {check it fails: words its hint must say (the rule, and where it is written)}
WRONG = {
    "wrong_waits_for_its_command_only.py": {
        "orphans": ("adopted", "subreaper", "any child", "waitpid(2)"),
        "orphan-storm": ("adopted", "any child"),
    },
    "wrong_forwards_no_signals.py": {
        "sigterm": ("killed by SIGTERM itself", "no handler", "pid_namespaces(7)", "kill(2)"),
        "sigint": ("KeyboardInterrupt", "kill(2)"),
    },
    "wrong_exit_status_negative.py": {
        "killed-by-signal": ("247 is -9 taken modulo 256", "one byte", "128 + N"),
    },
}

RUN_COMMAND = ("child = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, "
               "setsigdef=[signal.SIGPIPE])\n")

# Controls for the checks that no tempting wrong init fails.
ONCE_PER_SIGCHLD = "import os, signal, sys\n" + RUN_COMMAND + """
def reap(signo, frame):                  # one waitpid per SIGCHLD: signals coalesce
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return
    if pid == child:
        sys.exit(0)

signal.signal(signal.SIGCHLD, reap)
while True:
    signal.pause()
"""

ALWAYS_ZERO = "import os, signal, sys\n" + RUN_COMMAND + """
while os.wait()[0] != child:
    pass
sys.exit(0)
"""

IGNORES_SIGTERM = "import os, signal, sys\n" + """
signal.signal(signal.SIGTERM, signal.SIG_IGN)   # (the check's command sets its own handler)
""" + RUN_COMMAND + """
while True:
    pid, status = os.wait()
    if pid == child:
        sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""

FORWARDS_THEN_DIES = "import os, signal, sys\n" + RUN_COMMAND + """
def forward(signo, frame):               # passes it on, then takes the default action itself
    os.kill(child, signo)
    signal.signal(signo, signal.SIG_DFL)
    os.kill(os.getpid(), signo)

signal.signal(signal.SIGTERM, forward)
os.waitpid(child, 0)
"""

EXITS_AT_FIRST_REAP = "import os, signal, sys\n" + RUN_COMMAND + """
os.wait()                                # any child: perhaps an orphan, not the command
sys.exit(0)
"""


@pytest.fixture(scope="module")
def model() -> capstone.Grade:
    return capstone.grade(SOLUTIONS / "model.py")


def test_the_model_init_passes_every_check(model):
    assert model.names() == list(capstone.CHECKS)
    assert model.correct, str(model)
    assert "0 stayed zombies" in model["orphan-storm"].measured
    assert "received it" in model["sigterm"].measured


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
@pytest.mark.parametrize("name", sorted(WRONG))
def test_each_tempting_wrong_init_fails_the_checks_of_its_rule_and_is_told_the_rule(name):
    """Exactly the checks of the broken rule fail; each hint names the rule and its source."""
    grade = capstone.grade(SOLUTIONS / name)
    expected = WRONG[name]
    failed = {check.name for check in grade.checks if not check.passed}
    assert failed == set(expected), str(grade)
    for check_name, words in expected.items():
        hint = grade[check_name].hint
        for word in words:
            assert word in hint, f"{check_name}: {word!r} not in the hint {hint!r}"
        assert not [code for code in ANSWERS if code in hint], hint
    assert not grade.correct and "NOT YET" in str(grade)


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
def test_an_init_that_reaps_once_per_sigchld_leaves_storm_zombies_and_learns_they_coalesce():
    check = capstone.grade(ONCE_PER_SIGCHLD, checks=["orphan-storm"])["orphan-storm"]
    assert not check.passed
    assert "coalesce" in check.hint and "signal(7)" in check.hint
    assert "stayed zombies" in check.measured and " 0 stayed" not in check.measured


def test_the_storm_is_judged_once_the_init_had_its_chance_not_by_a_clock(monkeypatch):
    """On a loaded machine 500 exits and their reaping take seconds: a right init that the
    machine has not yet let run (runnable, R) is waited for, even with no reap time at all."""
    from labkit import capstone_checks

    monkeypatch.setattr(capstone_checks, "REAP_SECONDS", 0.0)
    check = capstone.grade(SOLUTIONS / "model.py", checks=["orphan-storm"])["orphan-storm"]
    assert check.passed, check.measured


def test_an_init_that_always_exits_0_fails_the_exit_code_check():
    grade = capstone.grade(ALWAYS_ZERO, checks=["exit-code", "killed-by-signal"])
    assert not grade.passed("exit-code") and not grade.passed("killed-by-signal")
    assert "exited with 0" in grade["exit-code"].measured
    assert "waitpid(2)" in grade["exit-code"].hint
    assert "has no exit code" in grade["killed-by-signal"].hint


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
def test_an_init_that_ignores_sigterm_is_told_its_command_never_learned_of_it():
    check = capstone.grade(IGNORES_SIGTERM, checks=["sigterm"])["sigterm"]
    assert not check.passed
    assert "never got it" in check.measured and "still running" in check.measured
    assert "kept running" in check.hint


def test_an_init_killed_by_the_signal_it_forwarded_is_told_to_outlive_it():
    check = capstone.grade(FORWARDS_THEN_DIES, checks=["sigterm"])["sigterm"]
    assert not check.passed
    assert "received it" in check.measured and "killed by SIGTERM" in check.measured
    assert "outlives the signals it forwards" in check.hint


def test_an_init_that_exits_when_an_orphan_exits_is_told_to_wait_for_its_command():
    check = capstone.grade(EXITS_AT_FIRST_REAP, checks=["orphans"])["orphans"]
    assert not check.passed
    assert "before its command did" in check.measured
    assert "exits only when its command does" in check.hint


def test_the_student_stub_is_told_to_write_the_missing_parts(tmp_path):
    stub = "import os, signal, sys\n# YOUR CODE HERE\nraise NotImplementedError()\n"
    grade = capstone.grade(stub)
    assert not [check for check in grade.checks if check.passed]
    assert all("NotImplementedError" in check.hint for check in grade.checks), str(grade)


def test_an_init_that_does_not_compile_is_told_where_and_nothing_runs(monkeypatch):
    def no_fork(*args, **kwargs):
        raise AssertionError("a process was started for an init that does not compile")

    monkeypatch.setattr(subprocess, "Popen", no_fork)
    grade = capstone.grade("import os\nwhile True\n    pass\n")
    assert len(grade.checks) == len(capstone.CHECKS) and not grade.correct
    assert all(c.hint.startswith("your init does not compile: line 2") for c in grade.checks)


@pytest.mark.parametrize("init, checks, error, words", [
    (42, None, TypeError, "path of a Python file or as its source text"),
    ("no_such_init.py", None, ValueError, "there is no file 'no_such_init.py'"),
    ("import os\n", ["bogus"], ValueError, "unknown check 'bogus'"),
    ("import os\n", "sigterm", TypeError, "list of check names"),
])
def test_bad_input_is_refused_before_any_process_starts(init, checks, error, words,
                                                        monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", None)  # any start would raise TypeError elsewhere
    with pytest.raises(error, match=words):
        capstone.grade(init, checks=checks)


def test_join_writes_the_parts_in_order_into_one_program(tmp_path):
    parts = []
    for number in range(3):
        part = tmp_path / f"part{number}.py"
        part.write_text(f"### BEGIN SOLUTION\nprint({number})\n    ### END SOLUTION\n")
        parts.append(part)
    program = capstone.join(tmp_path / "all.py", *parts)
    done = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["0", "1", "2"]
    assert "SOLUTION" not in program.read_text()  # nbgrader's markers are not the program's
    with pytest.raises(ValueError, match="run the cell that writes it first"):
        capstone.join(tmp_path / "all.py", tmp_path / "missing.py")
    with pytest.raises(ValueError, match="at least one part"):
        capstone.join(tmp_path / "all.py")


def test_the_program_refuses_bad_arguments_with_usage():
    done = subprocess.run([sys.executable, "-m", "labkit.capstone_trial", "workload", "bogus"],
                          capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 64 and "usage: python -m labkit.capstone_trial" in done.stderr


def test_the_notebooks_solution_is_the_model_init(tmp_path):
    """The three cells that write my_init_*.py, joined as the notebook joins them, are the model
    init of tests/capstone_solutions (which the tests above grade)."""
    with open(NOTEBOOK) as f:
        cells = json.load(f)["cells"]
    parts = []
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and source.startswith("%%writefile my_init_"):
            part = tmp_path / f"part{len(parts)}.py"
            part.write_text(source.split("\n", 1)[1] + "\n")  # what %%writefile writes
            parts.append(part)
    assert len(parts) == 3
    joined = capstone.join(tmp_path / "my_init.py", *parts).read_text()
    model = (SOLUTIONS / "model.py").read_text().split("\n", 1)[1]  # less ruff's line
    assert joined == model
