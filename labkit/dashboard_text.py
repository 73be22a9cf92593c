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
        who = "no parent"
    else:
        kids = snap.children(parent.pid)
        zombies = sum(1 for p in kids if p.state == ZOMBIE)
        gone = " — <b>exited</b>" if not parent.alive else ""
        who = (f"parent <b>{parent.pid}</b>{gone} · policy <b>{html.escape(parent.policy)}</b>"
               f" · {len(kids)} {'child' if len(kids) == 1 else 'children'}, {zombies} "
               f"{'zombie' if zombies == 1 else 'zombies'}")
    orphans = sum(1 for p in snap.procs if p.role == "orphan")
    if orphans:
        who += f" · {orphans} {'orphan' if orphans == 1 else 'orphans'} adopted by the root"
    return (f'<div class="labkit-counts" style="display:flex;flex-wrap:wrap;align-items:center;'
            f'gap:4px 0;margin:2px 0 4px 0">{badges}<span class="labkit-parent" '
            f'style="margin-left:6px;font-size:14px">{who}</span></div>')


def tree_html(snap: Snapshot) -> str:
    tree = html.escape(snap.tree(limit=TREE_LIMIT))
    return ('<div style="font-size:13px;margin:4px 0 2px 0"><b>process tree</b> '
            f'(at most {TREE_LIMIT} children per parent)</div>'
            '<pre class="labkit-tree" style="font-size:12px;line-height:1.3;max-height:260px;'
            'overflow:auto;white-space:pre;background:#f5f5f5;padding:6px 8px;margin:0">'
            f'{tree}</pre>')


def log_html(events: list[ReapEvent]) -> str:
    if events:
        lines = "\n".join(
            f"{time.strftime('%H:%M:%S', time.localtime(e.time))}"
            f".{int(e.time % 1 * 1000):03d}  reaped PID {e.pid:<7} {exit_status(e.status)}"
            for e in reversed(events))
    else:
        lines = "none yet: when a parent exits, its orphans are reaped here"
    return ('<div style="font-size:13px;margin:4px 0 2px 0"><b>reaped by the lab root</b> '
            f'(newest first, last {LOG_LINES})</div>'
            '<pre class="labkit-events" style="font-size:12px;line-height:1.3;max-height:260px;'
            'overflow:auto;white-space:pre-wrap;word-break:normal;background:#f5f5f5;'
            'padding:6px 8px;margin:0">'
            f'{html.escape(lines)}</pre>')


def exit_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"



def status_html(text: str, kind: str = "info") -> str:
    """The status line: `kind` is "error", "busy" or "info"."""
    colour = {"error": "#b00020", "busy": "#1f5fbf", "info": "#222"}[kind]
    mark = {"error": "⚠ ", "busy": "⏳ ", "info": ""}[kind]
    return (f'<div class="labkit-status labkit-status-{kind}" style="color:{colour};'
            f'font-size:14px;padding:3px 2px;min-height:1.4em">{mark}{html.escape(text)}</div>')


def title_html(lab: Lab, snap: Snapshot, rate: float) -> str:
    """The title line; `rate` is the refreshes per second (0: not shown)."""
    reaps = "reaps orphans" if lab.reap else "does NOT reap orphans (reap=False)"
    shown = f" · {rate:.1f} refreshes/s" if rate else ""
    return (f'<div class="labkit-title" style="font-size:15px;margin-bottom:4px">'
            f'<b>Zombie Lab</b> — lab root {lab.root_pid} ({lab.mode}, {reaps})'
            f' · <span class="labkit-total">{len(snap)} of {lab.max_procs} processes'
            f'</span>{shown}</div>')


def reasons(lab: Lab, parent: Parent | None, snap: Snapshot | None) -> dict[str, str | None]:
    """Why each button (keyed as BUTTONS) is off right now (None: it is on); `snap` None: the
    lab is closed."""
    if snap is None:
        why = "the lab is closed"
        return dict.fromkeys(BUTTONS, why)
    live = parent is not None and parent.alive
    room = lab.max_procs - len(snap) - (0 if live else 1)
    fork = (None if room >= 1 else
            f"the lab is full: {len(snap)} of max_procs={lab.max_procs} processes "
            "(zombies hold PIDs too). Reap, or let the parent exit")
    if parent is None:
        reap = exit_ = "there is no parent: Fork or Reset starts one"
    elif not live:
        reap = "this parent has exited: its children were adopted by the lab root"
        exit_ = "this parent has already exited"
    else:
        exit_ = None
        kids = snap.children(parent.pid)
        zombies = sum(1 for p in kids if p.state == ZOMBIE)
        running = len(kids) - zombies
        reap = None if zombies else (
            "no zombies to reap" + (f" ({running} children still running)" if running else ""))
    kill = None if snap.zombies else "there is no zombie"
    return {"fork": fork, "reap": reap, "exit": exit_, "kill": kill, "reset": None}


def tooltips(lab: Lab, parent: Parent | None, policy: str, n: int,
             lifetime: float) -> dict[str, str]:
    """What each button (keyed as BUTTONS) will do, given the controls' values."""
    live = parent is not None and parent.alive
    who = (f"parent {parent.pid} (policy {parent.policy!r})" if live
           else f"a new parent (policy {policy!r})")
    return {
        "fork": f"{who} forks {n} children that exit after {lifetime:g} s",
        "reap": f"parent {parent.pid} calls waitpid() for each exited child" if parent else "",
        "exit": f"the parent exits: its children become orphans of the lab root {lab.root_pid}",
        "kill": "send SIGKILL to a zombie — and watch: nothing happens, it has already exited",
        "reset": (f"the parent exits, a new parent with policy {policy!r} starts, the plot "
                  "starts over"),
    }


def explain(e: BaseException) -> str:
    """An exception as the status line shows it: its type, and its message if it has one."""
    name = type(e).__name__
    return f"{name}: {e}" if str(e) else name
