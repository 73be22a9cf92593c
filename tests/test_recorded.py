"""Recorded runs, and notebooks 05/06 where namespaces are denied: every lesson still shows.

labkit/recordings/ holds real runs of the experiments that need namespaces, made by
tools/record_runs.py from the functions notebooks 05 and 06 call live (labkit.container,
labkit.podtour). These tests prove that a recording says where, when and on which kernel it was
made; that a fresh run here still has the same structure (the same keys, statuses and lines, with
PIDs, times, ports and inode numbers blurred); that a lesson shows a recording, labelled, exactly
where the kernel refuses; and that notebooks 05 and 06, run where namespaces are denied (the
seccomp filter of tests/test_degradation.py, as on mybinder.org), print no "Skipped" and leave no
section without output.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import redirect_stdout

import nbformat
import pytest
from support import execute
from test_degradation import env, kernel_under_the_filter, no_namespaces  # noqa: F401 (fixtures)

from labkit import container, podtour, recorded
from labkit.errors import NamespaceUnavailable

pytestmark = pytest.mark.user  # Binder is both: namespaces denied and uid 1000

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = {"05-the-pause-container": container.record,
             "06-namespaces-and-pods": podtour.record}


# --- the recordings ---------------------------------------------------------------------------

@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_a_recording_says_where_when_on_which_kernel_and_as_whom_it_was_made(notebook):
    recording = recorded.load(notebook)
    assert recording["notebook"] == notebook
    made = recording["recorded"]
    assert all(made[key] for key in ("machine", "kernel", "user", "when", "how"))
    label = recorded.label(recording)
    assert label.startswith("RECORDED, not run here: a real run on ")
    assert made["kernel"] in label and made["when"] in label
    assert f"site/{notebook}.html" in label  # the executed edition (make site)
    assert all(step["lines"] for step in recording["steps"].values())


@pytest.mark.skipif(not (shutil.which("tini") and shutil.which("dumb-init")),
                    reason="the recording has rows for tini and dumb-init: install both")
@pytest.mark.parametrize("notebook", NOTEBOOKS)
@pytest.mark.slow
def test_a_fresh_run_still_has_the_recorded_structure(notebook):
    """What the notebooks show as recorded is what the code does today, modulo what changes
    from run to run. Where this machine denies namespaces the fresh run cannot be made."""
    try:
        with redirect_stdout(io.StringIO()):
            fresh = NOTEBOOKS[notebook]()
    except NamespaceUnavailable as exc:
        pytest.skip(f"this machine denies namespaces: {exc}")
    finally:
        container.stop_all()
    stored = recorded.load(notebook)["steps"]
    assert list(fresh) == list(stored)
    for step in stored:
        assert recorded.structure(fresh[step]) == recorded.structure(stored[step]), step


def test_structure_blurs_pids_times_and_inodes_but_keeps_statuses_and_names():
    one = {"status": 137, "ns_pids": [4242, 1], "seconds": 1.02,
           "lines": ["sleep  exit status 137  after 1.02 s", "key 0x64db8c21 mnt:[4026532179]"]}
    two = {"status": 137, "ns_pids": [77, 1], "seconds": 0.98,
           "lines": ["sleep  exit status 137  after 0.98 s", "key 0xdeadbeef mnt:[4026532999]"]}
    assert recorded.structure(one) == recorded.structure(two)
    assert recorded.structure(one) != recorded.structure({**two, "status": 143})
    assert recorded.structure(one) != recorded.structure(
        {**two, "lines": ["tini  exit status 137  after 0.98 s", two["lines"][1]]})


# --- a lesson: live where allowed, recorded where refused --------------------------------------

def refused() -> dict:
    raise NamespaceUnavailable("no new PID namespace here: EPERM (Operation not permitted)")


def test_a_lesson_shows_the_labelled_recording_where_the_kernel_refuses():
    lesson = recorded.Lesson("05-the-pause-container")
    out = io.StringIO()
    with redirect_stdout(out):
        shown = lesson.show("pause_as_pid1", refused)
        again = lesson.show("sighup_then_sigterm_to_pid1", refused)
    stored = recorded.load("05-the-pause-container")["steps"]
    assert (shown, again) == (stored["pause_as_pid1"], stored["sighup_then_sigterm_to_pid1"])
    text = out.getvalue()
    assert text.count("RECORDED, not run here") == 2  # every recorded output is labelled
    assert "Not possible on this machine: no new PID namespace here: EPERM" in text
    assert "Not possible on this machine: (see above)" in text  # the reason once, in full
    assert "\n".join(stored["pause_as_pid1"]["lines"]) in text


def test_a_lesson_runs_the_experiment_live_where_it_can():
    lesson = recorded.Lesson("05-the-pause-container")
    out = io.StringIO()
    with redirect_stdout(out):
        shown = lesson.show("pause_as_pid1", lambda: {"lines": ["live"], "status": 0})
    assert shown == {"lines": ["live"], "status": 0}
    assert out.getvalue() == "live\n"


def test_a_lesson_shows_the_recording_for_a_pod_that_could_not_be_made():
    lesson = recorded.Lesson("06-namespaces-and-pods")
    lesson.refused("a pod is not possible here: EPERM", told=True)  # the cell printed it
    with redirect_stdout(io.StringIO()) as out:
        shown = lesson.show("hostnames", podtour.hostnames, None)
    assert shown["inside"] == "pod-a" and "RECORDED" in out.getvalue()
    assert "Not possible on this machine: (see above)" in out.getvalue()


def test_a_missing_recording_is_named_with_how_to_make_one():
    with pytest.raises(recorded.LabError, match="tools/record_runs.py"):
        recorded.load("99-no-such-notebook")


# --- labkit.container: the nearest real things -------------------------------------------------

HANDLERS = ("import signal, sys\n"
            "signal.signal(signal.SIGUSR1, lambda *a: None)\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})\n"
            "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
            "print('ready', flush=True)\nsys.stdin.read()\n")


def test_signal_sets_decodes_what_proc_says_a_process_catches_blocks_and_ignores():
    proc = subprocess.Popen([sys.executable, "-c", HANDLERS], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        sets = container.signal_sets(proc.pid)
    finally:
        proc.communicate("", timeout=10)
    assert "SIGUSR1" in sets["SigCgt"] and "SIGINT" in sets["SigCgt"]  # Python's own handler
    assert sets["SigBlk"] == ["SIGUSR2"]
    assert "SIGHUP" in sets["SigIgn"] and "SIGHUP" not in sets["SigCgt"]


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="needs a C compiler for pause.c")
def test_the_c_pause_catches_its_three_signals_and_the_python_pause_waits_for_them():
    with redirect_stdout(io.StringIO()):
        shown = container.signals_of_the_pauses()
    c_pause = shown["sets"]["a C pause (compiled here)"]
    assert c_pause["SigCgt"] == ["SIGINT", "SIGTERM", "SIGCHLD"]
    py_pause = shown["sets"]["labkit.pause (Python)"]
    # Asleep in sigwaitinfo: the kernel unblocks what it waits for until it wakes.
    assert py_pause["SigCgt"] == [] and "SIGTERM" not in py_pause["SigBlk"]
    assert shown["sets"]["sleep 60"]["SigCgt"] == []
    assert container.stop_all() >= 3


def test_a_subreaper_pause_adopts_and_reaps_a_members_orphan_without_any_namespace():
    near = podtour.subreaper_pod()
    assert near["orphan_adopted_by_pause"] is True
    assert near["reaped_status"] == -signal.SIGTERM
    assert near["namespaces_shared_with_notebook"] is True
    assert "a child subreaper" in near["lines"][0]


def test_docker_stop_of_ordinary_processes_shows_what_pid_1_changes():
    table = container.docker_stop_table(as_pid1=False, grace=1.0)
    rows = table["rows"]
    assert rows["sleep"]["status"] == 128 + signal.SIGTERM  # not PID 1: the default action
    # The pause forwards SIGTERM to its command, as tini does, and exits with its status.
    assert rows["labkit.pause -- sleep"] == {**rows["labkit.pause -- sleep"], "status": 143,
                                              "left": []}
    assert all(line.strip() for line in table["lines"])
    container.stop_all()


def test_start_as_pid1_is_refused_at_once_under_the_filter(no_namespaces, env):  # noqa: F811
    code = ("import time\nfrom labkit import container, errors\nstarted = time.monotonic()\n"
            "try:\n    container.pause_as_pid1()\nexcept errors.NamespaceUnavailable as exc:\n"
            "    print('refused', time.monotonic() - started < container.START_TIMEOUT, exc)\n")
    done = subprocess.run([no_namespaces, sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("refused True no new PID namespace here: labkit.unshare: ")
    assert "EPERM" in done.stdout


# --- notebooks 05 and 06 where namespaces are denied -------------------------------------------

def sections(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Each "## " section of an executed notebook: the text of every output of its code cells."""
    found: dict[str, list[str]] = {}
    title = "(before the first section)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    title = line
                    found.setdefault(title, [])
        elif cell.cell_type == "code":
            found.setdefault(title, []).append("".join(
                o.get("text", "") + json.dumps(o.get("data", {})) for o in cell.outputs))
    return found


@pytest.mark.parametrize("notebook", list(NOTEBOOKS))
@pytest.mark.usefixtures("kernel_under_the_filter")
@pytest.mark.slow
def test_where_namespaces_are_denied_no_section_is_skipped_or_empty(notebook):
    path = os.path.join(REPO, "notebooks", f"{notebook}.ipynb")
    nb = execute(nbformat.read(path, as_version=4), os.path.dirname(path), timeout=120)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    for title, outputs in sections(nb).items():
        shown = "\n".join(outputs)
        assert "skipped" not in shown.lower(), title
        assert not outputs or any(out.strip() for out in outputs), f"{title}: no output"
        if "RECORDED" in shown:  # and why: the reason the kernel gave, or "(see above)"
            assert "Not possible on this machine: " in shown, title
    everything = "\n".join("\n".join(o) for o in sections(nb).values())
    assert everything.count("RECORDED, not run here") >= 3
    assert "EPERM" in everything
    assert "Traceback" not in everything
