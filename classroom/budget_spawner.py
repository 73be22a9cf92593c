"""A JupyterHub spawner for a class on one Linux server: each student's server in a PID budget.

BudgetSpawner is JupyterHub's LocalProcessSpawner (a student's server runs as that student's
Linux account) with three additions:

  a budget     before the server starts, the student gets a cgroup of their own,
               CLASS/<name>, with pids.max = `pids_max` (v1's pids hierarchy or v2, found as
               labkit.budget finds a lab's: labkit.budget.pids_cgroup). The server joins it
               between fork and exec, as root, before it drops to the student's uid, so every
               task it ever starts counts, threads and zombies included: a fork past the budget
               fails with EAGAIN (fork(2)) for this student and nobody else. This is systemd's
               TasksMax= and Kubernetes' pod PID limit (podPidsLimit), on one machine.
  delegation   the cgroup directory and its cgroup.procs are the student's (systemd's
               Delegate=, cgroups(7) "Cgroups delegation"): a lab's own PID budget
               (labkit.Lab(pid_limit=N), notebook 07) is made inside it, as on a laptop.
               pids.max stays root's: the student cannot raise their own budget, and a child
               cgroup cannot hold more than its parent allows.
  a clean end  when the server stops (by the student, the teacher, or the idle culler) every
               task left in the cgroup is killed, orphans and daemons that left the server's
               process tree included (a cgroup holds a task wherever it is reparented), and the
               cgroup is removed. See empty().

The server itself runs under labkit's init (python -m labkit.pause --subreaper --drain), as the
lab's processes do: orphans of the student's processes are reaped in the student's own tree, not
by the host's PID 1, and on a stop SIGINT/SIGTERM reach the server as tini would pass them.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import time

from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import maybe_future
from traitlets import Float, Integer, Unicode

from labkit import budget

CLASS_CGROUP = "zombie-lab-class"  # made in the Hub's own pids cgroup; one child per student
# What the student may write in their cgroup (systemd's delegation: cgroups(7)); never pids.max.
DELEGATED = ("", "cgroup.procs", "tasks", "cgroup.threads", "cgroup.subtree_control")


def class_cgroup(name: str = CLASS_CGROUP) -> tuple[str, str]:
    """("v1" or "v2", directory) of the class's cgroup, made if missing, in the Hub's pids
    cgroup. OSError saying why when this machine gives the Hub no cgroup with pids."""
    found = budget.pids_cgroup()
    if found is None:
        raise OSError("JupyterHub's process has no cgroup with the pids controller "
                      "(/proc/self/cgroup): run it as root on a host with cgroup v1's pids "
                      "hierarchy or cgroup v2, or set LABKIT_PIDS_CGROUP to a delegated cgroup")
    version, parent = found
    path = os.path.join(parent, name)
    os.makedirs(path, exist_ok=True)
    if version == "v2":
        # cgroup v2 hands a controller to children only when the parent lists it in
        # cgroup.subtree_control (cgroup-v2.rst "Enabling and Disabling").
        for directory in (parent, path):
            _enable_pids_v2(directory)
    return version, path


def _enable_pids_v2(directory: str) -> None:
    control = os.path.join(directory, "cgroup.subtree_control")
    with open(control) as f:
        if "pids" in f.read().split():
            return
    with open(control, "w") as f:
        f.write("+pids")


def make_student_cgroup(parent: str, name: str, pids_max: int, uid: int, gid: int) -> str:
    """PARENT/NAME with pids.max = pids_max, delegated to uid:gid; its path. A leftover of the
    same name (a Hub that died) is emptied first."""
    path = os.path.join(parent, name)
    if os.path.isdir(path):
        empty(path)
    os.mkdir(path)
    try:
        with open(os.path.join(path, "pids.max"), "w") as f:
            f.write(str(pids_max))
        for entry in DELEGATED:
            target = os.path.join(path, entry)
            if os.path.exists(target):
                os.chown(target, uid, gid)
    except OSError:
        os.rmdir(path)
        raise
    return path


def cgroup_tasks(path: str) -> list[int]:
    """Every process in the cgroup PATH and the cgroups below it (cgroup.procs lists thread
    group ids; an exited task leaves the list at exit, a zombie only counts in pids.current)."""
    pids = []
    for directory, _, _ in os.walk(path):
        try:
            with open(os.path.join(directory, "cgroup.procs")) as f:
                pids.extend(int(line) for line in f.read().split())
        except FileNotFoundError:
            continue
    return pids


def empty(path: str, timeout: float = 30.0) -> int:
    """Kill every task in the cgroup PATH (and below), then remove it and its children; how many
    kill(2) calls it took. TimeoutError if tasks remain after `timeout` seconds.

    A fork bomb refills a cgroup as fast as its members are killed, so first pids.max = 0: the
    pids controller charges every ancestor on fork, so from then on every fork(2)/clone(2) in the
    subtree fails with EAGAIN (kernel docs, cgroup-v1/pids.rst) -- a freezer for forks, on v1 and
    v2 alike. Then SIGKILL to every task listed, again until cgroup.procs is empty: what was
    mid-fork when pids.max fell shows up at the next read. Where v2 has cgroup.kill (Linux 5.14)
    it kills the whole subtree in one write first.
    """
    if not os.path.isdir(path):
        return 0
    _write(os.path.join(path, "pids.max"), "0")
    _write(os.path.join(path, "cgroup.kill"), "1")
    kills = 0
    deadline = time.monotonic() + timeout
    while pids := cgroup_tasks(path):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} still holds {len(pids)} tasks after {timeout} s of "
                               f"SIGKILL: {pids[:10]}")
        time.sleep(0.01)
    _remove_tree(path, deadline)
    return kills


def _write(path: str, value: str) -> None:
    # Only to a file the kernel made: cgroupfs refuses to create one (EACCES, not ENOENT).
    if os.path.exists(path):
        with open(path, "w") as f:
            f.write(value)


def _remove_tree(path: str, deadline: float) -> None:
    """rmdir(2) from the leaves up: a cgroup with children cannot be removed. Right after its
    last task is killed the kernel may still call it busy (EBUSY) for a moment."""
    for directory, _, _ in os.walk(path, topdown=False):
        while True:
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


def sweep(parent: str) -> list[str]:
    """Empty and remove every student cgroup left in PARENT (a Hub that was killed never
    stopped its servers); the paths removed."""
    removed = []
    for name in sorted(os.listdir(parent)):
        path = os.path.join(parent, name)
        if os.path.isdir(path):
            empty(path)
            removed.append(path)
    return removed


def copy_course(source: str, home: str, folder: str, uid: int, gid: int) -> str:
    """The course's notebooks, copied once into the student's home (their own copy, to write
    in); the copy's path. An existing copy is kept: it holds the student's work."""
    target = os.path.join(home, folder)
    if not os.path.exists(target):
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        for directory, _, files in os.walk(target):
            os.chown(directory, uid, gid)
            for name in files:
                os.chown(os.path.join(directory, name), uid, gid)
    return target


class BudgetSpawner(LocalProcessSpawner):
    """LocalProcessSpawner whose every server runs in a cgroup of its own with pids.max."""

    pids_max = Integer(2400, config=True, help="""The PID budget of each student's server: its
        cgroup's pids.max (every task: the server, its kernels, their threads, every lab process
        and zombie). labkit.Lab() asks for 1,000 processes at most half of what is free, so
        the course's notebooks need about 2,000 free under it.""")
    class_cgroup = Unicode(CLASS_CGROUP, config=True,
                           help="The class's cgroup, in the Hub's pids cgroup.")
    empty_timeout = Float(30.0, config=True,
                          help="Seconds to kill what a stopped server left in its cgroup.")
    cgroup = Unicode("", help="This server's cgroup while it exists.")

    def _cgroup_name(self) -> str:
        return f"{self.user.name}-{self.name}" if self.name else self.user.name

    async def start(self) -> tuple[str, int]:
        account = pwd.getpwnam(self.user.name)
        _, parent = class_cgroup(self.class_cgroup)
        self.cgroup = make_student_cgroup(parent, self._cgroup_name(), self.pids_max,
                                          account.pw_uid, account.pw_gid)
        try:
            return await super().start()
        except BaseException:
            await self._empty()
            raise

    def make_preexec_fn(self, name: str):
        drop_privileges = super().make_preexec_fn(name)
        procs = os.path.join(self.cgroup, "cgroup.procs")

        def preexec() -> None:
            # Between fork and exec, still root: join first, so the budget counts the server
            # from its first task, and moving a task needs no delegation yet.
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
            drop_privileges()

        return preexec

    async def stop(self, now: bool = False) -> None:
        try:
            await super().stop(now=now)
        finally:
            await self._empty()

    async def run_post_stop_hook(self) -> None:
        # JupyterHub calls stop() only for a server that is still running: one whose process
        # died by itself (its init killed, by the OOM killer or anyone) is only polled, and
        # whatever it started lives on in the cgroup. The post-stop hook runs after every stop.
        try:
            await self._empty()
        finally:
            await maybe_future(super().run_post_stop_hook())

    async def _empty(self) -> None:
        path, self.cgroup = self.cgroup, ""
        if path:
            # In a thread: a bomb's cgroup may take a while, and the Hub serves the class meanwhile.
            kills = await asyncio.to_thread(empty, path, self.empty_timeout)
            self.log.info("%s: emptied and removed %s (%d SIGKILLs)", self._log_name, path, kills)

    def get_state(self) -> dict:
        state = super().get_state()
        if self.cgroup:
            state["cgroup"] = self.cgroup
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.cgroup = state.get("cgroup", self.cgroup)

    def clear_state(self) -> None:
        # LocalProcessSpawner clears its state as soon as poll() sees the server exit; the
        # cgroup outlives the server's process until stop() has emptied it.
        cgroup = self.cgroup
        super().clear_state()
        self.cgroup = cgroup
