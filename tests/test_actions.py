"""OSTEP's fork action language on real processes (labkit.actions), in both kinds of lab."""

from __future__ import annotations

import psutil
import pytest
from conftest import descendants, wait_until

import labkit
from labkit import actions, procfs
from labkit.actions import INIT, ScriptError


@pytest.fixture(params=["subreaper", "pid-namespace"])
def lab(request):
    with labkit.Lab(mode=request.param) as lab:
        assert lab.mode == request.param
        yield lab


proc_state = procfs.state  # the state letter of /proc/PID/stat (what ps shows in STAT)


def lab_is_bare(lab: labkit.Lab) -> bool:
    return [p.role for p in lab.snapshot().procs] == ["root", "agent"]


def test_an_orphan_is_adopted_by_the_lab_root_and_its_exited_parent_stays_a_zombie(lab):
    run = actions.run("a+b; b+c; b-; a~", lab=lab)
    after_exit, after_wait = run.steps[2], run.steps[3]
    b, c = run.pids["b"], run.pids["c"]
    # c's real parent, in the kernel's own table: the lab root, not b's parent a.
    assert after_exit.snapshot.by_pid(c).ppid == lab.root_pid
    assert after_exit.structure["c"][0] == INIT
    # b exited, and a does not wait until `a~`: a zombie of a, until then.
    assert after_exit.snapshot.by_pid(b).ppid == run.pids["a"]
    assert after_exit.structure["b"] == ("a", "zombie")
    assert "b" not in after_wait.structure and after_wait.snapshot.by_pid(b) is None
    # And now, live: c is still the root's child; b is gone.
    assert psutil.Process(c).ppid() == lab.root_pid
    assert not psutil.pid_exists(b) or psutil.Process(b).ppid() != run.pids["a"]
    assert run.tree() == "init\n├── a\n└── c"
    run.close()
    lab.wait_for(lambda snap: len(snap) == 2)


def test_an_exited_child_is_a_zombie_of_its_parent_until_the_parent_waits(lab):
    run = actions.run("a+b; b-", lab=lab)
    b = run.pids["b"]
    assert proc_state(b) == "Z"
    assert psutil.Process(b).ppid() == run.pids["a"]
    assert run.final["b"] == ("a", "zombie")
    assert "└── b (zombie)" in run.text()
    run.close()
    waited = actions.run("a+b; b-; a~b", lab=lab)
    assert waited.steps[1].structure["b"] == ("a", "zombie")
    assert "b" not in waited.final
    assert waited.steps[-1].snapshot.by_pid(waited.pids["b"]) is None
    waited.close()


def test_orphans_that_exit_are_reaped_by_the_lab_root(lab):
    run = actions.run("a+b; b+c; b+d; b-; c-", lab=lab)
    c, d = run.pids["c"], run.pids["d"]
    assert run.steps[3].structure["c"][0] == INIT
    assert "c" not in run.final and not any(p.pid == c for p in lab.snapshot().procs)
    assert run.final["d"][0] == INIT and psutil.Process(d).ppid() == lab.root_pid
    assert wait_until(lambda: c in [e.pid for e in lab.events], 10)
    run.close()


def test_zombie_children_of_an_exiting_process_are_reaped_by_init(lab):
    run = actions.run("a+b; b+c; c-; b-", lab=lab)
    assert run.steps[2].structure["c"] == ("b", "zombie")
    assert "c" not in run.final and run.final["b"] == ("a", "zombie")
    assert wait_until(lambda: run.pids["c"] in [e.pid for e in lab.events], 10)
    run.close()


def test_seeded_scripts_are_reproducible_and_valid():
    for seed in range(200):
        script = actions.random_script(seed, actions=8)
        assert script == actions.random_script(seed, actions=8)
        assert len(actions.parse(script)) == 8
    assert actions.random_script(3) != actions.random_script(4)
    assert any("~" in actions.random_script(s, actions=10) for s in range(20))
    assert not any("~" in actions.random_script(s, actions=10, wait=False) for s in range(20))
    assert all("-" not in actions.random_script(s, fork_percentage=1.0) for s in range(20))


@pytest.mark.slow
def test_twenty_random_seeds_run_and_leave_nothing(lab):
    for seed in range(20):
        script = actions.random_script(seed, actions=6)
        run = actions.run(script, lab=lab)
        assert len(run.steps) == 6
        assert set(run.final) == set(run.model.structure())
        run.close()
        lab.wait_for(lambda snap: len(snap) == 2)


def test_check_explains_a_wrong_prediction_and_accepts_the_right_one():
    run = actions.run("a+b; b+c; b-; a+d")
    wrong = actions.check({"b": "a", "c": "a", "d": "a"}, run)
    assert not wrong and not wrong.correct
    assert wrong.problems == [
        "wrong state: b is a zombie, not alive: b exited (action 3) and its parent a has not "
        "waited for it, so it stays a zombie",
        "wrong parent: c's parent is init, not a: c's parent b exited (action 3), so c was "
        "adopted by init (the lab root), not by a (" + actions.ADOPTION_RULE + ")",
    ]
    right = actions.check({"b": "a", "c": "init", "d": "a"}, run, states={"b": "zombie"})
    assert right and str(right) == "correct"
    assert str(actions.check(run.tree(), run)) == "correct"
    assert str(actions.check(run.text(), run)) == "correct"  # the last tree of the text
    extra = actions.check({"b": ("a", "zombie"), "c": "init", "d": "a", "e": "a"}, run)
    assert extra.problems == ["extra: e is gone: there is no process e in this script"]
    missing = actions.check("init\n└── a\n    └── d\n", run)
    assert [p.split(":")[0] for p in missing.problems] == ["missing", "missing"]


def test_check_runs_a_script_and_says_why_a_process_is_gone():
    feedback = actions.check({"b": ("a", "zombie")}, "a+b; b-; a~", mode="subreaper")
    assert feedback.problems == [
        "extra: b is gone: b exited (action 2) and a's wait reaped it (action 3)"]


def test_the_inverse_question_checks_the_learners_actions():
    question = actions.inverse(3, mode="subreaper")
    assert "Action?" in question.text() and "forks" not in question.text()
    assert not hasattr(question, "answer") and not hasattr(question, "run")  # nothing to read off
    assert actions.check_actions(actions.random_script(3), question).correct
    # Another script that makes the same tree is right too; a different tree is not.
    assert actions.check_actions("a+b; b+c; b+d; b-", "init\n├── a\n│   └── b (zombie)\n"
                                 "├── c\n└── d", mode="subreaper").correct
    wrong = actions.check_actions("a+b; b+c", {"b": "a", "c": "init"}, mode="subreaper")
    assert wrong.problems == [
        "c should be under init; your actions leave it under b: b forked c (action 2) and b "
        "has not exited"]


@pytest.mark.parametrize(("script", "message"), [
    ("a+b; b+c; b+b", "action 3 'b+b': b cannot fork itself"),
    ("a+b; q-", "action 2 'q-': no process named q"),
    ("a+b; b+c; c-; c+d", "action 4 'c+d': c has exited (it is a zombie) and cannot fork"),
    ("a+b; a+c; a+b", "action 3 'a+b': b already exists (names are not reused)"),
    ("a+b; b+Cat", "action 2 'b+Cat': names must be one lowercase letter, a to z (not 'Cat')"),
    ("a+b; b/c", "action 2 'b/c': not an action: use x+y"),
    ("a+b; a~b", "action 2 'a~b': b is still running"),
    ("a+b; b+c; c-; a~c", "action 4 'a~c': c is not a's child (its parent is b)"),
])
def test_bad_scripts_are_refused_naming_the_action_before_any_process(script, message):
    before = {p.pid for p in descendants()}
    with pytest.raises(ScriptError) as caught:
        actions.run(script)
    assert str(caught.value).startswith(message)
    assert caught.value.index == int(message.split()[1])
    assert {p.pid for p in descendants()} == before == set()


def test_a_bad_script_in_a_lab_creates_nothing_there(lab):
    with pytest.raises(ScriptError, match="action 2 'c-': no process named c"):
        actions.run("a+b, c-", lab=lab)
    assert lab_is_bare(lab)


def test_a_run_ends_its_actors_with_its_own_lab():
    run = actions.run("a+b; b+c; b-", mode="subreaper")
    assert wait_until(lambda: not descendants(), 10)
    assert run.final == {"a": (INIT, run.final["a"][1]), "b": ("a", "zombie"),
                         "c": (INIT, run.final["c"][1])}


def test_the_runner_drives_the_lab_through_its_public_methods_only():
    """labkit.action_runner is a client of Lab like a notebook: no `lab._anything`."""
    import ast
    import inspect

    from labkit import action_runner
    tree = ast.parse(inspect.getsource(action_runner))
    private = sorted({f"lab.{n.attr}" for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                      and isinstance(n.value, ast.Name) and n.value.id == "lab"
                      and n.attr.startswith("_")})
    assert private == []


def test_the_language_creates_no_process_and_knows_no_lab():
    """labkit.script (parse, the dry run, render, random scripts) imports nothing that runs a
    lab: a script is checked in full before any process exists."""
    import subprocess
    import sys
    code = ("import sys, labkit.script; "
            "print(sorted(m for m in sys.modules if m.startswith('labkit')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "labkit.lab" not in out and "labkit.action_runner" not in out
