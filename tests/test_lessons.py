"""labkit.lessons: the plumbing of notebooks 01-04, on real processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
from test_degradation import env, no_namespaces  # noqa: F401  (fixtures, reused)

import labkit
from labkit import lessons

pytestmark = pytest.mark.user  # a shell as PID 1 needs a user namespace when not root


def test_proc_status_reads_state_and_ppid_and_none_once_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    lessons.poll_until(lambda: lessons.is_zombie(child.pid))
    assert lessons.proc_status(child.pid) == {"State": "Z (zombie)", "PPid": os.getpid()}
    child.wait()
    assert lessons.proc_status(child.pid) is None and not lessons.is_zombie(child.pid)


@pytest.mark.parametrize("bad", [0, -3, "12", True, None])
def test_proc_status_refuses_what_is_not_a_pid(bad):
    with pytest.raises(ValueError, match="positive int"):
        lessons.proc_status(bad)


def test_poll_until_raises_at_its_deadline_and_refuses_bad_input():
    with pytest.raises(TimeoutError, match="within 0.05 s"):
        lessons.poll_until(lambda: False, timeout=0.05)
    with pytest.raises(TypeError):
        lessons.poll_until(True)
    with pytest.raises(ValueError):
        lessons.poll_until(lambda: True, timeout=0)


def test_a_burst_under_a_parent_that_never_waits_leaves_every_child_a_zombie():
    with labkit.Lab() as lab:
        parent, snap, series = lessons.burst(lab, "none", n=20, lifetime=0.1)
        assert len(lessons.zombies_of(parent, snap)) == 20
        assert series.zombies[-1] == 20
        parent.exit()


def test_a_burst_under_a_looping_handler_leaves_no_zombie():
    with labkit.Lab() as lab:
        parent, _, _ = lessons.burst(lab, "sigchld", n=20, lifetime=0.1)
        assert lab.wait_for(lambda s: s.children(parent.pid) == [], timeout=10)
        parent.exit()


def test_sigchld_ignored_turns_an_exit_status_of_3_into_0_and_is_put_back():
    before = signal.getsignal(signal.SIGCHLD)
    assert lessons.exit_status_seen(signal.SIG_DFL) == 3
    assert lessons.exit_status_seen(signal.SIG_IGN) == 0
    assert signal.getsignal(signal.SIGCHLD) == before
    with pytest.raises(ValueError, match="SIG_DFL or signal.SIG_IGN"):
        lessons.exit_status_seen(print)


def test_kernel_memory_names_the_objects_or_says_why_not(tmp_path):
    fake = tmp_path / "slabinfo"
    fake.write_text("slabinfo - version: 2.1\n"
                    "task_struct 190 240 5888 5 8 : tunables 0 0 0 : slabdata 48 48 0\n"
                    "pid 538 714 192 21 1 : tunables 0 0 0 : slabdata 34 34 0\n")
    memory = lessons.kernel_memory_per_process(str(fake))
    assert memory.objects == {"task_struct": 5888, "pid": 192}
    assert "6,080 bytes" in str(memory)
    assert "does not exist" in lessons.kernel_memory_per_process(str(tmp_path / "no")).why_not
    real = lessons.kernel_memory_per_process()
    if os.geteuid() == 0:
        assert real.objects.get("task_struct", 0) > 1000, real
    else:
        assert "readable only by root" in real.why_not


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_a_subreaper_shell_adopts_its_grandchild_and_reaps_it_when_it_waits(shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    story = lessons.shell_adopts_and_reaps(shell)
    assert "its grandparent" in str(story) and not story.refused
    assert story.reaped_when_it_waited
    assert story.sigterm == "killed"   # not PID 1: the default action of SIGTERM applies
    if shell == "dash":   # dash reaps only when it waits; `read` is not a wait
        assert story.orphan_state_while_reading == "zombie"


def test_a_shell_as_pid_1_reaps_its_adopted_orphan_and_ignores_sigterm():
    story = lessons.shell_adopts_and_reaps("sh", as_pid1=True)
    if story.refused:
        pytest.skip(f"this machine allows no PID namespace: {story.refused}")
    assert "PID 1 inside its namespace" in str(story)
    assert story.reaped_when_it_waited and story.sigterm == "ignored"


def test_where_namespaces_are_denied_the_pid_1_shell_says_what_was_refused(no_namespaces, env):  # noqa: F811
    code = ("from labkit import lessons; s = lessons.shell_adopts_and_reaps('sh', as_pid1=True);"
            "print(s); assert s.refused and 'EPERM' in s.refused, s;"
            "s = lessons.shell_adopts_and_reaps('sh'); assert s.reaped_when_it_waited, s")
    done = subprocess.run([no_namespaces, sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "this machine refused it" in done.stdout


def test_the_subreaper_program_refuses_bad_usage_and_missing_commands():
    usage = subprocess.run([sys.executable, "-m", "labkit.lessons", "sh"],
                           capture_output=True, text=True, timeout=30)
    assert usage.returncode == 64 and "usage" in usage.stderr
    missing = subprocess.run([sys.executable, "-m", "labkit.lessons", "--subreaper", "--",
                              "no-such-program-here"], capture_output=True, text=True, timeout=30)
    assert missing.returncode == 127 and "cannot run" in missing.stderr
    with pytest.raises(ValueError, match="no program"):
        lessons.shell_adopts_and_reaps("no-such-shell-here")


def test_a_burst_refuses_to_start_while_an_earlier_parent_left_zombies():
    with labkit.Lab() as lab:
        parent, _, _ = lessons.burst(lab, "none", n=5, lifetime=0.0)
        with pytest.raises(RuntimeError, match="still holds 5 zombies"):
            lessons.burst(lab, "none", n=5)
        parent.exit()


def test_the_shell_story_works_when_descriptors_are_numbered_above_1024():
    """A Jupyter kernel may hold many descriptors: select(2) cannot watch one above 1023."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE's hard limit {hard} leaves no descriptor above 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        story = lessons.shell_adopts_and_reaps("sh")
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert story.reaped_when_it_waited


def test_where_orphans_go_names_the_lab_roots_position():
    with labkit.Lab(mode="subreaper") as lab:
        assert "as a child subreaper" in lessons.where_orphans_go(lab)
    with labkit.Lab() as lab:
        sentence = lessons.where_orphans_go(lab)
        if lab.mode == "pid-namespace":
            assert f"PID {lab.root_pid} on this machine and PID 1 inside" in sentence
        else:
            assert "Why: " in sentence and lab.mode_reason in sentence
