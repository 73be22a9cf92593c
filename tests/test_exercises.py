"""The exercises (notebooks/08-exercises.ipynb, labkit.exercises, tools/make_student_version.py):
the solutions pass every check headless, the student version fails every check until solved,
and the checks say precisely what is wrong with known-wrong answers, measured on real processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest
from support import execute

from labkit import actions, exercises

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "notebooks", "08-exercises.ipynb")
TOOL = os.path.join(REPO, "tools", "make_student_version.py")



def test_the_reaper_trial_is_a_standard_library_program():
    """labkit.reaper_trial runs inside the lab under `python -S`: importing it loads nothing
    beyond the standard library and labkit's own package marker."""
    code = ("import json, sys; import labkit.reaper_trial; print(json.dumps([m for m in "
            "sys.modules if m.split('.')[0] not in sys.stdlib_module_names | {'__main__'}]))")
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert sorted(json.loads(out)) == ["labkit", "labkit.reaper_trial"]


# --- running a notebook headless, its kernel under the lab's init (conftest.py) --------------


def run_notebook(nb: nbformat.NotebookNode, allow_errors: bool) -> nbformat.NotebookNode:
    env_path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path
    try:
        execute(nb, os.path.dirname(NOTEBOOK), allow_errors=allow_errors)
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    return nb


def grading(nb: nbformat.NotebookNode, kind: str) -> list:
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get(kind)]


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def errors(cell) -> list:
    return [o for o in cell.outputs if o.output_type == "error"]


def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_student_version", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GRADED = ["ps-check", "ps-rules-check", "pod-check", "tree-check", "inverse-check",
          "popen-check", "reaper-check"]


@pytest.mark.parametrize("path", load_tool().exercise_notebooks(), ids=os.path.basename)
def test_the_cells_follow_nbgraders_conventions(path):
    nb = nbformat.read(path, as_version=4)
    metas = [c.metadata["nbgrader"] for c in nb.cells if "nbgrader" in c.metadata]
    ids = [m["grade_id"] for m in metas]
    assert len(ids) == len(set(ids))
    assert all(m["schema_version"] == 3 for m in metas)
    assert all({"grade", "solution", "locked"} <= set(m) for m in metas)
    tests = grading(nb, "grade")
    assert all(m["points"] > 0 for m in (c.metadata["nbgrader"] for c in tests))
    assert all(c.metadata["nbgrader"]["locked"] for c in tests if c.cell_type == "code")
    # nbgrader reads every line of every cell: prose that quotes a marker stops it
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution"):
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
        if not meta.get("grade"):
            assert "HIDDEN TESTS" not in cell.source
    # nbgrader: a markdown solution cell is also a grade cell (manually graded)
    assert all(c.metadata["nbgrader"]["grade"] for c in grading(nb, "solution")
               if c.cell_type == "markdown")


def test_every_graded_answer_of_08_has_hidden_tests_that_grade_the_login_being_graded():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    checks = {c.metadata["nbgrader"]["grade_id"]: c.source for c in grading(nb, "grade")
              if c.cell_type == "code"}
    assert list(checks) == GRADED
    for gid, source in checks.items():
        hidden = source.split("### BEGIN HIDDEN TESTS\n")[1].split("### END HIDDEN TESTS")[0]
        assert "importlib.reload(exercises)" in hidden, gid  # the checks as shipped
        assert "grader.login()" in hidden or "children=300" in hidden or "n=23" in hidden, gid
    answers = [c for c in grading(nb, "solution") if c.cell_type == "code"]
    assert len(answers) == 7
    assert all("### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source
               for c in answers)
    assert all(len(c.source.splitlines()) <= 12 for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
def test_the_solutions_notebook_passes_every_check(kernel_under_an_init):
    nb = run_notebook(nbformat.read(NOTEBOOK, as_version=4), allow_errors=False)
    checks = [c for c in grading(nb, "grade") if c.cell_type == "code"]
    assert len(checks) == 7
    for cell in checks:
        assert not errors(cell), cell.source
        assert "correct" in printed(cell) and "not yet" not in printed(cell), printed(cell)
    assert "SIGCHLD reaper: correct (1,000 children exited at once; 0 zombies remained" in \
        "".join(printed(c) for c in checks)


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
def test_the_student_version_fails_every_check_until_solved(kernel_under_an_init, tmp_path):
    out = tmp_path / "student.ipynb"
    done = subprocess.run([sys.executable, TOOL, str(out), NOTEBOOK], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    solutions = nbformat.read(NOTEBOOK, as_version=4)
    student = nbformat.read(str(out), as_version=4)
    assert [c.metadata for c in student.cells] == [c.metadata for c in solutions.cells]
    text = "\n".join(c.source for c in student.cells)
    assert "SOLUTION" not in text and "HIDDEN TESTS" not in text and "grader." not in text
    for answer in ("zombies[0].ppid", "sum(r.nlwp", "tini -s\" not in", "letter(\"sigterm\"",
                   "Model answer", "pid, _ = os.waitpid(-1, os.WNOHANG)", "p.wait() == 0",
                   "zombie.discard", "steps.append"):
        assert answer not in text
    answers = [c for c in grading(student, "solution") if c.cell_type == "code"]
    assert all("raise NotImplementedError()" in c.source for c in answers)
    assert any("    # YOUR CODE HERE\n    raise NotImplementedError()" in c.source
               for c in answers)  # indented as the marker was, inside the def
    [explain] = [c.source for c in grading(student, "solution") if c.cell_type == "markdown"]
    assert explain == "YOUR ANSWER HERE"

    nb = run_notebook(student, allow_errors=True)
    checks = [c for c in grading(nb, "grade") if c.cell_type == "code"]
    for cell in checks:
        assert [e.ename for e in errors(cell)] == ["AssertionError"], cell.source
        assert "not yet" in printed(cell) or "not quite" in printed(cell), printed(cell)
    shown = "".join(printed(c) for c in checks)
    assert "your handler raised NotImplementedError" in shown
    assert "1,000 of the 1,000 children remain zombies" in shown
    assert "your function raised NotImplementedError" in shown
    assert "zombies: not answered yet" in shown and "adopter: not answered yet" in shown
    # The given (locked) cells still run; nothing of the kernel is left behind.
    locked = [c for c in nb.cells if c.cell_type == "code"
              and not c.metadata.get("nbgrader", {}).get("grade")
              and not c.metadata.get("nbgrader", {}).get("solution")]
    assert not any(errors(c) for c in locked)
    assert "no zombie of this kernel is left" in printed(nb.cells[-1])


# --- the student version's transformation ---------------------------------------------------

def test_solution_regions_become_nbgraders_stubs_and_bad_markers_are_named():
    tool = load_tool()
    source = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
    assert tool.clear_solution(source, tool.CODE_STUB, "c") == (
        "def f():\n    x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()", True)
    assert tool.clear_solution("a = 1", tool.CODE_STUB, "c") == ("a = 1", False)
    with pytest.raises(tool.MarkerError, match="BEGIN SOLUTION' without"):
        tool.clear_solution("### BEGIN SOLUTION\nx", tool.CODE_STUB, "cell 3")
    with pytest.raises(tool.MarkerError, match="inside a region"):
        tool.clear_solution("### BEGIN SOLUTION\n### BEGIN SOLUTION", tool.CODE_STUB, "c")
    # As nbgrader: a marker quoted in prose, on one line, opens a region that never ends.
    with pytest.raises(tool.MarkerError, match="prose must not quote the markers"):
        tool.clear_solution("the `### BEGIN SOLUTION` / `### END SOLUTION` markers",
                            tool.TEXT_STUB, "cell 0")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx\n"
                                                                   "### END SOLUTION")])
    with pytest.raises(tool.MarkerError, match="not a solution cell"):
        tool.student_version(nb)
    hidden = nbformat.v4.new_code_cell("assert f()\n### BEGIN HIDDEN TESTS\nassert g()\n"
                                       "### END HIDDEN TESTS")
    hidden.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1}
    [cell] = tool.student_version(nbformat.v4.new_notebook(cells=[hidden])).cells
    assert cell.source == "assert f()"
    del hidden.metadata["nbgrader"]
    with pytest.raises(tool.MarkerError, match="not a grade cell"):
        tool.student_version(nbformat.v4.new_notebook(cells=[hidden]))


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
def test_the_tool_writes_a_student_version_of_every_notebook_with_solution_cells(tmp_path):
    done = subprocess.run([sys.executable, TOOL, str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    made = sorted(f for f in os.listdir(tmp_path / "out") if f.endswith(".ipynb"))  # not zh/
    assert "08-exercises.ipynb" in made
    assert made == [os.path.basename(p) for p in load_tool().exercise_notebooks()]
    for name in made:
        text = "\n".join(c.source for c in nbformat.read(str(tmp_path / "out" / name),
                                                          as_version=4).cells)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, name


def test_the_tool_refuses_to_overwrite_the_solutions():
    done = subprocess.run([sys.executable, TOOL, NOTEBOOK, NOTEBOOK], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "must not be the teacher's notebook" in done.stderr


# --- the checks' messages on known-wrong answers --------------------------------------------

ONCE = """
def on_sigchld(signum, frame):
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        pass
"""
NO_ECHILD = """
def on_sigchld(signum, frame):
    while os.waitpid(-1, os.WNOHANG)[0]:
        pass
"""
BLOCKING = """
def on_sigchld(signum, frame):
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
"""
RIGHT_BODY = """
while True:
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            return
    except ChildProcessError:
        return
"""


def test_a_handler_that_waits_once_per_signal_leaves_zombies_and_is_told_why():
    result = exercises.check_reaper(ONCE)
    assert not result
    zombies = result.facts["storm_zombies"]
    assert 0 < zombies < 1000
    [problem] = result.problems
    assert problem.startswith(f"{zombies:,} of the 1,000 children remain zombies after the "
                              "storm: your handler ran")
    assert "calls waitpid once per signal, but signals coalesce" in problem
    assert "(signal(7))" in problem and "until it returns (0, 0)" in problem
    assert exercises.zombie_children() == []


def test_a_handler_that_does_not_catch_echild_is_told_to():
    result = exercises.check_reaper(NO_ECHILD)
    assert result.facts["storm_zombies"] == 0
    [problem] = result.problems
    assert problem.startswith("your handler raised ChildProcessError ([Errno 10] No child "
                              "processes) when the last child was reaped")
    assert "Catch ChildProcessError" in problem


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
def test_a_handler_that_blocks_is_timed_and_told_about_wnohang():
    result = exercises.check_reaper(BLOCKING)
    assert result.facts["longest"] > exercises.BLOCKED_SECONDS
    [problem] = result.problems
    assert problem.startswith("your handler blocked for ")
    assert "Pass os.WNOHANG" in problem


def test_a_right_handler_passes_as_a_body_and_as_a_function():
    assert exercises.check_reaper(RIGHT_BODY).correct

    def on_sigchld(signum, frame):
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    return
            except ChildProcessError:
                return

    result = exercises.check_reaper(on_sigchld)
    assert result.correct, str(result)
    assert str(result).startswith("SIGCHLD reaper: correct (1,000 children exited at once; "
                                  "0 zombies remained")


@pytest.mark.parametrize(("handler", "words"), [
    ("def on_sigchld(:", "your handler does not compile: line 1"),
    ("pass", "1,000 of the 1,000 children remain zombies after the storm: your handler never "
             "calls os.waitpid"),
    ("def on_sigchld():\n    os.waitpid(-1, os.WNOHANG)", "a signal handler is called with two"),
    ("undefined_name()", "your handler raised NameError: name 'undefined_name' is not defined"),
])
def test_other_wrong_handlers_are_named(handler, words):
    result = exercises.check_reaper(handler)
    assert not result and any(words in p for p in result.problems), result.problems


jobs: list = []


def leaky(n):
    jobs.extend(subprocess.Popen(["true"]) for _ in range(n))
    return n


def test_a_popen_loop_that_never_waits_leaves_zombies_and_they_are_counted_and_reaped():
    result = exercises.check_popen(leaky)
    assert len(result.facts["zombies"]) == 50
    [problem] = result.problems
    assert problem.startswith("50 of the 50 `true` commands you started are zombies of this "
                              "process (PIDs ")
    assert "p.wait()" in problem and "waitpid(2)" in problem
    assert exercises.zombie_children() == []
    assert all(p.wait() == 0 for p in jobs)  # the Popen objects cope: the check reaped them
    jobs.clear()


def test_a_popen_loop_is_told_what_it_returned_and_what_it_ran():
    def no_return(n):
        for p in [subprocess.Popen(["true"]) for _ in range(n)]:
            p.wait()

    def too_few(n):
        return sum(subprocess.run(["true"]).returncode == 0 for _ in range(n - 3))

    def elsewhere(n):
        return sum(subprocess.run(["/bin/true"]).returncode == 0 for _ in range(n))

    assert exercises.check_popen(no_return).problems == [
        "your function returned None: return how many of the commands exited with status 0 "
        "(50 did)"]
    assert "you ran `true` 47 times, not 50" in exercises.check_popen(too_few).problems
    assert exercises.check_popen(elsewhere).problems[0].startswith(
        "none of your commands ran `true`")
    right = exercises.check_popen(lambda n: sum(subprocess.run(["true"]).returncode == 0
                                                for _ in range(n)))
    assert right.correct and str(right) == ("Popen loop: correct (`true` ran 50 times; no "
                                            "zombie was left)")


# --- per-student variants, and feedback that never hands over the answer --------------------

LOGINS = [f"student{i}" for i in range(40)]


def truth(who: str) -> dict:
    return exercises._ps_truth(exercises.ps_exercise(who))


def test_the_login_is_the_hub_user_or_under_autograde_the_submission_being_graded(
        monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTERHUB_USER", "ada")
    assert exercises.login() == "ada"
    folder = tmp_path / "autograded" / "grace" / "zombies"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert exercises.login() == "grace"  # nbgrader's autograded/STUDENT/ASSIGNMENT
    assert exercises.seed_for("ps") == exercises.seed_for("ps", "grace") != \
        exercises.seed_for("ps", "ada")


def test_neighbours_get_different_numbers_and_each_their_own_every_time():
    assert exercises.ps_exercise("ada") == exercises.ps_exercise("ada")
    assert len({exercises.ps_exercise(w).listing for w in LOGINS}) == len(LOGINS)
    assert len({exercises.tree_script(w) for w in LOGINS}) > len(LOGINS) // 2
    assert len({(p.pids_max, p.threads) for p in map(exercises.pod_exercise, LOGINS)}) > 30
    # a neighbour's values fail, with a hint
    ada, bob = truth("ada"), truth("bob")
    assert ada != bob
    copied = {**{k: ada[k] for k in ("zombies", "must_wait", "pids_held")},
              "states": {"Z": "zombie", "S": "sleeping", "R": "running", "l": "threads"}}
    assert exercises.check_ps(copied, "ada").correct
    assert not exercises.check_ps(copied, "bob").correct


def test_the_listing_shows_what_notebook_07_teaches_threads_ps_itself_and_the_whole_table():
    for who in LOGINS:
        ex = exercises.ps_exercise(who)
        assert ex.listing.splitlines()[0].startswith("$ ps -e -o pid,ppid,nlwp,stat,args")
        assert ex.rows[-1].args == exercises.PS_COMMAND  # ps lists itself
        node = next(r for r in ex.rows if r.args == "node server.js")
        assert node.stat == "Ssl" and node.nlwp > 1 and node.ppid == 0  # started by setns(2)
        assert truth(who)["pids_held"] == len(ex.rows) + node.nlwp - 1  # every thread counts


def test_the_adopter_is_the_nearest_subreaper_in_the_namespace_else_pid_1():
    adopters = {}
    for who in LOGINS:
        ex = exercises.ps_exercise(who)
        by_pid = {r.pid: r for r in ex.rows}
        gone, orphan = ex.orphan
        assert by_pid[orphan].ppid == gone
        adopters[by_pid[gone].args.split()[0]] = truth(who)["adopter"], by_pid[gone].ppid
    # node's parent is outside the pod's namespace (PPID 0): PID 1, the pause, adopts
    assert adopters["node"] == (1, 0)
    # sh's parent is tini -s, a child subreaper in the namespace: the grandparent adopts
    adopter, grandparent = adopters["/bin/sh"]
    assert adopter == grandparent != 1


def never_names(problems: list[str], values: list[int]) -> bool:
    """No number in the hints (after "key: not X.") is one of `values`; man page sections,
    notebook numbers and /proc fields aside."""
    import re
    hints = [re.sub(r"\w+\(\d\)|notebook \d+|field \d+", "", p.split(". ", 1)[-1])
             for p in problems]
    said = {int(n) for h in hints for n in re.findall(r"\b\d+\b", h)}
    return not (said & set(values))


def test_ps_feedback_points_to_the_rule_and_never_names_the_right_value():
    for who in LOGINS[:10]:
        right = truth(who)
        wrong = {"zombies": right["zombies"] + 1, "must_wait": 1,
                 "pids_held": len(exercises.ps_exercise(who).rows),
                 "states": {"Z": "zombie", "S": "stopped", "R": "running", "l": "locked"}}
        result = exercises.check_ps(wrong, who)
        assert result.measured == "0 of 4 answers right"
        assert never_names(result.problems, [right[k] for k in wrong if k != "states"]), \
            result.problems
        text = "\n".join(result.problems)
        assert "STAT begins with Z" in text and "Only a zombie's parent can reap it" in text
        assert "Count tasks, not lines: every thread holds a PID" in text
        assert "S does not mean 'stopped'" in text and "sleep" not in text
        rules = exercises.check_ps_rules({"adopter": 0, "after_exit": "z"}, who)
        text = "\n".join(rules.problems)
        assert "adopter: not 0. 0 is not a process. An orphan goes to another live thread" in text
        assert "nearest living ancestor in its PID namespace that is a child subreaper" in text
        assert "kernel/exit.c find_new_reaper" in text
        assert "after_exit: answer one of 'a', 'b', 'c'" in text
        assert "kill9: not answered yet" in text


def test_each_wrong_choice_gets_its_own_hint_and_the_letters_move_between_students():
    orders = {tuple(exercises.ps_exercise(w).questions["kill9"].split("(a) ")[1][:12]
                    for _ in [0]) for w in LOGINS}
    assert len(orders) == 3
    for who in LOGINS[:6]:
        ex = exercises.ps_exercise(who)
        removes, parent = ex.letter("kill9", "removes the zombie"), ex.letter("kill9", "kills")
        result = exercises.check_ps_rules({"kill9": removes}, who)
        assert any(p.startswith(f"kill9: not ({removes}). What is left in a zombie")
                   for p in result.problems)
        result = exercises.check_ps_rules({"kill9": parent}, who)
        assert any(p.startswith(f"kill9: not ({parent}). A signal goes to the process it is "
                                "sent to") for p in result.problems)
        result = exercises.check_ps_rules({"kill9": ex.letter("kill9", "nothing")}, who)
        assert not any(p.startswith("kill9") for p in result.problems)


def test_the_pod_budget_counts_every_thread_and_its_hint_says_so_not_the_number():
    for who in LOGINS[:10]:
        pod = exercises.pod_exercise(who)
        right = pod.pids_max - pod.threads - 2
        wrong = {"budget": pod.pids_max - 1, "sigterm": pod.letter("sigterm", "exits at once"),
                 "isolated": pod.letter("isolated", "the pause"),
                 "teardown": pod.letter("teardown", "kills the pause")}
        result = exercises.check_pod(wrong, who)
        assert result.measured == "0 of 4 answers right"
        assert never_names(result.problems, [right])
        text = "\n".join(result.problems)
        assert "counts every task of the cgroup: each thread" in text
        assert "pid_namespaces(7)" in text and "shareProcessNamespace" in text
        assert "not the kubelet's procedure" in text
        good = {"budget": right, "sigterm": pod.letter("sigterm", "grace period"),
                "isolated": pod.letter("isolated", "own PID namespace"),
                "teardown": pod.letter("teardown", "STOPSIGNAL")}
        assert exercises.check_pod(good, who).correct


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
def test_a_wrong_tree_gets_the_rule_and_the_actions_to_follow_never_the_tree():
    script = "a+b; b+c; b-; a+d"
    result = exercises.check_tree({"b": "a", "c": "a", "d": "a"}, script)
    assert not result.correct and result.facts == {}
    assert result.problems[0].startswith("b is not as you wrote it. Follow b and its parent "
                                         "through the script (actions 1, 2, 3 and 4).")
    assert result.problems[1].startswith("c is not as you wrote it.")
    assert all(actions.ADOPTION_RULE in p for p in result.problems)
    assert not any("parent is init" in p or "is a zombie" in p for p in result.problems)
    feedback = actions.check({"b": "a"}, script, reveal=False)
    assert feedback.expected == {} and feedback.run is None
    assert "2 processes are still there that your prediction leaves out" in str(feedback)
    assert exercises.check_tree({"b": ("a", "zombie"), "c": "init", "d": "a"}, script).correct


def test_the_hidden_checks_use_sizes_the_student_never_saw():
    def always_fifty(n):
        for p in [subprocess.Popen(["true"]) for _ in range(n)]:
            p.wait()
        return 50

    assert exercises.check_popen(always_fifty).correct  # the visible check: n = 50
    hidden = exercises.check_popen(always_fifty, n=23)
    assert not hidden.correct and "returned 50" in hidden.problems[0]


def test_every_students_scripts_ask_who_adopts_an_orphan():
    for who in LOGINS:
        assert "-" in exercises.tree_script(who)
    run = actions.run(exercises.tree_script("ada"))
    adopted = [name for name, proc in run.model.procs.items()
               if any(event[1] == "adopted" for event in proc.events)]
    assert adopted and all(run.final.get(n, ("init",))[0] == "init" for n in adopted)
    # the course's other seeds stay as they were (notebook 04 relies on them)
    assert actions.random_script(29, actions=6) == "a+b; b+c; b+d; a+e; b-; d-"
