"""`python -m labkit ...`: real labs from the command line, refusals before any process exists."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest
from conftest import wait_until
from support import child_env

from labkit import cli, i18n, limits
from labkit.lab import Lab
from labkit.machine import doctor

pytestmark = pytest.mark.user  # the CLI's labs and doctor depend on what this user may do

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def labkit_env(**extra: str) -> dict[str, str]:
    return child_env(**extra)


def run_cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit", *args], env=labkit_env(**extra),
                          capture_output=True, text=True, timeout=120)


def run_json(*args: str) -> dict:
    done = run_cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_policy_none_leaves_every_child_a_zombie_until_the_parent_reaps():
    result = run_json("zombies", "--children", "30", "--policy", "none")
    assert result["final_zombies"] == 30 and result["final"]["zombie"] == 30
    assert result["mode"] in ROOT_IS and "mode_reason" in result  # what the lab really ran as
    assert result["reaped"] == 30
    assert max(result["series"]["counts"]["zombie"]) == 30
    assert max(result["series"]["total"]) == 33  # root, agent, parent and the 30
    series = result["series"]
    assert len(series["times"]) == len(series["total"]) == len(series["counts"]["zombie"])


def test_policy_sigchld_leaves_no_zombie():
    result = run_json("zombies", "--children", "30", "--policy", "sigchld")
    assert result["final_zombies"] == 0 and "zombie" not in {
        state for state, n in result["final"].items() if n}
    assert result["reaped"] == 0  # the handler had collected every one already


def test_the_text_output_shows_a_timeline_and_explains_the_policy():
    done = run_cli("zombies", "--children", "5", "--policy", "none")
    assert done.returncode == 0, done.stderr
    assert "time (s)  zombie  sleeping/running  total" in done.stdout
    assert "5 zombies: the parent never called wait(2)" in done.stdout
    assert "collected 5 exit statuses" in done.stdout


def test_the_text_output_speaks_chinese_when_run_from_the_chinese_notebooks_folder():
    """Notebook 00 runs `python -m labkit orphans` from its own folder: notebooks/zh is Chinese."""
    done = subprocess.run([sys.executable, "-m", "labkit", "orphans", "--children", "2"],
                          env=labkit_env(), cwd=os.path.join(REPO, "notebooks", "zh"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "由实验环境的 init" in done.stdout and "随时间发生了什么" in done.stdout
    assert "were seen adopted" not in done.stdout and "What happened" not in done.stdout
    header, first = done.stdout.splitlines()[3:5]
    reaped_column = i18n.columns(header[:header.index("被实验环境")])
    assert i18n.columns(first[:first.index(" s 时")]) - 4 == reaped_column  # "0.50" under it


def test_orphans_are_adopted_and_reaped_by_the_lab_root():
    # Children that outlive the parent by far (2 s, not the default 0.5 s): their PPID after the
    # parent's exit must be read while they live, even on a loaded machine.
    result = run_json("orphans", "--children", "5", "--lifetime", "2")
    root, parent = result["root_pid"], result["parent_pid"]
    assert len(result["orphans"]) == 5
    for orphan in result["orphans"]:
        assert orphan["ppid_before"] == parent
        assert orphan["ppid_after"] == root
        assert orphan["reaped_by_root"] is True and orphan["status"] == 0


# What the text must call the lab root, what it must not, and the kernel rule it gives, by mode.
ROOT_IS = {"subreaper": "a child subreaper",
           "pid-namespace": "PID 1 of the lab's own PID namespace"}
WRONG = {"subreaper": "PID namespace", "pid-namespace": "the Python pause, a child subreaper"}
RULE = {"subreaper": "PR_SET_CHILD_SUBREAPER", "pid-namespace": "pid_namespaces(7)"}


def run_in_mode(mode: str, *args: str) -> str:
    """The text output of `python -m labkit ARGS --mode MODE`; a skip where the machine refuses
    a PID namespace (the command then says NamespaceUnavailable and why)."""
    done = run_cli(*args, "--mode", mode)
    if mode == "pid-namespace" and "NamespaceUnavailable" in done.stderr:
        pytest.skip(f"this machine refuses a PID-namespace lab: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("mode", ["subreaper", "pid-namespace"])
def test_the_orphans_text_says_what_the_lab_root_really_is(mode):
    text = run_in_mode(mode, "orphans", "--children", "2", "--lifetime", "0")
    first, adoption = text.splitlines()[0], next(
        line for line in text.splitlines() if "were seen adopted" in line)
    assert ROOT_IS[mode] in first and ROOT_IS[mode] in adoption
    assert WRONG[mode] not in text
    assert [rule for rule in RULE.values() if rule in adoption] == [RULE[mode]]


@pytest.mark.parametrize("mode", ["subreaper", "pid-namespace"])
def test_the_zombies_text_says_what_the_lab_root_really_is(mode):
    first = run_in_mode(mode, "zombies", "--children", "1", "--policy", "none").splitlines()[0]
    assert ROOT_IS[mode] in first and WRONG[mode] not in first


def test_by_default_the_text_names_the_mode_the_lab_got():
    """--mode auto takes the strongest mode the machine allows; the text follows lab.mode."""
    with Lab() as lab:
        mode = lab.mode  # what auto picks on this machine, for this user
    done = run_cli("zombies", "--children", "1", "--policy", "none")
    assert done.returncode == 0, done.stderr
    assert ROOT_IS[mode] in done.stdout.splitlines()[0]


def test_doctor_json_has_the_same_facts_as_labkit_doctor(tmp_path):
    done = run_cli("doctor", "--json", "--no-measure", XDG_CACHE_HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == set(doctor(measure=False).facts)


def test_doctor_text_has_one_line_per_fact(tmp_path):
    done = run_cli("doctor", "--no-measure", XDG_CACHE_HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1 + len(doctor(measure=False).facts)


def too_many() -> str:
    return str(max(100_000, limits.ceiling()[0] + 1_000))


BAD = [
    (["zombies", "--children", "-1", "--policy", "none"], "-1 is too small: give a count of at "
                                                          "least 1"),
    (["zombies", "--children", "abc", "--policy", "none"], "'abc' is not a whole number"),
    (["zombies", "--children", "0", "--policy", "none"], "0 is too small"),
    (["zombies", "--children", "3", "--policy", "nope"], "invalid choice: 'nope' (choose from "
                                                         "'none', 'wait', 'sigchld', "
                                                         "'sigchld-once', 'ignore')"),
    (["zombies", "--children", "3", "--policy", "none", "--lifetime", "-2"], "give 0 to 60"),
    (["orphans", "--children", "abc"], "'abc' is not a whole number"),
    (["zombies", "--children", "TOO_MANY", "--policy", "none"], "is too large: at most"),
    (["orphans", "--children", "TOO_MANY"], "is too large: at most"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_a_clear_message_and_creates_no_process(argv, message):
    argv = [too_many() if a == "TOO_MANY" else a for a in argv]
    done = run_cli(*argv)
    assert done.returncode == 2
    assert message in done.stderr and "usage:" in done.stderr
    assert done.stdout == ""
    assert not psutil.Process().children(recursive=True)


@pytest.mark.parametrize("argv", [a for a, _ in BAD], ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_refused_before_any_process_is_started(argv, monkeypatch, capsys):
    """In this process, with every way to start a process made to fail the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a process was started for bad input")

    for name in ("fork", "posix_spawn", "posix_spawnp"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    argv = [too_many() if a == "TOO_MANY" else a for a in argv]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_help_names_the_commands_and_the_policies():
    assert all(c in run_cli("--help").stdout for c in ("doctor", "zombies", "orphans"))
    text = run_cli("zombies", "--help").stdout
    assert all(p in text for p in ("none", "wait", "sigchld", "sigchld-once", "ignore"))


@pytest.mark.parametrize("signo, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_closes_the_lab(signo, code):
    """Interrupted mid-experiment, the command still closes its lab: nothing is left (the
    no_leaks fixture would find the lab's processes, adopted by this subreaper)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "zombies", "--children", "10", "--policy", "none",
         "--lifetime", "30"], env=labkit_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        def children_alive() -> bool:
            names = []
            for p in psutil.Process(proc.pid).children(recursive=True):
                try:
                    names.append(p.name())
                except psutil.Error:
                    pass
            return names.count("lab-child") == 10

        assert wait_until(children_alive, 30)
        proc.send_signal(signo)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code
    assert "the lab was closed and its processes reaped" in err
