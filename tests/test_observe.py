"""Reading the lab's part of /proc: a file that cannot be read is not a process that exited.

Only ENOENT and ESRCH say that a process is gone (EACCES and EPERM: hidden, so not ours). A full
descriptor table (EMFILE) says nothing about any process: a snapshot, a recording or the cap's
count must then fail and say why, never come back short. The tests run out of descriptors for
real, by lowering this process's RLIMIT_NOFILE and filling what is left below it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource

import pytest

import labkit
from labkit import ProcUnreadable, observe, procfs

pytestmark = pytest.mark.user  # labs of both kinds, and RLIMIT_NOFILE, as this user has them


@pytest.fixture(params=["subreaper", "pid-namespace"])
def mode(request) -> str:
    """Both kinds of lab (both work on these machines, root or not)."""
    return request.param


@pytest.fixture
def lab(mode):
    with labkit.Lab(mode=mode) as lab:
        yield lab


@contextlib.contextmanager
def descriptors_left(n: int):
    """While inside, this process can open exactly `n` more files, then gets EMFILE.

    RLIMIT_NOFILE's soft limit is lowered to a little above the highest descriptor in use, and
    the free numbers below it are taken with /dev/null; on the way out both are undone.
    """
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    fillers: list[int] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 16, limits[1]))
        while True:
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                if exc.errno != errno.EMFILE:
                    raise
                break
        for _ in range(n):
            os.close(fillers.pop())
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def assert_says_emfile(error: BaseException) -> None:
    assert isinstance(error, ProcUnreadable) and isinstance(error, labkit.LabError)
    assert isinstance(error, OSError) and error.errno == errno.EMFILE
    assert "cannot be counted" in str(error) and "RLIMIT_NOFILE" in str(error)
    assert error.filename.startswith("/proc/")


def test_a_snapshot_that_runs_out_of_descriptors_raises_instead_of_missing_processes(lab):
    """The lab's reader keeps each /proc/PID/stat it opens: with one descriptor left, the first
    new child takes it and the next cannot be opened. That child is not gone."""
    parent = lab.parent("none")
    parent.fork(3)  # three children this lab's reader has not opened yet
    with descriptors_left(1):
        with pytest.raises(ProcUnreadable) as caught:
            lab.snapshot()
    assert_says_emfile(caught.value)
    assert len(lab.snapshot()) == 6  # root, agent, parent, 3 children: all there all along


def test_a_recorder_that_runs_out_of_descriptors_stops_and_raises_the_reason(lab):
    lab.parent("none").fork(3)
    with descriptors_left(1):
        with pytest.raises(ProcUnreadable) as caught:
            with lab.record(interval=0.01) as rec:
                pass
    assert rec.error is caught.value
    assert_says_emfile(rec.error)
    assert not rec.running
    assert len(rec.series) == 0  # no sample that missed processes was kept


def test_a_recorder_stopped_by_closing_its_lab_has_no_error(mode):
    with labkit.Lab(mode=mode) as lab:
        rec = lab.record(interval=0.01)
        rec.start()
    assert not rec.running and rec.error is None and len(rec.series) >= 1


def test_the_cap_is_never_checked_against_an_undercount(mode):
    """A count that skipped unreadable processes would let this fork past max_procs."""
    with labkit.Lab(mode=mode, max_procs=5) as lab:
        parent = lab.parent("none")
        parent.fork(2)  # root, agent, parent and 2 children: the lab is full
        with descriptors_left(1):
            with pytest.raises(ProcUnreadable) as caught:
                parent.fork(1)
        assert_says_emfile(caught.value)
        assert len(lab.snapshot()) == 5  # nothing was forked
        with pytest.raises(labkit.CapacityError):
            parent.fork(1)


def test_reading_one_process_with_no_descriptor_left_is_an_error_not_a_process_gone():
    """The doctor tells an orphan reaped by its start time vanishing from /proc: EMFILE must
    not pass for that."""
    me = os.getpid()
    with descriptors_left(0):
        for read in (procfs.read_stat, procfs.start_time):
            with pytest.raises(OSError) as caught:
                read(me)
            assert caught.value.errno == errno.EMFILE
        with pytest.raises(ProcUnreadable) as caught:
            observe.namespace_pid(me)
    assert caught.value.errno == errno.EMFILE
    assert procfs.read_stat(me) is not None and observe.namespace_pid(me) == me


def test_a_process_that_is_gone_still_reads_as_gone():
    never = procfs.pid_max() + 1  # above every PID the kernel hands out: /proc has no such entry
    assert procfs.read_stat(never) is None and procfs.start_time(never) is None
    assert observe.namespace_pid(never) is None and procfs.children(never) == []
