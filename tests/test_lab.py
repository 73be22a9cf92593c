"""The lab engine on real processes: policies, orphans, reaping, snapshots, recording."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest
from conftest import wait_until
from support import ps_zombies_of

import labkit
from labkit import observe, procfs
from labkit.parent import host_pairs

pytestmark = pytest.mark.user  # a PID-namespace lab needs a user namespace when not root


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@pytest.fixture(params=["subreaper", "pid-namespace"])
def mode(request) -> str:
    """Every behaviour is proved in both kinds of lab (both work here, root or not)."""
    return request.param


@pytest.fixture
def lab(mode):
    with labkit.Lab(mode=mode) as lab:
        yield lab


def test_auto_picks_a_pid_namespace_where_the_machine_allows_one():
    with labkit.Lab() as lab:
        assert lab.mode == "pid-namespace"
        assert lab.mode_reason == ""


def test_the_lab_starts_as_root_and_agent(lab):
    snap = lab.snapshot()
    assert [p.role for p in snap.procs] == ["root", "agent"]
    root, agent = snap.procs
    assert root.pid == lab.root_pid and root.name == "pause"
    assert agent.ppid == lab.root_pid and agent.name == "lab-agent"
    launcher = psutil.Process(lab.root_pid).parent()
    assert launcher.ppid() == os.getpid()  # our child, which reaps what a killed root leaves
    if lab.mode == "subreaper":  # the keeper: a pause, a subreaper above the root
        assert launcher.name() == "pause"
        assert (root.ns_pid, agent.ns_pid) == (root.pid, agent.pid)
    else:  # PID 1 inside; its launcher (labkit.unshare, like unshare -f) is our child
        assert (root.ns_pid, agent.ns_pid) == (1, 2)


def test_a_parent_that_never_waits_keeps_every_child_as_a_zombie(lab):
    parent = lab.parent(policy="none")
    pids = parent.fork(200)
    assert len(set(pids)) == 200
    assert wait_until(lambda: len(lab.snapshot().zombies) == 200, 10), "200 zombies never appeared"
    snap = lab.snapshot()
    assert sorted(z.pid for z in snap.zombies) == sorted(pids)
    assert all(z.ppid == parent.pid and z.role == "child" for z in snap.zombies)
    assert ps_zombies_of(parent.pid) == 200
    assert parent.reap() == 200
    assert parent.reap() == 0
    assert lab.snapshot().zombies == []
    assert ps_zombies_of(parent.pid) == 0


def test_kill_9_on_a_zombie_is_sent_and_leaves_it_a_zombie_until_its_parent_waits(lab):
    """A zombie has already exited: SIGKILL reaches it (through a pidfd) and changes nothing;
    only its parent's wait() removes it (wait(2), signal(7))."""
    parent = lab.parent(policy="none")
    pids = parent.fork(2)
    assert wait_until(lambda: len(lab.snapshot().zombies) == 2, 10), "no zombies appeared"
    report = lab.kill_zombie(pids[1])
    assert (report.pid, report.ppid, report.sent, report.still_zombie) == (
        pids[1], parent.pid, True, True)
    inside = {p.pid: p.ns_pid for p in lab.snapshot().procs}
    assert procfs.state(pids[1]) == "Z" and report.ns_pid == inside[pids[1]]
    first = lab.kill_zombie()  # no PID: the first zombie of the lab
    assert first.pid in pids and first.sent and first.still_zombie
    assert parent.reap() == 2
    assert lab.snapshot().zombies == []


def test_kill_9_refuses_what_is_not_a_zombie_of_the_lab(lab):
    parent = lab.parent(policy="none")
    with pytest.raises(labkit.LabError, match="no zombie to kill"):
        lab.kill_zombie()
    with pytest.raises(labkit.LabError, match=f"PID {parent.pid} is not a zombie of this lab"):
        lab.kill_zombie(parent.pid)  # alive: kill -9 would kill it, which is not this button
    for bad, error in ((0, ValueError), ("1", TypeError), (True, TypeError)):
        with pytest.raises(error, match="pid"):
            lab.kill_zombie(bad)
    assert parent.alive and procfs.state(parent.pid) != "Z"


@pytest.mark.parametrize("policy", ["wait", "sigchld", "ignore"])
def test_reaping_policies_leave_no_zombie_after_a_burst_of_500(lab, policy):
    parent = lab.parent(policy=policy)
    pids = parent.fork(500, lifetime=0.3)  # they all exit together, 0.3 s from now
    assert len(pids) == 500
    assert wait_until(lambda: not lab.snapshot().children(parent.pid), 30), (
        f"{policy}: {len(lab.snapshot().zombies)} zombies remain")
    assert ps_zombies_of(parent.pid) == 0


state_letter = procfs.state


def test_a_sigchld_handler_that_waits_once_leaves_zombies_behind(lab):
    """Signals coalesce (signal(7)): a standard signal that is already pending is not queued
    again, so one handler call stands for every exit that came meanwhile. Made certain, not
    likely: all 50 children die while the parent is stopped (its SIGCHLD stays pending, once),
    so on SIGCONT the handler runs once and reaps one: 49 zombies remain."""
    parent = lab.parent(policy="sigchld-once")
    kids = parent.fork(50, lifetime=60)
    os.kill(parent.pid, signal.SIGSTOP)
    assert wait_until(lambda: state_letter(parent.pid) == "T", 10), "the parent did not stop"
    for kid in kids:
        os.kill(kid, signal.SIGKILL)
    assert wait_until(lambda: len(lab.snapshot().zombies) == 50, 10)
    os.kill(parent.pid, signal.SIGCONT)
    assert wait_until(lambda: len(lab.snapshot().zombies) < 50, 10), "the handler never ran"
    assert len(lab.snapshot().zombies) == 49, "one pending SIGCHLD, one handler call, one reap"
    assert ps_zombies_of(parent.pid) == 49
    assert parent.reap() == 49  # a loop finds them all


def test_orphans_are_adopted_by_the_lab_root_which_reaps_them(lab):
    parent = lab.parent(policy="none")
    kids = parent.fork(10, lifetime=60)  # alive until the test ends them: adoption is certain
    parent.exit()
    snap = lab.snapshot()
    assert {snap.by_pid(k).ppid for k in kids} == {lab.root_pid}
    assert {snap.by_pid(k).role for k in kids} == {"orphan"}
    assert parent.pid not in snap.pids  # the agent reaped its parent
    for kid in kids:
        os.kill(kid, signal.SIGTERM)
    assert wait_until(lambda: not any(alive(k) for k in kids), 10), "orphans were not reaped"
    # The root writes its event just after waitpid(2) returns: the event may trail the reap.
    assert wait_until(lambda: set(kids) <= {e.pid for e in lab.events}, 10)
    reaped = {e.pid: e.status for e in lab.events}
    assert all(reaped.get(k) == -signal.SIGTERM for k in kids), reaped


def test_a_parents_zombies_are_reaped_by_the_root_when_it_exits(lab):
    parent = lab.parent(policy="none")
    kids = parent.fork(50)
    assert wait_until(lambda: len(lab.snapshot().zombies) == 50, 10)
    parent.exit()
    assert wait_until(lambda: not lab.snapshot().zombies, 10)
    # The root writes its event just after waitpid(2) returns: the event may trail the reap.
    assert wait_until(lambda: set(kids) <= {e.pid for e in lab.events}, 10)


def test_without_reaping_orphans_stay_zombies_under_the_root_until_close(mode):
    with labkit.Lab(mode=mode, reap=False) as lab:
        parent = lab.parent(policy="none")
        kids = parent.fork(20, lifetime=0.2)
        parent.exit()
        assert wait_until(lambda: len(lab.snapshot().zombies) == 20, 10)
        time.sleep(0.5)  # a reaping root would have emptied the table by now
        snap = lab.snapshot()
        assert sorted(z.pid for z in snap.zombies) == sorted(kids)
        assert {z.ppid for z in snap.zombies} == {lab.root_pid}
        assert ps_zombies_of(lab.root_pid) == 20
        assert lab.events == []
    assert not any(alive(k) for k in kids)
    assert set(kids) <= {e.pid for e in lab.events}  # reaped by the drain at close


def test_snapshot_agrees_with_psutil(lab):
    parent = lab.parent(policy="none")
    parent.fork(30)
    parent.fork(10, lifetime=30)
    assert wait_until(lambda: len(lab.snapshot().zombies) == 30, 10)
    snap = lab.snapshot()
    root = psutil.Process(lab.root_pid)
    procs = [root, *root.children(recursive=True)]
    # Live processes may be caught running for an instant: compare which are zombies.
    expected = {p.pid: (p.ppid(), p.status() == "zombie") for p in procs}
    assert {p.pid: (p.ppid, p.state == "zombie") for p in snap.procs} == expected
    assert snap.counts["zombie"] == 30 and len(snap) == 43


def test_state_names_are_psutils():
    from psutil import _pslinux
    assert observe.STATES == _pslinux.PROC_STATUSES


def test_tree_shows_roles_states_and_elides_long_lists(lab):
    parent = lab.parent(policy="none")
    parent.fork(40)
    assert wait_until(lambda: len(lab.snapshot().zombies) == 40, 10)
    text = lab.snapshot().tree()
    lines = text.splitlines()
    inside = " (pid 1 inside)" if lab.mode == "pid-namespace" else ""
    assert lines[0].startswith(f"{lab.root_pid}{inside} pause [root] ")  # sleeping, or running
    assert f"{parent.pid} " in text and "lab-parent [parent] " in text  # sleeping, or running
    assert "lab-child [child] zombie" in text
    assert "… 29 more (29 zombie)" in lines[-1]


def test_record_samples_the_growth_of_zombies(lab):
    parent = lab.parent(policy="none")
    with lab.record(interval=0.02) as rec:
        parent.fork(100)
        wait_until(lambda: len(lab.snapshot().zombies) == 100, 10)
    series = rec.series
    assert len(series) >= 2
    assert all(b > a for a, b in zip(series.times, series.times[1:], strict=False))
    assert all(len(v) == len(series) for v in series.counts.values())
    assert len(series.total) == len(series.pids_in_use) == len(series)
    assert series.zombies[0] == 0 and series.zombies[-1] == 100
    assert series.total[-1] == 103
    assert any(label == "fork 100" for _, label in series.marks)


def test_a_parent_killed_from_outside_is_reported_gone(lab):
    parent = lab.parent(policy="none")
    os.kill(parent.pid, signal.SIGKILL)
    with pytest.raises(labkit.LabError, match=f"parent {parent.pid} is gone.*signal 9"):
        parent.fork(1)
    assert not parent.alive
    assert lab.parent("none").fork(1)  # the lab goes on


def test_max_procs_caps_the_lab_before_any_fork(mode):
    with labkit.Lab(mode=mode, max_procs=50) as lab:
        parent = lab.parent(policy="none")
        parent.fork(40)
        before = lab.snapshot().pids
        with pytest.raises(labkit.CapacityError, match="max_procs=50"):
            parent.fork(10)
        assert lab.snapshot().pids == before
        assert isinstance(labkit.CapacityError("x"), ValueError)


def test_large_labs_are_accepted_and_absurd_ones_refused_with_the_reason(mode):
    with labkit.Lab(mode=mode, max_procs=8000) as lab:
        assert lab.max_procs == 8000
    with pytest.raises(ValueError, match="too large.*PIDs free on this machine"):
        labkit.Lab(max_procs=10**9)


def test_close_is_idempotent_and_leaves_nothing(lab):
    parent = lab.parent(policy="none")
    kids = parent.fork(20) + parent.fork(20, lifetime=60)
    root, agent = lab.root_pid, lab.agent_pid
    lab.close()
    lab.close()
    assert lab.closed
    assert not any(alive(p) for p in [root, agent, parent.pid, *kids])


@pytest.mark.parametrize("call", [
    lambda lab: lab.parent(),
    lambda lab: lab.snapshot(),
    lambda lab: lab.record(),
    lambda lab: lab.parents[0].fork(1),
    lambda lab: lab.parents[0].reap(),
    lambda lab: lab.parents[0].exit(),
])
def test_a_closed_lab_refuses_every_call(call):
    lab = labkit.Lab()
    lab.parent()
    lab.close()
    with pytest.raises(labkit.LabClosedError, match="closed"):
        call(lab)
    assert isinstance(labkit.LabClosedError("x"), ValueError)


@pytest.mark.parametrize("n, error", [
    (-1, ValueError), (1.5, TypeError), (True, TypeError), (None, TypeError), ("3", TypeError),
    (10_000, ValueError),
])
def test_bad_counts_are_refused_before_any_fork(lab, n, error):
    parent = lab.parent()
    before = lab.snapshot().pids
    with pytest.raises(error, match=r"n \(the number of children\)"):
        parent.fork(n)
    assert lab.snapshot().pids == before


@pytest.mark.parametrize("lifetime, error", [
    (-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
    (10**6, ValueError), ("1", TypeError), (None, TypeError), (False, TypeError),
])
def test_bad_lifetimes_are_refused_before_any_fork(lab, lifetime, error):
    parent = lab.parent()
    before = lab.snapshot().pids
    with pytest.raises(error, match="lifetime"):
        parent.fork(3, lifetime=lifetime)
    assert lab.snapshot().pids == before


@pytest.mark.parametrize("kwargs, error, words", [
    ({"max_procs": 0}, ValueError, "at least 3"),
    ({"max_procs": -5}, ValueError, "at least 3"),
    ({"max_procs": 2.0}, TypeError, "whole number"),
    ({"max_procs": None}, TypeError, "whole number"),
    ({"max_procs": True}, TypeError, "whole number"),
    ({"mode": "turbo"}, ValueError, "'auto', 'subreaper', 'pid-namespace'"),
    ({"mode": None}, TypeError, "mode must be one of"),
    ({"reap": "yes"}, TypeError, "True or False"),
])
def test_bad_lab_arguments_create_no_process(kwargs, error, words):
    with pytest.raises(error, match=words):
        labkit.Lab(**kwargs)
    assert not psutil.Process().children()


@pytest.mark.parametrize("policy, error", [("nope", ValueError), (None, TypeError),
                                           ("NONE", ValueError), (3, TypeError)])
def test_unknown_policies_are_refused_naming_the_five(lab, policy, error):
    before = lab.snapshot().pids
    with pytest.raises(error, match="'none', 'wait', 'sigchld', 'sigchld-once', 'ignore'"):
        lab.parent(policy=policy)
    assert lab.snapshot().pids == before


def test_wait_for_returns_the_first_snapshot_that_satisfies_the_predicate(lab):
    lab.parent("none").fork(25)
    snap = lab.wait_for(lambda s: len(s.zombies) == 25)
    assert len(snap.zombies) == 25
    with pytest.raises(TimeoutError, match="not reached within 0.1 s.*25 zombie"):
        lab.wait_for(lambda s: len(s.zombies) == 26, timeout=0.1)


def test_record_interval_is_checked(lab):
    for bad in (0, -1, float("nan"), "fast"):
        with pytest.raises((ValueError, TypeError), match="interval"):
            lab.record(interval=bad)



def test_the_kept_open_reader_agrees_with_a_fresh_read_and_forgets_reaped_processes(lab):
    parent = lab.parent(policy="none")
    parent.fork(30)
    lab.wait_for(lambda s: len(s.zombies) == 30)
    reader = observe.ProcReader()
    try:
        reader.table()  # opens and keeps every stat file
        kept, fresh = reader.table(), observe.read_table()
        pids = observe.lab_pids(kept, lab.root_pid)
        assert pids == observe.lab_pids(fresh, lab.root_pid)
        # (live processes may be caught running in one read and sleeping in the other)
        same = [(ppid, state == "Z", comm) for ppid, state, comm in (kept[p] for p in pids)]
        assert same == [(ppid, state == "Z", comm) for ppid, state, comm in
                        (fresh[p] for p in pids)]
        assert parent.reap() == 30
        after = observe.lab_pids(reader.table(), lab.root_pid)
        assert len(after) == len(pids) - 30  # the reaped ones read as gone, not as stale rows
    finally:
        reader.close()


def test_a_closed_lab_keeps_no_file_open():
    before = len(os.listdir("/proc/self/fd"))
    with labkit.Lab() as lab:
        lab.parent("none").fork(50)
        lab.wait_for(lambda s: len(s.zombies) == 50)
        assert len(os.listdir("/proc/self/fd")) > before + 50  # the reader keeps stat files open
    assert len(os.listdir("/proc/self/fd")) <= before


def test_a_kernel_holding_over_1024_descriptors_still_drives_labs():
    """A big lab's reader keeps a /proc file open per process, so the kernel's next pipes get
    descriptors above 1024, which select(2) cannot watch: the lab must not use it."""
    with labkit.Lab(max_procs=1200) as big:
        big.parent("none").fork(1100)
        big.wait_for(lambda s: len(s.zombies) == 1100, timeout=30)
        assert max(int(fd) for fd in os.listdir("/proc/self/fd")) > 1024
        with labkit.Lab() as other:
            assert other.parent("none").fork(3)
            assert len(other.wait_for(lambda s: len(s.zombies) == 3).zombies) == 3


def test_a_tally_that_trusts_known_zombies_still_sees_them_change_parent(mode):
    """The recorder's shortcut skips re-reading zombies whose parent is unchanged: when the
    parent exits, its zombies move to the root and must still be counted, pass after pass."""
    with labkit.Lab(mode=mode, reap=False) as lab:
        parent = lab.parent("none")
        parent.fork(20)
        lab.wait_for(lambda s: len(s.zombies) == 20)
        for _ in range(3):  # every zombie is now known to the reader
            assert lab._tally().counts["zombie"] == 20
        parent.exit()
        for _ in range(observe.VERIFY_EVERY + 2):
            tally = lab._tally()
            assert tally.counts.get("zombie") == 20 and tally.total == 22  # + root and agent
        assert {z.ppid for z in lab.snapshot().zombies} == {lab.root_pid}


def test_when_pid_1_of_the_namespace_dies_the_kernel_kills_everything_inside():
    """pid_namespaces(7): if the init of a PID namespace terminates, the kernel terminates every
    other process in it (SIGKILL). The pause gets no chance to drain: SIGKILL is not caught."""
    with labkit.Lab(mode="pid-namespace") as lab:
        parent = lab.parent("none")
        parent.fork(20)
        parent.fork(20, lifetime=60)
        orphaner = lab.parent("none")
        orphaner.fork(5, lifetime=60)
        orphaner.exit()
        inside = lab.wait_for(lambda s: len(s.zombies) == 20).pids
        assert len(inside) == 1 + 1 + 1 + 40 + 5  # root, agent, parent, children, orphans
        os.kill(lab.root_pid, signal.SIGKILL)
        assert wait_until(lambda: not any(alive(p) for p in inside), 10), [
            p for p in inside if alive(p)]
    assert lab.closed


def write_calls(pid: int) -> int:
    """How many write(2)-family calls process `pid` has made (/proc/PID/io syscw, proc(5);
    zeroed at fork)."""
    with open(f"/proc/{pid}/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["syscw"])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="no task I/O accounting")
@pytest.mark.parametrize("policy", ["none", "wait"])
def test_a_pid_namespace_parent_learns_its_childrens_host_pids_in_one_batch(policy):
    """fork(n) in a PID namespace returns the host PIDs of the parent's n new children, each
    paired with its PID inside (NSpid, proc(5)), which lab.events then names. The parent learns
    them from its own children file, read through the host's /proc: the children write
    nothing to tell them."""
    with labkit.Lab(mode="pid-namespace") as lab:
        parent = lab.parent(policy)
        parent.fork(5)  # earlier children stay in the list (zombies under "none")
        pids = parent.fork(100, lifetime=60)
        assert len(set(pids)) == 100
        assert set(pids) <= {c.pid for c in lab.snapshot().children(parent.pid)}
        assert all(procfs.read_stat(pid).ppid == parent.pid for pid in pids)
        inside = {pid: procfs.nspid(pid) for pid in pids}
        assert all(ns[0] == pid and len(ns) == 2 for pid, ns in inside.items()), inside
        assert [write_calls(pid) for pid in pids] == [0] * 100
        parent.exit()  # the root adopts the children; the drain at close reaps them
    reaped = {e.pid: e.ns_pid for e in lab.events}
    assert {pid: reaped.get(pid) for pid in pids} == {pid: ns[1] for pid, ns in inside.items()}


def test_a_parent_pairs_its_children_by_nspid_when_its_two_lists_disagree():
    """labkit.parent.host_pairs reads the children file twice (through the host's /proc and
    its own) and pairs them by position; where they do not end with the PIDs it forked, it
    looks each child up by NSpid instead, and names one it cannot find "?". Here both /procs
    are this one, so each host PID is the PID itself."""
    kids = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        pids = [kid.pid for kid in kids]
        assert host_pairs(pids, proc) == [f"{pid}:{pid}" for pid in pids]
        assert host_pairs(pids[::-1], proc) == [f"{pid}:{pid}" for pid in pids[::-1]]
        assert host_pairs([pids[0], 0], proc) == [f"{pids[0]}:{pids[0]}", "?:0"]
    finally:
        os.close(proc)
        for kid in kids:
            kid.kill()
            kid.wait()


def test_a_lab_closes_and_leaves_nothing_on_a_kernel_without_pidfds(monkeypatch, mode):
    """Where pidfd_open(2) is missing (Linux < 5.3), close() stops the root by its PID and waits
    for the launcher with Popen.wait: the lab still ends whole, its drain's events kept."""
    monkeypatch.setattr(procfs, "pidfd_open", lambda pid: None)
    with labkit.Lab(mode=mode) as lab:
        parent = lab.parent("none")
        kids = parent.fork(20, lifetime=60)
        parent.exit()
        launcher = psutil.Process(lab.root_pid).parent()
    assert not any(alive(k) for k in kids) and not launcher.is_running()
    assert set(kids) <= {e.pid for e in lab.events}  # reaped by the drain at close


def test_a_lab_parent_imports_only_the_standard_modules_it_uses():
    """Every child of a parent inherits the parent's touched pages and unmaps them when it dies:
    a parent that imported the labkit package (importlib) and the signal module (enum and a
    dozen more) gave each of a closing lab's thousands of children hundreds of pages more to
    tear down. The parent program, started as the agent starts it, imports neither."""
    from labkit import programs

    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    argv = programs.parent(down_r, up_w, "sigchld")
    argv[1:1] = ["-X", "importtime"]  # every import, one line each on stderr
    with subprocess.Popen(argv, pass_fds=(down_r, up_w), stderr=subprocess.PIPE,
                          env=programs.environment()) as proc:
        os.close(down_r)
        os.close(up_w)
        hello = os.read(up_r, 100)
        os.write(down_w, b"exit\n")
        err = proc.communicate(timeout=30)[1].decode()
    os.close(up_r)
    os.close(down_w)
    assert hello.startswith(b"hello ") and proc.returncode == 0, err
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if "|" in line}
    assert {"os", "select"} <= imported  # what it uses is seen in the list
    assert not imported & {"labkit", "signal", "enum", "importlib", "functools"}, imported


def test_a_lab_parent_runs_the_labs_compiled_copy_of_its_program(lab):
    """A script given as source is compiled at every start, and the compiler's memory stays
    touched in the parent and in each child it forks: the lab compiles labkit.parent once
    into its folder, its parents run that, and it goes with the folder when the lab closes."""
    from labkit import runtime

    parent = lab.parent(policy="none")
    kids = parent.fork(2, lifetime=60)
    program = psutil.Process(parent.pid).cmdline()[2]
    assert os.path.basename(program) == "parent.pyc"
    assert os.path.basename(os.path.dirname(program)).startswith(runtime.RUNTIME_PREFIX)
    assert {psutil.Process(kid).ppid() for kid in kids} == {parent.pid}
    assert {psutil.Process(kid).name() for kid in kids} == {"lab-child"}
    lab.close()
    assert not os.path.exists(program)
