"""Observing a lab costs what the lab costs: LabTable reads the lab's processes only, and its
follow() learns changes from pidfds and the PIDs handed out, agreeing with a full /proc read."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import reap_adopted, wait_until

import labkit
from labkit import labtable, observe
from labkit.labtable import LabTable

pytestmark = pytest.mark.user


@pytest.fixture(params=["subreaper", "pid-namespace"])
def mode(request) -> str:
    return request.param


@contextlib.contextmanager
def program_group(code: str) -> Iterator[subprocess.Popen]:
    """A Python program in a process group (and session) of its own, once it has printed its
    first line ('ready'); the whole group is killed, and what it leaves is reaped, on exit."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == b"ready\n"
        yield proc
    finally:
        members = procfs_children(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_until(lambda: not reap_adopted() and not any(os.path.exists(f"/proc/{p}")
                                                          for p in members), 10)


def procfs_children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


@pytest.fixture
def unrelated():
    """200 sleeping processes that are no part of any lab, in their own process group."""
    with program_group("import os, signal\n"
                       "for _ in range(199):\n"
                       "    if os.fork() == 0:\n"
                       "        signal.pause()\n"
                       "print('ready', flush=True)\n"
                       "signal.pause()") as proc:
        yield {proc.pid, *procfs_children(proc.pid)}


def lab_from_full_read(root: int) -> dict[int, tuple[int, str, str]]:
    """The oracle: every process on the machine read, then the lab's kept."""
    table = observe.read_table()
    return {pid: table[pid] for pid in observe.lab_pids(table, root)}


def agrees(followed: dict, root: int) -> bool:
    full = lab_from_full_read(root)
    zombies = {pid for pid, entry in full.items() if entry[1] == "Z"}
    return (set(followed) == set(full)
            and {pid for pid, entry in followed.items() if entry[1] == "Z"} == zombies
            and all(followed[pid][0] == full[pid][0] for pid in full))


def test_a_snapshot_of_a_small_lab_opens_no_file_of_the_machines_other_processes(
        unrelated, monkeypatch, mode):
    opened: list[str] = []
    listed: list[str] = []
    real_open, real_listdir = os.open, os.listdir

    def spy_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    def spy_listdir(path="."):
        listed.append(str(path))
        return real_listdir(path)

    with labkit.Lab(mode=mode) as lab:
        lab.parent("none").fork(5)
        monkeypatch.setattr(os, "open", spy_open)
        monkeypatch.setattr(os, "listdir", spy_listdir)
        snap = lab.snapshot()
        monkeypatch.undo()
        assert len(snap) == 8  # root, agent, parent, five children
    touched = {int(part) for path in opened for part in path.split("/")[2:3] if part.isdigit()}
    assert touched and touched <= set(snap.pids), "only the lab's processes are read"
    assert not touched & unrelated
    assert "/proc" not in listed and len(listed) == 0, listed


def test_follow_agrees_with_a_full_read_after_every_burst_without_full_reads(monkeypatch, mode):
    # Only events and the scan of new PIDs may tell it: no timed full read, and no full read
    # because the busy machine handed out more PIDs between two samples than NEW_SCAN.
    monkeypatch.setattr(labtable, "FULL_EVERY", 1e9)
    monkeypatch.setattr(labtable, "NEW_SCAN", 1 << 22)
    with labkit.Lab(mode=mode, reap=False) as lab:
        follower = LabTable()
        try:
            root = lab.root_pid
            follower.follow(root)
            first_walks = follower.full_reads
            parent = lab.parent("none")
            parent.fork(300)  # exits at once: 300 zombies
            lab.wait_for(lambda s: len(s.zombies) == 300, timeout=30)
            assert agrees(follower.follow(root), root)
            sleepers = lab.parent("none")
            sleepers.fork(100, lifetime=60)
            assert agrees(follower.follow(root), root)
            parent.exit()  # its zombies go to the root, which (reap=False) leaves them
            lab.wait_for(lambda s: len([z for z in s.zombies if z.ppid == root]) == 300)
            assert agrees(follower.follow(root), root)
            for pid in sleepers.children():  # killed: zombies of a live parent
                os.kill(pid, signal.SIGKILL)
            lab.wait_for(lambda s: len(s.zombies) == 400)
            assert agrees(follower.follow(root), root)
            sleepers.reap()
            lab.wait_for(lambda s: len(s.zombies) == 300)
            assert agrees(follower.follow(root), root)
            assert follower.full_reads == first_walks, "the changes came from events"
        finally:
            follower.close()


def test_follow_sees_zombies_reaped_even_where_pidfds_do_not_report_reaping(monkeypatch):
    monkeypatch.setattr(labtable, "FULL_EVERY", 1e9)
    with labkit.Lab(mode="subreaper") as lab:
        follower = LabTable()
        follower.reap_events = False  # as on a kernel before Linux 6.9
        try:
            follower.follow(lab.root_pid)
            parent = lab.parent("none")
            parent.fork(50)
            lab.wait_for(lambda s: len(s.zombies) == 50)
            assert sum(e[1] == "Z" for e in follower.follow(lab.root_pid).values()) == 50
            parent.reap()
            lab.wait_for(lambda s: not s.zombies)
            assert agrees(follower.follow(lab.root_pid), lab.root_pid)
        finally:
            follower.close()


def test_children_forked_by_a_second_thread_are_found():
    """A children file lists what one thread forked (proc(5)); a thread that forks is common
    in Python (a worker thread running subprocess)."""
    table = LabTable()
    try:
        with program_group("import subprocess, sys, threading, signal\n"
                           "def work():\n"
                           "    subprocess.Popen(['sleep', '60'])\n"
                           "    print('ready', flush=True)\n"
                           "threading.Thread(target=work).start()\n"
                           "signal.pause()") as proc:
            found = table.read(proc.pid)
            assert set(found) == set(lab_from_full_read(proc.pid))
            assert len(found) == 2 and any(comm == "sleep" for _, _, comm in found.values())
    finally:
        table.close()


def test_without_children_files_a_lab_is_found_by_reading_every_process(monkeypatch, mode):
    monkeypatch.setattr(labtable, "scoped", lambda: False)
    with labkit.Lab(mode=mode) as lab:
        assert not lab._reader.scoped
        lab.parent("none").fork(10)
        snap = lab.wait_for(lambda s: len(s.zombies) == 10)
        assert set(snap.pids) == set(lab_from_full_read(lab.root_pid))
        assert lab._reader.follow(lab.root_pid).keys() == lab._reader.read(lab.root_pid).keys()
