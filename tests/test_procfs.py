"""labkit.procfs, the one reader of the process table: its parser, its idea of "gone", its kill."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess

import pytest
from conftest import wait_until

from labkit import procfs

pytestmark = pytest.mark.user  # hidepid and RLIMIT_NOFILE are as this user has them

# A real line of /proc/PID/stat (proc(5)) whose comm holds ") (", spaces and a digit.
LINE = (b"4242 (a) (b 1) S 17 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 1 0 987654 "
        b"8000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")


def test_the_parser_finds_the_fields_after_the_last_parenthesis():
    assert procfs.parse_stat(LINE) == procfs.Stat(
        pid=4242, comm="a) (b 1", state="S", ppid=17, pgrp=4242, session=4242,
        starttime=987654)


def test_a_line_cut_short_still_gives_the_head_and_no_start_time():
    assert procfs.parse_stat(LINE[:64]) == procfs.Stat(4242, "a) (b 1", "S", 17, 4242, 4242, None)


def test_our_own_stat_agrees_with_the_kernels_other_answers():
    me = procfs.read_stat(os.getpid())
    assert (me.pid, me.ppid, me.pgrp, me.session) == (
        os.getpid(), os.getppid(), os.getpgrp(), os.getsid(0))
    assert me.state == "R" and me.starttime == procfs.start_time(os.getpid()) > 0
    assert procfs.nspid(os.getpid())[-1] == os.getpid()  # NSpid ends with the innermost PID
    assert procfs.status(os.getpid())["Pid"] == str(os.getpid())


def test_a_zombie_is_a_child_and_a_descendant_until_it_is_reaped():
    child = subprocess.Popen(["true"])
    assert wait_until(lambda: procfs.state(child.pid) == "Z", 10)
    assert child.pid in procfs.children(os.getpid())
    assert child.pid in procfs.descendants(os.getpid())
    child.wait()
    assert procfs.state(child.pid) is None and procfs.read_stat(child.pid) is None
    assert procfs.nspid(child.pid) is None and procfs.status(child.pid) is None


def test_only_enoent_and_esrch_say_gone_and_hidden_is_hidden():
    assert all(procfs.absent(OSError(e, "")) for e in (errno.ENOENT, errno.ESRCH, errno.EACCES))
    assert not any(procfs.absent(OSError(e, "")) for e in (errno.EMFILE, errno.ENFILE, errno.EIO))


def test_no_descriptor_left_is_an_error_for_every_reader():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        with pytest.raises(OSError):
            while True:
                fds.append(os.open("/dev/null", os.O_RDONLY))
        me = os.getpid()
        for read in (procfs.read_stat, procfs.start_time, procfs.state, procfs.nspid,
                     procfs.status):
            with pytest.raises(OSError) as caught:
                read(me)
            assert caught.value.errno == errno.EMFILE, read.__name__
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_kill_sends_only_to_the_process_its_check_recognizes():
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert not procfs.kill(child.pid, signal.SIGKILL, lambda stat: stat.ppid != os.getpid())
        assert procfs.state(child.pid) in ("S", "R")
        assert procfs.kill(child.pid, signal.SIGKILL, lambda stat: stat.ppid == os.getpid())
        assert child.wait(10) == -signal.SIGKILL
        assert not procfs.kill(child.pid, signal.SIGKILL, lambda stat: True)  # reaped: nobody
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
