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
    pid_budget(series, limit)      the lab's processes against a PID budget, and where fork failed
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.textpath import text_to_path
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import offset_copy

from labkit import checks
from labkit.observe import ZOMBIE, Proc, Series, Snapshot

# Okabe & Ito (2008), "Color Universal Design": eight colours that colour-blind readers tell apart.
OKABE_ITO = {
    "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7", "black": "#000000",
}

# State (psutil's names) -> colour. Zombies are the undead green; the living are calm blues.
PALETTE: dict[str, str] = {
    ZOMBIE: OKABE_ITO["bluish green"],
    "sleeping": OKABE_ITO["sky blue"],
    "running": OKABE_ITO["blue"],
    "disk-sleep": OKABE_ITO["reddish purple"],
    "stopped": OKABE_ITO["orange"],
    "tracing-stop": OKABE_ITO["orange"],
    "dead": OKABE_ITO["yellow"],
}
UNKNOWN_COLOUR = "#999999"  # any state not in PALETTE
ALERT = OKABE_ITO["vermillion"]  # what the kernel refused: the budget line, a failed fork
ZOMBIE_HATCH = "//"  # a second cue besides colour, for print and for projectors that wash out

FIGSIZE = (10.0, 5.625)  # inches: 1280 x 720 pixels at DPI
DPI = 128
NO_SAMPLES = "no samples yet"

# Applied while a figure is built (Text and ticks read these when they are created).
_STYLE = {
    "font.size": 13, "axes.titlesize": 16, "axes.titleweight": "bold", "axes.labelsize": 14,
    "xtick.labelsize": 12, "ytick.labelsize": 12, "legend.fontsize": 12,
    "legend.title_fontsize": 12, "figure.titlesize": 17, "figure.titleweight": "bold",
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "axes.axisbelow": True, "grid.alpha": 0.3, "font.family": "DejaVu Sans",
}

# How each state is named in legends (the artists themselves are labelled with the bare state).
_LEGEND_NAMES = {ZOMBIE: "zombie (exited, not reaped)"}

# Stacking order, bottom first: zombies lie on the floor, where a pile-up is seen at once.
_STATE_ORDER = (ZOMBIE, "sleeping", "running", "disk-sleep", "stopped", "tracing-stop", "dead")


class LabFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in Jupyter.

    A bare Figure only becomes an image there through pyplot's inline backend, which labkit
    never imports; this one renders itself (at its own size: 1280 x 720 for the standard figures),
    so `plot.growth(series)` as the last line of a cell shows the picture, in JupyterLab and
    under nbclient/nbconvert alike.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()


def colour(state: str) -> str:
    """The colour every figure gives a state (grey for a state not in PALETTE)."""
    return PALETTE.get(state, UNKNOWN_COLOUR)


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
    _draw_growth(ax, data, states, mark_size=11)
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
    times = data.times
    if data.n == 1:  # one sample has no width: draw it as a thin bar of one sample interval
        times = np.array([times[0] - 0.05, times[0] + 0.05])
        data = _Samples(times, {s: np.repeat(v, 2) for s, v in data.counts.items()},
                        np.repeat(data.total, 2), data.marks)
    # One stackplot call: a PolyCollection per state however many samples there are.
    bands = ax.stackplot(times, *[data.state(s) for s in states], labels=states,
                         colors=[colour(s) for s in states], linewidth=0, alpha=0.9)
    for band, state in zip(bands, states, strict=True):
        band.set_gid(f"state:{state}")
        if state == ZOMBIE:
            band.set_hatch(ZOMBIE_HATCH)
            band.set_edgecolor("white")  # the hatch lines' colour
    ax.plot(times, data.total, color="black", linewidth=2.2, label="total", gid="total")
    _draw_marks(ax, data.marks, (times[0], times[-1]), mark_size)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


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
    marks = sorted(m for m in marks if span[0] <= m[0] <= span[1] + 1e-9)
    if not marks:
        return
    ax.vlines([t for t, _ in marks], 0, 1, transform=ax.get_xaxis_transform(),
              colors=[_mark_colour(label) for _, label in marks], linestyles=":",
              linewidth=1.6, gid="marks", zorder=1.5)
    # Labels closer than about one and a half label heights would overlap: share one instead.
    fig = ax.figure
    width = ax.get_position().width * fig.get_figwidth() * 72  # the axes' width in points
    gap = (span[1] - span[0]) * 1.6 * size / max(width, 1.0)
    groups: list[list[tuple[float, str]]] = []
    for mark in marks:
        if groups and mark[0] - groups[-1][0][0] <= gap:
            groups[-1].append(mark)
        else:
            groups.append([mark])
    for group in groups:
        labels = [label for _, label in group]
        if len(labels) > 3:
            labels = labels[:2] + [f"+{len(labels) - 2} more"]
        refused = next((label for _, label in group if label.startswith("fork refused")), None)
        ax.annotate(" · ".join(labels), xy=(group[0][0], 1), xycoords=ax.get_xaxis_transform(),
                    xytext=(3, -4), textcoords="offset points", rotation=90, ha="left",
                    va="top", fontsize=size, color=_mark_colour(refused or labels[-1]),
                    gid="mark", bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                                      "edgecolor": "none", "alpha": 0.8})


# --- tree -----------------------------------------------------------------------------------

_ROLE_NAMES = {"root": "root (lab init)", "orphan": "orphan (adopted)"}
# The edge into a node, by the node's role: (colour, line style, width).
_EDGES = {
    "agent": ("#333333", "-", 2.0),
    "parent": ("#333333", "-", 2.0),
    "child": ("#777777", "-", 1.3),
    "orphan": (ALERT, "--", 2.0),
    "descendant": ("#777777", "-.", 1.3),
}
_ROLE_RANK = {"agent": 0, "parent": 1, "descendant": 2, "child": 3, "orphan": 4}
_MAX_DEPTH = 6  # deeper chains are summarised (a lab is root, agent, parent, child: 3 deep)
_MIXED = "#EEEEEE"  # an elision box that stands for processes in several states
_TREE_FONT = (11, 9)  # the size labels are drawn at, and the smallest it may shrink to
_GAP = 0.55  # inches between columns, where the edges run
_BOX_PAD = 0.3  # em, around a label
_TREE_MARGIN, _TREE_BOTTOM = 0.1, 0.55  # inches: beside the tree; below it, for the legend


@dataclass
class _Node:
    label: str
    state: str | None         # None for an elision node
    role: str
    key: str                  # the PID, or "more:PPID" for an elision node
    children: list[_Node] = field(default_factory=list)
    depth: int = 0
    row: float = 0.0


@mpl.rc_context(_STYLE)
def tree(snapshot: Snapshot, *, title: str | None = None, max_children: int = 12) -> Figure:
    """The lab's process tree at one moment, root at the left, children to the right.

    Each box shows PID, name, role and state and is coloured by state; orphans hang from the
    lab root on a dashed edge. A parent with more than `max_children` children shows the first
    `max_children` and one "… N more (k zombie)" box, so a 5,000-process lab draws in a moment.
    """
    if not isinstance(snapshot, Snapshot):
        raise TypeError("tree() draws a labkit Snapshot (from lab.snapshot()), "
                        f"not {type(snapshot).__name__}")
    max_children = checks.count(max_children, "max_children", low=1)
    title = f"Lab process tree ({len(snapshot)} processes)" if title is None else title
    tops = _shown_tree(snapshot, max_children)
    if not tops:
        fig = _figure()
        ax = fig.add_subplot()
        ax.set_axis_off()
        _margins(fig, bottom=_TREE_BOTTOM)
        _say(ax, "no processes in this snapshot")
        _title(ax, title)
        return fig
    nodes = _lay_out(tops)
    rows = sum(1 for n in nodes if not n.children)
    size, font, left = _tree_geometry(nodes, rows)
    fig = _figure(size=size)
    ax = fig.add_subplot()
    ax.set_axis_off()
    width, height = size
    fig.subplots_adjust(left=_TREE_MARGIN / width, right=1 - _TREE_MARGIN / width,
                        top=1 - _TOP / height, bottom=_TREE_BOTTOM / height)
    ax.set_xlim(0, width - 2 * _TREE_MARGIN)  # one x unit is one inch: the labels fit as planned
    ax.set_ylim(rows - 0.5, -0.5)  # first row at the top
    texts: dict[str, Text] = {}
    for node in nodes:
        texts[node.key] = _draw_node(ax, node, left[node.depth], font)
    for node in nodes:
        for child in node.children:
            _draw_edge(ax, texts[node.key], texts[child.key], child.role, node.key, child.key)
    _title(ax, title)
    _tree_legend(fig, nodes)
    return fig


def _sorted_children(kids: list[Proc]) -> list[Proc]:
    return sorted(kids, key=lambda p: (_ROLE_RANK.get(p.role, len(_ROLE_RANK)), p.pid))


def _shown_tree(snapshot: Snapshot, max_children: int) -> list[_Node]:
    """The nodes to draw: every process down to max_children per parent, the rest summarised.
    Iterative, so that a long chain of processes cannot exhaust Python's recursion limit."""
    by_pid = {p.pid: p for p in snapshot.procs}
    kids: dict[int, list[Proc]] = {}
    tops: list[Proc] = []
    for p in snapshot.procs:
        if p.pid != snapshot.root_pid and p.ppid != p.pid and p.ppid in by_pid:
            kids.setdefault(p.ppid, []).append(p)
        else:
            tops.append(p)
    tops.sort(key=lambda p: (p.pid != snapshot.root_pid, p.pid))
    roots = [_proc_node(p, 0) for p in tops]
    stack = list(zip(roots, tops, strict=True))
    seen = {p.pid for p in tops}
    while stack:
        node, proc = stack.pop()
        below = [k for k in _sorted_children(kids.get(proc.pid, [])) if k.pid not in seen]
        if not below:
            continue
        shown = below[:max_children] if node.depth < _MAX_DEPTH else []
        for child in shown:
            seen.add(child.pid)
            child_node = _proc_node(child, node.depth + 1)
            node.children.append(child_node)
            stack.append((child_node, child))
        if len(shown) < len(below):
            node.children.append(_more_node(proc.pid, below[len(shown):], kids, node.depth + 1))
    return roots


def _proc_node(p: Proc, depth: int) -> _Node:
    ns = f"  (ns PID {p.ns_pid})" if p.ns_pid != p.pid else ""
    role = _ROLE_NAMES.get(p.role, p.role)
    return _Node(f"{p.pid} {p.name}{ns}\n{role} · {p.state}", p.state, p.role, str(p.pid),
                 depth=depth)


def _more_node(ppid: int, rest: list[Proc], kids: dict[int, list[Proc]], depth: int) -> _Node:
    states = Counter(p.state for p in rest)
    zombies = states.pop(ZOMBIE, 0)
    lines = [f"… {len(rest)} more ({zombies} zombie)"]
    if states:
        lines.append(", ".join(f"{n} {s}" for s, n in states.most_common()))
    below, todo = 0, [p.pid for p in rest]
    while todo:  # their own descendants are hidden too: say how many
        grandchildren = kids.get(todo.pop(), [])
        below += len(grandchildren)
        todo.extend(g.pid for g in grandchildren)
    if below:
        lines.append(f"and {below} of their descendants")
    kinds = {p.state for p in rest}
    state = kinds.pop() if len(kinds) == 1 else None  # all alike: the box has their colour
    return _Node("\n".join(lines), state, "more", f"more:{ppid}", depth=depth)


def _lay_out(roots: list[_Node]) -> list[_Node]:
    """A simple tidy tree: leaves on consecutive rows, each parent centred on its children.
    Returns the nodes in drawing order (parents before children)."""
    order: list[_Node] = []
    stack = list(reversed(roots))
    while stack:  # pre-order, children in their order: the rows read top to bottom
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(node.children))
    row = 0
    for node in order:
        if not node.children:
            node.row = row
            row += 1
    for node in reversed(order):  # children before parents
        if node.children:
            node.row = (node.children[0].row + node.children[-1].row) / 2
    return order


def ink(face: str) -> str:
    """Black or white text, whichever contrasts more with `face` (WCAG 2 relative luminance
    and contrast ratio); for the tree's boxes and the dashboard's badges alike."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
               for c in to_rgb(face))
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if (y + 0.05) / 0.05 >= 1.05 / (y + 0.05) else "white"


def _tree_geometry(nodes: list[_Node], rows: int
                   ) -> tuple[tuple[float, float], float, list[float]]:
    """Figure size, font size and each column's left edge, in inches (the x data units).

    Columns are as wide as their widest label, measured with the font itself; a tree too wide
    for the standard figure is drawn in smaller type, down to a floor, then in a wider figure.
    A tree with more rows than fit grows downwards: a notebook scrolls, and type must stay
    legible."""
    columns = max(n.depth for n in nodes) + 1
    widest = [0.0] * columns  # points, at 1 pt type: widths scale with the size
    unit = FontProperties(family=_STYLE["font.family"], size=1.0)
    for n in nodes:
        for line in n.label.split("\n"):
            w = text_to_path.get_text_width_height_descent(line, unit, ismath=False)[0]
            widest[n.depth] = max(widest[n.depth], w)
    em = [w + 2 * _BOX_PAD + 0.3 for w in widest]  # the box's padding and border, in em
    usable = FIGSIZE[0] - 2 * _TREE_MARGIN - 0.1
    font = max(_TREE_FONT[1], min(_TREE_FONT[0], (usable - _GAP * (columns - 1)) * 72 / sum(em)))
    gap = _GAP  # narrower gaps before a wider figure, down to what an edge needs to be seen
    if columns > 1:
        gap = max(_GAP / 2, min(_GAP, (usable - sum(em) * font / 72) / (columns - 1)))
    left = [0.05 + _BOX_PAD * font / 72]  # the box's padding reaches left of its text
    for e in em[:-1]:
        left.append(left[-1] + e * font / 72 + gap)
    right = left[-1] + (em[-1] - _BOX_PAD) * font / 72 + 0.05
    row = 3.3 * font / 72  # two lines and the box's padding, and a little air
    return ((max(FIGSIZE[0], right + 2 * _TREE_MARGIN),
             max(FIGSIZE[1], rows * row + _TOP + _TREE_BOTTOM)), font, left)


def _draw_node(ax: Axes, node: _Node, x: float, font: float) -> Text:
    face = colour(node.state) if node.state is not None else _MIXED
    elided = node.role == "more"
    return ax.text(x, node.row, node.label, ha="left", va="center", fontsize=font,
                   color=ink(face), gid=f"node:{node.key}", zorder=3, linespacing=1.2,
                   bbox={"boxstyle": f"round,pad={_BOX_PAD}", "facecolor": face,
                         "edgecolor": "#555555" if elided else "black",
                         "linestyle": "--" if elided else "-",
                         "linewidth": 2.5 if node.role == "root" else 1.2 if elided else 1.0})


def _draw_edge(ax: Axes, parent: Text, child: Text, role: str, parent_key: str,
               child_key: str) -> None:
    # Anchored to the two labels themselves (fractions of their extents, resolved when drawn):
    # the line runs from the parent's right side to the child's left, whatever the text widths.
    colour_, style, width = _EDGES.get(role, ("#777777", ":", 1.3))
    ax.annotate("", xy=(0, 0.5), xycoords=child, xytext=(1, 0.5), textcoords=parent,
                gid=f"edge:{parent_key}->{child_key}", zorder=2,
                arrowprops={"arrowstyle": "-", "color": colour_, "linestyle": style,
                            "linewidth": width, "shrinkA": 6, "shrinkB": 6})


def _tree_legend(fig: Figure, nodes: list[_Node]) -> None:
    states = sorted({n.state for n in nodes if n.state is not None},
                    key=lambda s: (s != ZOMBIE, s))
    handles: list = [Patch(facecolor=colour(s), edgecolor="black", label=s) for s in states]
    if any(n.role == "orphan" for n in nodes):
        c, style, width = _EDGES["orphan"]
        handles.append(Line2D([], [], color=c, linestyle=style, linewidth=width,
                              label="adopted by the lab root"))
    if any(n.role == "more" for n in nodes):
        handles.append(Patch(facecolor="white", edgecolor="#555555", linestyle="--",
                             label="… more, not drawn"))
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.01), frameon=False,
               ncols=_legend_columns([h.get_label() for h in handles]))


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


def _figure(size: tuple[float, float] = FIGSIZE) -> LabFigure:
    return LabFigure(figsize=size, dpi=DPI, facecolor="white")


# Margins are fixed, in inches, for the fixed type sizes above. matplotlib's constrained layout
# would measure every label instead, and took half the time of a redraw (issue 4: <= 100 ms).
_LEFT, _RIGHT, _TOP = 1.05, 0.3, 0.55  # y tick labels up to 5 digits and the y label; a title
_AXIS_BELOW = 0.75   # x tick labels and the x label
_LEGEND_ROW = 0.34   # one row of legend entries
_LEGEND_WIDTH = 9.2  # inches a row of legend entries may take


def _margins(fig: Figure, *, top: float = _TOP, bottom: float, columns: int = 1,
             rows: int = 1) -> None:
    w, h = fig.get_size_inches()
    width = (w - _LEFT - _RIGHT - 0.35 * (columns - 1)) / columns
    height = (h - top - bottom - 0.9 * (rows - 1)) / rows
    fig.subplots_adjust(left=_LEFT / w, right=1 - _RIGHT / w, top=1 - top / h,
                        bottom=bottom / h, wspace=0.35 / width, hspace=0.9 / height)


def _bottom(legend_rows: int) -> float:
    return _AXIS_BELOW + _LEGEND_ROW * legend_rows + (0.12 if legend_rows else 0.0)


def _legend_columns(labels: list[str]) -> int:
    """As many columns as fit in one row's width. matplotlib splits the entries into columns in
    order (numpy's array_split) and makes each column as wide as its widest entry: an entry is
    its handle and padding (~3 em) and its text (~0.6 em a character), at 12 pt."""
    widths = [(0.6 * len(label) + 3.0) * 12 / 72 for label in labels]
    for columns in range(len(labels), 1, -1):
        if sum(max(c) for c in np.array_split(widths, columns)) <= _LEGEND_WIDTH:
            return columns
    return 1


def _legend_rows(labels: list[str]) -> int:
    return math.ceil(len(labels) / _legend_columns(labels))


def _legend_below(ax: Axes, handles: list, labels: list[str]) -> None:
    """A legend centred under the axes' x label, wherever the axes are."""
    below = offset_copy(ax.transAxes, fig=ax.figure, y=-_AXIS_BELOW, units="inches")
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
              bbox_transform=below, ncols=_legend_columns(labels), frameon=False,
              borderaxespad=0.0)


def _check_series(series: object, who: str) -> None:
    if not isinstance(series, Series):
        raise TypeError(f"{who} draws a labkit Series (rec.series, from `with lab.record() as "
                        f"rec:`), not {type(series).__name__}")


def _title(ax: Axes, text: str) -> None:
    # A fixed height: matplotlib otherwise measures the axes on every draw to place the title
    # above any top ticks (there are none here), a fifth of the redraw time.
    ax.set_title(text, loc="left", y=1.0, pad=8)


def _say(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            fontsize=18, color="#666666", gid="message")
    ax.set_yticks([])
