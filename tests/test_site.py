"""`make site`: tools/make_site.py executes notebooks headless and renders them to HTML pages
that show their outputs under a header saying where, when and with which kernels they ran.

The tests use a tiny notebook folder of their own. The whole course is not built again here:
tests/test_notebooks.py executes every notebook headless the same way (a second execution would
add two minutes to `make test` and prove nothing more); `make site` itself is run by hand.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "make_site.py")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(path, *cells) -> None:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = KERNELSPEC
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(nb, str(path))


def make_site(notebooks, out, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, "--notebooks", str(notebooks), "--out",
                           str(out)], capture_output=True, text=True, timeout=timeout)


def read(path) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_each_notebook_becomes_a_page_with_its_outputs_and_a_header_and_leaves_nothing(
        tmp_path):
    folder, out = tmp_path / "notebooks", tmp_path / "site"
    notebook(folder / "01-tiny.ipynb", new_markdown_cell("# A tiny lesson"),
             # A process that leaves the kernel's session (so the kernel's shutdown misses it)
             # and outlives the kernel: the kernel's init must take it down.
             new_code_cell("import os, subprocess\n"
                           "subprocess.Popen(['sleep', '3171'], start_new_session=True)\n"
                           "print('hello from pid', os.getpid())"))
    notebook(folder / "part-two" / "02-deeper.ipynb", new_code_cell("print(6 * 7)"))
    done = make_site(folder, out)
    assert done.returncode == 0, done.stdout + done.stderr
    page = read(out / "01-tiny.html")
    assert "hello from pid" in page                      # the output of a real run
    assert 'id="executed-edition"' in page and "<code>01-tiny.ipynb</code>" in page
    assert "a <b>recording</b> of one real run" in page
    assert f"Operating-system kernel: Linux {os.uname().release}" in page
    assert "Jupyter kernel: Python" in page and "labkit.pause --subreaper --drain" in page
    assert "42" in read(out / "part-two" / "02-deeper.html")  # subfolders too
    index = read(out / "index.html")
    assert '<a href="01-tiny.html">A tiny lesson</a>' in index
    assert '<a href="part-two/02-deeper.html">' in index
    assert not [p for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] == ["sleep", "3171"]]    # no orphan outlived the run


def test_a_failing_notebook_is_rendered_with_its_error_and_the_build_fails(tmp_path):
    folder, out = tmp_path / "notebooks", tmp_path / "site"
    notebook(folder / "01-broken.ipynb", new_code_cell("print('before')"),
             new_code_cell("1 / 0"), new_code_cell("print('ne' + 'ver')"))
    done = make_site(folder, out)
    assert done.returncode == 1
    assert "FAILED: 01-broken.ipynb" in done.stdout
    page = read(out / "01-broken.html")
    assert "before" in page and "never" not in page     # it stopped at the error
    assert "This run stopped with an error:</b> ZeroDivisionError: division by zero" in page
    assert "(stopped with an error)" in read(out / "index.html")


@pytest.fixture(scope="module")
def tool():
    """tools/make_site.py as a module, for what needs no kernel (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("make_site", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_site"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["make_site"]


@pytest.mark.parametrize(("args", "words"), [
    (["--notebooks", "/nonexistent-zombie-lab"], "not a folder"),
    (["--timeout", "0"], "--timeout must be more than 0"),
])
def test_bad_arguments_are_refused_before_anything_runs(tool, tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as exit_:
        tool.main(["--out", str(tmp_path / "site"), *args])
    assert exit_.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_a_folder_without_notebooks_says_so(tool, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        tool.main(["--notebooks", str(tmp_path), "--out", str(tmp_path / "site")])
    assert "no notebooks (*.ipynb) under" in str(exit_.value.code)
    assert not (tmp_path / "site").exists()
