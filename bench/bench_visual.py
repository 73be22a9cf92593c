"""The lab's pictures: drawing the growth plot, and a dashboard refresh that redraws it.

Redraw (issues 4 and 11): `plot.growth` of a recording of a 5,000-process lab (600 samples, one
minute at 10 Hz), rendered to PNG (what a notebook output or the dashboard's image needs),
against the floor of matplotlib itself: a bare Figure with the same total as one line, rendered
the same way (savefig to PNG). Goal: <= 1.0x. The same recording each time, as a notebook redraws
it: a LabFigure's canvas keeps the text FreeType made (labkit.pngcanvas), so after the warm-up no
text is measured or rasterised again; a context row draws a different recording each time.

Dashboard refresh (issue 11): one `Dashboard.refresh()` that redraws (snapshot, labels, plot to
PNG) of a 1,000-zombie lab, this process's CPU time, against the bare one-line Figure rendered to
PNG, interleaved with it in the same run. Goal: <= 40 ms and <= 0.5x. (It was a test's bound
once; a CPU figure is a measurement, not a behaviour.)

What recording a lab costs is measured by bench_observe.py ("11 record").
"""

from __future__ import annotations

import io
import time
from functools import partial

from _common import Row, median, ms, spread, timed
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from labkit import Lab, plot
from labkit.observe import Series

SAMPLES = 600
ZOMBIES = 1000  # the refreshed dashboard's lab


def recording_of_a_big_lab(stretch: float = 1.0) -> Series:
    """A minute at 10 Hz of a lab that grows to 5,000 zombies and is reaped (made, not recorded:
    the redraw's cost depends on the samples, not on how they were taken). `stretch` scales
    its time and its counts: another recording, whose ticks and marks fall elsewhere."""
    series = Series()
    series.start = 0.0
    for i in range(SAMPLES):
        zombies = min(5000, i * 25) if i < 400 else max(0, 5000 - (i - 400) * 50)
        zombies = round(zombies * stretch)
        series.times.append(i / 10 * stretch)
        series.counts.setdefault("zombie", []).append(zombies)
        series.counts.setdefault("sleeping", []).append(3)
        series.total.append(zombies + 3)
        series.pids_in_use.append(zombies + 120)
    series.marks = [(1.0 * stretch, "parent 1234 (none)"), (1.1 * stretch, "fork 5000"),
                    (40.0 * stretch, "reap 5000")]
    return series


def draw_growth(series: Series) -> None:
    """What a notebook or the dashboard pays for a picture: the figure, rendered to PNG."""
    plot.growth(series).savefig(io.BytesIO(), format="png")


def draw_floor(series: Series) -> None:
    """The floor: a bare Figure of the total, saved by matplotlib's own PNG writer."""
    bare_figure(series).savefig(io.BytesIO(), format="png")


def pixels_only(make) -> None:
    """Context: a figure made and drawn by Agg (on its own canvas, when it has one: a LabFigure's
    keeps text across figures), without encoding a PNG."""
    fig = make()
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()


def bare_figure(series: Series) -> Figure:
    fig = Figure(figsize=plot.FIGSIZE, dpi=plot.DPI)
    fig.add_subplot().plot(series.times, series.total)
    return fig


def other_recordings(reps: int) -> Row:
    """Context: a different recording each time, both figures to PNG. The title, axis labels
    and legend are the same as ever (labkit.pngcanvas keeps their text); tick and mark labels
    fall elsewhere, so FreeType measures and rasterises them anew."""
    growth, floor = [], []
    for k in range(reps):
        other = recording_of_a_big_lab(stretch=1.0 + 0.0731 * (k + 1))
        growth.append(timed(partial(draw_growth, other)))
        floor.append(timed(partial(draw_floor, other)))
    return Row("4 redraw", "context: as above, a different recording each time (tick and mark "
               "labels new)", ms(median(growth)), ms(median(floor)),
               median(growth) / median(floor), "", None, spread(growth, floor))


def refresh_cpu(reps: int, baseline) -> tuple[list[float], list[float]]:
    """CPU seconds of each of `reps` dashboard refreshes that redraw, in a 1,000-zombie lab,
    each followed by the CPU seconds of one `baseline()`."""
    from labkit.widgets import Dashboard  # ipywidgets only for this row

    with Lab(max_procs=ZOMBIES + 10) as lab:
        dash = Dashboard(lab, children=ZOMBIES)
        try:
            dash.fork_button.click()
            lab.wait_for(lambda s: len(s.zombies) == ZOMBIES, timeout=30)
            dash.idle_redraw = 0.0  # draw on every refresh, as while the lab changes
            dash.refresh()  # warm-up
            costs, bare = [], []
            for _ in range(reps):
                costs.append(cpu_of(dash.refresh))
                bare.append(cpu_of(baseline))
        finally:
            dash.close()
    return costs, bare


def cpu_of(fn) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def run(reps: int, modes: list[str]) -> list[Row]:
    del modes  # the pictures do not depend on the lab's mode
    series = recording_of_a_big_lab()
    draw_growth(series)  # warm-up: fonts, caches
    draw_floor(series)
    growth, floor = [], []
    for _ in range(reps):
        growth.append(timed(lambda: draw_growth(series)))
        floor.append(timed(lambda: draw_floor(series)))
    ratio = median(growth) / median(floor)
    rows = [Row("4 redraw", f"plot.growth, {SAMPLES} samples of a 5,000-process lab, to PNG, "
                "vs a bare one-line Figure", ms(median(growth)), ms(median(floor)), ratio,
                "<= 1.00x", ratio <= 1.0, spread(growth, floor))]
    drawn, bare_drawn = [], []
    for _ in range(reps):
        drawn.append(timed(lambda: pixels_only(lambda: plot.growth(series))))
        bare_drawn.append(timed(lambda: pixels_only(lambda: bare_figure(series))))
    rows.append(Row("4 redraw", "context: the same two figures made and drawn, without PNG",
                    ms(median(drawn)), ms(median(bare_drawn)),
                    median(drawn) / median(bare_drawn), "", None, spread(drawn, bare_drawn)))
    rows.append(other_recordings(reps))
    refresh, bare = refresh_cpu(reps, lambda: draw_floor(series))
    ratio = median(refresh) / median(bare)
    rows.append(Row("4 refresh", f"dashboard refresh that redraws, {ZOMBIES:,}-process lab (CPU) "
                    "vs a bare one-line Figure to PNG", ms(median(refresh)), ms(median(bare)),
                    ratio, "<= 40 ms; <= 0.50x", median(refresh) <= 0.040 and ratio <= 0.5,
                    f"{reps} refreshes; fastest {ms(min(refresh))}; "
                    + spread(refresh, bare)))
    return rows
