"""labkit.plot: the figures show what the data says (checked on the artists, not on pixels),
drawn from real labs where it matters, and come out as PNG headless and in a notebook."""

from __future__ import annotations

import io
import os
import struct
import time

import nbformat
import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image
from support import execute, ps_zombies_of

import labkit
from labkit import plot
from labkit.liveplot import LiveGrowth
from labkit.observe import Proc, Series, Snapshot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- helpers ----------------------------------------------------------------------------------


def record_burst(lab: labkit.Lab, policy: str, n: int) -> tuple[Series, labkit.Parent, int]:
    """Record a parent of `policy` forking n children that exit at once; the series, the
    parent and the zombies `ps` counted among its children at the end."""
    with lab.record(interval=0.05) as rec:
        parent = lab.parent(policy=policy)
        parent.fork(n, lifetime=0.0)
        if policy == "none":
            lab.wait_for(lambda s: len(s.zombies) == n)
        else:
            lab.wait_for(lambda s: not s.children(parent.pid))
        time.sleep(0.15)  # a few samples of what came of it
        counted = ps_zombies_of(parent.pid)
    return rec.series, parent, counted


def band(ax, state: str):
    (found,) = [c for c in ax.collections if c.get_gid() == f"state:{state}"]
    return found


def top_of(collection) -> float:
    return max(float(p.vertices[:, 1].max()) for p in collection.get_paths())


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def by_gid(fig: Figure, gid: str) -> list:
    return fig.findobj(lambda a: a.get_gid() == gid)


def png_size(fig: Figure) -> tuple[int, int]:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = buffer.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR: width, height


def budget_series() -> Series:
    """A lab filling up with zombies until fork() is refused (by hand: real PID budgets are a
    later issue). 37 children fit under a budget of 40 with the root, agent and parent."""
    times = [i * 0.1 for i in range(60)]
    total = [min(3 + i, 40) for i in range(60)]
    zombies = [max(0, t - 4) for t in total]
    living = [t - z for t, z in zip(total, zombies, strict=True)]
    return Series(times=times, counts={"zombie": zombies, "sleeping": living},
                  total=total, pids_in_use=[500] * 60,
                  marks=[(0.05, "parent 12 (none)"), (4.2, "fork refused (EAGAIN) after 37")])


def small_series() -> Series:
    return Series(times=[0.0, 0.5, 1.0], counts={"zombie": [0, 3, 5], "sleeping": [2, 3, 3]},
                  total=[2, 6, 8], pids_in_use=[100, 104, 106], marks=[(0.4, "fork 5")])


@pytest.fixture
def lab():
    with labkit.Lab() as lab:
        yield lab


# --- growth and compare, from real labs --------------------------------------------------------


def test_growth_piles_zombies_up_to_what_ps_counts_and_marks_the_labs_actions(lab):
    series, parent, counted = record_burst(lab, "none", 60)
    fig = plot.growth(series)
    (ax,) = fig.axes
    assert counted == 60
    assert max(series.zombies) == 60
    assert top_of(band(ax, "zombie")) == 60  # zombies are the bottom band: its top is their count
    (total,) = by_gid(fig, "total")
    assert list(total.get_ydata()) == series.total
    assert ax.get_title(loc="left") == "Lab process table over time"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time (s)", "processes")
    labels = [label for _, label in series.marks]
    assert labels == [f"parent {parent.pid} (none)", "fork 60"]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sorted(seg[0][0] for seg in lines.get_segments()) == sorted(t for t, _ in series.marks)
    marks = [t.get_text() for t in ax.texts if t.get_gid() == "mark"]
    assert all(any(label in text for text in marks) for label in labels)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "total (lab)" and any(text.startswith("zombie") for text in legend)


def test_compare_draws_policies_side_by_side_on_shared_axes(lab):
    none, parent, _ = record_burst(lab, "none", 60)
    assert parent.reap() == 60  # the next recording starts from a lab without zombies
    sigchld, _, _ = record_burst(lab, "sigchld", 60)
    fig = plot.compare({"none": none, "sigchld": sigchld})
    assert len(fig.axes) == 2
    left, right = fig.axes
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["none", "sigchld"]
    assert left.get_ylim() == right.get_ylim() and left.get_xlim() == right.get_xlim()
    assert left.get_ylim()[1] >= max(max(none.total), max(sigchld.total))
    assert top_of(band(left, "zombie")) == 60
    assert top_of(band(right, "zombie")) == max(sigchld.zombies) < 60  # the handler reaps
    assert band(left, "zombie").get_facecolor()[0][:3] == pytest.approx(
        band(right, "zombie").get_facecolor()[0][:3])
    (legend,) = fig.legends  # one legend, for both
    assert "total (lab)" in [t.get_text() for t in legend.get_texts()]


def test_compare_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="at least one"):
        plot.compare({})
    with pytest.raises(TypeError, match="Series"):
        plot.compare({"none": [1, 2, 3]})
    with pytest.raises(TypeError, match="dict"):
        plot.compare([small_series()])


def test_growth_draws_into_a_given_axes_and_survives_a_series_caught_mid_append():
    series = small_series()
    series.times.append(1.5)  # a recorder appends times first, then the counts
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.growth(series, ax=ax, title="live") is fig
    assert ax.get_title(loc="left") == "live"
    assert len(by_gid(fig, "total")[0].get_xdata()) == 3


def test_a_window_of_a_long_recording_fills_the_time_axis():
    window = Series(times=[60.0, 61.0, 62.0], counts={"zombie": [1, 2, 3]}, total=[3, 4, 5],
                    pids_in_use=[9, 9, 9], marks=[(61.5, "fork 1")])
    (ax,) = plot.growth(window).axes
    assert ax.get_xlim() == (60.0, 62.0)


# --- tree --------------------------------------------------------------------------------------


def test_tree_labels_every_process_colours_zombies_and_hangs_orphans_from_the_root(lab):
    keeper = lab.parent(policy="none")
    keeper.fork(40, lifetime=0.0)
    leaver = lab.parent(policy="none")
    leaver.fork(3, lifetime=5.0)
    leaver.exit()
    snap = lab.wait_for(lambda s: len(s.zombies) == 40 and leaver.pid not in s.pids
                        and sum(p.role == "orphan" for p in s.procs) == 3)
    dead = sorted(p.pid for p in snap.children(keeper.pid))
    orphans = [p.pid for p in snap.procs if p.role == "orphan"]
    assert {snap.by_pid(pid).ppid for pid in orphans} == {lab.root_pid}
    fig = plot.tree(snap, max_children=12)
    (ax,) = fig.axes
    nodes = {t.get_gid()[5:]: t for t in ax.texts if str(t.get_gid()).startswith("node:")}
    shown = [p for p in snap.procs if str(p.pid) in nodes]
    # Everything but the 40-child parent's last 28 is drawn, once, labelled with its PID.
    assert len(shown) == len(snap) - 28
    assert set(nodes) == {str(p.pid) for p in shown} | {f"more:{keeper.pid}"}
    for p in shown:
        text = nodes[str(p.pid)].get_text()
        assert text.startswith(f"{p.pid} {p.name}") and p.state in text
        assert (f"ns PID {p.ns_pid}" in text) == (p.ns_pid != p.pid)  # a PID-namespace lab
    assert nodes[f"more:{keeper.pid}"].get_text() == "… 28 more (28 zombie)"
    assert sorted(p.pid for p in shown if p.ppid == keeper.pid) == dead[:12]
    zombie = nodes[str(dead[0])]
    assert zombie.get_bbox_patch().get_facecolor() == to_rgba(plot.PALETTE["zombie"])
    root = nodes[str(lab.root_pid)]
    for pid in orphans:
        label = nodes[str(pid)]
        assert "orphan (adopted)" in label.get_text()
        (edge,) = by_gid(fig, f"edge:{lab.root_pid}->{pid}")
        assert edge.anncoords is root and edge.xycoords is label  # from the root to the orphan
        assert edge.arrow_patch.get_linestyle() == "--"
    (agent_edge,) = by_gid(fig, f"edge:{lab.root_pid}->{lab.agent_pid}")
    assert agent_edge.arrow_patch.get_linestyle() == "-"
    assert png_size(fig)[0] == 1280


def test_tree_of_a_5000_process_lab_folds_the_crowd_into_one_label():
    procs = [Proc(1, 0, "sleeping", "root", "pause", 1), Proc(2, 1, "sleeping", "agent",
                                                                "lab-agent", 2),
             Proc(3, 2, "sleeping", "parent", "lab-parent", 3)]
    procs += [Proc(10 + i, 3, "zombie" if i % 4 else "sleeping", "child", "lab-child", 10 + i)
              for i in range(4990)]
    procs += [Proc(9000 + i, 1, "sleeping", "orphan", "lab-child", 7 + i) for i in range(5)]
    snap = Snapshot(tuple(procs), 1)
    fig = plot.tree(snap)
    width, height = png_size(fig)
    labels = texts(fig)
    assert "… 4978 more (3733 zombie)\n1245 sleeping" in labels
    assert any(text.startswith("9000 lab-child  (ns PID 7)") for text in labels)
    assert width == 1280 and height < 1600


def test_tree_refuses_what_it_cannot_draw():
    with pytest.raises(TypeError, match="Snapshot"):
        plot.tree(small_series())
    with pytest.raises(ValueError, match="max_children"):
        plot.tree(Snapshot((), 1), max_children=0)


# --- PID budget --------------------------------------------------------------------------------


def test_pid_budget_draws_the_limit_and_an_x_where_fork_was_refused():
    series = budget_series()
    fig = plot.pid_budget(series, 40)
    (ax,) = fig.axes
    (limit,) = by_gid(fig, "budget")
    assert set(limit.get_ydata()) == {40}
    (x,) = by_gid(fig, "refused")
    assert x.get_marker() == "X"
    assert list(x.get_xdata()) == [4.2]
    assert list(x.get_ydata()) == [pytest.approx(40)]
    labels = texts(fig)
    assert "PID budget 40" in labels
    assert any(text.startswith("fork refused (EAGAIN) after 37") for text in labels)
    (zombies,) = by_gid(fig, "zombies")
    assert top_of(zombies) == max(series.zombies)
    assert ax.get_ylim()[1] > 40


def test_pid_budget_refuses_a_budget_that_is_not_a_positive_count():
    with pytest.raises(ValueError, match="limit"):
        plot.pid_budget(budget_series(), 0)
    with pytest.raises(TypeError, match="limit"):
        plot.pid_budget(budget_series(), 40.5)


# --- every figure: empty data, PNG at 1280 x 720, headless in a notebook ---------------------


def test_empty_data_draws_a_figure_that_says_so():
    empty = Series()
    for fig in (plot.growth(empty), plot.pid_budget(empty, 10),
                plot.compare({"none": empty, "sigchld": small_series()})):
        assert plot.NO_SAMPLES in texts(fig)
        assert png_size(fig) == (1280, 720)
    assert "no processes in this snapshot" in texts(plot.tree(Snapshot((), 1)))


def test_every_figure_saves_as_a_1280_by_720_png():
    series = small_series()
    snap = Snapshot((Proc(1, 0, "sleeping", "root", "pause", 1),
                     Proc(2, 1, "sleeping", "agent", "lab-agent", 2),
                     Proc(3, 2, "sleeping", "parent", "lab-parent", 3),
                     Proc(4, 3, "zombie", "child", "lab-child", 4)), 1)
    for fig in (plot.growth(series), plot.compare({"a": series, "b": budget_series()}),
                plot.tree(snap), plot.pid_budget(budget_series(), 40)):
        assert png_size(fig) == (1280, 720)
        assert fig._repr_png_()[:4] == b"\x89PNG"


def test_unknown_states_are_grey_and_zombies_keep_their_colour():
    assert plot.colour("zombie") == plot.PALETTE["zombie"]
    assert plot.colour("no-such-state") == plot.UNKNOWN_COLOUR
    series = Series(times=[0.0, 1.0], counts={"zombie": [1, 2], "weird": [1, 1]},
                    total=[2, 3], pids_in_use=[1, 1])
    (ax,) = plot.growth(series).axes
    assert tuple(band(ax, "weird").get_facecolor()[0][:3]) == to_rgba(plot.UNKNOWN_COLOUR)[:3]


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_under_an_init")
def test_a_figure_is_a_png_output_in_a_headless_notebook_without_pyplot():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from labkit import plot\n"
            "from labkit.observe import Series\n"
            "s = Series(times=[0.0, 0.5, 1.0], counts={'zombie': [0, 3, 5]}, total=[2, 5, 7],\n"
            "           pids_in_use=[9, 9, 9], marks=[(0.4, 'fork 5')])\n"
            "plot.growth(s)"),
        nbformat.v4.new_code_cell("import sys\n'matplotlib.pyplot' in sys.modules"),
    ]
    execute(nb, REPO)
    (shown,) = nb.cells[0].outputs
    assert shown.output_type == "execute_result"
    png = shown.data["image/png"]  # base64, as nbformat stores it
    assert isinstance(png, str) and png.startswith("iVBORw0KGgo")
    (pyplot,) = nb.cells[1].outputs
    assert pyplot.data["text/plain"] == "False"  # drawn without pyplot's global state


def test_stacking_puts_zombies_at_the_bottom_in_a_fixed_order():
    series = Series(times=[0.0, 1.0], counts={"sleeping": [2, 2], "zombie": [0, 4],
                                              "running": [1, 0]},
                    total=[3, 6], pids_in_use=[1, 1])
    (ax,) = plot.growth(series).axes
    bands = [c.get_gid() for c in ax.collections if str(c.get_gid()).startswith("state:")]
    assert bands == ["state:zombie", "state:sleeping", "state:running"]
    assert np.isclose(top_of(band(ax, "running")), 6)  # the stack's top is the total


# --- the live growth plot (the dashboard's) and labkit's PNGs ---------------------------------


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGBA"))


def fresh_pixels(series: Series, title: str, dpi: float) -> np.ndarray:
    buffer = io.BytesIO()
    plot.growth(series, title=title).savefig(buffer, format="png", dpi=dpi)
    return pixels(buffer.getvalue())


def window_of(n: int, *, keep: int = 300, zombies=lambda i: min(3 * i, 90),
              extra: dict[str, int] | None = None) -> Series:
    """A dashboard's view after n samples at 5 Hz: the last `keep` of them, with the actions
    that happened inside that window."""
    start = max(0, n - keep)
    times = [i * 0.2 for i in range(start, n)]
    counts = {"zombie": [zombies(i) for i in range(start, n)],
              "sleeping": [3] * len(times)}
    for state, value in (extra or {}).items():
        counts[state] = [value] * len(times)
    total = [sum(c[k] for c in counts.values()) for k in range(len(times))]
    marks = [(0.4, "parent 12 (none)"), (0.45, "fork 30"), (9.0, "reap 30"),
             (9.1, "fork refused (EAGAIN) after 3"), (40.0, "fork 5")]
    return Series(times=times, counts=counts, total=total, pids_in_use=[500] * len(times),
                  marks=[m for m in marks if times and times[0] <= m[0]])


def test_the_live_plot_moves_one_figure_and_draws_the_pixels_of_a_fresh_growth():
    """The dashboard's picture: the same figure frame after frame (its artists moved, the
    layers that did not change kept), pixel for pixel what plot.growth draws afresh."""
    live = LiveGrowth(title="live", dpi=80)
    frames = [1, 2, 7, 30, 46, 47, 48, 120, 260, 301, 420]  # growing, then a moving window
    kept = None
    for n in frames:
        series = window_of(n)
        assert np.array_equal(pixels(live.png(series)), fresh_pixels(series, "live", 80)), n
        kept = kept or live.figure
        assert live.figure is kept  # moved, not made again
    assert live.builds == 1 and live.frames == len(frames)
    # A new state changes the legend: only then is a new figure made, and it is right too.
    series = window_of(421, extra={"running": 2})
    assert np.array_equal(pixels(live.png(series)), fresh_pixels(series, "live", 80))
    assert live.builds == 2 and live.figure is not kept
    empty = Series()
    assert np.array_equal(pixels(live.png(empty)), fresh_pixels(empty, "live", 80))


def test_a_figure_saved_as_png_holds_the_pixels_pillow_would_write():
    """LabFigure's PNGs skip Pillow's filter search (labkit.pngcanvas); the picture is the same
    and so is the metadata that matplotlib writes."""
    fig = plot.growth(budget_series())
    ours, pillows = io.BytesIO(), io.BytesIO()
    fig.savefig(ours, format="png")
    fig.savefig(pillows, format="png", pil_kwargs={})  # Pillow's encoder, as matplotlib uses it
    assert np.array_equal(pixels(ours.getvalue()), pixels(pillows.getvalue()))
    with Image.open(io.BytesIO(ours.getvalue())) as image:
        assert image.info["Software"].startswith("Matplotlib version")
        assert image.info["dpi"] == pytest.approx((plot.DPI, plot.DPI), abs=0.01)
    assert fig._repr_png_() == ours.getvalue()
    transparent = io.BytesIO()
    fig.savefig(transparent, format="png", transparent=True)
    assert pixels(transparent.getvalue())[0, 0, 3] == 0  # alpha survives where there is any


# --- text kept across figures (labkit.pngcanvas) -----------------------------------------------


def agg_pixels(fig: Figure, canvas_class) -> np.ndarray:
    canvas = canvas_class(fig)  # the figure now lives on this canvas
    canvas.draw()
    return np.array(canvas.buffer_rgba())


def test_text_kept_across_figures_draws_the_pixels_of_matplotlibs_own_renderer():
    """Every figure drawn twice on labkit's canvas (the second time from text kept by the first)
    holds the pixels matplotlib's own Agg canvas draws, colour and clipping of the text too."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from labkit.pngcanvas import PngCanvas

    def recoloured() -> Figure:  # the same texts in the same places, in other colours, clipped
        fig = plot.growth(small_series())
        ax = fig.axes[0]
        ax.title.set_color(plot.ALERT)
        for label in ax.get_yticklabels():
            label.set_color("purple")
        ax.text(-0.1, 0.5, "clipped by the axes", clip_on=True, fontsize=30)
        return fig

    snap = Snapshot((Proc(1, 0, "sleeping", "root", "pause", 1),
                     Proc(2, 1, "zombie", "child", "lab-child", 2)), 1)
    makers = [lambda: plot.growth(small_series()), recoloured,
              lambda: plot.growth(budget_series(), title="Same text, other place"),
              lambda: plot.pid_budget(budget_series(), 40), lambda: plot.tree(snap),
              lambda: plot.compare({"a": small_series(), "b": budget_series()})]
    for _ in range(2):
        for make in makers:
            ours = agg_pixels(make(), PngCanvas)
            assert np.array_equal(ours, agg_pixels(make(), FigureCanvasAgg)), make


def test_a_second_figure_does_not_measure_or_rasterise_its_text_again(monkeypatch):
    """What makes plot.growth cheap: its title, labels, legend and marks are measured and
    rasterised by FreeType once; the same figure again reuses both (pixels: the test above)."""
    from matplotlib.backends.backend_agg import RendererAgg

    calls = {"measured": 0, "drawn": 0}
    measure, draw = RendererAgg.get_text_width_height_descent, RendererAgg.draw_text

    def counted_measure(self, *args, **kwargs):
        calls["measured"] += 1
        return measure(self, *args, **kwargs)

    def counted_draw(self, *args, **kwargs):
        calls["drawn"] += 1
        return draw(self, *args, **kwargs)

    monkeypatch.setattr(RendererAgg, "get_text_width_height_descent", counted_measure)
    monkeypatch.setattr(RendererAgg, "draw_text", counted_draw)
    series, title = budget_series(), f"A title not drawn before {time.monotonic_ns()}"
    png_size(plot.growth(series, title=title))
    assert calls["drawn"] >= 1 and calls["measured"] >= 1  # matplotlib's own, for the title
    calls.update(measured=0, drawn=0)
    png_size(plot.growth(series, title=title))
    assert calls == {"measured": 0, "drawn": 0}
