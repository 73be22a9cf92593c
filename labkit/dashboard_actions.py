"""What the Dashboard's buttons do to the lab: fork, reap, the parent's exit, kill -9, Reset.

A mixin of labkit.widgets.Dashboard, apart from it so that the actions on real processes read
on their own, away from the widgets and the refresh task that draws them. Knows no ipywidgets:
it reads the controls' `.value` and sets the buttons' `.disabled`, nothing more. Each action
returns what the status line says; errors from labkit go to the status line (see _act).
"""

from __future__ import annotations

import time
from typing import Any

from labkit.dashboard_text import explain
from labkit.errors import CapacityError, LabError
from labkit.i18n import N_, _
from labkit.lab import KillReport, Lab, Parent
from labkit.observe import Series, Snapshot

NO_PARENT = {"reap": N_("no parent to reap: press Fork or Reset to start one"),
             "exit": N_("no parent to exit: press Fork or Reset to start one")}


class DashboardActions:
    """The button actions of a Dashboard, which provides these attributes and the methods
    `_say(text, error=, busy=)`, `refresh()` and `_update_tooltips()`."""

    lab: Lab
    parent: Parent | None
    series: Series
    snapshot: Snapshot | None
    last_killed: int | None
    buttons: tuple[Any, ...]
    policy: Any     # the controls: only their .value is read here
    children: Any
    lifetime: Any
    _drawn: tuple[float, dict[str, int]] | None
    _busy: bool
    _closed: bool

    def _act(self, action) -> None:
        """Run one button's action: buttons off while it runs, its outcome in the status line."""
        if self._busy or self._closed:
            return
        self._busy = True
        for b in self.buttons:
            b.disabled = True
        try:
            message = action()
        except (LabError, ValueError, TypeError, OSError) as e:
            self._say(explain(e), error=True)
        except Exception as e:  # a widget callback must not raise into the kernel's loop
            self._say(_("unexpected {error}").format(error=explain(e)), error=True)
        else:
            self._say(message)
        finally:
            self._busy = False
        try:
            self.refresh()
        except Exception as e:  # the same
            self._say(_("refresh failed: {error}").format(error=explain(e)), error=True)

    def _mark(self, label: str) -> None:
        if self.series.times:
            self.series.marks.append((time.monotonic() - self.series.start, label))

    def _live_parent(self, extra: int) -> Parent:
        """The parent to fork from: the current one, or (if it has exited) a new one with the
        chosen policy, when there is room for it and `extra` more processes."""
        if self.parent is not None and self.parent.alive:
            return self.parent
        have = len(self.lab.snapshot())
        if have + 1 + extra > self.lab.max_procs:
            raise CapacityError(_(
                "this lab has {have} processes (zombies included) and max_procs={max}: a new "
                "parent and {extra} children would not fit. Reap the zombies or let a parent "
                "exit").format(have=have, max=self.lab.max_procs, extra=extra))
        self.parent = self.lab.parent(self.policy.value)
        self._mark(f"parent {self.parent.pid}")
        return self.parent

    def _fork(self) -> str:
        n, lifetime = self.children.value, self.lifetime.value
        self._say(_("forking {n}…").format(n=n), busy=True)  # fork(1000): a fraction of a second
        parent = self._live_parent(n)
        pids = parent.fork(n, lifetime=lifetime)
        self._mark(f"fork {n}")
        ending = (_("they exit at once") if lifetime == 0 else
                  _("they exit after {lifetime:g} s").format(lifetime=lifetime))
        said = (_("parent {pid} (policy {policy!r}) forked {n} child; {ending}") if len(pids) == 1
                else _("parent {pid} (policy {policy!r}) forked {n} children; {ending}"))
        return said.format(pid=parent.pid, policy=parent.policy, n=len(pids), ending=ending)

    def _reap(self) -> str:
        parent = self._current("reap")
        self._say(_("parent {pid} is calling waitpid()…").format(pid=parent.pid), busy=True)
        n = parent.reap()
        self._mark(f"reap {n}")
        said = (_("parent {pid} called waitpid() and reaped {n} child: its PID is free again")
                if n == 1 else
                _("parent {pid} called waitpid() and reaped {n} children: their PIDs are free "
                  "again"))
        return said.format(pid=parent.pid, n=n)

    def _exit(self) -> str:
        parent = self._current("exit")
        kids = len(self.snapshot.children(parent.pid)) if self.snapshot else 0
        parent.exit()
        self._mark(f"parent {parent.pid} exits")
        said = (_("parent {pid} exited: its {kids} children are orphans now, adopted by the lab "
                  "root {root}, which reaps them") if self.lab.reap else
                _("parent {pid} exited: its {kids} children are orphans now, adopted by the lab "
                  "root {root}, which does not reap (reap=False): its zombies stay"))
        return said.format(pid=parent.pid, kids=kids, root=self.lab.root_pid)

    def _kill(self) -> str:
        zombies = self.lab.snapshot().zombies
        if not zombies:
            raise LabError(_("there is no zombie to kill right now"))
        mine = [z for z in zombies if self.parent is not None and z.ppid == self.parent.pid]
        z = (mine or zombies)[0]
        try:
            done = self.lab.kill_zombie(z.pid)
        except LabError:  # reaped since the snapshot: no longer a zombie of the lab
            done = KillReport(z.pid, z.ns_pid, z.ppid, sent=False, still_zombie=False)
        self.last_killed = z.pid
        self._mark(f"kill -9 {z.pid}")
        inside = (_(" (PID {ns_pid} inside the lab)").format(ns_pid=z.ns_pid)
                  if z.ns_pid != z.pid else "")
        if not done.sent:
            said = _("PID {pid}{inside} was reaped just before kill -9 could reach it; nothing "
                     "was sent")
        elif done.still_zombie:
            said = _("kill -9 sent to PID {pid}{inside}: it is still a zombie — only wait() "
                     "removes it (by its parent {ppid}, or by the lab root once that parent "
                     "exits)")
        else:
            said = _("kill -9 sent to PID {pid}{inside}; it is gone, but not by the signal: its "
                     "parent reaped it at the same moment")
        return said.format(pid=z.pid, inside=inside, ppid=z.ppid)

    def _reset(self) -> str:
        old = self.parent
        said = ""
        if old is not None and old.alive:
            old.exit()
            said = _("parent {pid} exited (its children went to the lab root); ").format(
                pid=old.pid)
        self.parent = None
        self.series = Series()
        self._drawn = None
        self.parent = self.lab.parent(self.policy.value)
        return said + _("new parent {pid} with policy {policy!r}").format(
            pid=self.parent.pid, policy=self.parent.policy)

    def _current(self, what: str) -> Parent:
        if self.parent is None:
            raise LabError(_(NO_PARENT[what]))
        return self.parent

    def _policy_changed(self, change: dict) -> None:
        parent, policy = self.parent, change["new"]
        if parent is None or not parent.alive or parent.policy == policy or self._busy:
            return
        if self.snapshot is not None and not self.snapshot.children(parent.pid):
            self._act(self._reset)  # a parent with no children yet: swap it quietly
            return
        self._say(_("parent {pid} keeps policy {policy!r} (a process sets its SIGCHLD handling "
                    "when it starts): press Reset for a new parent with {new!r}").format(
                        pid=parent.pid, policy=parent.policy, new=policy))
        self._update_tooltips()
