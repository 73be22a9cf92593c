"""The process tree at one moment, as a matplotlib figure: `tree(snapshot)`.

Apart from `labkit.plot`'s charts over time because it is a different kind of picture with its
own machinery: it lays out a tree (rows and columns, long families summarised in one box),
measures its labels with the font to size the figure, and draws boxes and edges rather than
axes. It shares only the house style (`labkit.plotstyle`). `labkit.plot.tree` is this function.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.textpath import text_to_path

from labkit import checks
from labkit.observe import ZOMBIE, Proc, Snapshot
from labkit.plotstyle import (
    _STYLE,
    _TOP,
    ALERT,
    FIGSIZE,
    _figure,
    _legend_columns,
    _margins,
    _say,
    _title,
    colour,
    ink,
)

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
