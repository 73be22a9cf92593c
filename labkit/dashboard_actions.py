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
from labkit.lab import KillReport, Lab, Parent
from labkit.observe import Series, Snapshot


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
            self._say(f"unexpected {explain(e)}", error=True)
        else:
            self._say(message)
        finally:
            self._busy = False
        try:
            self.refresh()
        except Exception as e:  # the same
            self._say(f"refresh failed: {explain(e)}", error=True)

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
            raise CapacityError(
                f"this lab has {have} processes (zombies included) and max_procs="
                f"{self.lab.max_procs}: a new parent and {extra} children would not fit. "
                "Reap the zombies or let a parent exit")
        self.parent = self.lab.parent(self.policy.value)
        self._mark(f"parent {self.parent.pid}")
        return self.parent

    def _fork(self) -> str:
        n, lifetime = self.children.value, self.lifetime.value
        self._say(f"forking {n}…", busy=True)  # fork(1000) takes a fraction of a second
        parent = self._live_parent(n)
        pids = parent.fork(n, lifetime=lifetime)
        self._mark(f"fork {n}")
        ending = "exit at once" if lifetime == 0 else f"exit after {lifetime:g} s"
        return (f"parent {parent.pid} (policy {parent.policy!r}) forked {len(pids)} "
                f"{'child' if len(pids) == 1 else 'children'}; they {ending}")

    def _reap(self) -> str:
        parent = self._current("reap")
        self._say(f"parent {parent.pid} is calling waitpid()…", busy=True)
        n = parent.reap()
        self._mark(f"reap {n}")
        return (f"parent {parent.pid} called waitpid() and reaped {n} "
                f"{'child' if n == 1 else 'children'}: their PIDs are free again")

    def _exit(self) -> str:
        parent = self._current("exit")
        kids = len(self.snapshot.children(parent.pid)) if self.snapshot else 0
        parent.exit()
        self._mark(f"parent {parent.pid} exits")
        return (f"parent {parent.pid} exited: its {kids} children are orphans now, adopted by "
                f"the lab root {self.lab.root_pid}"
                + (", which reaps them" if self.lab.reap else
                   ", which does not reap (reap=False): its zombies stay"))

    def _kill(self) -> str:
        zombies = self.lab.snapshot().zombies
        if not zombies:
            raise LabError("there is no zombie to kill right now")
        mine = [z for z in zombies if self.parent is not None and z.ppid == self.parent.pid]
        z = (mine or zombies)[0]
        try:
            done = self.lab.kill_zombie(z.pid)
        except LabError:  # reaped since the snapshot: no longer a zombie of the lab
            done = KillReport(z.pid, z.ns_pid, z.ppid, sent=False, still_zombie=False)
        self.last_killed = z.pid
        self._mark(f"kill -9 {z.pid}")
        inside = f" (PID {z.ns_pid} inside the lab)" if z.ns_pid != z.pid else ""
        if not done.sent:
            return (f"PID {z.pid}{inside} was reaped just before kill -9 could reach it; "
                    "nothing was sent")
        if done.still_zombie:
            return (f"kill -9 sent to PID {z.pid}{inside}: it is still a zombie — only wait() "
                    f"removes it (by its parent {z.ppid}, or by the lab root once that parent "
                    "exits)")
        return (f"kill -9 sent to PID {z.pid}{inside}; it is gone, but not by the signal: its "
                "parent reaped it at the same moment")

    def _reset(self) -> str:
        old = self.parent
        said = ""
        if old is not None and old.alive:
            old.exit()
            said = f"parent {old.pid} exited (its children went to the lab root); "
        self.parent = None
        self.series = Series()
        self._drawn = None
        self.parent = self.lab.parent(self.policy.value)
        return f"{said}new parent {self.parent.pid} with policy {self.parent.policy!r}"

    def _current(self, what: str) -> Parent:
        if self.parent is None:
            raise LabError(f"no parent to {what}: press Fork or Reset to start one")
        return self.parent

    def _policy_changed(self, change: dict) -> None:
        parent, policy = self.parent, change["new"]
        if parent is None or not parent.alive or parent.policy == policy or self._busy:
            return
        if self.snapshot is not None and not self.snapshot.children(parent.pid):
            self._act(self._reset)  # a parent with no children yet: swap it quietly
            return
        self._say(f"parent {parent.pid} keeps policy {parent.policy!r} (a process sets its "
                  f"SIGCHLD handling when it starts): press Reset for a new parent with "
                  f"{policy!r}")
        self._update_tooltips()
