"""Notebook 07's experiment as labkit calls, on real labs: describe() names what enforces a PID
budget, its limit and its use as the kernel counts them; fill_with_zombies() stops where the
kernel (or labkit's own cap) refuses; try_new_parent() is refused while the budget is full.

As root the budget is a cgroup's pids.max; as uid 1000 (tests/as-user.sh) RLIMIT_NPROC, which
in a subreaper lab is shared with every task of the uid: there the counts are bounded, not exact.
"""

from __future__ import annotations

import errno
import os

import pytest

import labkit
from labkit import budget, exhaustion

pytestmark = pytest.mark.user  # the budget is a cgroup for root, RLIMIT_NPROC for uid 1000

ROOT = os.geteuid() == 0
LIMIT = 40
FIT = LIMIT - budget.LAB_OWN  # children that fit beside the root, the agent and one parent


@pytest.fixture(params=["subreaper", "pid-namespace"])
def lab(request):
    with exhaustion.budget_lab(LIMIT, mode=request.param) as made:
        yield made


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def max_processes(pid: int) -> list[str]:
    """The soft and hard values of the "Max processes" line of /proc/PID/limits."""
    line = next(x for x in read(f"/proc/{pid}/limits").splitlines()
                if x.startswith("Max processes"))
    return line.split()[2:4]


def test_describe_names_the_mechanism_its_limit_and_its_use_as_the_kernel_counts_them(lab):
    usage = exhaustion.describe(lab)
    assert usage.by_kernel and usage.share == LIMIT
    assert str(usage).startswith(f"{usage.mechanism}, enforced by the kernel")
    if ROOT:
        cgroup = lab.budget.cgroup
        assert usage.mechanism.startswith("cgroup pids.max (v")
        assert usage.limit == LIMIT and usage.own
        assert usage.in_use == len(lab.snapshot()) == int(read(f"{cgroup}/pids.current"))
        assert f"{cgroup}/pids.max: {LIMIT}" in usage.evidence
        assert f"{cgroup}/pids.events: max 0" in usage.evidence  # nothing refused yet
    else:
        assert usage.mechanism == "RLIMIT_NPROC"
        assert [str(usage.limit)] * 2 == max_processes(lab.root_pid)
        assert usage.own == lab.budget.per_namespace
        assert any(line.startswith(f"/proc/{lab.root_pid}/limits: Max processes")
                   for line in usage.evidence)
        if usage.own:  # the lab's own user namespace: the lab and its launcher
            assert usage.in_use == len(lab.snapshot()) + 1
        else:
            assert usage.in_use >= len(lab.snapshot())
            assert f"shared: every task of uid {os.getuid()} counts" in str(usage)


def test_fill_with_zombies_stops_at_the_budget_with_every_child_a_zombie(lab):
    parent = lab.parent("none")
    filled = exhaustion.fill_with_zombies(lab, parent)
    assert isinstance(filled.refusal, labkit.ForkRefused)
    assert filled.refusal.errno == errno.EAGAIN
    zombies = filled.snapshot.zombies
    assert len(zombies) == filled.made and {z.ppid for z in zombies} == {parent.pid}
    usage = exhaustion.describe(lab)
    if usage.own:
        assert filled.made == FIT and usage.full and usage.in_use == usage.limit
    else:
        assert 0 < filled.made < 100
    again = exhaustion.fill_with_zombies(lab, parent)  # a cell run twice: still full
    if usage.own:
        assert again.refusal.created == [] and again.made == filled.made
    else:  # the uid's other tasks may have left since, and given the lab a few more
        assert again.made == filled.made + len(again.refusal.created)


def test_a_newcomer_is_refused_while_the_budget_is_full_and_starts_once_it_is_reaped(lab):
    parent = lab.parent("none")
    filled = exhaustion.fill_with_zombies(lab, parent)
    attempt = exhaustion.try_new_parent(lab, "wait")
    if exhaustion.describe(lab).own:
        assert attempt.refused
        assert str(attempt).startswith("refused: ForkRefused: [Errno 11]")
    assert parent.reap() == filled.made
    attempt = exhaustion.try_new_parent(lab, "wait")
    if exhaustion.describe(lab).own:  # a shared count: the uid's other tasks may fill it
        assert not attempt.refused and "started" in str(attempt)
    lab.wait_for(lambda s: len(s) == budget.LAB_OWN)  # the newcomer left again


@pytest.mark.root
def test_where_no_kernel_mechanism_binds_labkit_caps_the_lab_and_says_it_is_not_the_kernel(
        tmp_path, monkeypatch):
    """Root (exempt from RLIMIT_NPROC) without a cgroup it may use: BudgetUnavailable, so the
    nearest real thing, labkit's own max_procs, labelled as such."""
    monkeypatch.setenv(budget.CGROUP_ENV, str(tmp_path))  # a directory that is no cgroup
    with exhaustion.budget_lab(LIMIT) as lab:
        assert lab.budget is None and lab.max_procs == LIMIT
        usage = exhaustion.describe(lab)
        assert not usage.by_kernel and usage.limit == LIMIT
        assert "NOT by the kernel" in str(usage) and "CapacityError" in str(usage)
        assert any("no kernel mechanism binds here" in line and "is not a cgroup" in line
                   for line in usage.evidence)
        filled = exhaustion.fill_with_zombies(lab, lab.parent("none"))
        assert isinstance(filled.refusal, labkit.CapacityError)
        assert filled.made == FIT and len(filled.snapshot) == LIMIT
        assert exhaustion.try_new_parent(lab).refused


def test_a_zombie_shows_no_user_memory_and_the_kernel_structures_it_keeps():
    with labkit.Lab(mode="subreaper") as lab:
        parent = lab.parent("none")
        [child] = parent.fork(1)
        lab.wait_for(lambda s: s.by_pid(child).state == "zombie")
        text = exhaustion.zombie_memory(child)
        assert "State Z (zombie)" in text and "no Vm* lines at all" in text
        if ROOT:
            size = int(read("/sys/kernel/slab/task_struct/object_size"))
            assert f"task_struct {size:,} bytes" in text
        else:
            assert "readable by root only" in text
        assert "VmRSS" in exhaustion.zombie_memory(parent.pid)  # a live process has memory


def test_tasks_now_counts_threads_too():
    mine = len(os.listdir("/proc/self/task"))
    assert exhaustion.tasks_now() >= mine + 1  # this process's threads and at least PID 1
