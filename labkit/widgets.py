"""Dashboard: buttons that fork, reap, exit and kill -9 on a real lab, and a live picture of it.

    dash = labkit.widgets.Dashboard(lab)   # then show `dash` (the last line of a cell)

The only module that knows ipywidgets. It composes the layers below: the Lab acts, observe reads
the process table, plot draws it; this module wires them to controls and keeps the picture fresh.
What the buttons do to the lab is in labkit.dashboard_actions, what the page says (its HTML
and words) in labkit.dashboard_text; neither knows ipywidgets.

Why it is built this way:
- The picture refreshes from an asyncio task on the kernel's own event loop (ipykernel runs cells
  and widget messages on one asyncio loop in the main thread). Between refreshes the task awaits
  asyncio.sleep, so cells and button clicks run in the gaps; no thread ever writes to a widget.
- Each refresh is one real snapshot of /proc, appended to a Series this dashboard owns, cut to the
  last `window` seconds so that the cost of a refresh stays bounded however long it runs.
- The plot is a PNG in an ipywidgets.Image: a refresh sends one binary message with the new bytes
  and the browser swaps the picture without flicker. (An Output widget would clear and re-display
  a base64 image each time: more bytes, and a visible blink at 5 Hz.)
- The plot is one figure kept for the dashboard's life (labkit.liveplot.LiveGrowth): a refresh
  moves its artists to the new samples and redraws only what moved, the same pixels as a fresh
  plot.growth in a fraction of the time; and while the counts stand still it is redrawn only
  once every IDLE_REDRAW s.
- Headless (nbclient, nbconvert) no frontend draws widgets, so showing the dashboard also yields
  an image/png of the plot, and `figure()` gives the plot as a matplotlib Figure.
- The controls act from code the same as from the page (`dash.fork_button.click()`); errors from
  labkit go to the status line, never into the event loop.

Reset is the same on any lab: the current parent exits (its children become orphans of the lab
root) and a fresh parent with the chosen policy takes its place; the plot starts over. The lab
itself is never replaced: it belongs to whoever made it (close() closes it only if the Dashboard
made it). A parent's policy is fixed when it starts (a SIGCHLD disposition is set at startup), so
choosing another policy applies to the next parent: at once if the current one has no children,
otherwise at Reset (the status line says so).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import time
import weakref
from collections import deque
from typing import Any

import ipywidgets as w
from matplotlib.figure import Figure

from labkit import checks, plot, procfs
from labkit.dashboard_actions import DashboardActions
from labkit.dashboard_text import (
    BUTTONS,
    LOG_LINES,
    counts_html,
    explain,
    log_html,
    reasons,
    status_html,
    title_html,
    tooltips,
    tree_html,
)
from labkit.errors import LabClosedError, LabError
from labkit.i18n import _
from labkit.lab import Lab, Parent
from labkit.liveplot import LiveGrowth
from labkit.observe import Series, Snapshot
from labkit.parent import POLICIES

INTERVAL = 0.2        # seconds between refreshes: 5 a second
WINDOW = 60.0         # seconds of history the plot shows (and the dashboard keeps)
MIN_GAP = 0.05        # the task always sleeps at least this long: the kernel keeps breathing
IDLE_REDRAW = 1.0     # while the lab's counts stand still, the plot is redrawn once a second
LIFETIME_MAX = 60.0   # the lifetime slider's range (Parent.fork allows up to an hour)
PNG_DPI = 80          # plot.growth's 10 x 5.625 in figure at 80 dpi: an 800 x 450 px picture

# The dashboards whose refresh task runs: one at a time (see start()).
_LIVE: weakref.WeakSet[Dashboard] = weakref.WeakSet()


class Dashboard(DashboardActions):
    """A live view of a Lab with controls that act on its real processes.

    `lab`: the Lab to drive (None: the Dashboard makes one, and closes it in close()).
    `policy`, `children`, `lifetime`: the controls' starting values.
    `interval`: seconds between refreshes of the live view; `window`: seconds of history shown.
    `autostart`: start the refresh task now if an asyncio loop is running (in a Jupyter kernel).

    Attributes: `.widget` (the ipywidgets VBox to show), the controls `.policy`, `.children`,
    `.lifetime`, the buttons `.fork_button`, `.reap_button`, `.exit_button`, `.kill_button`,
    `.reset_button`, and `.parent` (the lab parent the buttons act on), `.series` (what the plot
    shows), `.snapshot` (the latest), `.message` (the status line's text), `.picture` (the
    plot's figure, kept between refreshes: a labkit.liveplot.LiveGrowth).
    """

    def __init__(self, lab: Lab | None = None, *, policy: str = "none", children: int = 30,
                 lifetime: float = 0.0, interval: float = INTERVAL, window: float = WINDOW,
                 autostart: bool = True) -> None:
        policy = checks.choice(policy, "policy", POLICIES)
        self.interval = checks.seconds(interval, "interval", low=0.05, high=10.0)
        self.window = checks.seconds(window, "window", low=1.0, high=3600.0)
        lifetime = checks.seconds(lifetime, "lifetime", high=LIFETIME_MAX)
        if lab is not None and not isinstance(lab, Lab):
            raise TypeError(_("lab must be a labkit.Lab (or None for a new one), not "
                              "{lab!r}").format(lab=lab))
        self.owns_lab = lab is None
        self.lab: Lab = Lab() if lab is None else lab
        checks.count(children, "children", low=1, high=self.lab.max_procs,
                     why_high=_("(the lab's max_procs)"))

        self.parent: Parent | None = None
        self.series = Series()
        self.snapshot: Snapshot | None = None
        self.message = ""
        self.last_killed: int | None = None  # host PID of the zombie kill -9 was last sent to
        self._task: asyncio.Task | None = None
        self._png = b""
        self.picture = LiveGrowth(title=self._plot_title(), dpi=PNG_DPI)
        self._drawn: tuple[float, dict[str, int]] | None = None  # when, and the counts drawn
        self.idle_redraw = IDLE_REDRAW
        self._took: deque[float] = deque(maxlen=50)   # seconds each recent refresh took
        self._ticks: deque[float] = deque(maxlen=26)  # when the task's recent refreshes began
        self._busy = False
        self._closed = False

        try:
            self._build(policy, children, lifetime)
            try:
                self.parent = self.lab.parent(policy)
                self._say(_("parent {pid} is ready (policy {policy!r}): press Fork").format(
                    pid=self.parent.pid, policy=policy))
            except (LabError, ValueError, OSError) as e:
                self._say(explain(e), error=True)
            self.refresh()
        except BaseException:
            if self.owns_lab:
                self.lab.close()
            raise
        if autostart and _running_loop() is not None:
            self.start()

    # --- building -----------------------------------------------------------------------------

    def _build(self, policy: str, children: int, lifetime: float) -> None:
        style = {"description_width": "initial"}
        self.policy = w.Dropdown(options=list(POLICIES), value=policy, description="policy",
                                 style=style, layout=w.Layout(width="180px"),
                                 tooltip=_("what the next parent does with its exited "
                                           "children"))
        self.children = w.IntSlider(value=children, min=1, max=self.lab.max_procs,
                                    description="children", style=style,
                                    continuous_update=False, layout=w.Layout(width="300px"))
        self.lifetime = w.FloatSlider(value=lifetime, min=0.0, max=LIFETIME_MAX, step=0.5,
                                      description="lifetime (s)", readout_format=".1f",
                                      style=style, continuous_update=False,
                                      layout=w.Layout(width="300px"))

        def button(description: str, style: str, action) -> w.Button:
            b = w.Button(description=description, button_style=style,
                         layout=w.Layout(width="auto", min_width="96px"))
            b.on_click(lambda _: self._act(action))
            b.add_class("labkit-button")
            return b

        self.fork_button = button("Fork", "primary", self._fork)
        self.reap_button = button("Reap", "success", self._reap)
        self.exit_button = button("Parent exits", "warning", self._exit)
        self.kill_button = button("kill -9 a zombie", "danger", self._kill)
        self.reset_button = button("Reset", "", self._reset)
        self.buttons = (self.fork_button, self.reap_button, self.exit_button, self.kill_button,
                        self.reset_button)

        self.title = w.HTML()
        self.status = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(width="800px", max_width="100%",
                                                          height="auto"))
        self.counts = w.HTML()
        self.table = w.HTML(layout=w.Layout(flex="3 1 420px", margin="0 12px 0 0"))
        self.log = w.HTML(layout=w.Layout(flex="2 1 300px"))
        self.policy.observe(self._policy_changed, names="value")
        for control in (self.children, self.lifetime):
            control.observe(lambda _: self._update_tooltips(), names="value")

        self.widget = w.VBox([
            self.title,
            w.HBox([self.policy, self.children, self.lifetime],
                   layout=w.Layout(flex_flow="row wrap")),
            w.HBox(list(self.buttons), layout=w.Layout(flex_flow="row wrap", margin="4px 0")),
            self.status,
            self.counts,
            self.plot,
            w.HBox([self.table, self.log],
                   layout=w.Layout(flex_flow="row wrap", align_items="flex-start")),
        ], layout=w.Layout(padding="6px", border="1px solid #d0d0d0", max_width="1100px"))
        self.widget.add_class("labkit-dashboard")

    # --- display ------------------------------------------------------------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live widget for JupyterLab, and the plot as a PNG for frontends without widgets
        (nbconvert, nbclient, GitHub's viewer): each shows the richest it can."""
        bundle: dict[str, Any] = {"text/plain": repr(self)}
        if self.widget.comm is not None:
            bundle.update(self.widget._repr_mimebundle_())
            bundle["text/plain"] = repr(self)
        bundle["image/png"] = base64.b64encode(self._png or self._render()).decode("ascii")
        return bundle

    def figure(self) -> Figure:
        """The growth plot of the last `window` seconds, as a new matplotlib Figure."""
        return plot.growth(_last(self.series, self.window), title=self._plot_title())

    def __repr__(self) -> str:
        snap = self.snapshot
        state = "closed" if self._closed else (str(snap) if snap else "no snapshot yet")
        return f"<Dashboard over {self.lab!r}: {state}>"

    # --- the refresh task ---------------------------------------------------------------------

    def start(self) -> None:
        """Refresh every `interval` s from an asyncio task on the running loop (the kernel's).

        One dashboard is live at a time: starting this one stops the others' refresh (they
        still work when clicked). A cell run again makes a new dashboard, and the old one must
        not go on taking a share of the kernel (on Binder, of its only CPU) unseen."""
        if self._closed:
            raise RuntimeError(_("this dashboard is closed; make a new one"))
        if self.running:
            return
        loop = _running_loop()
        if loop is None:
            raise RuntimeError(_("start() needs a running asyncio event loop, as in a Jupyter "
                                 "kernel; elsewhere call refresh() yourself"))
        for other in list(_LIVE):
            if other is not self and other.running:
                other.stop()
                other._say(_("this dashboard stopped refreshing: a newer one is live "
                             "(its start() method brings this one back)"))
        self._task = loop.create_task(self._run(), name="labkit-dashboard")
        _LIVE.add(self)

    def stop(self) -> None:
        """Stop the refresh task (the picture stays as it was)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        _LIVE.discard(self)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while not self._closed:
            started = time.monotonic()
            self._ticks.append(started)
            try:
                self.refresh()
            except Exception as e:  # nothing may escape into the kernel's event loop
                self._say(_("refresh failed: {error}").format(error=explain(e)), error=True)
            if self.lab.closed:
                return
            took = time.monotonic() - started
            await asyncio.sleep(max(MIN_GAP, self.interval - took))

    @property
    def rate(self) -> float:
        """The refresh task's refreshes per second over the last few seconds (0 before there
        are two)."""
        times = self._ticks
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    @property
    def refresh_seconds(self) -> float:
        """How long the last refresh took (snapshot, controls, drawing), in seconds."""
        return self._took[-1] if self._took else 0.0

    def refresh(self) -> Snapshot | None:
        """Take one real snapshot of the lab and bring every part of the dashboard up to date.
        Returns the snapshot (None once the lab is closed)."""
        started = time.monotonic()
        try:
            snap = self.lab.snapshot()
        except LabClosedError:
            self.snapshot = None
            self._say(_("the lab is closed: its processes are gone. Start a new lab and "
                        "dashboard"), error=True)
            self._update_buttons(None)
            self.stop()
            return None
        self.snapshot = snap
        self.series.add(snap, procfs.tasks_in_use())
        if self.series.times[-1] - self.series.times[0] > 2 * self.window:
            self.series = _last(self.series, self.window)  # keep memory and drawing bounded
        self._update_buttons(snap)
        self.title.value = title_html(self.lab, snap, self.rate if self.running else 0.0)
        self.counts.value = counts_html(snap, self.parent)
        self.table.value = tree_html(snap)
        self.log.value = log_html(self.lab.events[-LOG_LINES:])
        self._draw(snap)
        self._took.append(time.monotonic() - started)
        return snap

    def _draw(self, snap: Snapshot) -> None:
        # Drawing is still the largest part of a refresh (about half, with 1,000 processes).
        # While the counts move the plot follows every refresh; while they stand still it is
        # redrawn once every `idle_redraw` s, so that an idle dashboard costs the kernel little.
        counts = snap.counts
        if (self._drawn is not None and counts == self._drawn[1]
                and snap.time - self._drawn[0] < self.idle_redraw):
            return
        self._png = self._render()
        self.plot.value = self._png
        self._drawn = (snap.time, counts)

    def _render(self) -> bytes:
        # plot.growth's own figure at a lower dpi (its layout is in inches, so the picture is
        # the same, smaller), kept and moved rather than made anew: see labkit.liveplot.
        return self.picture.png(_last(self.series, self.window))

    def _plot_title(self) -> str:
        return f"Lab process table, last {self.window:g} s"

    def close(self) -> None:
        """Stop refreshing and close the widgets; close the lab too if this Dashboard made it."""
        self.stop()
        self._closed = True
        _close_tree(self.widget)
        if self.owns_lab:
            self.lab.close()

    # --- what the page shows ------------------------------------------------------------------

    def _say(self, text: str, *, error: bool = False, busy: bool = False) -> None:
        self.message = text
        kind = "error" if error else "busy" if busy else "info"
        self.status.value = status_html(text, kind)

    def _reasons(self, snap: Snapshot | None) -> dict[w.Button, str | None]:
        """Why each button is off right now (None: it is on)."""
        why = reasons(self.lab, self.parent, None if self._closed else snap)
        return {b: why[name] for name, b in zip(BUTTONS, self.buttons, strict=True)}

    def _update_buttons(self, snap: Snapshot | None) -> None:
        if snap is not None:
            live = self.parent is not None and self.parent.alive
            room = self.lab.max_procs - len(snap) - (0 if live else 1)
            self.children.max = max(1, room)
        for b, why in self._reasons(snap).items():
            b.disabled = why is not None
            if why is not None:
                b.tooltip = why
        self._update_tooltips()

    def _update_tooltips(self) -> None:
        """What each enabled button will do, in its tooltip."""
        tips = tooltips(self.lab, self.parent, self.policy.value, self.children.value,
                              self.lifetime.value)
        for name, b in zip(BUTTONS, self.buttons, strict=True):
            if not b.disabled:
                b.tooltip = tips[name]


# --- helpers ----------------------------------------------------------------------------------

def _last(series: Series, seconds: float) -> Series:
    """The samples of the last `seconds` (the series itself if it is that short)."""
    times = series.times
    if not times or times[-1] - times[0] <= seconds:
        return series
    i = bisect.bisect_left(times, times[-1] - seconds)
    return Series(times=times[i:], counts={k: v[i:] for k, v in series.counts.items()},
                  total=series.total[i:], pids_in_use=series.pids_in_use[i:],
                  marks=[m for m in series.marks if m[0] >= times[i]], start=series.start)


def _close_tree(widget: w.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
