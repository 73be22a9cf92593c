"""Nothing of a lab outlives it: however its owner ends, every lab process is gone soon after.

The owner here is a separate Python program (tests/owner.py stand-in, written inline) so that it
can be killed for real. This test process is a child subreaper (conftest), so the lab root's own
zombie, orphaned when its owner is killed, comes here and is reaped by the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest
from conftest import reap_adopted, wait_until

import labkit
from labkit import linux

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
    assert wait_until(lambda: gone(lab["pids"]), 2.0), [
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
    return [pid for pid, start in procs.items() if linux.start_time(pid) == start]


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
    procs = {pid: linux.start_time(pid) for pid in snap.pids}
    os.kill(lab.root_pid, signal.SIGKILL)
    lab.close()
    # No reap_adopted() here: this process is a subreaper (conftest) and must not be the one
    # that makes the lab's zombies go away; Binder's PID 1 would never reap them.
    assert wait_until(lambda: not still_there(procs), 5.0), [
        f"{pid} {linux.read_stat(pid)}" for pid in still_there(procs)]
