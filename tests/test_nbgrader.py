"""The exercises go through the real nbgrader, as a teacher would use it, in both editions:
tools/nbgrader_course.py sets up the course (each exercise notebook an assignment, the Chinese
ones named NN-name-zh); `nbgrader generate_assignment` accepts every notebook with solution cells
and releases it without answers or hidden tests, as tools/make_student_version.py's folder mode
writes it; `nbgrader autograde` gives the model answers full marks, an untouched release none,
and a student's mixed submission exactly the marks of the cells that are right. The Chinese
release grades the same cells for the same points as the English, and its checks run in Chinese
by the folder rule alone (LABKIT_LANG unset). Scores are read from nbgrader's own gradebook. The
autograded notebooks run real processes, in a kernel under the lab's init (python -m
labkit.pause --subreaper --drain), as in test_notebooks.py.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import nbformat
import pytest
from support import child_env, install_kernel

# About 250 s on two shared cores: generates, and autogrades of real processes in two editions.
pytestmark = pytest.mark.slow
pytest.importorskip("nbgrader", reason="nbgrader is in requirements-dev.txt")
from nbgrader.api import Gradebook  # noqa: E402

from labkit import exercises, i18n  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COURSE = "zombie-lab"
tool = importlib.import_module("make_student_version")  # tools/, on sys.path by support
course_tool = importlib.import_module("nbgrader_course")
LANGS = list(tool.EDITIONS)
# assignment -> (edition, teacher's notebook), as the course tool names them
ASSIGNMENTS = {name: (lang, path) for lang in LANGS for name, path in
               course_tool.assignments([lang])}


def of(lang: str) -> dict[str, str]:
    """assignment -> teacher's notebook, of one edition."""
    return {name: path for name, (edition, path) in ASSIGNMENTS.items() if edition == lang}


def english(path: str) -> str:
    """The English teacher's notebook of the same name."""
    return os.path.join(tool.EDITIONS["en"][0], os.path.basename(path))


def graded_cells(nb) -> dict[str, dict]:
    """grade_id -> nbgrader metadata of the autograded (code) grade cells."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


def notebook_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder set up by tools/nbgrader_course.py with both editions, a kernel under
    labkit.pause, and nbgrader's `alembic` reachable (nbgrader runs it by name). Nothing in the
    environment chooses the language: only the assignment's folder does."""
    root = tmp_path_factory.mktemp("course")
    course_tool.setup(str(root), LANGS, COURSE)
    install_kernel(root / "jupyter")
    shims = root / "bin"
    shims.mkdir()
    alembic = shims / "alembic"  # the venv's script may name an interpreter this user can't read
    alembic.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m alembic "$@"\n')
    alembic.chmod(0o755)
    env = child_env(JUPYTER_PATH=str(root / "jupyter"),
                    PATH=os.pathsep.join([str(shims), os.environ.get("PATH", "")]))
    for name in ("NBGRADER_EXECUTION", i18n.ENV, i18n.SESSION_ENV):
        env.pop(name, None)
    return root, env


def nbgrader(course, *args: str) -> subprocess.CompletedProcess:
    root, env = course
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def released(course):
    """Every exercise notebook of both editions, released by `nbgrader generate_assignment`:
    assignment -> the release."""
    root, _ = course
    for name in ASSIGNMENTS:
        nbgrader(course, "generate_assignment", name, "--force")
    return {name: nbformat.read(str(root / "release" / name / os.path.basename(path)),
                                as_version=4)
            for name, (_, path) in ASSIGNMENTS.items()}


@pytest.fixture(scope="module")
def student_versions(tmp_path_factory) -> str:
    """The folder `python tools/make_student_version.py OUTDIR` writes, both editions."""
    out = tmp_path_factory.mktemp("students") / "out"
    done = subprocess.run([sys.executable, tool.__file__, str(out)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return str(out)


@pytest.mark.parametrize("lang", LANGS)
def test_every_notebook_with_solution_cells_is_covered(lang):
    names = {os.path.basename(p): a for a, p in of(lang).items()}
    assert names["08-exercises.ipynb"] == "08-exercises" + course_tool.SUFFIX[lang]
    eight = nbformat.read(of(lang)[names["08-exercises.ipynb"]], as_version=4)
    assert len(graded_cells(eight)) == 7
    # autograde runs in autograded/STUDENT/ASSIGNMENT: its name alone gives the language
    assert {i18n.folder_language(a) for a in names.values()} == {lang}


@pytest.mark.parametrize("lang", LANGS)
def test_nbgrader_releases_every_exercise_notebook_without_answers_or_hidden_tests(
        lang, released, student_versions):
    for name, path in of(lang).items():
        release = released[name]
        source = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in release.cells)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, name
        assert "grader." not in text  # the hidden checks are gone
        # Our own tool's folder mode makes the same student version as nbgrader, cell for
        # cell, where students keep it (the Chinese in zh/, which makes labkit speak Chinese).
        folder = os.path.join(student_versions, tool.EDITIONS[lang][1])
        assert i18n.folder_language(folder) == lang
        ours = nbformat.read(os.path.join(folder, os.path.basename(path)), as_version=4)
        assert [c.source for c in ours.cells] == [c.source for c in release.cells], name
        # nbgrader reads our metadata as we wrote it (it adds a checksum and the cell type),
        # and every edition grades the English cells for the English points.
        keys = ("grade", "solution", "locked", "points", "schema_version")
        got = {k: [v.get(x) for x in keys] for k, v in graded_cells(release).items()}
        assert got == {k: [v.get(x) for x in keys] for k, v in graded_cells(source).items()}
        assert got == {k: [v.get(x) for x in keys] for k, v in
                       graded_cells(nbformat.read(english(path), as_version=4)).items()}


def scores(course, assignment: str, student: str) -> dict[str, float | None]:
    root, _ = course
    notebook = notebook_name(ASSIGNMENTS[assignment][1])
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=COURSE) as gb:
        found = gb.find_submission_notebook(notebook, assignment, student)
        return {g.name: g.auto_score for g in found.grades}


def submit(course, assignment: str, student: str, nb) -> None:
    root, _ = course
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / os.path.basename(ASSIGNMENTS[assignment][1])))


def autograded_outputs(course, assignment: str, student: str) -> str:
    """The text every code cell of `student`'s autograded notebook printed."""
    root, _ = course
    graded = nbformat.read(str(root / "autograded" / student / assignment /
                               os.path.basename(ASSIGNMENTS[assignment][1])), as_version=4)
    return "\n".join(o.get("text", "") for c in graded.cells if c.cell_type == "code"
                     for o in c.outputs)


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


# A cell a student may add (nbgrader keeps it): the language labkit speaks where it is graded.
PROBE = ("import os\nfrom labkit import i18n\n"
         "print(f'labkit speaks {i18n.language()} in {os.path.basename(os.getcwd())}, '\n"
         "      f'LABKIT_LANG={os.environ.get(i18n.ENV)}')")


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
    """Submissions of both editions autograded by `nbgrader autograde`: NEIGHBOUR hands in the
    model answers and the PROBE cell, `untouched` the release as it came, and, in the English
    08, COPIER the model answers except three wrong ones."""
    eight = "08-exercises"
    for name, release in released.items():
        source = nbformat.read(ASSIGNMENTS[name][1], as_version=4)
        model = answered(source, release, {})
        model.cells.append(nbformat.v4.new_code_cell(PROBE))
        submit(course, name, NEIGHBOUR, model)
        submit(course, name, "untouched", release)
        if name == eight:
            wrong = {gid: text for gid, (text, _) in MIXED.items()}
            submit(course, name, COPIER, answered(source, release, wrong))
    for name, release in released.items():
        if graded_cells(release):
            nbgrader(course, "autograde", name, "--force")
    return course


@pytest.mark.parametrize("lang", LANGS)
def test_the_model_answers_get_full_marks_and_an_untouched_release_none(
        lang, autograded, released):
    graded = [name for name in of(lang) if graded_cells(released[name])]
    assert "08-exercises" + course_tool.SUFFIX[lang] in graded
    for name in graded:
        cells = graded_cells(released[name])
        full = scores(autograded, name, NEIGHBOUR)
        assert {k: full[k] for k in cells} == {k: float(v["points"]) for k, v in cells.items()}
        none = scores(autograded, name, "untouched")
        assert {k: none[k] for k in cells} == {k: 0.0 for k in cells}


@pytest.mark.parametrize("lang", LANGS)
def test_autograde_runs_the_checks_in_the_language_of_the_assignment_folder(
        lang, autograded, released):
    """Nothing tells the grader the language (LABKIT_LANG is unset): the -zh assignment
    folder makes labkit speak Chinese there, as the zh/ folder does for a learner."""
    graded = [name for name in of(lang) if graded_cells(released[name])]
    assert "08-exercises" + course_tool.SUFFIX[lang] in graded
    for name in graded:
        shown = autograded_outputs(autograded, name, NEIGHBOUR)
        assert f"labkit speaks {lang} in {name}, LABKIT_LANG=None" in shown, shown[-2000:]


def test_a_mixed_submission_loses_exactly_the_marks_of_its_wrong_cells(autograded, released):
    cells = graded_cells(released["08-exercises"])
    got = scores(autograded, "08-exercises", COPIER)
    failing = {check for _, check in MIXED.values()}
    assert {k: got[k] for k in cells} == {k: 0.0 if k in failing else float(v["points"])
                                          for k, v in cells.items()}
    # The copied values were right for the neighbour: the grader recomputed the copier's own.
    assert exercises.check_ps(eval(copied_ps_answers().split(" = ", 1)[1]), NEIGHBOUR).correct
    shown = autograded_outputs(autograded, "08-exercises", COPIER)
    assert f"exercises for {COPIER}" in shown
    assert "ps listing: not yet" in shown and "signals coalesce" in shown


def test_the_course_tool_keeps_a_teachers_edited_notebook_unless_forced(tmp_path):
    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, course_tool.__file__, str(tmp_path), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "assignment 08-exercises-zh:" in run("--lang", "zh")
    assert sorted(os.listdir(tmp_path / "source")) == sorted(of("zh"))
    edited = tmp_path / "source" / "08-exercises-zh" / "08-exercises.ipynb"
    edited.write_text(edited.read_text() + "\n")
    assert "kept " in run("--lang", "zh") and edited.read_text().endswith("\n\n")
    run("--lang", "zh", "--force")
    assert edited.read_bytes() == open(of("zh")["08-exercises-zh"], "rb").read()
