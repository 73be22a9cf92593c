"""Pictures of the lab: matplotlib figures drawn from a Series or a Snapshot.

Knows no processes and no widgets: every function draws data that `labkit.observe` already
recorded, and returns a Figure. The figures are built with `matplotlib.figure.Figure`, never with
pyplot, so that they need no display and leave no global state behind (pyplot keeps every figure
it made until it is closed). They are sized for a classroom projector (1280 x 720 pixels, large
type) and use the Okabe-Ito colours, which stay distinct for colour-blind readers; zombies are
always green, and hatched.

    growth(series)                 the lab's process table over time, by state, with the actions
    compare({"none": s1, ...})     the same, side by side with shared axes (e.g. one per policy)
    tree(snapshot)                 the process tree at one moment, coloured by state
                                   (drawn by labkit.treeplot)
    pid_budget(series, limit)      the lab's processes against a PID budget, and where fork failed

The palette, the canvas and the layout every figure shares are in `labkit.plotstyle`; its public
names (`colour`, `ink`, `PALETTE`, ...) are re-exported here, where notebooks and the dashboard
find them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from labkit import checks
from labkit.observe import ZOMBIE, Series
from labkit.plotstyle import (
    _STYLE,
    ALERT,
    DPI,
    FIGSIZE,
    NO_SAMPLES,
    OKABE_ITO,
    PALETTE,
    UNKNOWN_COLOUR,
    ZOMBIE_HATCH,
    LabFigure,
    _bottom,
    _figure,
    _legend_below,
    _legend_columns,
    _legend_rows,
    _margins,
    _say,
    _title,
    colour,
    ink,
)
from labkit.treeplot import tree

__all__ = ["ALERT", "DPI", "FIGSIZE", "NO_SAMPLES", "OKABE_ITO", "PALETTE", "UNKNOWN_COLOUR",
           "ZOMBIE_HATCH", "LabFigure", "colour", "compare", "growth", "ink", "pid_budget", "tree"]

# How each state is named in legends (the artists themselves are labelled with the bare state).
_LEGEND_NAMES = {ZOMBIE: "zombie (exited, not reaped)"}

# The size of the action labels in a growth plot (compare's smaller panels use smaller ones).
_MARK_SIZE = 11

# Stacking order, bottom first: zombies lie on the floor, where a pile-up is seen at once.
_STATE_ORDER = (ZOMBIE, "sleeping", "running", "disk-sleep", "stopped", "tracing-stop", "dead")


# --- growth and compare ---------------------------------------------------------------------


@mpl.rc_context(_STYLE)
def growth(series: Series, *, title: str | None = None, ax: Axes | None = None) -> Figure:
    """The lab's process table over time: one stacked band per state (zombies at the bottom),
    the lab's total as a line, and the lab's actions (fork, reap, parent exits) as markers.

    With `ax`, draws into that Axes (a dashboard's) and returns its figure; the caller then owns
    the layout (leave about an inch below the axes for the legend).
    """
    _check_series(series, "growth")
    data = _Samples.of(series)
    states = _states([data])
    if ax is None:
        fig = _figure()
        ax = fig.add_subplot()
        _margins(fig, bottom=_bottom(_legend_rows(_legend_labels(states)) if data.n else 0))
    else:
        fig = ax.figure
    _draw_growth(ax, data, states, mark_size=_MARK_SIZE)
    _limit(ax, [data])
    _title(ax, "Lab process table over time" if title is None else title)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("processes")
    if data.n:
        _legend_below(ax, *_legend_entries(ax))
    return fig


@mpl.rc_context(_STYLE)
def compare(series_by_name: Mapping[str, Series], *, title: str | None = None) -> Figure:
    """Small multiples of `growth`, one per entry (e.g. one per policy), titled by its key, with
    shared x and y axes, the same colours and one legend: differences read as differences."""
    if not isinstance(series_by_name, Mapping):
        raise TypeError("compare() takes a dict of name -> Series, e.g. "
                        f"{{'none': s1, 'sigchld': s2}}, not {type(series_by_name).__name__}")
    if not series_by_name:
        raise ValueError("compare() needs at least one series to draw: "
                         "pass a dict such as {'none': s1, 'sigchld': s2}")
    for name, series in series_by_name.items():
        _check_series(series, f"compare() entry {name!r}")
    n = len(series_by_name)
    cols = n if n <= 4 else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    data = [_Samples.of(s) for s in series_by_name.values()]
    states = _states(data)
    legend_rows = _legend_rows(_legend_labels(states)) if any(d.n for d in data) else 0
    fig = _figure(size=(FIGSIZE[0], max(FIGSIZE[1], 3.2 * rows + 1.6)))
    grid = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    _margins(fig, top=0.95, bottom=_bottom(legend_rows), columns=cols, rows=rows)
    axes = list(grid.flat)
    for ax in axes[n:]:
        fig.delaxes(ax)
    axes = axes[:n]
    for i, (ax, name, samples) in enumerate(zip(axes, series_by_name, data, strict=True)):
        _draw_growth(ax, samples, states, mark_size=10 if cols <= 2 else 9)
        _title(ax, str(name))
        lowest = i + cols >= n  # nothing drawn below it: it carries the time axis
        ax.xaxis.set_tick_params(labelbottom=lowest)
        ax.set_xlabel("time (s)" if lowest else "")
        ax.set_ylabel("processes" if i % cols == 0 else "")
    _limit(axes[0], data)  # the axes are shared: this sets them all
    fig.suptitle("Lab process table over time, side by side" if title is None else title,
                 x=0.5, y=1 - 0.12 / fig.get_figheight(), va="top")
    drawn = next((ax for ax, d in zip(axes, data, strict=True) if d.n), None)
    if drawn is not None:
        handles, labels = _legend_entries(drawn)
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.01),
                   ncols=_legend_columns(labels), frameon=False)
    return fig


@dataclass
class _Samples:
    """A Series as arrays, cut to the samples every list has (a recorder may be mid-append)."""

    times: np.ndarray
    counts: dict[str, np.ndarray]
    total: np.ndarray
    marks: list[tuple[float, str]]

    @property
    def n(self) -> int:
        return len(self.times)

    @classmethod
    def of(cls, series: Series) -> _Samples:
        counts = dict(series.counts)
        n = min([len(series.times), len(series.total)] + [len(v) for v in counts.values()])
        return cls(np.asarray(series.times[:n], dtype=float),
                   {s: np.asarray(v[:n], dtype=float) for s, v in counts.items()},
                   np.asarray(series.total[:n], dtype=float), list(series.marks))

    def state(self, name: str) -> np.ndarray:
        values = self.counts.get(name)
        return np.zeros(self.n) if values is None else values


def _states(data: Sequence[_Samples]) -> list[str]:
    """States to stack, bottom first: zombies always (a zero band still has its legend entry),
    then every state that occurred, the usual ones in a fixed order, others by name."""
    seen = {ZOMBIE}
    for d in data:
        seen.update(s for s, v in d.counts.items() if v.any())
    rank = {s: i for i, s in enumerate(_STATE_ORDER)}
    return sorted(seen, key=lambda s: (rank.get(s, len(rank)), s))


def _draw_growth(ax: Axes, data: _Samples, states: list[str], mark_size: float) -> None:
    if not data.n:
        _say(ax, NO_SAMPLES)
        return
    data = _drawable(data)
    # One stackplot call: a PolyCollection per state however many samples there are.
    bands = ax.stackplot(data.times, *[data.state(s) for s in states], labels=states,
                         colors=[colour(s) for s in states], linewidth=0, alpha=0.9)
    for band, state in zip(bands, states, strict=True):
        band.set_gid(f"state:{state}")
        if state == ZOMBIE:
            band.set_hatch(ZOMBIE_HATCH)
            band.set_edgecolor("white")  # the hatch lines' colour
    ax.plot(data.times, data.total, color="black", linewidth=2.2, label="total", gid="total")
    _draw_marks(ax, data.marks, _extent(data), mark_size)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    # The y grid under the x grid (they tie, and ties draw x first): the dashboard keeps the
    # y axis in a layer of its own below what moves (labkit.liveplot), and the crossings of
    # the grid lines then come out the same either way.
    ax.yaxis.set_zorder(ax.xaxis.get_zorder() - 0.01)


def _drawable(data: _Samples) -> _Samples:
    """The samples as drawn: one sample has no width, so it becomes a thin bar of one sample
    interval (0.1 s) around its time."""
    if data.n != 1:
        return data
    return _Samples(np.array([data.times[0] - 0.05, data.times[0] + 0.05]),
                    {s: np.repeat(v, 2) for s, v in data.counts.items()},
                    np.repeat(data.total, 2), data.marks)


def _extent(data: _Samples) -> tuple[float, float]:
    return float(data.times[0]), float(data.times[-1])


def _legend_labels(states: list[str]) -> list[str]:
    """The total first, then the states from the top of the stack down (as they look)."""
    return ["total (lab)"] + [_LEGEND_NAMES.get(s, s) for s in reversed(states)]


def _legend_entries(ax: Axes) -> tuple[list, list[str]]:
    bands = [c for c in ax.collections if str(c.get_gid()).startswith("state:")]
    lines = [line for line in ax.lines if line.get_gid() == "total"]
    return lines + bands[::-1], _legend_labels([b.get_label() for b in bands])


def _limit(ax: Axes, data: Sequence[_Samples]) -> None:
    """The samples' time span (a recording starts at 0; a dashboard's window later), and
    processes from zero, with headroom at the top for the action labels."""
    shown = [d for d in data if d.n]
    if not shown:
        return
    top = max(float(d.total.max()) for d in shown)
    ax.set_ylim(0, max(top * 1.2, top + 2, 4))
    _span(ax, min(float(d.times[0]) for d in shown), max(float(d.times[-1]) for d in shown))


def _span(ax: Axes, start: float, end: float) -> None:
    ax.set_xlim(start, end if end > start else start + 1)


def _mark_colour(label: str) -> str:
    if label.startswith("fork refused"):
        return ALERT
    return "black" if label.endswith("exits") else "#555555"


def _draw_marks(ax: Axes, marks: list[tuple[float, str]], span: tuple[float, float],
                size: float) -> None:
    """A dotted vertical line per action, labelled at the top; actions closer together than a
    label's width share one label (a parent made and forked at once: "parent 12 (none) · fork
    60"), so a busy recording stays legible."""
    shown = _marks_in(marks, span)
    if shown:
        _draw_mark_groups(ax, shown, _mark_groups(ax, shown, span, size), size)


def _marks_in(marks: list[tuple[float, str]], span: tuple[float, float]) -> list:
    return sorted(m for m in marks if span[0] <= m[0] <= span[1] + 1e-9)


def _mark_groups(ax: Axes, marks: list[tuple[float, str]], span: tuple[float, float],
                 size: float) -> list[tuple[float, str, str]]:
    """Each label to draw: where, its text and its colour. Labels closer than about one and a
    half label heights would overlap: those marks share one label."""
    fig = ax.figure
    width = ax.get_position().width * fig.get_figwidth() * 72  # the axes' width in points
    gap = (span[1] - span[0]) * 1.6 * size / max(width, 1.0)
    groups: list[list[tuple[float, str]]] = []
    for mark in marks:
        if groups and mark[0] - groups[-1][0][0] <= gap:
            groups[-1].append(mark)
        else:
            groups.append([mark])
    labels = []
    for group in groups:
        texts = [label for _, label in group]
        if len(texts) > 3:
            texts = texts[:2] + [f"+{len(texts) - 2} more"]
        refused = next((label for _, label in group if label.startswith("fork refused")), None)
        labels.append((group[0][0], " · ".join(texts), _mark_colour(refused or texts[-1])))
    return labels


def _draw_mark_groups(ax: Axes, marks: list[tuple[float, str]],
                      labels: list[tuple[float, str, str]], size: float) -> None:
    ax.vlines([t for t, _ in marks], 0, 1, transform=ax.get_xaxis_transform(),
              colors=[_mark_colour(label) for _, label in marks], linestyles=":",
              linewidth=1.6, gid="marks", zorder=1.5)
    for x, text, ink_colour in labels:
        ax.annotate(text, xy=(x, 1), xycoords=ax.get_xaxis_transform(),
                    xytext=(3, -4), textcoords="offset points", rotation=90, ha="left",
                    va="top", fontsize=size, color=ink_colour,
                    gid="mark", bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                                      "edgecolor": "none", "alpha": 0.8})



# --- PID budget -----------------------------------------------------------------------------


@mpl.rc_context(_STYLE)
def pid_budget(series: Series, limit: int, *, title: str | None = None) -> Figure:
    """The lab's processes against a PID budget of `limit`: zombies (which hold PIDs as surely
    as the living) shaded, the budget as a line, and an X where the kernel refused a fork."""
    _check_series(series, "pid_budget")
    limit = checks.count(limit, "limit (the PID budget)", low=1)
    data = _Samples.of(series)
    fig = _figure()
    ax = fig.add_subplot()
    _margins(fig, bottom=_bottom(1 if data.n else 0))
    _title(ax, f"Lab processes against a PID budget of {limit}" if title is None else title)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("processes")
    budget = ax.axhline(limit, color=ALERT, linestyle="--", linewidth=2.2, gid="budget")
    ax.annotate(f"PID budget {limit}", xy=(0, limit), xycoords=ax.get_yaxis_transform(),
                xytext=(6, 4), textcoords="offset points", color=ALERT, fontsize=13,
                fontweight="bold", va="bottom")
    top = limit
    if not data.n:
        _say(ax, NO_SAMPLES)
    else:
        times, total, zombies = data.times, data.total, data.state(ZOMBIE)
        if data.n == 1:  # one sample has no width: draw it one tenth of a second wide
            times, total, zombies = (np.repeat(a, 2) for a in (times, total, zombies))
            times = times + np.array([-0.05, 0.05])
        living = ax.fill_between(times, zombies, total, color=colour("sleeping"), alpha=0.35,
                                 linewidth=0, gid="living")
        dead = ax.fill_between(times, 0, zombies, facecolor=colour(ZOMBIE), edgecolor="white",
                               hatch=ZOMBIE_HATCH, alpha=0.9, linewidth=0, gid="zombies")
        (line,) = ax.plot(times, total, color="black", linewidth=2.4, gid="total")
        handles = [line, living, dead, budget]
        labels = ["lab processes", "living", "zombies", f"PID budget {limit}"]
        top = max(top, float(total.max()))
        end = float(times[-1])
        refused = next(((t, label) for t, label in data.marks
                        if label.startswith("fork refused")), None)
        if refused is not None:
            t, label = refused
            end = max(end, t)
            y = float(np.interp(t, data.times, data.total))
            (x,) = ax.plot([t], [y], linestyle="none", marker="X", markersize=18, color=ALERT,
                           markeredgecolor="black", markeredgewidth=1.2, zorder=5,
                           gid="refused")
            handles.append(x)
            labels.append("fork refused")
            right = t > (times[0] + times[-1]) / 2
            ax.annotate(f"{label}\nat {t:.1f} s", xy=(t, y), xytext=(-18 if right else 18, -48),
                        textcoords="offset points", ha="right" if right else "left", va="top",
                        color=ALERT, fontsize=13, fontweight="bold", zorder=5,
                        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white",
                              "edgecolor": ALERT},
                        arrowprops={"arrowstyle": "-", "color": ALERT, "linewidth": 1.5})
        _span(ax, float(data.times[0]), end)
        _legend_below(ax, handles, labels)
    ax.set_ylim(0, top * 1.15 + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


# --- shared ---------------------------------------------------------------------------------


def _check_series(series: object, who: str) -> None:
    if not isinstance(series, Series):
        raise TypeError(f"{who} draws a labkit Series (rec.series, from `with lab.record() as "
                        f"rec:`), not {type(series).__name__}")
