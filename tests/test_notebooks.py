"""Every notebook runs top to bottom headless, as "Run All" would, and is stored clean."""

from __future__ import annotations

import functools
import glob
import json
import os

import nbformat
import pytest
from support import execute

# Learners on Binder and JupyterHub are uid 1000; the kernel runs under the lab's init.
pytestmark = [pytest.mark.user, pytest.mark.usefixtures("kernel_under_an_init")]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The English course, then its translations (notebooks/zh/, built by tools/i18n.py): each runs
# from its own folder, as a learner opens it.
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb"))) + \
    sorted(glob.glob(os.path.join(REPO, "notebooks", "*", "*.ipynb")))


def names(paths: list[str]) -> list[str]:
    """Test ids: `00-start-here.ipynb`, `zh/00-start-here.ipynb`."""
    return [os.path.relpath(p, os.path.join(REPO, "notebooks")) for p in paths]


def test_the_course_has_a_first_notebook():
    assert "00-start-here.ipynb" in names(NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=names(NOTEBOOKS))
def test_notebook_is_stored_without_outputs_and_with_a_kernel(path):
    with open(path) as f:
        raw = json.load(f)
    assert all(not c.get("outputs") and not c.get("execution_count")
               for c in raw["cells"] if c["cell_type"] == "code")
    assert "widgets" not in raw["metadata"]
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    nbformat.validate(nbformat.reads(json.dumps(raw), as_version=4))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=names(NOTEBOOKS))
def test_no_code_cell_is_longer_than_12_lines(path):
    """A beginner reads a cell at a glance; machinery longer than that belongs in labkit, under
    a name that teaches, where it is tested."""
    nb = nbformat.read(path, as_version=4)
    long = {i: len(c.source.splitlines()) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and len(c.source.splitlines()) > 12}
    assert not long, f"cells (index: lines) over 12 lines: {long}"


@functools.cache
def executed(path: str) -> nbformat.NotebookNode:
    """The notebook after a headless Run All (once per test session), from its own folder."""
    # CellExecutionError on the first failing cell
    return execute(nbformat.read(path, as_version=4), os.path.dirname(path))


def text_of(nb: nbformat.NotebookNode) -> str:
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") +
                     o.get("data", {}).get("text/html", "")
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)


# Every edition, as root and as uid 1000: a translation's code cells are the English ones, but
# what labkit prints follows the notebook's folder (labkit.i18n), so its output differs.
RUN = NOTEBOOKS


@pytest.mark.parametrize("path", RUN, ids=names(RUN))
@pytest.mark.slow
def test_notebook_runs_top_to_bottom_without_errors(path):
    nb = executed(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert "Traceback" not in text_of(nb)


@pytest.mark.slow
def test_start_here_shows_a_real_zombie_and_its_reaping():
    joined = text_of(executed(os.path.join(REPO, "notebooks", "00-start-here.ipynb")))
    assert "Orphans go to" in joined and "reaped the test orphan" in joined
    assert joined.count("lab-child [child] zombie") >= 5
    assert "State:\tZ (zombie)" in joined
    assert "<defunct>" in joined
    assert "'zombie': 5" in joined  # the live ones may be caught running rather than sleeping
