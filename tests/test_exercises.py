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
from nbclient import NotebookClient

from labkit import exercises

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "notebooks", "08-exercises.ipynb")
TOOL = os.path.join(REPO, "tools", "make_student_version.py")


# --- running a notebook headless, its kernel under the lab's init (as test_notebooks.py) ------

@pytest.fixture(scope="module")
def kernel_under_an_init(tmp_path_factory):
    spec_dir = tmp_path_factory.mktemp("jupyter") / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "labkit.pause", "--subreaper", "--drain", "--",
                     sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (under labkit.pause)", "language": "python",
            "interrupt_mode": "message"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(spec_dir.parent.parent)
    yield
    if old is None:
        del os.environ["JUPYTER_PATH"]
    else:
        os.environ["JUPYTER_PATH"] = old


def execute(nb: nbformat.NotebookNode, allow_errors: bool) -> nbformat.NotebookNode:
    env_path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path
    try:
        NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
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


def test_the_cells_follow_nbgraders_conventions():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    metas = [c.metadata["nbgrader"] for c in nb.cells if "nbgrader" in c.metadata]
    ids = [m["grade_id"] for m in metas]
    assert len(ids) == len(set(ids))
    assert all(m["schema_version"] == 3 for m in metas)
    assert all({"grade", "solution", "locked"} <= set(m) for m in metas)
    tests = grading(nb, "grade")
    assert all(m["points"] > 0 for m in (c.metadata["nbgrader"] for c in tests))
    assert all(c.metadata["nbgrader"]["locked"] for c in tests if c.cell_type == "code")
    answers = [c for c in grading(nb, "solution") if c.cell_type == "code"]
    assert len(answers) == 5
    assert all("### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source
               for c in answers)
    # nbgrader: a markdown solution cell is also a grade cell (manually graded)
    assert all(c.metadata["nbgrader"]["grade"] for c in grading(nb, "solution")
               if c.cell_type == "markdown")


def test_the_solutions_notebook_passes_every_check(kernel_under_an_init):
    nb = execute(nbformat.read(NOTEBOOK, as_version=4), allow_errors=False)
    checks = [c for c in grading(nb, "grade") if c.cell_type == "code"]
    assert len(checks) == 5
    for cell in checks:
        assert not errors(cell), cell.source
        assert "correct" in printed(cell) and "not yet" not in printed(cell), printed(cell)
    assert "SIGCHLD reaper: correct (1,000 children exited at once; 0 zombies remained" in \
        "".join(printed(c) for c in checks)


def test_the_student_version_fails_every_check_until_solved(kernel_under_an_init, tmp_path):
    out = tmp_path / "student.ipynb"
    done = subprocess.run([sys.executable, TOOL, str(out)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    solutions = nbformat.read(NOTEBOOK, as_version=4)
    student = nbformat.read(str(out), as_version=4)
    assert [c.metadata for c in student.cells] == [c.metadata for c in solutions.cells]
    text = "\n".join(c.source for c in student.cells)
    lines = {line.strip() for line in text.splitlines()}
    assert "### BEGIN SOLUTION" not in lines and "### END SOLUTION" not in lines
    for answer in ('"d": ("a", "zombie")', "a~; c+e", '"must_wait": 7', "Model answer",
                   "pid, _ = os.waitpid(-1, os.WNOHANG)", "p.wait() == 0"):
        assert answer not in text
    answers = [c for c in grading(student, "solution") if c.cell_type == "code"]
    assert all("raise NotImplementedError()" in c.source for c in answers)
    assert any("    # YOUR CODE HERE\n    raise NotImplementedError()" in c.source
               for c in answers)  # indented as the marker was, inside the def
    [explain] = [c.source for c in grading(student, "solution") if c.cell_type == "markdown"]
    assert explain.startswith("**4b") and explain.endswith("\n\nYOUR ANSWER HERE")

    nb = execute(student, allow_errors=True)
    checks = [c for c in grading(nb, "grade") if c.cell_type == "code"]
    for cell in checks:
        assert [e.ename for e in errors(cell)] == ["AssertionError"], cell.source
        assert "not yet" in printed(cell) or "not quite" in printed(cell), printed(cell)
    shown = "".join(printed(c) for c in checks)
    assert "your handler raised NotImplementedError" in shown
    assert "1,000 of the 1,000 children remain zombies" in shown
    assert "your function raised NotImplementedError" in shown
    assert "zombies: not answered yet" in shown
    # The given (locked) cells still run; nothing of the kernel is left behind.
    locked = [c for c in nb.cells if c.cell_type == "code"
              and not c.metadata.get("nbgrader", {}).get("grade")
              and not c.metadata.get("nbgrader", {}).get("solution")]
    assert not any(errors(c) for c in locked)
    assert "no zombie of this kernel is left" in printed(nb.cells[-1])


# --- the student version's transformation ---------------------------------------------------

def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_student_version", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_solution_regions_become_nbgraders_stubs_and_bad_markers_are_named():
    tool = load_tool()
    source = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
    assert tool.clear_solution(source, tool.CODE_STUB, "c") == (
        "def f():\n    x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()", True)
    assert tool.clear_solution("a = 1", tool.CODE_STUB, "c") == ("a = 1", False)
    with pytest.raises(tool.MarkerError, match="BEGIN SOLUTION without"):
        tool.clear_solution("### BEGIN SOLUTION\nx", tool.CODE_STUB, "cell 3")
    with pytest.raises(tool.MarkerError, match="inside a solution region"):
        tool.clear_solution("### BEGIN SOLUTION\n### BEGIN SOLUTION", tool.CODE_STUB, "c")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx\n"
                                                                   "### END SOLUTION")])
    with pytest.raises(tool.MarkerError, match="not a solution cell"):
        tool.student_version(nb)


def test_the_tool_refuses_to_overwrite_the_solutions():
    done = subprocess.run([sys.executable, TOOL, NOTEBOOK], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "must not be the solutions notebook" in done.stderr


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


def test_ps_answers_are_checked_one_by_one_with_the_reason():
    wrong = {"zombies": 4, "must_wait": 1, "pids_held": 5, "adopter": 7, "after_exit": "a",
             "kill9": "(b)", "states": {"Z": "zombie", "S": "stopped", "R": "running"}}
    result = exercises.check_ps(wrong)
    assert result.measured == "1 of 7 answers right"
    text = "\n".join(result.problems)
    assert "zombies: not 4. Count the lines whose STAT begins with Z" in text
    assert "must_wait: not 1. Only a zombie's parent can reap it" in text
    assert "pids_held: not 5. Every line holds a PID, zombies included" in text
    assert "adopter: not 7." in text and "never the orphan's grandparent" in text
    assert "after_exit: not (a)." in text
    assert "states: S is 'sleeping', not 'stopped'" in text
    assert "kill9" not in text
    assert exercises.check_ps({"zombies": "three"}).problems[0] == \
        "zombies: answer with a number, not 'three'"
    assert exercises.check_ps([]).problems[0].startswith("answers is a dict")
