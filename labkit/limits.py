"""How many processes a lab may hold on this machine: a safe share of the free PID space.

A lab's processes, zombies included, each hold a PID. PIDs are shared by everyone on the host
(up to /proc/sys/kernel/pid_max), by everyone under the same cgroup (pids.max), and, for a
non-root user, by all that user's processes (RLIMIT_NPROC). A lab may take half of what is
free, so that one learner's experiment never starves the machine or the neighbours.
"""

from __future__ import annotations

import os
import resource

from labkit import procfs
from labkit.i18n import _

SHARE = 0.5          # of the PIDs still free
DEFAULT_MAX_PROCS = 1000
MIN_PROCS = 3        # the lab root, its agent and one parent


def cgroup_pids_free() -> int | None:
    """PIDs left under this process's cgroup pids.max (v2, or v1's pids hierarchy), if capped."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base = "/sys/fs/cgroup"  # v2, unless v1 names pids below
            if not os.path.exists(os.path.join(base, "cgroup.controllers")):
                base = "/sys/fs/cgroup/unified"
        elif "pids" in controllers.split(","):
            base = "/sys/fs/cgroup/pids"
        else:
            continue
        free = _free_under(base, path)
        if free is not None:
            return free
    return None


def _free_under(base: str, path: str) -> int | None:
    """The smallest pids.max - pids.current from this cgroup up to the top of its hierarchy."""
    least = None
    path = path.rstrip("/")
    while True:
        directory = os.path.join(base, path.lstrip("/"))
        try:
            with open(os.path.join(directory, "pids.max")) as f:
                limit = f.read().strip()
            with open(os.path.join(directory, "pids.current")) as f:
                current = int(f.read())
        except (OSError, ValueError):
            limit = "max"
            current = 0
        if limit != "max":
            free = int(limit) - current
            least = free if least is None else min(least, free)
        if not path or path == "/":
            return least
        path = os.path.dirname(path)


def ceiling() -> tuple[int, str]:
    """The largest max_procs this machine allows now, and the reason for it."""
    free = procfs.pid_max() - procfs.tasks_in_use()
    best = int(free * SHARE)
    reason = _("half of the {free} PIDs free on this machine (pid_max {pid_max}, {used} in use)"
               ).format(free=free, pid_max=procfs.pid_max(), used=procfs.tasks_in_use())
    group = cgroup_pids_free()
    if group is not None and int(group * SHARE) < best:
        best = int(group * SHARE)
        reason = _("half of the {group} PIDs left under this cgroup's pids.max").format(group=group)
    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY and int(soft * SHARE) < best:
        best = int(soft * SHARE)
        reason = _("half of this user's process limit (RLIMIT_NPROC = {soft})").format(soft=soft)
    return best, reason
