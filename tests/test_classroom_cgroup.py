"""classroom/budget_spawner.py's cgroup, without a Hub: a student's budget binds, is delegated
without letting the student raise it, and empty() ends a fork bomb that refills it and removes
the cgroup. Fast and root (it makes cgroups); the whole class is tests/test_classroom.py."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from labkit import procfs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "classroom"))
import budget_spawner  # noqa: E402
from conftest import wait_until  # noqa: E402

pytestmark = pytest.mark.root
NOBODY = 65534
BUDGET = 40
# Forks until refused, then keeps trying: what a student's `while True: os.fork()` becomes.
BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"


@pytest.fixture
def classroom():
    """A class cgroup of its own for this test; removed after it."""
    try:
        _, path = budget_spawner.class_cgroup(f"zombie-lab-test-{secrets.token_hex(3)}")
    except OSError as exc:
        pytest.skip(f"no cgroup with pids here: {exc}")
    yield path
    budget_spawner.sweep(path)
    os.rmdir(path)


def joined(path: str):
    def preexec() -> None:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    return preexec


def read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def refused(path: str) -> int:
    return int(dict(line.split() for line in read(path, "pids.events").splitlines())["max"])


def test_empty_ends_a_fork_bomb_that_refills_its_budget_and_removes_the_cgroup(classroom):
    student = budget_spawner.make_student_cgroup(classroom, "bomber", BUDGET, NOBODY, NOBODY)
    bomb = subprocess.Popen([sys.executable, "-c", BOMB], preexec_fn=joined(student))
    try:
        assert wait_until(lambda: refused(student) > 0, 60), "the bomb never reached pids.max"
        members = budget_spawner.cgroup_tasks(student)
        assert len(members) <= BUDGET and int(read(student, "pids.current")) <= BUDGET
        kills = budget_spawner.empty(student)
    finally:
        bomb.kill()
        bomb.wait()
    assert kills >= len(members)
    assert not os.path.exists(student)
    # Killed: each is gone, or a zombie until its parent (this subreaper) reaps it.
    assert all(alive_state(pid) in (None, "Z") for pid in members)


def alive_state(pid: int) -> str | None:
    fields = procfs.status(pid)
    return fields["State"].split()[0] if fields and "State" in fields else None


def test_a_student_may_nest_a_lab_budget_but_not_raise_their_own(classroom):
    student = budget_spawner.make_student_cgroup(classroom, "learner", BUDGET, NOBODY, NOBODY)
    script = (f"mkdir {student}/labkit-lab && echo 10 > {student}/labkit-lab/pids.max && "
              f"rmdir {student}/labkit-lab && echo nested; echo 100000 > {student}/pids.max")
    done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", "sh", "-c", script],
                          capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "nested", done.stderr
    assert "Permission denied" in done.stderr
    assert read(student, "pids.max") == str(BUDGET)
    budget_spawner.empty(student)


def test_a_leftover_cgroup_of_the_same_student_is_emptied_first(classroom):
    old = budget_spawner.make_student_cgroup(classroom, "again", BUDGET, NOBODY, NOBODY)
    sleeper = subprocess.Popen(["sleep", "600"], preexec_fn=joined(old))
    try:
        new = budget_spawner.make_student_cgroup(classroom, "again", BUDGET, NOBODY, NOBODY)
        assert sleeper.wait(timeout=30) == -9  # SIGKILL
        assert new == old and budget_spawner.cgroup_tasks(new) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    budget_spawner.empty(new)
