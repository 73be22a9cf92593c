"""Nothing of a lab outlives it: however its owner ends, every lab process is gone soon after.

The owner here is a separate Python program (tests/owner.py stand-in, written inline) so that it
can be killed for real. This test process is a child subreaper (conftest), so the lab root's own
zombie, orphaned when its owner is killed, comes here and is reaped by the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap

import psutil
import pytest
from conftest import reap_adopted, wait_until

import labkit
from labkit import lab as lab_module
from labkit import linux, procfs

pytestmark = pytest.mark.user  # what a user may kill, sweep and reap differs from root's

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OWNER = textwrap.dedent("""
    import json, sys
    import labkit
    lab = labkit.Lab()
    zombie_maker = lab.parent("none")
    zombie_maker.fork(20)
    sleeper = lab.parent("sigchld")
    sleeper.fork(5, lifetime=60)
    orphaner = lab.parent("none")
    orphaner.fork(5, lifetime=60)
    orphaner.exit()
    print(json.dumps({"root": lab.root_pid, "pids": lab.snapshot().pids}), flush=True)
    how = sys.argv[1]
    if how == "exit":
        sys.exit(0)          # no close(): the interpreter's exit must close the lab
    if how == "raise":
        with lab:
            raise RuntimeError("a cell failed")
    with lab:
        sys.stdin.read()     # wait to be signalled
""")


def start_owner(how: str) -> tuple[subprocess.Popen, dict]:
    env = dict(os.environ, PYTHONPATH=REPO)
    owner = subprocess.Popen([sys.executable, "-c", OWNER, how], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = owner.stdout.readline()
    assert line, owner.stderr.read()
    return owner, json.loads(line)


def our_zombies() -> int:
    """Zombies among this process's descendants (where an owner's leftovers would be)."""
    count = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            count += proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            pass
    return count


def gone(pids: list[int]) -> bool:
    reap_adopted()  # the root's zombie, if its owner died first, is ours now
    return not any(os.path.exists(f"/proc/{pid}") for pid in pids)


@pytest.mark.parametrize("how, signo", [
    ("wait", signal.SIGTERM), ("wait", signal.SIGKILL), ("wait", signal.SIGINT),
    ("exit", None), ("raise", None),
])
def test_no_lab_process_outlives_its_owner(how, signo):
    owner, lab = start_owner(how)
    assert len(lab["pids"]) == 2 + 3 + 20 + 5 + 5 - 1  # root, agent, 2 live parents, children
    if signo is not None:
        owner.send_signal(signo)
    owner.wait(30)
    owner.stdin.close()
    owner.stdout.close()
    owner.stderr.close()
    assert wait_until(lambda: gone(lab["pids"]), 10), [
        p for p in lab["pids"] if os.path.exists(f"/proc/{p}")]
    # Only our own: other work on a shared machine may make zombies meanwhile.
    assert our_zombies() == 0


def test_an_exception_inside_with_closes_the_lab():
    with pytest.raises(ZeroDivisionError):
        with labkit.Lab() as lab:
            lab.parent().fork(10, lifetime=60)
            pids = lab.snapshot().pids
            raise ZeroDivisionError("a cell failed")
    assert lab.closed
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


def test_a_keyboard_interrupt_inside_with_closes_the_lab():
    with pytest.raises(KeyboardInterrupt):
        with labkit.Lab() as lab:
            lab.parent().fork(10)
            pids = lab.snapshot().pids
            raise KeyboardInterrupt
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


def test_a_lab_dropped_without_close_is_closed_by_the_garbage_collector():
    lab = labkit.Lab()
    lab.parent().fork(5, lifetime=60)
    pids = lab.snapshot().pids
    del lab
    import gc
    gc.collect()
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


def still_there(procs: dict[int, int | None]) -> list[int]:
    """Those of `procs` (PID: start time) that still hold their PID, alive or as zombies; a PID
    now held by a newer process (another start time) is not ours."""
    return [pid for pid, start in procs.items() if procfs.start_time(pid) == start]


@pytest.mark.parametrize("mode", ["subreaper", "pid-namespace"])
def test_closing_a_lab_whose_root_was_sigkilled_kills_and_reaps_every_lab_process(mode):
    lab = labkit.Lab(mode=mode)
    sleepers = lab.parent("sigchld").fork(5, lifetime=labkit.lab.MAX_LIFETIME)
    zombies = lab.parent("none").fork(5)
    snap = lab.wait_for(lambda s: len(s.zombies) == 5)
    assert sorted(z.pid for z in snap.zombies) == sorted(zombies)
    # Below the root, one process group: the agent's (the parents and their children inherit it).
    below = [p for p in snap.pids if p != lab.root_pid]
    assert set(sleepers) <= set(below)
    assert {os.getpgid(p) for p in below} == {lab.agent_pid}
    procs = {pid: procfs.start_time(pid) for pid in snap.pids}
    os.kill(lab.root_pid, signal.SIGKILL)
    lab.close()
    # No reap_adopted() here: this process is a subreaper (conftest) and must not be the one
    # that makes the lab's zombies go away; Binder's PID 1 would never reap them.
    assert wait_until(lambda: not still_there(procs), 30), [
        f"{pid} {procfs.read_stat(pid)}" for pid in still_there(procs)]


# --- what a killed kernel leaves: folders and cgroups, swept by the next lab -------------------

HOLDER = textwrap.dedent("""
    import json, sys
    import labkit
    lab = labkit.Lab(**json.loads(sys.argv[1]))
    lab.parent("none").fork(3)
    print(json.dumps({"dir": lab._session.dir, "cgroup": lab.budget and lab.budget.cgroup,
                      "pids": lab.snapshot().pids}), flush=True)
    sys.stdin.read()  # until the test lets us go
    lab.close()
""")


def start_holder(**lab_args) -> tuple[subprocess.Popen, dict]:
    """A kernel stand-in: a Python process that opened a lab and keeps it open."""
    env = dict(os.environ, PYTHONPATH=REPO)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, json.dumps(lab_args)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    line = holder.stdout.readline()
    assert line, holder.stderr.read()
    return holder, json.loads(line)


def end(holder: subprocess.Popen, signo: int | None = None) -> None:
    if signo is None:
        holder.stdin.close()
    else:
        holder.send_signal(signo)
    holder.wait(30)
    for stream in (holder.stdin, holder.stdout, holder.stderr):
        stream.close()


def killed_kernel(**lab_args) -> dict:
    """What a kernel SIGKILLed with a lab open leaves behind, once its lab has drained by itself
    (PR_SET_PDEATHSIG): its lab's folder, and its cgroup if it had a PID budget."""
    holder, lab = start_holder(**lab_args)
    end(holder, signal.SIGKILL)
    assert wait_until(lambda: gone(lab["pids"]), 30), "the killed kernel's lab did not drain"
    return lab


def test_a_new_lab_removes_the_folder_of_a_killed_kernel_and_keeps_a_live_ones():
    dead = killed_kernel()
    assert os.path.isdir(dead["dir"])  # what a killed kernel really leaves
    holder, live = start_holder()
    try:
        with labkit.Lab():
            assert not os.path.exists(dead["dir"])
            assert os.path.isdir(live["dir"])
    finally:
        end(holder)
    assert not os.path.exists(live["dir"])  # its owner removed it when it closed the lab


def test_a_folder_whose_owner_pid_was_reused_is_removed():
    """A PID alone would pass for the owner once the kernel hands it to a new process: the
    owner is its PID and its start time. Here the PID is ours (alive), the start time not."""
    pid, start, namespace = linux.owner_tag().split("-")
    reused = tempfile.mkdtemp(prefix=f"{lab_module.RUNTIME_PREFIX}{pid}-{int(start) + 1}-"
                                     f"{namespace}-")
    try:
        with labkit.Lab():
            assert not os.path.exists(reused)
    finally:
        shutil.rmtree(reused, ignore_errors=True)


@pytest.mark.root  # making a cgroup needs root here
def test_a_new_lab_removes_the_cgroup_of_a_killed_kernel_and_keeps_a_live_ones():
    dead = killed_kernel(pid_limit=10)
    assert dead["cgroup"] and os.path.isdir(dead["cgroup"])  # its owner never released it
    holder, live = start_holder(pid_limit=10)
    try:
        with labkit.Lab():
            assert not os.path.exists(dead["cgroup"])
            assert os.path.isdir(live["cgroup"])
    finally:
        end(holder)
    assert not os.path.exists(live["cgroup"])
