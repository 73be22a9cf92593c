"""PID exhaustion in calls a notebook can read (notebook 07): a lab with a PID budget, a parent
that fills it with zombies, a newcomer that asks for one more PID, and what the kernel counts.

Which mechanism binds on this machine is decided once, by budget_lab(); every other function
reads it from the lab, so that a notebook cell never branches on the machine. Everything here
is real: where no kernel mechanism binds, the lab is capped by labkit's own max_procs, and
describe() says so in every line it prints.
"""

from __future__ import annotations

import os
import weakref
from typing import NamedTuple

from labkit import procfs
from labkit.budget import Usage
from labkit.errors import BudgetUnavailable, CapacityError, ForkRefused, LabError
from labkit.i18n import _
from labkit.lab import Lab, Parent
from labkit.observe import Snapshot

# Why a lab made by budget_lab() is capped by labkit and not by the kernel.
_NOT_BY_KERNEL: weakref.WeakKeyDictionary[Lab, str] = weakref.WeakKeyDictionary()
SLAB = "/sys/kernel/slab"  # SLUB's per-cache facts; object_size is mode 0400 (root only)


def budget_lab(limit: int, mode: str = "auto") -> Lab:
    """Lab(pid_limit=limit) where a kernel mechanism binds here (a cgroup's pids.max, or
    RLIMIT_NPROC); else the nearest real thing, Lab(max_procs=limit), capped by labkit before
    each fork. describe(lab) says which, and why."""
    try:
        return Lab(mode=mode, pid_limit=limit)
    except BudgetUnavailable as exc:
        lab = Lab(mode=mode, max_procs=limit)
        _NOT_BY_KERNEL[lab] = str(exc)
        return lab


def describe(lab: Lab) -> Usage:
    """The lab's PID budget: the mechanism that enforces it, its limit, what it counts now, and
    the files where the kernel shows it (print it; its fields are values)."""
    snap = lab.snapshot()
    if lab.budget is not None:
        return lab.budget.usage(len(snap.procs), lab.root_pid)
    why = _NOT_BY_KERNEL.get(lab) or _("this lab was made without pid_limit")
    return Usage(_("labkit's own cap, max_procs = {n}").format(n=lab.max_procs), False,
                 lab.max_procs, len(snap.procs), lab.max_procs, True,
                 (_("labkit counts {n} lab processes, zombies included").format(
                     n=len(snap.procs)),
                  _("no kernel mechanism binds here: {why}").format(why=why)))


class Filled(NamedTuple):
    """What fill_with_zombies() found: the refusal, and the lab once every child is a zombie."""

    refusal: ForkRefused | CapacityError  # the kernel's EAGAIN, or labkit's own cap
    made: int                             # the parent's children now, every one a zombie
    snapshot: Snapshot


def fill_with_zombies(lab: Lab, parent: Parent, ask: int = 100) -> Filled:
    """`parent` forks children that exit at once and are never reaped, until it is refused.

    Under a kernel budget it asks for `ask` at a time (more than fit): the kernel refuses the
    fork that would pass the limit. A user-wide RLIMIT_NPROC grows when the user's other tasks
    end, so it asks again until refused (labkit's max_procs bounds that). labkit's own cap
    refuses a request as a whole, so there it asks for exactly what fits, then for one more.
    Run again, it finds the budget already full.
    """
    def zombies_of_parent(snap: Snapshot) -> int:
        return sum(1 for z in snap.zombies if z.ppid == parent.pid)

    made = zombies_of_parent(lab.snapshot())
    try:
        while True:
            room = lab.max_procs - len(lab.snapshot())
            asked = ask if lab.budget is not None else max(room, 1)
            made += len(parent.fork(asked))
            if lab.budget is None:
                parent.fork(1)
    except ForkRefused as refusal:
        made += len(refusal.created)
        return Filled(refusal, made, lab.wait_for(lambda s: zombies_of_parent(s) == made))
    except CapacityError as refusal:
        return Filled(refusal, made, lab.wait_for(lambda s: zombies_of_parent(s) == made))


class Attempt(NamedTuple):
    """What happened when a newcomer asked for a PID (try_new_parent)."""

    refused: bool
    said: str

    def __str__(self) -> str:
        return self.said


def try_new_parent(lab: Lab, policy: str = "wait") -> Attempt:
    """Can a new, well-behaved parent start now? A newcomer that started exits at once
    (parent.exit()), so that the lab holds what it held before."""
    try:
        newcomer = lab.parent(policy)
    except (ForkRefused, CapacityError) as exc:
        return Attempt(True, _("refused: {kind}: {error}").format(kind=type(exc).__name__,
                                                                   error=exc))
    newcomer.exit()
    return Attempt(False, _("a new {policy!r} parent started (PID {pid}), and left again: the "
                            "budget had a free PID").format(policy=policy, pid=newcomer.pid))


def zombie_memory(pid: int) -> str:
    """What a zombie still holds, from /proc/PID/status (proc(5)) and, where readable, the
    kernel's slab caches: no user memory (do_exit() let go of it, kernel/exit.c: exit_mm), but
    its task_struct, its struct pid and its exit status, until it is reaped (release_task)."""
    status = procfs.status(pid)
    if status is None:
        raise LabError(_("process {pid} no longer exists: once reaped, a zombie leaves nothing "
                         "behind. Make new zombies (fill_with_zombies) to look at one").format(
                             pid=pid))
    vm = sorted(key for key in status if key.startswith("Vm"))
    state = status.get("State", "?")
    if vm:
        first = _("/proc/{pid}/status: State {state}; memory lines: {lines}").format(
            pid=pid, state=state, lines=", ".join(vm))
    else:
        first = _("/proc/{pid}/status: State {state}; no Vm* lines at all: it has no user "
                  "memory left (no VmRSS, no VmSize)").format(pid=pid, state=state)
    lines = [first]
    sizes = {name: _read_int(f"{SLAB}/{name}/object_size") for name in ("task_struct", "pid")}
    if None in sizes.values():
        lines.append(_("kernel memory it keeps: its task_struct and struct pid (their sizes are "
                       "in {slab}/*/object_size, readable by root only)").format(slab=SLAB))
    else:
        lines.append(_("kernel memory it keeps: task_struct {task:,} bytes, struct pid {pid:,} "
                       "bytes ({slab}/*/object_size), and its exit status, inside the "
                       "task_struct").format(task=sizes["task_struct"], pid=sizes["pid"],
                                             slab=SLAB))
    return "\n".join(lines)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def tasks_now() -> int:
    """Every task on this machine (in this PID namespace) now: the entries of /proc/PID/task,
    one per thread; each holds a PID (proc(5))."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                total += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:  # it exited while we looked
                pass
    return total
