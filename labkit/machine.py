"""The doctor: what this machine allows the lab to do, each fact tried or measured, not guessed.

    labkit.doctor()            # a Report: print it, or let a notebook show it as a table
    python -m labkit doctor    # the same from a terminal (--json for scripts)

Each experiment runs in a fresh interpreter (labkit.probing: how, and why never here). The one
that leaves a trace, the test orphan that shows who adopts orphans and whether they are reaped,
is labkit.adoption's, with its per-boot cache.
"""

from __future__ import annotations

import html
import json
import os
import platform
import resource
import secrets
import sys
import time

from labkit import budget, checks, labtable, limits, linux, procfs
from labkit.adoption import REAP_TIMEOUT, orphans_fact
from labkit.i18n import N_, _, columns
from labkit.probing import attempts as _attempts
from labkit.probing import fact as _fact
from labkit.probing import read_text as _read
from labkit.probing import refusal as _refusal
from labkit.probing import run_probe

IDENTITY_MAP = "0 0 4294967295"  # /proc/self/uid_map in the initial user namespace

BINDER_VARS = ("BINDER_LAUNCH_HOST", "BINDER_REQUEST", "BINDER_REPO_URL", "BINDER_SERVICE_HOST")

# The facts' names as printed (the keys stay English: code and --json read them).
LABELS = {
    "kernel": N_("Kernel"),
    "pid1": "PID 1",
    "orphans": N_("Orphans go to"),
    "user": N_("User"),
    "subreaper": N_("Child subreaper"),
    "user_namespaces": N_("User namespaces"),
    "pid_namespaces": N_("PID namespaces"),
    "proc_mount": N_("Fresh /proc mount"),
    "cgroup_pids": "cgroup pids",
    "rlimit_nproc": "RLIMIT_NPROC",
    "pids": N_("PID space"),
    "python": "Python",
    "hosting": N_("Hosting"),
    "lab_mode": N_("Lab mode"),
    "observation": N_("Watching a lab"),
}


def label(name: str) -> str:
    """The printed name of fact `name`, in the learner's language."""
    return _(LABELS[name]) if name in LABELS else name


HEADINGS = (N_("Fact"), N_("This machine"), N_("What it means"))


class Report:
    """The doctor's findings: `.facts` maps a name to a dict with the raw values, a one-line
    `summary` and its `meaning` for the learner. print() it, or show it in a notebook."""

    def __init__(self, facts: dict[str, dict], seconds: float = 0.0) -> None:
        self.facts = facts
        self.seconds = seconds

    def to_dict(self) -> dict[str, dict]:
        """A JSON-ready copy of the facts."""
        return json.loads(json.dumps(self.facts))

    def __getitem__(self, name: str) -> dict:
        return self.facts[name]

    def __str__(self) -> str:
        width = max(columns(label(name)) for name in LABELS)
        lines = [_("labkit doctor: what this machine allows, tried or measured "
                   "({seconds:.1f} s)").format(seconds=self.seconds)]
        for name, fact in self.facts.items():
            pad = " " * (width - columns(label(name)))
            lines.append(f"  {label(name)}{pad}  {fact['summary']} — {fact['meaning']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><b>{html.escape(label(name))}</b></td>"
            f"<td>{html.escape(fact['summary'])}</td><td>{html.escape(fact['meaning'])}</td></tr>"
            for name, fact in self.facts.items())
        head = "".join(f"<th>{html.escape(_(h))}</th>" for h in HEADINGS)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

    def __repr__(self) -> str:
        return f"<labkit Report: {len(self.facts)} facts; print() it for the text>"


def doctor(measure: bool = True, refresh: bool = False,
           reap_timeout: float = REAP_TIMEOUT) -> Report:
    """What this machine allows: PID 1 and who reaps orphans, privileges, subreaper, user and
    PID namespaces, /proc mounts, cgroup pids, RLIMIT_NPROC, the PID space, Python, hosting.

    measure=False skips making the test orphan (a cached result is still shown); refresh=True
    measures again even when a result for this boot is cached. `reap_timeout` is how long the
    orphan's adopter gets to reap it.
    """
    measure, refresh = checks.flag(measure, "measure"), checks.flag(refresh, "refresh")
    reap_timeout = checks.seconds(reap_timeout, "reap_timeout", low=0.01, high=60.0)
    started = time.monotonic()
    subreaper = subreaper_fact()
    pid_ns = pid_namespaces_fact()
    proc = proc_mount_fact(pid_ns)
    facts = {
        "kernel": kernel_fact(),
        "pid1": pid1_fact(),
        "orphans": orphans_fact(measure, refresh, reap_timeout),
        "user": user_fact(),
        "subreaper": subreaper,
        "user_namespaces": user_namespaces_fact(),
        "pid_namespaces": pid_ns,
        "proc_mount": proc,
        "cgroup_pids": cgroup_fact(),
        "rlimit_nproc": nproc_fact(),
        "pids": pids_fact(),
        "python": python_fact(),
        "hosting": hosting_fact(),
        "lab_mode": lab_mode_fact(subreaper, pid_ns, proc),
        "observation": observation_fact(),
    }
    return Report(facts, time.monotonic() - started)


# --- one fact each -------------------------------------------------------------------------

def kernel_fact() -> dict:
    linux_ = sys.platform.startswith("linux")
    meaning = (_("the lab drives real Linux processes, and this is Linux") if linux_ else
               _("the lab needs Linux's kernel: open the course on mybinder.org instead"))
    return _fact(f"{platform.system()} {platform.release()}", meaning,
                 system=platform.system(), release=platform.release(), linux=linux_)


def pid1_fact() -> dict:
    name = _read("/proc/1/comm")
    cmdline = _read("/proc/1/cmdline")
    command = cmdline.replace("\0", " ").strip() if cmdline else None
    shown = command if command is None or len(command) <= 40 else command[:39] + "…"
    summary = f"{name} ({shown})" if name and shown else (name or _("hidden from us"))
    return _fact(summary, _("the init of this PID namespace: it adopts orphans that have no "
                            "subreaper above them (whether it reaps them: see 'Orphans go to')"),
                 name=name, cmdline=command)


def user_fact() -> dict:
    uid, euid = os.getuid(), os.geteuid()
    uid_map = " ".join((_read("/proc/self/uid_map") or IDENTITY_MAP).split())
    in_userns = uid_map != IDENTITY_MAP
    summary = (_("root (uid {uid}, euid {euid})") if euid == 0 else
               _("not root (uid {uid}, euid {euid})")).format(uid=uid, euid=euid)
    if in_userns:
        summary += _(", inside a user namespace (uid_map {uid_map})").format(uid_map=uid_map)
    meaning = (_("root may make PID namespaces and cgroups directly") if euid == 0 else
               _("fine: the lab needs no root (a subreaper needs no privilege)"))
    if in_userns:
        meaning += _("; capabilities here count only inside that user namespace")
    return _fact(summary, meaning, uid=uid, euid=euid, root=euid == 0,
                 user_namespace=in_userns, uid_map=uid_map)


def subreaper_fact() -> dict:
    answer = run_probe(["subreaper"])
    if answer.get("ok"):
        return _fact(_("allowed (prctl PR_SET_CHILD_SUBREAPER, and PR_GET_CHILD_SUBREAPER "
                       "says 1)"),
                     _("a lab's init (the Python pause) can adopt and reap the lab's orphans, "
                       "so they never reach PID 1"), ok=True, errno=None, error=None)
    return _fact(_("denied: {why}").format(why=_refusal(answer)),
                 _("labs cannot keep their orphans away from PID 1 here (Linux >= 3.4 has "
                   "PR_SET_CHILD_SUBREAPER; a seccomp filter may forbid prctl)"),
                 ok=False, errno=answer.get("errno"), error=_refusal(answer))


def user_namespaces_fact() -> dict:
    answer = run_probe(["userns"])
    most = _read("/proc/sys/user/max_user_namespaces")
    knobs = {name: _read(path) for name, path in (
        ("max_user_namespaces", "/proc/sys/user/max_user_namespaces"),
        ("unprivileged_userns_clone", "/proc/sys/kernel/unprivileged_userns_clone"),
        ("apparmor_restrict_unprivileged_userns",
         "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
    ) if os.path.exists(path)}
    data = dict(max_user_namespaces=int(most) if most and most.isdigit() else None,
                sysctls=knobs, errno=answer.get("errno"))
    if answer.get("ok"):
        return _fact(_("allowed (unshare(CLONE_NEWUSER); max_user_namespaces {most})").format(
                         most=most),
                     _("an unprivileged process may own namespaces here"), ok=True, error=None,
                     **data)
    return _fact(_("denied: {why}; max_user_namespaces {most}").format(why=_refusal(answer),
                                                                        most=most),
                 _userns_hint(answer.get("errno"), knobs), ok=False, error=_refusal(answer),
                 **data)


def _userns_hint(err: str | None, knobs: dict) -> str:
    if err == "ENOSPC":
        return _("the per-user limit of user namespaces is spent or set to 0 "
                 "(/proc/sys/user/max_user_namespaces, user_namespaces(7))")
    if err == "EPERM":
        off = [f"{k}={v}" for k, v in knobs.items()
               if (k, v) in (("unprivileged_userns_clone", "0"),
                             ("apparmor_restrict_unprivileged_userns", "1"))]
        return _("forbidden by policy: {what}").format(what=", ".join(off) if off else _(
            "a seccomp filter (Docker's default profile) or a security module"))
    return _("namespace labs are not possible for this user; subreaper labs still work")


def pid_namespaces_fact() -> dict:
    tried = _attempts("pidns", ("unshare -pf true", "unshare -Urpf true"))
    last = tried[-1]
    if last["ok"]:
        said = (_("allowed with a user namespace: the first child is PID 1 inside (as "
                  "`{command}`)") if last["user_namespace"] else
                _("allowed directly: the first child is PID 1 inside (as `{command}`)"))
        return _fact(said.format(command=last["command"]),
                     _("a lab can have its own PID 1 (Lab(mode='auto') uses one)"),
                     ok=True, errno=None, tried=tried)
    return _fact(_("denied: {why} (as `{command}`)").format(why=last["error"],
                                                          command=last["command"]),
                 _("no lab can have its own PID 1 here; subreaper labs do the same job"),
                 ok=False, errno=last["errno"], tried=tried)


def proc_mount_fact(pid_ns: dict) -> dict:
    # Tried even where PID namespaces were denied: the refusal, with its errno, is the answer.
    tried = _attempts("procmount", ("unshare -mpf --mount-proc true",
                                    "unshare -Urmpf --mount-proc true"))
    last = tried[-1]
    if last["ok"]:
        return _fact(_("allowed: proc mounted in a new mount+PID namespace, / made private "
                       "first (as `{command}`)").format(command=last["command"]),
                     _("a PID-namespace lab could show its own PIDs (psutil reads /proc)"),
                     ok=True, errno=None, tried=tried)
    if last["step"] == "namespaces":
        return _fact(_("denied: the new mount and PID namespaces it needs were refused, "
                       "{why} (as `{command}`)").format(why=last["error"],
                                                       command=last["command"]),
                     _("no fresh /proc, so no PID-namespace lab; subreaper labs read the host's "
                       "/proc, which is all they need"), ok=False, errno=last["errno"],
                     tried=tried)
    return _fact(_("denied: {why} (as `{command}`)").format(why=last["error"],
                                                          command=last["command"]),
                 _("a PID-namespace lab would be invisible to psutil here (a container that "
                   "masks parts of /proc forbids a fresh proc mount)"), ok=False,
                 errno=last["errno"], tried=tried)


def python_fact() -> dict:
    try:
        import psutil
        version = psutil.__version__
    except ImportError:
        version = None
    summary = _("Python {version} at {executable}; psutil {psutil}").format(
        version=platform.python_version(), executable=sys.executable,
        psutil=version or _("missing"))
    meaning = (_("the lab's own programs run on this interpreter (python -m labkit.pause)")
               if version else _("install psutil (pip install psutil): labkit reads the "
                                 "process table with it"))
    return _fact(summary, meaning, version=platform.python_version(),
                 executable=sys.executable, psutil=version)


def hosting_fact() -> dict:
    # Names only: the values of JUPYTERHUB_* include an API token.
    binder = [name for name in BINDER_VARS if name in os.environ]
    hub = sorted(name for name in os.environ if name.startswith("JUPYTERHUB_"))
    if binder:
        summary = _("mybinder.org or another BinderHub ({names} set)").format(
            names=", ".join(binder))
        meaning = _("uid 1000, no root, culled after ~10 idle minutes; PID 1 there does not "
                    "reap, so the lab's own init matters")
    elif hub:
        summary = _("a JupyterHub ({n} JUPYTERHUB_* variables set)").format(n=len(hub))
        meaning = _("shared with others: every lab is capped so no one can starve the machine")
    else:
        summary = _("neither Binder nor a JupyterHub")
        meaning = _("a machine of your own (or CI): the same labs, the same caps")
    return _fact(summary, meaning, binder=bool(binder), binder_vars=binder,
                 jupyterhub=bool(hub), jupyterhub_vars=hub)


def lab_mode_fact(subreaper: dict, pid_ns: dict, proc: dict) -> dict:
    if not subreaper["ok"]:
        return _fact(_("none: labs cannot start here"),
                     _("Lab() needs PR_SET_CHILD_SUBREAPER, which this machine denies"),
                     mode=None, pid_namespace=False)
    refused = next((_("{fact} denied, {errno}").format(fact=label(name),
                                                       errno=fact["errno"] or _("no errno"))
                    for name, fact in (("pid_namespaces", pid_ns), ("proc_mount", proc))
                    if not fact["ok"]), None)
    # The summary is the mode's name, as Lab(mode=...) takes it: not translated.
    if refused is None:  # what Lab(mode="auto") tries first, and gets
        return _fact("pid-namespace", _("Lab(mode='auto') runs the Python pause as PID 1 of a "
                                        "new PID namespace, with a /proc of its own; "
                                        "mode='subreaper' works too"),
                     mode="pid-namespace", pid_namespace=True)
    return _fact("subreaper", _("Lab(mode='auto') uses the Python pause as a child subreaper; "
                                "PID-namespace labs are not possible here ({refused}), as "
                                "lab.mode_reason says").format(refused=refused),
                 mode="subreaper", pid_namespace=False)


# --- PIDs: cgroup pids, RLIMIT_NPROC, pid_max ----------------------------------------------

def _cgroup_layout(mounts: list[tuple[str, str, list[str]]]) -> str:
    v1 = any(kind == "cgroup" for _, kind, _ in mounts)
    v2 = any(kind == "cgroup2" for _, kind, _ in mounts)
    return {(True, True): "hybrid (v1 and v2)", (True, False): "v1",
            (False, True): "v2"}.get((v1, v2), "none")


def try_child_cgroup(directory: str) -> dict:
    """mkdir and rmdir a uniquely named child cgroup: could a lab get a pids.max of its own?"""
    path = os.path.join(directory, f"labkit-doctor-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.mkdir(path)
    except OSError as exc:
        return {"ok": False, "errno": linux.errno_name(exc.errno or 0),
                "error": exc.strerror, "pids_max": False}
    has_max = os.path.exists(os.path.join(path, "pids.max"))
    try:
        os.rmdir(path)
    except OSError as exc:  # not ours to keep: say so loudly
        return {"ok": False, "errno": linux.errno_name(exc.errno or 0),
                "error": f"created {path} but could not remove it: {exc.strerror}",
                "pids_max": has_max}
    return {"ok": True, "errno": None, "error": None, "pids_max": has_max}


def cgroup_fact() -> dict:
    layout = _cgroup_layout(linux.mounts())
    found = budget.pids_cgroup()
    if found is None:
        return _fact(_("cgroups {layout}; no pids controller for this process").format(
                         layout=layout),
                     _("no cgroup PID budget here; a lab's budget would use RLIMIT_NPROC"),
                     layout=layout, version=None, directory=None, pids_max=None,
                     pids_current=None, free=None, child=None)
    version, directory = found
    most = _read(os.path.join(directory, "pids.max"))
    current = _read(os.path.join(directory, "pids.current"))
    child = try_child_cgroup(directory)
    if not child["ok"]:
        made = _("denied, {errno} ({why})").format(errno=child["errno"], why=child["error"])
    elif child["pids_max"]:
        made = _("created and removed, with pids.max")
    else:
        made = _("created and removed")
    summary = _("cgroups {layout}; pids ({version}) at {directory}: pids.max {most}, "
                "pids.current {current}; child cgroup: {child}").format(
        layout=layout, version=version, directory=directory,
        most=most or _("none (a root cgroup)"), current=current or "n/a", child=made)
    meaning = (_("a lab could get a kernel-enforced PID budget of its own (pids.max)")
               if child["ok"] and child["pids_max"] else
               _("no cgroup of our own: a lab's PID budget would use RLIMIT_NPROC instead"))
    return _fact(summary, meaning, layout=layout, version=version, directory=directory,
                 pids_max=most, pids_current=int(current) if current else None,
                 free=limits.cgroup_pids_free(), child=child)


def nproc_fact() -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    exempt = "unlimited" if soft == resource.RLIM_INFINITY else budget.nproc_exemption()
    used = budget.tasks_of(os.getuid())

    def show(value: int) -> str:
        return _("unlimited") if value == resource.RLIM_INFINITY else str(value)

    if exempt:  # the fact's value stays English; the summary says it in the learner's words
        why = (_("unlimited") if exempt == "unlimited" else
               budget.nproc_exemption(translated=True))
        summary = _("soft {soft}, hard {hard}; does not bind: {why}").format(
            soft=show(soft), hard=show(hard), why=why)
    else:
        summary = _("soft {soft}, hard {hard}; binds: uid {uid} runs {used} of {soft} tasks "
                    "now").format(soft=show(soft), hard=show(hard), uid=os.getuid(), used=used)
    meaning = (_("fork(2) fails with EAGAIN once this user's tasks (threads included) reach the "
                 "soft limit") if not exempt else _("it will not stop a lab's forks here"))
    return _fact(summary, meaning, soft=None if soft == resource.RLIM_INFINITY else soft,
                 hard=None if hard == resource.RLIM_INFINITY else hard, binds=exempt is None,
                 exempt=exempt, tasks=used)


def pids_fact() -> dict:
    most, used = procfs.pid_max(), procfs.tasks_in_use()
    ceiling, why = limits.ceiling()
    return _fact(_("pid_max {most}, {used} tasks in use; a lab may hold up to {ceiling} "
                   "processes now").format(most=most, used=used, ceiling=ceiling),
                 _("every process holds a PID until it is reaped, zombies included: a lab's "
                   "max_procs is capped at {why}, so one experiment cannot starve the "
                   "machine").format(why=why),
                 pid_max=most, tasks_in_use=used, lab_ceiling=ceiling, ceiling_reason=why)


def observation_fact() -> dict:
    """How a lab is watched here (labkit.labtable): its own processes, or every process."""
    ways = labtable.describe()
    if not ways["scoped"]:
        return _fact(_("every process read"), _(
            "this kernel has no /proc/PID/task/TID/children files (CONFIG_PROC_CHILDREN): a "
            "snapshot reads every process on the machine, so it costs more on a crowded "
            "server"), **ways)
    if not ways["pidfd_events"]:
        return _fact(_("the lab's processes, re-read each sample"), _(
            "children files find the lab's processes; without pidfds (Linux < 5.3) a "
            "recording re-reads them all ten times a second"), **ways)
    meaning = (_("snapshots read only the lab's processes (children files); a recording hears "
                 "of exits through pidfds and of reaping too (POLLHUP, Linux >= 6.9), so an "
                 "idle lab costs almost nothing") if ways["reap_events"] else
               _("snapshots read only the lab's processes (children files); a recording hears "
                 "of exits through pidfds and of not reaping (Linux < 6.9: a change in the "
                 "tasks count sends it to re-read the zombies), so an idle lab costs almost "
                 "nothing"))
    return _fact(_("the lab's processes, and the kernel's events"), meaning, **ways)
