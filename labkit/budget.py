"""PID budgets: `Lab(pid_limit=N)`, a lab whose processes hold at most N PIDs, zombies included,
enforced by the kernel and named in `lab.limit_mechanism`.

The first real mechanism that binds here is used; nothing is simulated:

  cgroup pids.max   a cgroup of the lab's own, made under this process's pids cgroup (v1's
                    pids hierarchy, or v2 where pids is in cgroup.subtree_control) or under a
                    delegated cgroup named by $LABKIT_PIDS_CGROUP. The lab root joins it before
                    it starts anything (pause --cgroup), so the root, the agent, the parents,
                    their children and their zombies all count in pids.current until reaped.
                    Removed when the lab closes (rmdir: the lab is drained by then).
  RLIMIT_NPROC      set on the lab root before it starts anything (pause --nproc). The kernel
                    counts every task of the real uid, threads too (setrlimit(2)); since Linux
                    5.14 per user namespace (ucounts): a PID-namespace lab of an unprivileged
                    user has a user namespace of its own, where only the lab and its launcher
                    count. It does not bind real uid 0, CAP_SYS_RESOURCE or CAP_SYS_ADMIN
                    (kernel/fork.c), so root needs the cgroup.
  neither           BudgetUnavailable, saying why and what would work.

pids_cgroup() and nproc_exemption() decide as the doctor's cgroup and RLIMIT_NPROC facts do
(labkit.machine), so that what it promises is what a lab gets (tests/test_budget.py checks).
"""

from __future__ import annotations

import errno
import numbers
import os
import resource
import secrets
import time
import warnings
from typing import NamedTuple

from labkit import checks, limits, linux, procfs
from labkit.errors import BudgetUnavailable, CapacityError
from labkit.i18n import N_, _
from labkit.pause import EXIT_BUDGET

CGROUP_ENV = "LABKIT_PIDS_CGROUP"  # a cgroup directory where labs may make their own
CGROUP_PREFIX = "labkit-lab-"  # + the owner's linux.owner_tag() + "-" + a random part
LAB_OWN = limits.MIN_PROCS  # PIDs the lab needs itself: its root, its agent, one parent
ROOT_REFUSED = EXIT_BUDGET  # the lab root's exit code when it could not enter its budget
UCOUNTS_SINCE = (5, 14)    # "Reimplement RLIMIT_NPROC on top of ucounts": per user namespace
RMDIR_TIMEOUT = 5.0
# Bits of CapEff that lift RLIMIT_NPROC (include/uapi/linux/capability.h; kernel/fork.c).
CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24
IDENTITY_MAP = "0 0 4294967295"  # /proc/self/uid_map in the initial user namespace
# Why RLIMIT_NPROC does not bind: English in the doctor's facts, translated for a learner.
EXEMPT_ROOT = N_("real uid 0 (root) is exempt")
EXEMPT_CAP = N_("{name} is in CapEff")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def pids_cgroup() -> tuple[str, str] | None:
    """("v1" or "v2", directory) where a lab's cgroup would be made: $LABKIT_PIDS_CGROUP if set,
    else this process's cgroup in the hierarchy that has the pids controller."""
    delegated = os.environ.get(CGROUP_ENV)
    if delegated:
        v2 = os.path.exists(os.path.join(delegated, "cgroup.controllers"))
        return ("v2" if v2 else "v1"), delegated
    mounts = linux.mounts()
    lines = [line.split(":", 2) for line in (_read("/proc/self/cgroup") or "").splitlines()]
    for _hierarchy, controllers, path in lines:
        if "pids" in controllers.split(","):
            for point, kind, options in mounts:
                if kind == "cgroup" and "pids" in options:
                    return "v1", os.path.normpath(os.path.join(point, path.lstrip("/")))
    for hierarchy, controllers, path in lines:
        if hierarchy == "0" and controllers == "":
            for point, kind, _options in mounts:
                directory = os.path.normpath(os.path.join(point, path.lstrip("/")))
                available = (_read(os.path.join(directory, "cgroup.controllers")) or "").split()
                if kind == "cgroup2" and "pids" in available:
                    return "v2", directory
    return None


def nproc_exemption(translated: bool = False) -> str | None:
    """Why RLIMIT_NPROC would not stop this process's forks, or None if it would: in English
    (the doctor's fact), or in the learner's language when `translated`.

    kernel/fork.c lets real uid 0 of the initial user namespace, and CAP_SYS_RESOURCE or
    CAP_SYS_ADMIN there, fork past the limit. Inside a user namespace of our own neither applies.
    """
    say = _ if translated else str
    if " ".join((_read("/proc/self/uid_map") or "").split()) != IDENTITY_MAP:
        return None
    if os.getuid() == 0:
        return say(EXEMPT_ROOT)
    status = dict(line.partition(":")[::2] for line in (_read("/proc/self/status") or "")
                  .splitlines())
    caps = int(status.get("CapEff", "0").strip() or "0", 16)
    for bit, name in ((CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")):
        if caps & (1 << bit):
            return say(EXEMPT_CAP).format(name=name)
    return None


def tasks_of(uid: int) -> int:
    """Tasks (threads included) whose real uid is `uid`: what RLIMIT_NPROC counts."""
    total = 0
    for pid in procfs.all_pids():
        fields = procfs.status(pid) or {}
        uids = fields.get("Uid", "").split()
        if uids and int(uids[0]) == uid:
            total += int(fields.get("Threads", "1"))
    return total


def ucounts_per_namespace() -> bool:
    """Whether this kernel counts RLIMIT_NPROC per user namespace (Linux >= 5.14)."""
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= UCOUNTS_SINCE
    except (IndexError, ValueError):
        return True


def check_limit(value: object, max_procs: int) -> int:
    """A pid_limit: an int (not a bool) from LAB_OWN up to the lab's max_procs."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value < LAB_OWN:
        raise ValueError(_("pid_limit={value} is too small: the lab itself holds {own} PIDs "
                           "(its root, its agent and one parent), so allow at least {own}; its "
                           "children get what is left").format(value=value, own=LAB_OWN))
    return checks.count(value, "pid_limit", low=LAB_OWN, high=max_procs,
                        why_high=_("(the lab's max_procs: raise max_procs too)"))


class Budget:
    """A lab's PID budget: `limit` PIDs for all its processes, by one kernel mechanism."""

    def __init__(self, limit: int, kind: str, version: str | None = None,
                 parent: str | None = None, why_not_cgroup: str = "") -> None:
        self.limit = limit
        self.kind = kind                    # "cgroup" or "rlimit"
        self.version = version              # "v1" or "v2" (a cgroup)
        self.parent = parent                # where the lab's cgroup is made
        self.cgroup: str | None = None      # the lab's cgroup directory, while it exists
        self.why_not_cgroup = why_not_cgroup
        self.mode: str | None = None        # the lab mode the root was started in
        self.nproc: int | None = None       # the RLIMIT_NPROC given to the lab root
        self.baseline = 0                   # tasks it counts that are not the lab's
        self.per_namespace = False          # counted in the lab's own user namespace

    @property
    def mechanism(self) -> str:
        return f"cgroup pids.max ({self.version})" if self.kind == "cgroup" else "RLIMIT_NPROC"

    # --- the cgroup -----------------------------------------------------------------------

    def acquire(self) -> None:
        """Make the lab's cgroup with pids.max = limit (again, after a release). OSError if
        refused, with nothing left behind."""
        if self.kind != "cgroup" or self.cgroup is not None:
            return
        if not os.path.isdir(self.parent):
            raise OSError(errno.ENOENT, _("{path} does not exist").format(path=self.parent))
        if not os.path.exists(os.path.join(self.parent, "cgroup.procs")):
            raise OSError(errno.ENOTDIR, _("{path} is not a cgroup (no cgroup.procs)").format(
                path=self.parent))
        # Named after us, so that the next lab can remove it if we are killed before release().
        path = os.path.join(self.parent,
                            f"{CGROUP_PREFIX}{linux.owner_tag()}-{secrets.token_hex(4)}")
        try:
            os.mkdir(path)
        except OSError as exc:
            raise OSError(exc.errno, f"mkdir {path}: {linux.errno_name(exc.errno or 0)} "
                          f"({exc.strerror})") from None
        try:
            if not os.path.exists(os.path.join(path, "pids.max")):
                raise OSError(errno.ENOENT, _(
                    "{path} does not give its children the pids controller (no pids.max in a new "
                    "cgroup there: on v2, pids is not in its cgroup.subtree_control)").format(
                        path=self.parent))
            with open(os.path.join(path, "pids.max"), "w") as f:
                f.write(str(self.limit))
        except OSError:
            os.rmdir(path)
            raise
        self.cgroup = path

    def release(self) -> None:
        """Remove the lab's cgroup; the lab must be drained (rmdir fails while tasks remain)."""
        path, self.cgroup = self.cgroup, None
        if path is None:
            return
        deadline = time.monotonic() + RMDIR_TIMEOUT
        while True:
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    warnings.warn(_("labkit: could not remove the lab's cgroup {path}: "
                                    "{strerror}").format(path=path, strerror=exc.strerror),
                                  RuntimeWarning, stacklevel=2)
                    return
            time.sleep(0.01)

    def current(self) -> int | None:
        """pids.current of the lab's cgroup: its tasks now, zombies included."""
        value = self.cgroup and _read(os.path.join(self.cgroup, "pids.current"))
        return int(value) if value else None

    # --- the lab root ---------------------------------------------------------------------

    def root_options(self, mode: str) -> list[str]:
        """labkit.pause's options that put a lab root of `mode` under this budget."""
        self.mode = mode
        if self.kind == "cgroup":
            try:
                self.acquire()  # again, after a failed start released it
            except OSError as exc:
                raise BudgetUnavailable(_("the lab's cgroup could not be made: {why}").format(
                    why=exc.strerror)) from None
            return ["--cgroup", self.cgroup]
        # The limit counts tasks that are not the lab's: the root's launcher (labkit.unshare,
        # or the subreaper lab's keeper: labkit.lab), started after this count, and, unless
        # the lab has a user namespace of its own where the kernel counts apart, every other
        # task of our uid, right now.
        launcher = 1
        self.per_namespace = (mode == "pid-namespace" and os.geteuid() != 0
                              and ucounts_per_namespace())
        self.baseline = launcher + (0 if self.per_namespace else tasks_of(os.getuid()))
        self.nproc = self.baseline + self.limit
        _soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        if hard != resource.RLIM_INFINITY and self.nproc > hard:
            raise CapacityError(_(
                "pid_limit={limit} does not fit under this user's RLIMIT_NPROC hard limit "
                "({hard}): {running} of its tasks are running. Ask for at most {most}").format(
                    limit=self.limit, hard=hard, running=self.baseline,
                    most=max(0, hard - self.baseline)))
        return ["--nproc", str(self.nproc)]

    def describe(self) -> str:
        """What enforces the budget, in words: lab.limit_mechanism."""
        if self.kind == "cgroup":
            return _("cgroup pids.max ({version}): {cgroup}/pids.max = {limit}; every process of "
                     "the lab counts, zombies until they are reaped").format(
                         version=self.version, cgroup=self.cgroup, limit=self.limit)
        uid = os.getuid()
        if self.per_namespace:
            text = _("RLIMIT_NPROC in the lab's user namespace: its uid 0 (uid {uid} outside) "
                     "may have at most {nproc} processes there, one of them the namespace's "
                     "launcher, so the lab's share is {limit} (Linux >= 5.14 counts RLIMIT_NPROC "
                     "per user namespace)").format(uid=uid, nproc=self.nproc, limit=self.limit)
        else:
            text = _("RLIMIT_NPROC: uid {uid} may have at most {nproc} processes (threads count "
                     "too); {running} were running when the lab started, so the lab's share is "
                     "{limit}. Not the lab's alone: if the user's other processes grow, the lab "
                     "gets fewer").format(uid=uid, nproc=self.nproc, running=self.baseline,
                                          limit=self.limit)
        return _("{text}. No cgroup of its own: {why}").format(text=text,
                                                               why=self.why_not_cgroup)

    def full(self, lab_procs: int, zombies: int) -> str:
        """What a fork refused with EAGAIN means under this budget, and what to do."""
        if self.kind == "cgroup":
            name, used, cap = f"pids.max = {self.limit}", self.current(), self.limit
        elif self.per_namespace:
            name = _("RLIMIT_NPROC = {nproc} in its user namespace, the lab's share "
                     "{limit}").format(nproc=self.nproc, limit=self.limit)
            used, cap = lab_procs + self.baseline, self.nproc
        else:
            name = _("RLIMIT_NPROC = {nproc} for uid {uid}, the lab's share {limit}").format(
                nproc=self.nproc, uid=os.getuid(), limit=self.limit)
            used, cap = tasks_of(os.getuid()), self.nproc
        if used is not None and used < cap:
            return _("The lab's PID budget ({name}) is not full ({used} in use), so another "
                     "limit was reached: the machine's pid_max, or an enclosing cgroup's "
                     "pids.max (labkit.doctor() shows them)").format(name=name, used=used)
        live = lab_procs - zombies
        if not zombies:
            return _("The lab's PID budget ({name}) is full: its {live} live processes hold "
                     "every PID. Let a parent exit (parent.exit()), or wait for children to "
                     "end").format(name=name, live=live)
        return _("The lab's PID budget ({name}) is full: {zombies} zombies hold PIDs, the lab's "
                 "{live} live processes the rest. Reap them (parent.reap()) or let the parent "
                 "exit (parent.exit(): the lab root then reaps them), and fork again").format(
                     name=name, zombies=zombies, live=live)

    # --- what the kernel shows (labkit.exhaustion.describe, notebook 07) -------------------

    @property
    def own(self) -> bool:
        """Whether the kernel's count is the lab's alone: a cgroup's, or RLIMIT_NPROC's in the
        lab's own user namespace. A user-wide RLIMIT_NPROC counts every task of the uid."""
        return self.kind == "cgroup" or self.per_namespace

    def kernel_limit(self) -> int | None:
        """The limit as the kernel holds it: the lab cgroup's pids.max, or the RLIMIT_NPROC
        given to the lab root (the lab's share plus the tasks it counts that are not the lab's)."""
        if self.kind == "cgroup":
            value = self.cgroup and _read(os.path.join(self.cgroup, "pids.max"))
            return int(value) if value and value.isdigit() else None
        return self.nproc

    def in_use(self, lab_procs: int) -> int | None:
        """What the kernel counts against the limit now: pids.current (zombies included until
        reaped); for RLIMIT_NPROC the tasks of the uid, threads included (getrlimit(2)), which in
        the lab's own user namespace are the lab's and its launcher's."""
        if self.kind == "cgroup":
            return self.current()
        if self.per_namespace:
            return lab_procs + self.baseline
        return tasks_of(os.getuid())

    def kernel_files(self, root_pid: int) -> list[str]:
        """The kernel's own words on this budget, one line per file: the lab cgroup's
        pids.current, pids.max and pids.events ("max N": forks refused at pids.max; kernel docs,
        cgroup-v1/pids.rst and cgroup-v2.rst), or the lab root's "Max processes" line of
        /proc/PID/limits (proc(5))."""
        if self.kind == "cgroup":
            if self.cgroup is None:
                return [_("(the lab's cgroup is gone: the lab is closed)")]
            lines = []
            for name in ("pids.current", "pids.max", "pids.events"):
                value = _read(os.path.join(self.cgroup, name))
                if value is not None:
                    lines.append(f"{self.cgroup}/{name}: {' '.join(value.split())}")
            return lines
        limits = (_read(f"/proc/{root_pid}/limits") or "").splitlines()
        shown = [line for line in limits if line.startswith(("Limit", "Max processes"))]
        return [f"/proc/{root_pid}/limits: {' '.join(line.split())}" for line in shown] or [
            _("(/proc/{pid}/limits is gone: the lab root has exited)").format(pid=root_pid)]

    def usage(self, lab_procs: int, root_pid: int) -> Usage:
        """The budget in numbers and in the kernel's words; `lab_procs`: the lab's processes
        now (zombies included), `root_pid`: its root's host PID."""
        limit = self.kernel_limit()
        return Usage(self.mechanism, True, self.limit if limit is None else limit,
                     self.in_use(lab_procs), self.limit, self.own,
                     tuple(self.kernel_files(root_pid)))


def sweep() -> list[str]:
    """Remove the lab cgroups whose owner has ended (a killed kernel never calls release());
    the paths removed. One that still holds tasks is left: rmdir(2) refuses it (EBUSY) until
    its lab has drained, and the next lab tries again."""
    found = pids_cgroup()
    if found is None:
        return []
    parent = found[1]
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for name in names:
        if linux.owner_gone(name, CGROUP_PREFIX):
            try:
                os.rmdir(os.path.join(parent, name))
                removed.append(os.path.join(parent, name))
            except OSError:
                pass
    return removed


def plan(limit: int) -> Budget:
    """The budget for a lab of `limit` PIDs, by the first mechanism that binds here (a cgroup is
    made now); BudgetUnavailable if none does. Starts no process."""
    found = pids_cgroup()
    why = _("this process has no cgroup with the pids controller (/proc/self/cgroup)")
    if found is not None:
        budget = Budget(limit, "cgroup", *found)
        try:
            budget.acquire()
            return budget
        except OSError as exc:
            why = exc.strerror
    exempt = nproc_exemption(translated=True)
    if exempt is None:
        return Budget(limit, "rlimit", why_not_cgroup=why)
    raise BudgetUnavailable(_(
        "Lab(pid_limit={limit}) needs a kernel mechanism to enforce it, and none binds here. "
        "No cgroup of its own: {why}. RLIMIT_NPROC does not bind this process: {exempt} "
        "(kernel/fork.c lets real uid 0, CAP_SYS_RESOURCE and CAP_SYS_ADMIN fork past it). "
        "Nothing was started, and nothing is simulated. What would work: run the lab as an "
        "unprivileged user (RLIMIT_NPROC binds there), or give it a cgroup with the pids "
        "controller where it may make a child: a writable /sys/fs/cgroup, or a delegated "
        "cgroup named by the environment variable {env}. Lab() without pid_limit still "
        "works, capped by max_procs before each fork").format(
            limit=limit, why=why, exempt=exempt, env=CGROUP_ENV))


class Usage(NamedTuple):
    """A PID budget in numbers and in the kernel's words (Budget.usage)."""

    mechanism: str          # "cgroup pids.max (v1)", "RLIMIT_NPROC", or labkit's own cap
    by_kernel: bool         # False only where no kernel mechanism could bind (labkit's cap)
    limit: int              # the mechanism's limit
    in_use: int | None      # what it counts against the limit now
    share: int              # the lab's part of the limit (its pid_limit)
    own: bool               # the count is the lab's alone (False: shared with the uid's tasks)
    evidence: tuple[str, ...]  # where the kernel (or labkit) shows it

    @property
    def full(self) -> bool:
        return self.in_use is not None and self.in_use >= self.limit

    def __str__(self) -> str:
        who = (_("enforced by the kernel: a fork past it fails with EAGAIN (fork(2))")
               if self.by_kernel else _("checked by labkit before each fork, NOT by the kernel: "
                                        "no fork fails with EAGAIN here, labkit refuses with "
                                        "CapacityError"))
        count = (_("the lab's own count") if self.own else
                 _("shared: every task of uid {uid} counts, the lab's share is {share}").format(
                     uid=os.getuid(), share=self.share))
        used = "?" if self.in_use is None else str(self.in_use)
        lines = [_("{mechanism}, {who}.").format(mechanism=self.mechanism, who=who),
                 _("{used} of {limit} in use ({count}).").format(used=used, limit=self.limit,
                                                               count=count)]
        return "\n".join(lines + [f"  {line}" for line in self.evidence])
