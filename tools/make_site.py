"""Build the executed edition of the course: every notebook run headless here, saved as HTML.

    python tools/make_site.py [--notebooks DIR] [--out DIR] [--timeout SECONDS]

Every notebook under DIR (default notebooks/, subfolders too) is executed top to bottom with
nbclient, as "Run All" would, in its own folder, by a Jupyter kernel that runs under the lab's
init (`python -m labkit.pause --subreaper --drain`, as tests/test_notebooks.py does), so that
whatever a notebook orphans is reaped at once and nothing outlives the run. Each is rendered to
static HTML with nbconvert: OUT/NN-name.html (a notebook in DIR/sub/ goes to OUT/sub/), each
page headed by where, when and with which kernels it was executed, plus OUT/index.html linking
them. The outputs are a recording of that one run, and every page says so.

A notebook that fails is still rendered (with its error, where it stopped) and marked in the
index; the exit status is then 1. `make site` runs this under the lab's init too.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import html
import os
import platform
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass

import nbformat
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
if TOOLS not in sys.path:  # tools/ is no package; a test may load this file by its path
    sys.path.append(TOOLS)
import headless  # noqa: E402 (needs tools/ on sys.path)

HEADER_ID = "executed-edition"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in a traceback's text
STYLE = ("font-family: sans-serif; font-size: 14px; background: #fff8e1; border: 1px solid "
         "#e0c060; padding: 8px 12px; margin: 8px auto; max-width: 1100px")


@dataclass
class Page:
    """One notebook of the edition: where it came from, where it went, how the run ended."""

    source: str      # path relative to the notebooks folder
    html: str        # path relative to the output folder
    title: str
    error: str = ""  # empty when every cell ran


def find_notebooks(folder: str) -> list[str]:
    """The notebooks under `folder`, subfolders included (not Jupyter's checkpoints), sorted."""
    found = glob.glob(os.path.join(folder, "**", "*.ipynb"), recursive=True)
    return sorted(p for p in found if ".ipynb_checkpoints" not in p.split(os.sep))


def install_kernel(spec_root: str) -> str:
    """The python3 kernelspec under labkit.pause (tools/headless.py) in `spec_root`, first on
    JUPYTER_PATH. Returns the command line it runs, for the pages' header."""
    # The kernel imports this repository's labkit, whatever is installed.
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    headless.install_kernel(spec_root, env={"PYTHONPATH": path})
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        filter(None, [spec_root, os.environ.get("JUPYTER_PATH")]))
    return " ".join(["python", *headless.UNDER_PAUSE, "python", "-m", "ipykernel_launcher"])


def provenance(kernel_command: str) -> dict[str, str]:
    """Where, when and with which kernels the edition is executed."""
    uid = os.getuid()
    return {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "where": f"{socket.gethostname()} ({platform.machine()}, uid {uid}"
                 f"{' (root)' if uid == 0 else ''})",
        "linux": f"Linux {platform.release()}",
        "jupyter": f"Python {platform.python_version()} ({kernel_command})",
    }


def header(facts: dict[str, str], source: str = "", error: str = "") -> str:
    """The banner at the top of every page: this is a recording, and of which run."""
    what = (f"<b>Executed edition</b> of <code>{html.escape(source)}</code>"
            if source else "<b>Zombie Lab, executed edition</b>")
    lines = [
        f"{what}: the outputs below are a <b>recording</b> of one real run, not live.",
        f"Executed {html.escape(facts['when'])} on {html.escape(facts['where'])}.",
        f"Operating-system kernel: {html.escape(facts['linux'])}. Jupyter kernel: "
        f"{html.escape(facts['jupyter'])}, run headless with nbclient.",
        "Open the notebook in JupyterLab or on Binder to run it yourself.",
    ]
    if error:
        lines.append(f"<b>This run stopped with an error:</b> {html.escape(error)}")
    body = "<br>\n".join(lines)
    return f'<div id="{HEADER_ID}" style="{STYLE}">\n{body}\n</div>\n'


def with_header(page: str, banner: str) -> str:
    """The HTML page with the banner first in its body."""
    match = re.search(r"<body[^>]*>", page)
    if match is None:
        return banner + page
    return page[:match.end()] + "\n" + banner + page[match.end():]


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def execute(nb: nbformat.NotebookNode, folder: str, timeout: float) -> str:
    """Run every cell, in `folder`; the error that stopped the run, or ""."""
    try:
        headless.execute(nb, folder, timeout)
    except CellExecutionError as exc:
        return ANSI.sub("", f"{exc.ename}: {exc.evalue}")
    except Exception as exc:  # the kernel died or a cell timed out: say so in the page
        return f"{type(exc).__name__}: {exc}"
    return ""


def build_page(path: str, notebooks: str, out: str, facts: dict[str, str],
               timeout: float) -> Page:
    source = os.path.relpath(path, notebooks)
    target = os.path.splitext(source)[0] + ".html"
    nb = nbformat.read(path, as_version=4)
    error = execute(nb, os.path.dirname(os.path.abspath(path)), timeout)
    exporter = HTMLExporter()
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title_of(
        nb, source)}})
    os.makedirs(os.path.dirname(os.path.join(out, target)) or out, exist_ok=True)
    with open(os.path.join(out, target), "w", encoding="utf-8") as f:
        f.write(with_header(body, header(facts, source, error)))
    return Page(source, target, title_of(nb, source), error)


def index_page(pages: list[Page], facts: dict[str, str]) -> str:
    items = []
    for page in pages:
        state = " <b>(stopped with an error)</b>" if page.error else ""
        items.append(f'<li><a href="{html.escape(page.html)}">{html.escape(page.title)}</a> '
                     f"<small>({html.escape(page.source)})</small>{state}</li>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            "<title>Zombie Lab: executed edition</title></head>\n<body>\n"
            + header(facts)
            + "<h1>Zombie Lab: the course, executed</h1>\n<ol>\n" + "\n".join(items)
            + "\n</ol>\n</body></html>\n")


def build(notebooks: str, out: str, timeout: float) -> list[Page]:
    paths = find_notebooks(notebooks)
    if not paths:
        raise SystemExit(f"make_site: no notebooks (*.ipynb) under {notebooks}")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zombie-lab-site-") as spec_root:
        facts = provenance(install_kernel(spec_root))
        pages = []
        for path in paths:
            started = time.monotonic()
            page = build_page(path, notebooks, out, facts, timeout)
            state = f"FAILED: {page.error}" if page.error else "ok"
            print(f"make_site: {page.source} -> {os.path.join(out, page.html)} "
                  f"({time.monotonic() - started:.0f} s) {state}", flush=True)
            pages.append(page)
    with open(os.path.join(out, "index.html"), "w", encoding="utf-8") as f:
        f.write(index_page(pages, facts))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", default=os.path.join(REPO, "notebooks"),
                        help="folder of notebooks (subfolders too); default: notebooks/")
    parser.add_argument("--out", default=os.path.join(REPO, "site"),
                        help="folder for the HTML pages; default: site/")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds one cell may run (default 300)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.notebooks):
        parser.error(f"--notebooks {args.notebooks}: not a folder")
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0 seconds")
    pages = build(args.notebooks, args.out, args.timeout)
    failed = [p.source for p in pages if p.error]
    print(f"make_site: {len(pages) - len(failed)} of {len(pages)} notebooks executed; "
          f"open {os.path.join(args.out, 'index.html')}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
