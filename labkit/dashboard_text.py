"""The dashboard's words and HTML: badges, tree, reap log, status line, title, button reasons.

Pure functions from a Snapshot, a Lab and a Parent to text: what the dashboard says, apart from
labkit.widgets (which knows ipywidgets and puts these strings into its controls) so that the
wording can be read, and tested, without a widget. Knows no ipywidgets.
"""

from __future__ import annotations

import html
import signal
import time

from labkit import plot
from labkit.i18n import _
from labkit.lab import Lab, Parent, ReapEvent
from labkit.observe import ZOMBIE, Snapshot

LOG_LINES = 20        # reap events shown, newest first
TREE_LIMIT = 8        # children shown per parent in the tree
BUTTONS = ("fork", "reap", "exit", "kill", "reset")  # the keys of reasons() and tooltips()

_ORDER = ("zombie", "running", "sleeping")


def counts_html(snap: Snapshot, parent: Parent | None) -> str:
    """A badge per state (zombie always first, even at 0: it is what the lesson is about), and
    what the parent the buttons act on is doing."""
    counts = snap.counts
    counts.setdefault(ZOMBIE, 0)
    states = sorted(counts, key=lambda s: (_ORDER.index(s) if s in _ORDER else 9, s))
    badges = "".join(
        f'<span class="labkit-count labkit-count-{html.escape(s)}" style="background:'
        f'{plot.colour(s)};color:{plot.ink(plot.colour(s))};border-radius:10px;padding:2px 10px;'
        'margin:0 6px 0 0;display:inline-block;font-weight:600;font-size:14px">'
        f"{html.escape(s)}: {counts[s]}</span>" for s in states)
    if parent is None:
        who = _("no parent")
    else:
        kids = snap.children(parent.pid)
        zombies = sum(1 for p in kids if p.state == ZOMBIE)
        # Whole phrases, singular and plural apart: Chinese has no plural, English needs one.
        who = (_("parent <b>{pid}</b> — <b>exited</b> · policy <b>{policy}</b>") if not parent.alive
               else _("parent <b>{pid}</b> · policy <b>{policy}</b>")).format(
                   pid=parent.pid, policy=html.escape(parent.policy))
        who += (_(" · 1 child, {zombies}") if len(kids) == 1 else
                _(" · {n} children, {zombies}")).format(
                    n=len(kids), zombies=(_("1 zombie") if zombies == 1 else
                                          _("{n} zombies").format(n=zombies)))
    orphans = sum(1 for p in snap.procs if p.role == "orphan")
    if orphans:
        who += (_(" · 1 orphan adopted by the root") if orphans == 1 else
                _(" · {n} orphans adopted by the root").format(n=orphans))
    return (f'<div class="labkit-counts" style="display:flex;flex-wrap:wrap;align-items:center;'
            f'gap:4px 0;margin:2px 0 4px 0">{badges}<span class="labkit-parent" '
            f'style="margin-left:6px;font-size:14px">{who}</span></div>')


def tree_html(snap: Snapshot) -> str:
    tree = html.escape(snap.tree(limit=TREE_LIMIT))
    head = _("<b>process tree</b> (at most {limit} children per parent)").format(limit=TREE_LIMIT)
    return (f'<div style="font-size:13px;margin:4px 0 2px 0">{head}</div>'
            '<pre class="labkit-tree" style="font-size:12px;line-height:1.3;max-height:260px;'
            'overflow:auto;white-space:pre;background:#f5f5f5;padding:6px 8px;margin:0">'
            f'{tree}</pre>')


def log_html(events: list[ReapEvent]) -> str:
    if events:
        lines = "\n".join(
            f"{time.strftime('%H:%M:%S', time.localtime(e.time))}"
            f".{int(e.time % 1 * 1000):03d}  "
            + _("reaped PID {pid:<7} {status}").format(pid=e.pid, status=exit_status(e.status))
            for e in reversed(events))
    else:
        lines = _("none yet: when a parent exits, its orphans are reaped here")
    head = _("<b>reaped by the lab root</b> (newest first, last {n})").format(n=LOG_LINES)
    return (f'<div style="font-size:13px;margin:4px 0 2px 0">{head}</div>'
            '<pre class="labkit-events" style="font-size:12px;line-height:1.3;max-height:260px;'
            'overflow:auto;white-space:pre-wrap;word-break:normal;background:#f5f5f5;'
            'padding:6px 8px;margin:0">'
            f'{html.escape(lines)}</pre>')


def exit_status(status: int) -> str:
    if status < 0:
        try:
            return _("killed by {name}").format(name=signal.Signals(-status).name)
        except ValueError:
            return _("killed by signal {number}").format(number=-status)
    return _("exit status {code}").format(code=status)



def status_html(text: str, kind: str = "info") -> str:
    """The status line: `kind` is "error", "busy" or "info"."""
    colour = {"error": "#b00020", "busy": "#1f5fbf", "info": "#222"}[kind]
    mark = {"error": "⚠ ", "busy": "⏳ ", "info": ""}[kind]
    return (f'<div class="labkit-status labkit-status-{kind}" style="color:{colour};'
            f'font-size:14px;padding:3px 2px;min-height:1.4em">{mark}{html.escape(text)}</div>')


def title_html(lab: Lab, snap: Snapshot, rate: float) -> str:
    """The title line; `rate` is the refreshes per second (0: not shown)."""
    root = (_("lab root {pid} ({mode}, reaps orphans)") if lab.reap else
            _("lab root {pid} ({mode}, does NOT reap orphans (reap=False))")).format(
                pid=lab.root_pid, mode=lab.mode)
    total = _("{n} of {max} processes").format(n=len(snap), max=lab.max_procs)
    shown = _(" · {rate:.1f} refreshes/s").format(rate=rate) if rate else ""
    return (f'<div class="labkit-title" style="font-size:15px;margin-bottom:4px">'
            f'<b>Zombie Lab</b> — {root}'
            f' · <span class="labkit-total">{total}</span>{shown}</div>')


def reasons(lab: Lab, parent: Parent | None, snap: Snapshot | None) -> dict[str, str | None]:
    """Why each button (keyed as BUTTONS) is off right now (None: it is on); `snap` None: the
    lab is closed."""
    if snap is None:
        why = _("the lab is closed")
        return dict.fromkeys(BUTTONS, why)
    live = parent is not None and parent.alive
    room = lab.max_procs - len(snap) - (0 if live else 1)
    fork = (None if room >= 1 else
            _("the lab is full: {n} of max_procs={max} processes (zombies hold PIDs too). Reap, "
              "or let the parent exit").format(n=len(snap), max=lab.max_procs))
    if parent is None:
        reap = exit_ = _("there is no parent: Fork or Reset starts one")
    elif not live:
        reap = _("this parent has exited: its children were adopted by the lab root")
        exit_ = _("this parent has already exited")
    else:
        exit_ = None
        kids = snap.children(parent.pid)
        zombies = sum(1 for p in kids if p.state == ZOMBIE)
        running = len(kids) - zombies
        reap = None if zombies else (
            _("no zombies to reap ({n} children still running)").format(n=running) if running
            else _("no zombies to reap"))
    kill = None if snap.zombies else _("there is no zombie")
    return {"fork": fork, "reap": reap, "exit": exit_, "kill": kill, "reset": None}


def tooltips(lab: Lab, parent: Parent | None, policy: str, n: int,
             lifetime: float) -> dict[str, str]:
    """What each button (keyed as BUTTONS) will do, given the controls' values."""
    live = parent is not None and parent.alive
    fork = (_("parent {pid} (policy {policy!r}) forks {n} children that exit after "
              "{lifetime:g} s").format(pid=parent.pid, policy=parent.policy, n=n,
                                       lifetime=lifetime) if live else
            _("a new parent (policy {policy!r}) forks {n} children that exit after "
              "{lifetime:g} s").format(policy=policy, n=n, lifetime=lifetime))
    return {
        "fork": fork,
        "reap": (_("parent {pid} calls waitpid() for each exited child").format(pid=parent.pid)
                 if parent else ""),
        "exit": _("the parent exits: its children become orphans of the lab root {pid}").format(
            pid=lab.root_pid),
        "kill": _("send SIGKILL to a zombie — and watch: nothing happens, it has already exited"),
        "reset": _("the parent exits, a new parent with policy {policy!r} starts, the plot "
                   "starts over").format(policy=policy),
    }


def explain(e: BaseException) -> str:
    """An exception as the status line shows it: its type, and its message if it has one."""
    name = type(e).__name__
    return f"{name}: {e}" if str(e) else name
