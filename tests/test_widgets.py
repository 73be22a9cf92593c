"""The dashboard on real labs: its buttons act on real processes and its labels tell the truth.

Buttons are clicked from code (`button.click()` runs the same handler as a click in the page);
`refresh()` takes one snapshot and updates everything, as the refresh task does 5 times a second.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import io
import os
import time
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
from conftest import wait_until
from matplotlib.figure import Figure
from PIL import Image
from support import execute, ps_zombies_of

import labkit
from labkit import procfs
from labkit.widgets import PNG_DPI, Dashboard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"


state_letter = procfs.state  # the state in /proc/PID/stat (proc(5)); None if there is none


def zombies_shown(dash: Dashboard, n: int, timeout: float = 5.0) -> bool:
    """Refresh until the dashboard counts n zombies (children exit on their own time)."""
    return wait_until(lambda: len(dash.refresh().zombies) == n, timeout)


@pytest.fixture
def lab():
    with labkit.Lab(max_procs=200) as lab:
        yield lab


@pytest.fixture
def dash(lab):
    d = Dashboard(lab, policy="none", children=30)
    yield d
    d.close()


def test_fork_with_policy_none_makes_zombies_that_the_page_and_ps_show(dash):
    dash.fork_button.click()
    assert "forked 30 children" in dash.message
    assert zombies_shown(dash, 30)
    parent = dash.parent
    snap = dash.snapshot
    assert sorted(p.pid for p in snap.zombies) == sorted(
        p.pid for p in snap.children(parent.pid))
    assert 'class="labkit-count labkit-count-zombie"' in dash.counts.value
    assert "zombie: 30</span>" in dash.counts.value
    assert "30 children, 30 zombies" in dash.counts.value
    assert snap.tree(limit=8).splitlines()[0] in dash.table.value
    assert ps_zombies_of(parent.pid) == 30

    dash.reap_button.click()
    assert "reaped 30 children" in dash.message
    assert dash.snapshot.zombies == []
    assert "zombie: 0</span>" in dash.counts.value
    assert ps_zombies_of(parent.pid) == 0


def test_kill_9_leaves_a_zombie_a_zombie(dash):
    dash.children.value = 5
    dash.fork_button.click()
    assert zombies_shown(dash, 5)
    dash.kill_button.click()
    pid = dash.last_killed
    assert pid in [z.pid for z in dash.snapshot.zombies]
    time.sleep(0.1)  # a signal would have done its work by now
    assert state_letter(pid) == "Z"
    assert f"kill -9 sent to PID {pid}" in dash.message
    assert "it is still a zombie — only wait() removes it" in dash.message
    assert "still a zombie" in dash.status.value
    assert len(dash.refresh().zombies) == 5

    dash.reap_button.click()  # what does remove it
    assert state_letter(pid) is None


def test_parent_exit_hands_live_children_to_the_lab_root(dash, lab):
    dash.children.value = 5
    dash.lifetime.value = 30.0
    dash.fork_button.click()
    parent = dash.parent
    kids = wait_until(lambda: [p.pid for p in dash.refresh().children(parent.pid)
                               if p.state != "zombie"], 5)
    assert len(kids) == 5
    dash.exit_button.click()
    assert f"parent {parent.pid} exited" in dash.message
    assert f"adopted by the lab root {lab.root_pid}" in dash.message

    def adopted() -> bool:
        return all(psutil.Process(pid).ppid() == lab.root_pid for pid in kids)

    assert wait_until(adopted, 10)
    snap = dash.refresh()
    assert {p.pid for p in snap.procs if p.role == "orphan"} == set(kids)
    assert "5 orphans adopted by the root" in dash.counts.value


def test_buttons_that_make_no_sense_are_disabled_and_say_why(lab):
    dash = Dashboard(lab, policy="none", children=10)
    try:
        b = dash
        assert not b.fork_button.disabled and not b.exit_button.disabled
        assert not b.reset_button.disabled
        assert b.reap_button.disabled and b.reap_button.tooltip == "no zombies to reap"
        assert b.kill_button.disabled and b.kill_button.tooltip == "there is no zombie"
        assert "forks 10 children" in b.fork_button.tooltip

        b.lifetime.value = 30.0  # live children: still nothing to reap
        b.fork_button.click()
        dash.refresh()
        assert b.reap_button.disabled
        assert b.reap_button.tooltip == "no zombies to reap (10 children still running)"

        b.reset_button.click()  # those go to the root; a new parent makes zombies
        b.lifetime.value = 0.0
        b.fork_button.click()
        assert zombies_shown(dash, 10)
        assert not b.reap_button.disabled and not b.kill_button.disabled
        assert "waitpid" in b.reap_button.tooltip

        b.exit_button.click()
        assert b.exit_button.disabled
        assert b.exit_button.tooltip == "this parent has already exited"
        assert b.reap_button.disabled
        assert b.reap_button.tooltip.startswith("this parent has exited")
        assert wait_until(lambda: not dash.refresh().zombies, 10)  # the root reaped them
        assert b.kill_button.disabled and b.kill_button.tooltip == "there is no zombie"

        # A full lab: Fork is off, and says why.
        filler = lab.parent("none")
        filler.fork(lab.max_procs - len(lab.snapshot()))
        dash.refresh()
        assert b.fork_button.disabled and b.fork_button.tooltip.startswith("the lab is full")

        lab.close()
        assert dash.refresh() is None
        assert all(x.disabled and x.tooltip == "the lab is closed" for x in dash.buttons)
        assert "the lab is closed" in dash.message
    finally:
        dash.close()


def test_bad_input_is_shown_in_the_status_line_and_forks_nothing():
    with labkit.Lab(max_procs=40) as lab:
        dash = Dashboard(lab, children=5)
        try:
            dash.children.value = dash.children.max  # all the room there is
            other = lab.parent("none")
            other.fork(5)  # from code, behind the dashboard's back: the room is gone
            before = lab.snapshot().pids
            dash.fork_button.click()
            assert "CapacityError" in dash.message and "would not fit" in dash.message
            assert 'class="labkit-status labkit-status-error"' in dash.status.value
            assert dash.snapshot.children(dash.parent.pid) == []
            assert sorted(lab.snapshot().pids) == sorted(before)
            assert all(not b.disabled for b in (dash.fork_button, dash.reset_button))
            assert dash.children.value == dash.children.max  # clamped to the room now
        finally:
            dash.close()
    with pytest.raises(ValueError, match="policy"):
        Dashboard(policy="sometimes")


def test_a_new_policy_applies_to_the_next_parent(dash):
    first = dash.parent
    dash.policy.value = "wait"  # no children yet: the parent is replaced at once
    assert dash.parent is not first and not first.alive
    assert dash.parent.policy == "wait"

    dash.children.value = 5
    dash.lifetime.value = 30.0
    dash.fork_button.click()
    dash.policy.value = "none"  # it has children now: only Reset changes the parent
    assert dash.parent.policy == "wait" and "press Reset" in dash.message
    assert "policy 'none'" in dash.reset_button.tooltip

    old = dash.parent
    dash.reset_button.click()
    assert not old.alive and dash.parent.alive and dash.parent.policy == "none"
    assert f"parent {old.pid} exited" in dash.message


def test_the_refresh_task_runs_on_the_asyncio_loop_with_real_snapshots(dash, lab):
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        dash.start()
    other = lab.parent("none")

    async def until(predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # the loop runs the refresh task meanwhile
        return bool(predicate())

    async def watch() -> tuple[int, bool, bool, int, int]:
        dash.start()
        assert dash.running
        begun = len(dash.series)
        by_itself = await until(lambda: len(dash.series) >= begun + 3)
        other.fork(12)  # the kernel acts; the task's next snapshots must see it
        saw = await until(lambda: 12 in dash.series.zombies)
        dash.stop()
        stopped = len(dash.series)
        await asyncio.sleep(0.5)  # more than two refresh periods: a running task would refresh
        return begun, by_itself, saw, stopped, len(dash.series)

    before = len(dash.series)
    begun, by_itself, saw, stopped, after = asyncio.run(watch())
    assert begun == before  # start() refreshes from the loop, not in the caller
    assert by_itself, "the task did not refresh by itself"
    assert saw, "the task's snapshots never saw the 12 zombies appear: they are not real"
    assert after == stopped  # stopped: no more
    assert not dash.running
    assert dash.series.times == sorted(dash.series.times)
    assert dash.snapshot.by_pid(lab.root_pid) is not None


def test_one_dashboard_refreshes_at_a_time(dash, lab):
    """A cell run again makes a new dashboard: the old one stops taking the kernel's time."""
    newer = Dashboard(lab, autostart=False)

    async def both() -> tuple[bool, bool]:
        dash.start()
        await asyncio.sleep(0.3)
        newer.start()
        await asyncio.sleep(0.3)
        states = dash.running, newer.running
        newer.stop()
        return states

    try:
        assert asyncio.run(both()) == (False, True)
        assert "a newer one is live" in dash.message
    finally:
        newer.close()


def test_without_a_frontend_the_dashboard_shows_a_png(dash):
    dash.fork_button.click()
    zombies_shown(dash, 30)
    bundle = dash._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(PNG)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Dashboard" in bundle["text/plain"]
    assert bytes(dash.plot.value).startswith(PNG)
    assert isinstance(dash.figure(), Figure)


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_under_an_init")
def test_a_headless_run_of_the_dashboard_notebook_outputs_a_png():
    nb = nbformat.read(os.path.join(REPO, "tests", "browser", "dashboard.ipynb"), as_version=4)
    execute(nb)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert pictures, "the dashboard left no PNG in a headless run"
    assert base64.b64decode(pictures[0].data["image/png"]).startswith(PNG)


def test_close_closes_the_lab_only_if_the_dashboard_made_it(lab):
    borrowed = Dashboard(lab)
    borrowed.close()
    assert not lab.closed and borrowed.widget.comm is None
    own = Dashboard()
    own_lab = own.lab
    own.close()
    assert own_lab.closed


def test_a_refresh_redraws_the_plot_only_when_the_counts_changed(dash, monkeypatch):
    """Drawing is most of a refresh's cost, so a refresh whose counts stand still draws nothing
    (until `idle_redraw` s pass). What a redraw costs is measured in bench/bench_visual.py."""
    renders = []
    render = dash._render
    monkeypatch.setattr(dash, "_render", lambda: renders.append(1) or render())
    dash.idle_redraw = 3600.0  # while the counts stand still: never again
    dash.refresh()
    drawn, frames, shown = len(renders), dash.picture.frames, dash.plot.value
    dash.refresh()
    dash.refresh()
    assert len(renders) == drawn, "the counts stood still, yet the plot was drawn again"
    assert dash.picture.frames == frames and dash.plot.value == shown
    dash.fork_button.click()
    assert zombies_shown(dash, 30)
    assert len(renders) > drawn, "30 zombies appeared, yet the plot was not redrawn"
    drawn = len(renders)
    dash.refresh()
    assert len(renders) == drawn
    dash.idle_redraw = 0.0  # the once-a-second redraw of an idle dashboard, made immediate
    dash.refresh()
    assert len(renders) == drawn + 1


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGBA"))


def test_a_refresh_that_redraws_moves_the_same_figure_to_what_a_fresh_plot_shows(dash):
    """A redraw keeps the plot's figure and moves its artists (labkit.liveplot), and the page
    shows the pixels that plot.growth of the same window draws afresh."""
    dash.idle_redraw = 0.0  # every refresh draws, as while the lab changes
    dash.fork_button.click()
    assert zombies_shown(dash, 30)
    figure, builds, frames = dash.picture.figure, dash.picture.builds, dash.picture.frames
    for _ in range(3):
        dash.refresh()
    assert dash.picture.frames == frames + 3
    assert dash.picture.figure is figure and dash.picture.builds == builds
    fresh = io.BytesIO()
    dash.figure().savefig(fresh, format="png", dpi=PNG_DPI)
    assert np.array_equal(pixels(dash.plot.value), pixels(fresh.getvalue()))


def test_only_the_widgets_module_imports_ipywidgets():
    """The dashboard's words (dashboard_text) and actions (dashboard_actions) stand apart from
    the widgets: importing them, or any labkit module but widgets, loads no ipywidgets."""
    root = Path(labkit.__file__).parent
    importers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "ipywidgets" for n in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers == {"widgets.py"}
