"""PID budgets on real processes: Lab(pid_limit=N) is enforced by the kernel, and named.

As root the mechanism is a cgroup's pids.max (v1 here); as an unprivileged user, where no
cgroup may be made, RLIMIT_NPROC. The scenario tests run in both lab modes and as either user:
the root run checks the unprivileged case too, by running them again as uid 1000 (setpriv).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile

import psutil
import pytest
from conftest import wait_until
from support import ps_zombies_of

import labkit
from labkit import budget, machine
from labkit.pause import EXIT_BUDGET, EXIT_USAGE

pytestmark = pytest.mark.user  # root has cgroups and is exempt from RLIMIT_NPROC; others are not

ROOT = os.geteuid() == 0
LIMIT = 40
OWN = budget.LAB_OWN      # root, agent, one parent
FIT = LIMIT - OWN         # children that fit
USER_UID = 1000


@pytest.fixture(params=["subreaper", "pid-namespace"])
def mode(request) -> str:
    return request.param


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def others(lab: labkit.Lab) -> int:
    """Tasks of our uid that are not the lab's: a user-wide RLIMIT_NPROC counts them too."""
    return budget.tasks_of(os.getuid()) - len(lab.snapshot().procs)


def user_wide(lab: labkit.Lab) -> bool:
    return lab.budget.kind == "rlimit" and not lab.budget.per_namespace


class SharedUid:
    """A user-wide RLIMIT_NPROC (a subreaper lab of an unprivileged user) is shared with every
    other task of the uid: the lab's share is exact only while those stay as they were when it
    started (as in CI). Here we look at them now and then."""

    def __init__(self, lab: labkit.Lab) -> None:
        self.lab = lab
        self.seen: set[int] = set()
        self.look()

    def look(self) -> None:
        if user_wide(self.lab):
            self.seen.add(others(self.lab))

    @property
    def quiet(self) -> bool:
        return not user_wide(self.lab) or self.seen <= {self.lab.budget.baseline}


@contextlib.contextmanager
def budget_lab(mode: str):
    """A lab with pid_limit=LIMIT. A failure while the uid's other tasks came and went (another
    test run as the same user) says nothing about the lab: it is skipped, saying so."""
    with labkit.Lab(mode=mode, pid_limit=LIMIT) as lab:
        uid = SharedUid(lab)
        try:
            yield lab, uid
        except (AssertionError, labkit.ForkRefused):
            uid.look()
            if not uid.quiet:
                pytest.skip(f"uid {os.getuid()}'s other tasks went from {lab.budget.baseline} "
                            f"to {sorted(uid.seen)} during the test; a user-wide RLIMIT_NPROC "
                            "is shared with them, so the lab's share was not its own")
            raise


def fill(lab: labkit.Lab, uid: SharedUid) -> tuple[labkit.Parent, labkit.ForkRefused, bool]:
    """A parent that never waits forks until the kernel says no: the parent, the refusal, and
    whether the count is exact (see SharedUid)."""
    p = lab.parent("none")
    with pytest.raises(labkit.ForkRefused) as info:
        p.fork(LIMIT)  # more than fit
    uid.look()
    return p, info.value, uid.quiet


def assert_mechanism(lab: labkit.Lab) -> None:
    if ROOT:
        version, parent = budget.pids_cgroup()
        assert lab.limit_mechanism.startswith(f"cgroup pids.max ({version})")
        assert version == "v1"  # this machine: pids is bound to the v1 hierarchy
        assert os.path.dirname(lab.budget.cgroup) == parent
        assert read(os.path.join(lab.budget.cgroup, "pids.max")) == str(LIMIT)
        members = read(os.path.join(lab.budget.cgroup, "cgroup.procs")).split()
        assert {str(lab.root_pid), str(lab.agent_pid)} <= set(members)
    else:
        assert lab.limit_mechanism.startswith("RLIMIT_NPROC")
        assert "No cgroup of its own: " in lab.limit_mechanism  # and why not
        limits = read(f"/proc/{lab.root_pid}/limits")
        line = next(x for x in limits.splitlines() if x.startswith("Max processes"))
        assert line.split()[2:4] == [str(lab.budget.nproc)] * 2
        assert lab.budget.per_namespace == (lab.mode == "pid-namespace"
                                            and budget.ucounts_per_namespace())
        if lab.budget.per_namespace:  # counted in the lab's own user namespace
            assert lab.budget.nproc == LIMIT + 1  # its launcher holds one
            assert "user namespace" in lab.limit_mechanism


def test_a_full_budget_refuses_fork_with_eagain_and_the_zombies_are_real(mode):
    with budget_lab(mode) as (lab, uid):
        assert lab.pid_limit == LIMIT
        assert_mechanism(lab)
        p, refused, exact = fill(lab, uid)
        assert refused.errno == errno.EAGAIN
        assert isinstance(refused, OSError) and isinstance(refused, labkit.LabError)
        if exact:
            assert len(refused.created) == FIT
        else:
            assert 0 < len(refused.created) < LIMIT
        made = len(refused.created)
        snap = lab.wait_for(lambda s: len(s.zombies) == made)
        assert sorted(z.pid for z in snap.zombies) == sorted(refused.created)
        assert all(z.ppid == p.pid for z in snap.zombies)
        assert ps_zombies_of(p.pid) == made
        if ROOT:
            cgroup = lab.budget.cgroup
            assert read(os.path.join(cgroup, "pids.current")) == read(
                os.path.join(cgroup, "pids.max")) == str(LIMIT)
        budget_words = "pids.max = 40" if ROOT else "RLIMIT_NPROC = "
        assert budget_words in str(refused)
        if exact:
            assert f"is full: {FIT} zombies hold PIDs" in str(refused)
        assert "parent.reap()" in str(refused) and "exit" in str(refused)
        assert lab._actions[-1][1] == f"fork refused (EAGAIN) after {made}"
    if ROOT:
        assert not os.path.exists(cgroup)


def test_a_new_parent_is_refused_too_while_the_budget_is_full(mode):
    with budget_lab(mode) as (lab, uid):
        fill(lab, uid)
        with pytest.raises(labkit.ForkRefused) as info:
            lab.parent("wait")
        assert info.value.errno == errno.EAGAIN
        assert info.value.created == []
        assert "No new parent could be started" in str(info.value)
        assert "is full" in str(info.value)
        assert len(lab.parents) == 1


def test_reaping_frees_the_budget_and_forking_works_again(mode):
    with budget_lab(mode) as (lab, uid):
        p, refused, _ = fill(lab, uid)
        lab.wait_for(lambda s: len(s.zombies) == len(refused.created))
        assert p.reap() == len(refused.created)
        if ROOT:
            assert read(os.path.join(lab.budget.cgroup, "pids.current")) == str(OWN)
        assert len(p.fork(5)) == 5
        q = lab.parent("sigchld")  # room for another parent again
        assert q.fork(3)


def test_the_parents_exit_frees_the_budget_once_the_root_reaps_its_zombies(mode):
    with budget_lab(mode) as (lab, uid):
        p, refused, _ = fill(lab, uid)
        p.exit()
        snap = lab.wait_for(lambda s: len(s.procs) == 2)  # root and agent: orphans reaped
        assert wait_until(lambda: set(refused.created) <= {e.pid for e in lab.events}, 10)
        assert [pr.role for pr in snap.procs] == ["root", "agent"]
        if ROOT:
            assert wait_until(lambda: read(os.path.join(lab.budget.cgroup, "pids.current"))
                              == "2", 2.0)
        q = lab.parent("none")
        assert len(q.fork(5)) == 5


@pytest.mark.parametrize(("value", "error", "words"), [
    (True, TypeError, "whole number"),
    (40.0, TypeError, "whole number"),
    ("40", TypeError, "whole number"),
    (2, ValueError, "too small: the lab itself holds 3 PIDs"),
    (0, ValueError, "too small"),
    (-5, ValueError, "too small"),
    (101, ValueError, "pid_limit=101 is too large: at most 100 (the lab's max_procs"),
])
def test_bad_pid_limits_are_refused_before_anything_is_made(value, error, words):
    found = budget.pids_cgroup()
    before = set(os.listdir(found[1])) if found and os.path.isdir(found[1]) else set()
    with pytest.raises(error, match=re.escape(words)):
        labkit.Lab(pid_limit=value, max_procs=100)
    assert psutil.Process().children() == []
    if found and os.path.isdir(found[1]):
        assert set(os.listdir(found[1])) == before


def test_a_pid_limit_above_max_procs_is_refused():
    with pytest.raises(ValueError, match=r"pid_limit=50 is too large: at most 40"):
        labkit.Lab(pid_limit=50, max_procs=40)
    assert psutil.Process().children() == []


@pytest.mark.parametrize("where", ["missing", "not-a-cgroup"])
def test_without_a_cgroup_root_gets_budget_unavailable_and_a_user_gets_rlimit_nproc(
        where, tmp_path, monkeypatch):
    """The honest 'no mechanism binds' case: real root (exempt from RLIMIT_NPROC) pointed at a
    cgroup root it cannot use. An unprivileged user falls back to RLIMIT_NPROC instead."""
    parent = tmp_path / where
    if where == "not-a-cgroup":
        parent.mkdir()
    monkeypatch.setenv(budget.CGROUP_ENV, str(parent))
    if ROOT:
        with pytest.raises(labkit.BudgetUnavailable) as info:
            labkit.Lab(mode="subreaper", pid_limit=LIMIT)
        text = str(info.value)
        assert isinstance(info.value, labkit.LabError)
        assert "does not exist" in text if where == "missing" else "is not a cgroup" in text
        assert "real uid 0 (root) is exempt" in text
        assert "run the lab as an unprivileged user" in text and budget.CGROUP_ENV in text
        assert "nothing is simulated" in text
        assert psutil.Process().children() == []
    else:
        with labkit.Lab(mode="subreaper", pid_limit=LIMIT) as lab:
            assert lab.limit_mechanism.startswith("RLIMIT_NPROC")
            assert str(parent) in lab.limit_mechanism
    if parent.exists():
        assert list(parent.iterdir()) == []


def test_no_pid_limit_means_no_budget():
    with labkit.Lab(mode="subreaper") as lab:
        assert lab.pid_limit is None and lab.budget is None and lab.limit_mechanism is None


def test_the_doctor_and_the_budget_agree():
    cgroup, nproc = machine.cgroup_fact(), machine.nproc_fact()
    child = cgroup["child"] or {}
    doctor_cgroup = bool(child.get("ok") and child.get("pids_max"))
    if doctor_cgroup:
        with labkit.Lab(mode="subreaper", pid_limit=10) as lab:
            assert lab.limit_mechanism.startswith(f"cgroup pids.max ({cgroup['version']})")
            assert os.path.dirname(lab.budget.cgroup) == cgroup["directory"]
    elif nproc["exempt"] in (None, "unlimited"):
        with labkit.Lab(mode="subreaper", pid_limit=10) as lab:
            assert lab.limit_mechanism.startswith("RLIMIT_NPROC")
    else:
        with pytest.raises(labkit.BudgetUnavailable):
            labkit.Lab(mode="subreaper", pid_limit=10)
    assert (budget.nproc_exemption() is None) == (nproc["exempt"] in (None, "unlimited"))


# --- the lab root's options: pause --nproc and --cgroup -------------------------------------

def pause(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit.pause", *args], capture_output=True,
                          text=True, timeout=10)


def test_pause_sets_rlimit_nproc_before_it_starts_its_command():
    # Room for this user's tasks as they are now (it counts them all), plus a few.
    limit = str(budget.tasks_of(os.getuid()) + 8)
    done = pause("--nproc", limit, "--", "cat", "/proc/self/limits")
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("Max processes"))
    assert line.split()[2:4] == [limit, limit]


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_pause_refuses_a_bad_nproc(value):
    done = pause("--nproc", value, "--", "true")
    assert done.returncode == EXIT_USAGE
    assert "--nproc needs a number of processes" in done.stderr


def test_pause_exits_67_when_it_cannot_join_its_cgroup(tmp_path):
    done = pause("--cgroup", str(tmp_path / "missing"), "--", "true")
    assert done.returncode == EXIT_BUDGET
    assert "cannot set the PID budget" in done.stderr


@pytest.mark.root
def test_pause_joins_its_cgroup_before_it_starts_its_command():
    version, parent = budget.pids_cgroup()
    b = budget.Budget(5, "cgroup", version, parent)
    b.acquire()
    try:
        done = pause("--cgroup", b.cgroup, "--", "cat", "/proc/self/cgroup")
        assert done.returncode == 0, done.stderr
        assert "/" + os.path.basename(b.cgroup) in done.stdout
    finally:
        b.release()
    assert not os.path.exists(b.cgroup or "/nonexistent-cgroup")


# --- the unprivileged run, from the root one ------------------------------------------------

def quiet_uid() -> int:
    """uid 1000 (a learner's on Binder), unless tasks of it run here now (another test run as
    that user): RLIMIT_NPROC counts all of a uid's tasks, so then a uid nobody uses."""
    return next(uid for uid in (USER_UID, *range(61000, 61100)) if budget.tasks_of(uid) == 0)


def as_user(uid: int, *command: str, cwd: str, home: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
         "env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", f"PYTHONPATH={cwd}", *command],
        cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.root
@pytest.mark.slow
def test_as_an_unprivileged_user_the_budget_is_rlimit_nproc():
    """The scenario tests again, as uid 1000 (the only way root can show it): each asserts
    RLIMIT_NPROC, per user namespace in a PID-namespace lab, and the same refusals and frees."""
    uid = quiet_uid()
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    tests = os.path.dirname(os.path.abspath(__file__))
    stage = tempfile.mkdtemp(prefix="labkit-budget-user-")
    try:
        shutil.copytree(os.path.join(tests, "..", "labkit"), os.path.join(stage, "labkit"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        os.mkdir(os.path.join(stage, "tests"))
        os.mkdir(os.path.join(stage, "home"))
        for name in ("conftest.py", "support.py", "test_budget.py"):
            shutil.copy(os.path.join(tests, name), os.path.join(stage, "tests"))
        shutil.copytree(os.path.join(tests, "..", "tools"), os.path.join(stage, "tools"),
                        ignore=shutil.ignore_patterns("__pycache__"))  # support imports it
        shutil.copy(os.path.join(tests, "..", "pyproject.toml"), stage)
        for top, dirs, files in os.walk(stage):
            for name in [top, *(os.path.join(top, n) for n in dirs + files)]:
                os.chown(name, uid, uid)
        os.chmod(stage, 0o755)
        home = os.path.join(stage, "home")
        probe = as_user(uid, sys.executable, "-c", "import labkit, psutil, pytest", cwd=stage,
                        home=home)
        if probe.returncode != 0:
            pytest.skip(f"uid {uid} cannot run {sys.executable}: {probe.stderr[-300:]}")
        done = as_user(uid, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                       "-m", "not root", "-k", "full_budget or refused_too or frees_the_budget",
                       "tests/test_budget.py", cwd=stage, home=home)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        if " skipped" in done.stdout:  # the uid got busy meanwhile (see SharedUid)
            pytest.skip(f"as uid {uid}: {done.stdout.strip().splitlines()[-1]}")
        assert re.search(r"\b8 passed\b", done.stdout), done.stdout[-2000:]
    finally:
        shutil.rmtree(stage, ignore_errors=True)
