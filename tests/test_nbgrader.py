"""The exercises go through the real nbgrader, as a teacher would use it: `nbgrader
generate_assignment` accepts every notebook with solution cells and releases it without answers
or hidden tests; `nbgrader autograde` gives the model answers full marks, an untouched release
none, and a student's mixed submission exactly the marks of the cells that are right. Scores
are read from nbgrader's own gradebook. The autograded notebooks run real processes, in a
kernel under the lab's init (python -m labkit.pause --subreaper --drain), as in
test_notebooks.py.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from support import child_env, install_kernel

# About 100 s on two shared cores: a generate and three autogrades of real processes.
pytestmark = pytest.mark.slow
pytest.importorskip("nbgrader", reason="nbgrader is in requirements-dev.txt")
from nbgrader.api import Gradebook  # noqa: E402

from labkit import exercises  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "make_student_version.py")
COURSE = "zombie-lab"


def load_tool():
    spec = importlib.util.spec_from_file_location("make_student_version", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()
NOTEBOOKS = tool.exercise_notebooks()


def graded_cells(nb) -> dict[str, dict]:
    """grade_id -> nbgrader metadata of the autograded (code) grade cells."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


def assignment(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0].replace("-", "_")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder with every exercise notebook as an assignment of its own, a kernel
    under labkit.pause, and nbgrader's `alembic` reachable (nbgrader runs it by name)."""
    root = tmp_path_factory.mktemp("course")
    for path in NOTEBOOKS:
        folder = root / "source" / assignment(path)
        folder.mkdir(parents=True)
        shutil.copy(path, folder)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.course_id = {COURSE!r}\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.Execute.timeout = 300\n")
    install_kernel(root / "jupyter")
    shims = root / "bin"
    shims.mkdir()
    alembic = shims / "alembic"  # the venv's script may name an interpreter this user can't read
    alembic.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m alembic "$@"\n')
    alembic.chmod(0o755)
    env = child_env(JUPYTER_PATH=str(root / "jupyter"),
                    PATH=os.pathsep.join([str(shims), os.environ.get("PATH", "")]))
    env.pop("NBGRADER_EXECUTION", None)
    return root, env


def nbgrader(course, *args: str) -> subprocess.CompletedProcess:
    root, env = course
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def released(course):
    """Every exercise notebook, released by `nbgrader generate_assignment`."""
    root, _ = course
    for path in NOTEBOOKS:
        nbgrader(course, "generate_assignment", assignment(path), "--force")
    return {path: nbformat.read(str(root / "release" / assignment(path) /
                                     os.path.basename(path)), as_version=4)
            for path in NOTEBOOKS}


def test_every_notebook_with_solution_cells_is_covered():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert "08-exercises.ipynb" in names
    eight = nbformat.read(NOTEBOOKS[names.index("08-exercises.ipynb")], as_version=4)
    assert len(graded_cells(eight)) == 7


def test_nbgrader_releases_every_exercise_notebook_without_answers_or_hidden_tests(released):
    for path, release in released.items():
        source = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in release.cells)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, path
        assert "grader." not in text  # the hidden checks are gone
        # Our own tool makes the same student version as nbgrader, cell for cell.
        ours = tool.student_version(source)
        assert [c.source for c in ours.cells] == [c.source for c in release.cells], path
        # nbgrader reads our metadata as we wrote it (it adds a checksum and the cell type).
        keys = ("grade", "solution", "locked", "points", "schema_version")
        assert {k: [v.get(x) for x in keys] for k, v in graded_cells(release).items()} == \
            {k: [v.get(x) for x in keys] for k, v in graded_cells(source).items()}


def scores(course, name: str, student: str) -> dict[str, float | None]:
    root, _ = course
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=COURSE) as gb:
        notebook = gb.find_submission_notebook(name, assignment_name(name), student)
        return {g.name: g.auto_score for g in notebook.grades}


def assignment_name(notebook: str) -> str:
    return notebook.replace("-", "_")


def submit(course, path: str, student: str, nb) -> None:
    root, _ = course
    folder = root / "submitted" / student / assignment(path)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / os.path.basename(path)))


def answered(source, release, answers: dict[str, str]):
    """The release as a student hands it in: the model answers (without nbgrader's markers),
    except the answer cells named in `answers`, which get that source."""
    nb = nbformat.from_dict(release)
    model = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
             if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            text = answers.get(gid, model[gid])
            cell.source = "\n".join(line for line in text.split("\n") if "SOLUTION" not in line)
    return nb


NEIGHBOUR, COPIER = "alice", "carol"


def copied_ps_answers() -> str:
    """The ps answers of NEIGHBOUR, as literal values a copier would paste."""
    ps = exercises.ps_exercise(NEIGHBOUR)
    zombies = [r for r in ps.rows if r.stat.startswith("Z")]
    values = {"zombies": len(zombies), "must_wait": zombies[0].ppid,
              "pids_held": sum(r.nlwp for r in ps.rows),
              "states": {"Z": "zombie", "S": "sleeping", "R": "running", "l": "threads"}}
    return f"answers = {values!r}"


MIXED = {  # answer cell -> a wrong answer, with the grade cell it must fail
    "reaper-answer": ("def on_sigchld(signum, frame):\n    try:\n        os.waitpid(-1, "
                      "os.WNOHANG)\n    except ChildProcessError:\n        pass", "reaper-check"),
    "popen-answer": ("def run_true(n):\n    for _ in range(n):\n        subprocess.Popen(['true'])"
                     "\n    return 50", "popen-check"),
    "ps-answer": (copied_ps_answers(), "ps-check"),
}


@pytest.fixture(scope="module")
def autograded(course, released):
    """Submissions autograded by `nbgrader autograde`: NEIGHBOUR hands in the model answers,
    `untouched` the release as it came, COPIER the model answers except three wrong ones."""
    eight = next(p for p in NOTEBOOKS if p.endswith("08-exercises.ipynb"))
    for path, release in released.items():
        source = nbformat.read(path, as_version=4)
        submit(course, path, NEIGHBOUR, answered(source, release, {}))
        submit(course, path, "untouched", release)
        if path == eight:
            wrong = {gid: text for gid, (text, _) in MIXED.items()}
            submit(course, path, COPIER, answered(source, release, wrong))
    for path in NOTEBOOKS:
        if graded_cells(released[path]):
            nbgrader(course, "autograde", assignment(path), "--force")
    return course


def test_the_model_answers_get_full_marks_and_an_untouched_release_none(autograded, released):
    for path, release in released.items():
        cells = graded_cells(release)
        if not cells:
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        full = scores(autograded, name, NEIGHBOUR)
        assert {k: full[k] for k in cells} == {k: float(v["points"]) for k, v in cells.items()}
        none = scores(autograded, name, "untouched")
        assert {k: none[k] for k in cells} == {k: 0.0 for k in cells}


def test_a_mixed_submission_loses_exactly_the_marks_of_its_wrong_cells(autograded, released):
    path = next(p for p in NOTEBOOKS if p.endswith("08-exercises.ipynb"))
    cells = graded_cells(released[path])
    got = scores(autograded, "08-exercises", COPIER)
    failing = {check for _, check in MIXED.values()}
    assert {k: got[k] for k in cells} == {k: 0.0 if k in failing else float(v["points"])
                                          for k, v in cells.items()}
    # The copied values were right for the neighbour: the grader recomputed the copier's own.
    assert exercises.check_ps(eval(copied_ps_answers().split(" = ", 1)[1]), NEIGHBOUR).correct
    root, _ = autograded
    graded = nbformat.read(str(root / "autograded" / COPIER / assignment(path) /
                               os.path.basename(path)), as_version=4)
    shown = "\n".join(o.get("text", "") for c in graded.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert f"exercises for {COPIER}" in shown
    assert "ps listing: not yet" in shown and "signals coalesce" in shown
