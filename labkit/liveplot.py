"""The growth plot kept alive: one figure whose artists follow a moving window of a Series.

    live = LiveGrowth(title="Lab process table, last 60 s", dpi=80)
    png = live.png(series)      # each refresh: the PNG of plot.growth(series, title=...)

The dashboard shows `plot.growth` of its last minute up to five times a second. Building that
figure and drawing all of it each time cost ~80 ms of the kernel's CPU (issue 11), most of it
matplotlib laying out and rasterising text that had not changed. LiveGrowth keeps one figure and
its Agg canvas, and on each frame
- moves the artists to the new samples: the bands' polygons, the total line, the limits; the
  action marks only when the marks in view change; a new figure only when the legend would
  change (a state appears or goes) or there was nothing to draw;
- draws in layers, each kept until what it shows changes: the page (background, title, legend),
  then the y axis (its ticks, labels and grid, until the y limits change), then, every frame,
  what moves (the x axis, the bands, the marks and their labels, the total, the spines), in
  matplotlib's z order. The page's artists lie where nothing that moves is drawn, so the pixels
  are those of a fresh `plot.growth` drawn at the same dpi (tests/test_plot.py compares them).
Knows no processes and no widgets: `labkit.widgets` uses it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.text import Text

from labkit import plot
from labkit.observe import Series
from labkit.plot import (
    _MARK_SIZE,
    _draw_mark_groups,
    _drawable,
    _extent,
    _limit,
    _mark_groups,
    _marks_in,
    _Samples,
    _states,
)
from labkit.pngcanvas import rgba_png, software


class LiveGrowth:
    """`plot.growth(series, title=title)` as PNG bytes at `dpi`, frame after frame, redrawing
    only what changed. Attributes for the curious (and the tests): `figure` (the one kept),
    `builds` (figures made so far), `frames` (PNGs made so far)."""

    def __init__(self, *, title: str, dpi: float) -> None:
        self.title = title
        self.dpi = dpi
        self.figure: Figure | None = None
        self.builds = 0
        self.frames = 0
        self._states: list[str] = []
        self._marks: tuple = ()   # the marks in view and their labels, as drawn
        self._page = None         # the page layer (Agg buffer region); None: draw it anew
        self._axis = None         # the page with the y axis, for the y limits in _axis_ylim
        self._axis_ylim: tuple[float, float] | None = None

    def png(self, series: Series) -> bytes:
        """The picture of `series` now: the kept figure, moved to its samples and redrawn."""
        data = _Samples.of(series)
        states = _states([data])
        if not self._move(data, states):
            self._build(series)
        self._draw()
        self.frames += 1
        return rgba_png(np.asarray(self.figure.canvas.buffer_rgba()), dpi=self.dpi,
                        metadata=software())

    # --- the artists ----------------------------------------------------------------------

    def _build(self, series: Series) -> None:
        fig = plot.growth(series, title=self.title)
        fig.set_dpi(self.dpi)
        self.figure = fig
        data = _Samples.of(series)
        self._states = _states([data])
        self._marks = _marks_key(fig.axes[0], _drawable(data)) if data.n else ()
        self._page = self._axis = self._axis_ylim = None
        self.builds += 1

    def _move(self, data: _Samples, states: list[str]) -> bool:
        """Moves the kept figure's artists to `data`; False when only a new figure shows it."""
        if self.figure is None or not data.n or states != self._states:
            return False
        ax = self.figure.axes[0]
        bands = _bands(ax)
        if len(bands) != len(states):
            return False  # the figure says there are no samples
        drawn = _drawable(data)
        # As stackplot stacks them: each band from the running sum below it to its own top.
        stack = np.cumsum(np.vstack([drawn.state(s) for s in states]), axis=0)
        floor = np.zeros(drawn.n)
        for band, top in zip(bands, stack, strict=True):
            band.set_verts([_between(drawn.times, floor, top)])
            floor = top
        (total,) = [line for line in ax.lines if line.get_gid() == "total"]
        total.set_data(drawn.times, drawn.total)
        _limit(ax, [data])
        self._move_marks(ax, drawn)
        return True

    def _move_marks(self, ax, drawn: _Samples) -> None:
        key = _marks_key(ax, drawn)
        if key == self._marks:
            return  # the same marks: drawn in data coordinates, they follow the x axis
        for artist in [*ax.collections, *ax.texts]:
            if artist.get_gid() in ("marks", "mark"):
                artist.remove()
        shown, labels = key
        if shown:
            _draw_mark_groups(ax, list(shown), list(labels), _MARK_SIZE)
        self._marks = key

    # --- the pixels ------------------------------------------------------------------------

    def _draw(self) -> None:
        fig = self.figure
        ax = fig.axes[0]
        canvas = fig.canvas
        moving = _moving(ax)
        if self._page is None:
            with _hidden([*moving, ax.yaxis]):
                canvas.draw()
            self._page = canvas.copy_from_bbox(fig.bbox)
        ylim = ax.get_ylim()
        if ylim != self._axis_ylim:
            canvas.restore_region(self._page)
            ax.draw_artist(ax.yaxis)
            self._axis = canvas.copy_from_bbox(fig.bbox)
            self._axis_ylim = ylim
        else:
            canvas.restore_region(self._axis)
        for artist in moving:
            ax.draw_artist(artist)


def _marks_key(ax, drawn: _Samples) -> tuple:
    """The marks in view and their labels, as plot.growth draws them for these samples."""
    span = _extent(drawn)
    shown = _marks_in(drawn.marks, span)
    return tuple(shown), tuple(_mark_groups(ax, shown, span, _MARK_SIZE) if shown else ())


def _between(t: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The polygon fill_between makes of the area between two curves (matplotlib 3.8 to 3.11
    alike): from (t0, high0) along the low curve to (tn, highn), then back along the high one.
    Made here because FillBetweenPolyCollection.set_data (3.10+) costs ten times as much."""
    n = len(t)
    points = np.empty((2 * n + 2, 2))
    points[0] = t[0], high[0]
    points[1:n + 1, 0], points[1:n + 1, 1] = t, low
    points[n + 1] = t[-1], high[-1]
    points[n + 2:, 0], points[n + 2:, 1] = t[::-1], high[::-1]
    return points


def _bands(ax) -> list:
    return [c for c in ax.collections if str(c.get_gid()).startswith("state:")]


def _moving(ax) -> list[Artist]:
    """What is drawn anew every frame: all but the page (the axes' background, its titles and
    legend) and the y axis, in the order Axes.draw draws them (by zorder, ties as listed)."""
    titles = [a for a in ax.get_children() if isinstance(a, Text) and a not in ax.texts]
    still = {id(a) for a in (ax.patch, ax.yaxis, ax.get_legend(), *titles)}
    return sorted((a for a in ax.get_children() if id(a) not in still),
                  key=lambda a: a.get_zorder())


@contextmanager
def _hidden(artists: Sequence[Artist]) -> Iterator[None]:
    shown = [a for a in artists if a.get_visible()]
    for a in shown:
        a.set_visible(False)
    try:
        yield
    finally:
        for a in shown:
            a.set_visible(True)
