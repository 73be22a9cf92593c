"""labkit.doctor(): each fact is tried or measured on this machine, and the doctor leaves nothing.

The pytest process is a child subreaper (conftest.py), which the tests use twice: a doctor run in
this process gets its own test orphan back (and must reap it itself), and a doctor run in a child
process hands its orphan to us, so the test decides whether that adopter reaps or not.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading

import psutil
import pytest
from conftest import wait_until
from support import child_env

import labkit
from labkit import machine, probe, procfs
from labkit.machine import LABELS

pytestmark = pytest.mark.user  # the doctor reports what this user may do

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SELECT_LIMIT = 1024  # FD_SETSIZE: select(2) cannot watch a descriptor at or above it
FACTS = {"kernel", "pid1", "orphans", "user", "subreaper", "user_namespaces", "pid_namespaces",
         "proc_mount", "cgroup_pids", "rlimit_nproc", "pids", "python", "hosting", "lab_mode",
         "observation"}


def run_doctor_cli(*args: str, cache: str, tmpdir: str | None = None) -> dict:
    """`python -m labkit doctor --json ARGS` in a child process, with a cache of the test's own."""
    env = child_env(XDG_CACHE_HOME=cache)
    if tmpdir is not None:
        env["TMPDIR"] = tmpdir
    done = subprocess.run([sys.executable, "-m", "labkit", "doctor", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def reap_test_orphans() -> list[int]:
    """Reap the doctor's test orphans that became zombies here; their PIDs."""
    reaped = []
    for child in psutil.Process().children():
        try:
            if child.name() == "labkit-orphan" and child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, 0)
                reaped.append(child.pid)
        except (psutil.Error, ChildProcessError):
            pass
    return reaped


@contextlib.contextmanager
def acting_as_a_reaping_init():
    """While inside, this process reaps adopted test orphans promptly, as a good init does.

    The list it yields fills with the PIDs reaped. Only zombies named labkit-orphan are touched,
    so subprocess keeps its own children to itself.
    """
    reaped: list[int] = []
    stop = threading.Event()

    def work() -> None:
        while not stop.wait(0.005):
            reaped.extend(reap_test_orphans())

    thread = threading.Thread(target=work, name="test-reaper", daemon=True)
    thread.start()
    try:
        yield reaped
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def holding_open_files(n: int = 1100):
    """While inside, this process holds `n` more descriptors (/dev/null), as the kernel of a big
    lab does: the next descriptor it opens is numbered above SELECT_LIMIT. RLIMIT_NOFILE's soft
    limit is raised for it (up to the hard limit; a hard limit too low skips the test) and
    restored after."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 256
    if limits[1] != resource.RLIM_INFINITY and limits[1] < need:
        pytest.skip(f"RLIMIT_NOFILE's hard limit {limits[1]} is below {need}")
    if limits[0] != resource.RLIM_INFINITY and limits[0] < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, limits[1]))
    fds: list[int] = []
    try:
        fds.extend(os.open(os.devnull, os.O_RDONLY) for _ in range(n))
        yield
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def state_of(pid: int) -> str | None:
    return procfs.state(pid)


def test_the_orphan_s_wait_takes_a_descriptor_above_1024():
    """select(2) cannot watch such a descriptor (Python raises ValueError); poll(2) can."""
    with holding_open_files():
        rfd, wfd = os.pipe()
        try:
            assert rfd >= SELECT_LIMIT
            assert probe.wait_for_eof(rfd, 0.0) is False  # the writer is still open
            os.close(wfd)
            assert probe.wait_for_eof(rfd, 5.0) is True   # EOF
        finally:
            os.close(rfd)
            with contextlib.suppress(OSError):
                os.close(wfd)


def test_the_doctor_s_orphan_lives_until_eof_while_a_big_lab_holds_many_files():
    """The doctor hands the orphan its pipe by number: with 1,100 files open that number is
    above 1024, and the orphan must still wait for EOF (then it exits and we reap it)."""
    with holding_open_files():
        rfd, wfd = os.pipe()
        try:
            assert rfd >= SELECT_LIMIT
            answer = machine.run_probe(["orphan", str(rfd)], pass_fds=(rfd,))
        finally:
            os.close(rfd)
        try:
            assert answer["ok"], answer
            pid = answer["pid"]
            # Waiting for EOF it sleeps (S); an orphan that failed to wait exits instead.
            assert wait_until(lambda: state_of(pid) in ("S", "Z", None), 10)
            assert state_of(pid) == "S"
            assert procfs.read_stat(pid).ppid == os.getpid()  # adopted by us, the subreaper
        finally:
            os.close(wfd)
    assert wait_until(lambda: state_of(pid) == "Z", 10)
    assert reap_test_orphans() == [pid]


def test_the_doctor_measures_orphans_while_this_process_holds_1100_files():
    with holding_open_files():
        facts = labkit.doctor().facts["orphans"]
    assert facts["measured"] is True and facts["adopter_pid"] == os.getpid(), facts
    assert facts["reaped"] is True


@pytest.fixture(scope="module")
def report() -> labkit.Report:
    return labkit.doctor(measure=False)


def test_the_report_has_every_fact_with_a_summary_and_a_meaning(report):
    assert set(report.facts) == FACTS
    for name, fact in report.facts.items():
        assert fact["summary"] and fact["meaning"], name
    assert report.to_dict() == json.loads(json.dumps(report.facts))


def test_the_report_reads_as_one_line_per_fact_and_as_an_html_table(report):
    text = str(report).splitlines()
    assert len(text) == 1 + len(FACTS)
    for label, line in zip(LABELS.values(), text[1:], strict=True):
        assert line.strip().startswith(label)
    page = report._repr_html_()
    assert page.startswith("<table>") and page.count("<tr>") == 1 + len(FACTS)


def test_pid1_name_is_read_from_proc(report):
    with open("/proc/1/comm") as f:
        assert report["pid1"]["name"] == f.read().strip()


def test_kernel_privileges_and_limits_are_this_process_s_own(report):
    assert report["kernel"]["release"] == os.uname().release
    assert report["user"]["euid"] == os.geteuid()
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    assert report["rlimit_nproc"]["soft"] == (None if soft == resource.RLIM_INFINITY else soft)
    assert report["rlimit_nproc"]["hard"] == (None if hard == resource.RLIM_INFINITY else hard)
    if os.getuid() == 0 and not report["user"]["user_namespace"]:
        assert not report["rlimit_nproc"]["binds"]  # kernel/fork.c exempts real root
    assert report["pids"]["pid_max"] == procfs.pid_max()


def test_subreaper_is_allowed(report):
    # This very test run stands on it (conftest.py), so the probe must find it allowed.
    assert report["subreaper"]["ok"] is True


def test_lab_mode_is_what_lab_auto_really_picks(report):
    import labkit

    with labkit.Lab() as lab:
        assert report["lab_mode"]["mode"] == lab.mode


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) from util-linux")
def test_namespace_results_agree_with_unshare_1(report):
    """Each way the doctor tried matches the unshare(1) command it names, run here."""
    for fact in ("pid_namespaces", "proc_mount"):
        for attempt in report[fact]["tried"]:
            done = subprocess.run(attempt["command"].split(), capture_output=True, timeout=30)
            assert (done.returncode == 0) == attempt["ok"], (attempt, done.stderr)
        assert bool(report[fact]["tried"]) or not report["pid_namespaces"]["ok"]
    plain = "unshare -pf true" if os.geteuid() == 0 else "unshare -Urpf true"
    assert report["pid_namespaces"]["tried"][0]["command"] == plain
    done = subprocess.run(["unshare", "-U", "true"], capture_output=True, timeout=30)
    assert (done.returncode == 0) == report["user_namespaces"]["ok"]


def test_the_cgroup_probe_removes_the_child_cgroup_it_made(report):
    directory = report["cgroup_pids"]["directory"]
    if directory is None:
        pytest.skip("no pids cgroup here")
    assert not [name for name in os.listdir(directory) if name.startswith("labkit-doctor-")]


def test_without_measuring_no_orphan_is_made_here(report):
    assert report["orphans"]["measured"] is False
    assert report["orphans"]["adopter_is_self"] is True  # known from PR_GET_CHILD_SUBREAPER
    assert reap_test_orphans() == []


def test_the_doctor_s_orphan_comes_back_to_this_subreaper_and_is_reaped_here():
    """In this process (a subreaper) the orphan's adopter is this process itself: the doctor
    must say so, and reap the orphan itself, since nobody else will."""
    facts = labkit.doctor().facts["orphans"]
    assert facts["adopter_pid"] == os.getpid()
    assert facts["adopter_is_self"] is True and facts["reaped"] is True
    assert facts["cached"] is False
    assert not psutil.Process().children(recursive=True)  # at once: no probe, no zombie left


def test_a_reaping_adopter_is_measured_and_the_result_is_cached_per_boot(tmp_path):
    """A doctor in a child process orphans its test process to us; we reap it promptly. The
    second run finds the result cached and makes no new orphan."""
    cache = str(tmp_path / "cache")
    with acting_as_a_reaping_init() as reaped:
        first = run_doctor_cli(cache=cache)["orphans"]
        assert reaped == [first["orphan_pid"]]
        second = run_doctor_cli(cache=cache)["orphans"]
        assert len(reaped) == 1  # no second orphan was made
    assert first["adopter_pid"] == os.getpid() and first["adopter_is_self"] is False
    assert first["reaped"] is True and first["cached"] is False
    assert first["cache_file"] == os.path.join(cache, "labkit", "doctor.json")
    with open(first["cache_file"]) as f:
        assert json.load(f)["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()
    assert second["cached"] is True and "cached" in second["summary"]
    assert second["measured_at"] == first["measured_at"]
    assert second["adopter_pid"] == os.getpid() and second["reaped"] is True


def test_an_adopter_that_does_not_reap_is_reported_and_its_zombie_is_real(tmp_path):
    """We do not reap this time: the doctor must say 'did not reap', and the zombie it warns
    about must really be there, as our child. Its cache falls back to a private temp dir."""
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    facts = run_doctor_cli("--reap-timeout", "0.3", cache=str(blocked),
                           tmpdir=str(tmpdir))["orphans"]
    assert facts["adopter_pid"] == os.getpid()
    assert facts["reaped"] is False and facts["zombie_may_remain"] is True
    assert "did NOT reap" in facts["summary"]
    orphan = psutil.Process(facts["orphan_pid"])
    assert orphan.ppid() == os.getpid() and orphan.status() == psutil.STATUS_ZOMBIE
    assert reap_test_orphans() == [facts["orphan_pid"]]
    assert facts["cache_file"] == os.path.join(str(tmpdir), f"labkit-{os.getuid()}",
                                               "doctor.json")


def test_no_measure_makes_no_orphan_in_a_child_process_either(tmp_path):
    facts = run_doctor_cli("--no-measure", cache=str(tmp_path))["orphans"]
    assert facts["measured"] is False
    assert reap_test_orphans() == []


def test_labkit_doctor_is_the_function_even_after_importing_its_module():
    """The module is labkit.machine, so no import can bind the name labkit.doctor to a module."""
    code = ("import labkit.machine, labkit; r = labkit.doctor(measure=False); "
            "print(type(r).__name__, sorted(r.facts) == sorted(labkit.machine.LABELS))")
    env = child_env()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["Report", "True"], done.stderr


@pytest.mark.parametrize("kwargs, error", [
    ({"measure": "yes"}, TypeError), ({"refresh": 1}, TypeError),
    ({"reap_timeout": -1}, ValueError), ({"reap_timeout": float("nan")}, ValueError)])
def test_bad_arguments_are_refused_before_any_probe_runs(kwargs, error, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", None)  # any probe would fail with a TypeError
    with pytest.raises(error, match="measure|refresh|reap_timeout"):
        labkit.doctor(**kwargs)


def test_the_doctor_says_how_a_lab_is_watched_and_what_a_kernel_without_shortcuts_costs(
        monkeypatch):
    from labkit import labtable

    here = machine.observation_fact()
    assert here["scoped"] and here["pidfd_events"]  # Linux 6.18 here: children files, pidfds
    assert here["reap_events"] == (tuple(map(int, os.uname().release.split(".")[:2])) >= (6, 9))
    monkeypatch.setattr(labtable, "scoped", lambda: False)
    old = machine.observation_fact()
    assert old["summary"] == "every process read" and "CONFIG_PROC_CHILDREN" in old["meaning"]

