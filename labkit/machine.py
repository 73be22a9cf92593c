"""The doctor: what this machine allows the lab to do, each fact tried or measured, not guessed.

    labkit.doctor()            # a Report: print it, or let a notebook show it as a table
    python -m labkit doctor    # the same from a terminal (--json for scripts)

Whatever forks or changes the process that tries it (prctl, unshare, mount) runs in a fresh
interpreter (`python -m labkit.probe`), never here: the caller may be a multi-threaded Jupyter
kernel. Every probe has a timeout, and the doctor kills what it started if one runs over.

One measurement leaves a trace on some machines: to learn whether PID 1 reaps orphans, the
doctor makes one orphan. Where PID 1 never reaps (mybinder.org) its zombie stays until the
machine restarts, so the result is cached per boot and the orphan is made only once.
"""

from __future__ import annotations

import errno
import html
import json
import os
import platform
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

from labkit import budget, checks, limits, linux, procfs, programs

PROBE_TIMEOUT = 5.0   # seconds for one probe; a probe that runs over is killed with its group
REAP_TIMEOUT = 5.0    # seconds we give the orphan's adopter to reap it
POLL = 0.005          # seconds between looks at the orphan in /proc

IDENTITY_MAP = "0 0 4294967295"  # /proc/self/uid_map in the initial user namespace

BINDER_VARS = ("BINDER_LAUNCH_HOST", "BINDER_REQUEST", "BINDER_REPO_URL", "BINDER_SERVICE_HOST")

LABELS = {
    "kernel": "Kernel",
    "pid1": "PID 1",
    "orphans": "Orphans go to",
    "user": "User",
    "subreaper": "Child subreaper",
    "user_namespaces": "User namespaces",
    "pid_namespaces": "PID namespaces",
    "proc_mount": "Fresh /proc mount",
    "cgroup_pids": "cgroup pids",
    "rlimit_nproc": "RLIMIT_NPROC",
    "pids": "PID space",
    "python": "Python",
    "hosting": "Hosting",
    "lab_mode": "Lab mode",
}


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
        width = max(len(label) for label in LABELS.values())
        lines = [f"labkit doctor: what this machine allows, tried or measured "
                 f"({self.seconds:.1f} s)"]
        for name, fact in self.facts.items():
            label = LABELS.get(name, name)
            lines.append(f"  {label:<{width}}  {fact['summary']} — {fact['meaning']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><b>{html.escape(LABELS.get(name, name))}</b></td>"
            f"<td>{html.escape(fact['summary'])}</td><td>{html.escape(fact['meaning'])}</td></tr>"
            for name, fact in self.facts.items())
        return ("<table><thead><tr><th>Fact</th><th>This machine</th><th>What it means</th>"
                f"</tr></thead><tbody>{rows}</tbody></table>")

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
    }
    return Report(facts, time.monotonic() - started)


def _fact(summary: str, meaning: str, **data) -> dict:
    return {**data, "summary": summary, "meaning": meaning}


def _read(path: str) -> str | None:
    """The file's text, or None where it is missing or not ours to read. No descriptor left
    (EMFILE, ENFILE) is raised: it says nothing about the file, and a fact must not pretend."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        return None


def _refusal(answer: dict) -> str:
    """ "EPERM (Operation not permitted)" from a probe's answer."""
    if answer.get("errno"):
        return f"{answer['errno']} ({answer.get('error', '')})"
    return answer.get("error") or "no reason given"


# --- probes: experiments in a fresh interpreter -------------------------------------------

def run_probe(args: list[str], pass_fds: tuple[int, ...] = (),
              timeout: float = PROBE_TIMEOUT) -> dict:
    """Run `python -m labkit.probe ARGS` and return its JSON answer; never hangs, never leaks.

    The probe gets a session (and process group) of its own, so that on a timeout or Ctrl-C one
    killpg(2) ends it together with anything it forked.
    """
    try:
        proc = subprocess.Popen(
            programs.probe(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=pass_fds, env=programs.environment(),
            start_new_session=True)
    except OSError as exc:
        return {"ok": False, "error": f"could not start the probe: {exc}"}
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no answer within {timeout:g} s (the probe was killed)"}
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    return _answer(proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its pgid is its PID: start_new_session
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


def _answer(code: int, out: bytes, err: bytes) -> dict:
    lines = out.decode(errors="replace").strip().splitlines()
    if code == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    said = err.decode(errors="replace").strip().splitlines()
    return {"ok": False, "error": f"the probe failed (exit status {code}): "
                                  f"{said[-1] if said else 'it said nothing'}"}


def _attempts(probe: str, commands: tuple[str, str]) -> list[dict]:
    """Try `probe` plainly (root only) and then inside a new user namespace, until one works.

    `commands` are the unshare(1) equivalents, plain and with a user namespace, so that a
    learner can try the same thing in a terminal.
    """
    ways = [([probe], commands[0])] if os.geteuid() == 0 else []
    ways.append(([probe, "--user"], commands[1]))
    tried = []
    for args, command in ways:
        answer = run_probe(args)
        tried.append({"user_namespace": args[-1] == "--user", "command": command,
                      "ok": bool(answer.get("ok")), "errno": answer.get("errno"),
                      "error": None if answer.get("ok") else _refusal(answer),
                      "step": answer.get("step")})
        if answer.get("ok"):
            break
    return tried


# --- one fact each -------------------------------------------------------------------------

def kernel_fact() -> dict:
    linux_ = sys.platform.startswith("linux")
    meaning = ("the lab drives real Linux processes, and this is Linux" if linux_ else
               "the lab needs Linux's kernel: open the course on mybinder.org instead")
    return _fact(f"{platform.system()} {platform.release()}", meaning,
                 system=platform.system(), release=platform.release(), linux=linux_)


def pid1_fact() -> dict:
    name = _read("/proc/1/comm")
    cmdline = _read("/proc/1/cmdline")
    command = cmdline.replace("\0", " ").strip() if cmdline else None
    shown = command if command is None or len(command) <= 40 else command[:39] + "…"
    summary = f"{name} ({shown})" if name and shown else (name or "hidden from us")
    return _fact(summary, "the init of this PID namespace: it adopts orphans that have no "
                          "subreaper above them (whether it reaps them: see 'Orphans go to')",
                 name=name, cmdline=command)


def user_fact() -> dict:
    uid, euid = os.getuid(), os.geteuid()
    uid_map = " ".join((_read("/proc/self/uid_map") or IDENTITY_MAP).split())
    in_userns = uid_map != IDENTITY_MAP
    summary = f"{'root' if euid == 0 else 'not root'} (uid {uid}, euid {euid})"
    if in_userns:
        summary += f", inside a user namespace (uid_map {uid_map})"
    meaning = ("root may make PID namespaces and cgroups directly" if euid == 0 else
               "fine: the lab needs no root (a subreaper needs no privilege)")
    if in_userns:
        meaning += "; capabilities here count only inside that user namespace"
    return _fact(summary, meaning, uid=uid, euid=euid, root=euid == 0,
                 user_namespace=in_userns, uid_map=uid_map)


def subreaper_fact() -> dict:
    answer = run_probe(["subreaper"])
    if answer.get("ok"):
        return _fact("allowed (prctl PR_SET_CHILD_SUBREAPER, and PR_GET_CHILD_SUBREAPER says 1)",
                     "a lab's init (the Python pause) can adopt and reap the lab's orphans, so "
                     "they never reach PID 1", ok=True, errno=None, error=None)
    return _fact(f"denied: {_refusal(answer)}",
                 "labs cannot keep their orphans away from PID 1 here (Linux >= 3.4 has "
                 "PR_SET_CHILD_SUBREAPER; a seccomp filter may forbid prctl)",
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
        return _fact(f"allowed (unshare(CLONE_NEWUSER); max_user_namespaces {most})",
                     "an unprivileged process may own namespaces here", ok=True, error=None,
                     **data)
    return _fact(f"denied: {_refusal(answer)}; max_user_namespaces {most}",
                 _userns_hint(answer.get("errno"), knobs), ok=False, error=_refusal(answer),
                 **data)


def _userns_hint(err: str | None, knobs: dict) -> str:
    if err == "ENOSPC":
        return ("the per-user limit of user namespaces is spent or set to 0 "
                "(/proc/sys/user/max_user_namespaces, user_namespaces(7))")
    if err == "EPERM":
        off = [f"{k}={v}" for k, v in knobs.items()
               if (k, v) in (("unprivileged_userns_clone", "0"),
                             ("apparmor_restrict_unprivileged_userns", "1"))]
        return ("forbidden by policy: " + (", ".join(off) if off else
                "a seccomp filter (Docker's default profile) or a security module"))
    return "namespace labs are not possible for this user; subreaper labs still work"


def pid_namespaces_fact() -> dict:
    tried = _attempts("pidns", ("unshare -pf true", "unshare -Urpf true"))
    last = tried[-1]
    if last["ok"]:
        how = "with a user namespace" if last["user_namespace"] else "directly"
        return _fact(f"allowed {how}: the first child is PID 1 inside (as `{last['command']}`)",
                     "a lab can have its own PID 1 (Lab(mode='auto') uses one)",
                     ok=True, errno=None, tried=tried)
    return _fact(f"denied: {last['error']} (as `{last['command']}`)",
                 "no lab can have its own PID 1 here; subreaper labs do the same job",
                 ok=False, errno=last["errno"], tried=tried)


def proc_mount_fact(pid_ns: dict) -> dict:
    # Tried even where PID namespaces were denied: the refusal, with its errno, is the answer.
    tried = _attempts("procmount", ("unshare -mpf --mount-proc true",
                                    "unshare -Urmpf --mount-proc true"))
    last = tried[-1]
    if last["ok"]:
        return _fact(f"allowed: proc mounted in a new mount+PID namespace, / made private first"
                     f" (as `{last['command']}`)",
                     "a PID-namespace lab could show its own PIDs (psutil reads /proc)",
                     ok=True, errno=None, tried=tried)
    if last["step"] == "namespaces":
        return _fact(f"denied: the new mount and PID namespaces it needs were refused, "
                     f"{last['error']} (as `{last['command']}`)",
                     "no fresh /proc, so no PID-namespace lab; subreaper labs read the host's "
                     "/proc, which is all they need", ok=False, errno=last["errno"], tried=tried)
    return _fact(f"denied: {last['error']} (as `{last['command']}`)",
                 "a PID-namespace lab would be invisible to psutil here (a container that "
                 "masks parts of /proc forbids a fresh proc mount)", ok=False,
                 errno=last["errno"], tried=tried)


def python_fact() -> dict:
    try:
        import psutil
        version = psutil.__version__
    except ImportError:
        version = None
    summary = (f"Python {platform.python_version()} at {sys.executable}; "
               f"psutil {version or 'missing'}")
    meaning = ("the lab's own programs run on this interpreter (python -m labkit.pause)"
               if version else "install psutil (pip install psutil): labkit reads the "
                               "process table with it")
    return _fact(summary, meaning, version=platform.python_version(),
                 executable=sys.executable, psutil=version)


def hosting_fact() -> dict:
    # Names only: the values of JUPYTERHUB_* include an API token.
    binder = [name for name in BINDER_VARS if name in os.environ]
    hub = sorted(name for name in os.environ if name.startswith("JUPYTERHUB_"))
    if binder:
        summary = f"mybinder.org or another BinderHub ({', '.join(binder)} set)"
        meaning = ("uid 1000, no root, culled after ~10 idle minutes; PID 1 there does not "
                   "reap, so the lab's own init matters")
    elif hub:
        summary = f"a JupyterHub ({len(hub)} JUPYTERHUB_* variables set)"
        meaning = "shared with others: every lab is capped so no one can starve the machine"
    else:
        summary = "neither Binder nor a JupyterHub"
        meaning = "a machine of your own (or CI): the same labs, the same caps"
    return _fact(summary, meaning, binder=bool(binder), binder_vars=binder,
                 jupyterhub=bool(hub), jupyterhub_vars=hub)


def lab_mode_fact(subreaper: dict, pid_ns: dict, proc: dict) -> dict:
    if not subreaper["ok"]:
        return _fact("none: labs cannot start here",
                     "Lab() needs PR_SET_CHILD_SUBREAPER, which this machine denies",
                     mode=None, pid_namespace=False)
    refused = next((f"{LABELS[name]} denied, {fact['errno'] or 'no errno'}"
                    for name, fact in (("pid_namespaces", pid_ns), ("proc_mount", proc))
                    if not fact["ok"]), None)
    if refused is None:  # what Lab(mode="auto") tries first, and gets
        return _fact("pid-namespace", "Lab(mode='auto') runs the Python pause as PID 1 of a new "
                     "PID namespace, with a /proc of its own; mode='subreaper' works too",
                     mode="pid-namespace", pid_namespace=True)
    return _fact("subreaper", "Lab(mode='auto') uses the Python pause as a child subreaper; "
                 f"PID-namespace labs are not possible here ({refused}), as lab.mode_reason "
                 "says", mode="subreaper", pid_namespace=False)


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
        return _fact(f"cgroups {layout}; no pids controller for this process",
                     "no cgroup PID budget here; a lab's budget would use RLIMIT_NPROC",
                     layout=layout, version=None, directory=None, pids_max=None,
                     pids_current=None, free=None, child=None)
    version, directory = found
    most = _read(os.path.join(directory, "pids.max"))
    current = _read(os.path.join(directory, "pids.current"))
    child = try_child_cgroup(directory)
    summary = (f"cgroups {layout}; pids ({version}) at {directory}: pids.max "
               f"{most or 'none (a root cgroup)'}, pids.current {current or 'n/a'}; child cgroup: "
               + (f"created and removed{', with pids.max' if child['pids_max'] else ''}"
                  if child["ok"] else f"denied, {child['errno']} ({child['error']})"))
    meaning = ("a lab could get a kernel-enforced PID budget of its own (pids.max)"
               if child["ok"] and child["pids_max"] else
               "no cgroup of our own: a lab's PID budget would use RLIMIT_NPROC instead")
    return _fact(summary, meaning, layout=layout, version=version, directory=directory,
                 pids_max=most, pids_current=int(current) if current else None,
                 free=limits.cgroup_pids_free(), child=child)


def nproc_fact() -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    exempt = "unlimited" if soft == resource.RLIM_INFINITY else budget.nproc_exemption()
    used = budget.tasks_of(os.getuid())

    def show(value: int) -> str:
        return "unlimited" if value == resource.RLIM_INFINITY else str(value)

    summary = f"soft {show(soft)}, hard {show(hard)}; "
    summary += (f"does not bind: {exempt}" if exempt else
                f"binds: uid {os.getuid()} runs {used} of {show(soft)} tasks now")
    meaning = ("fork(2) fails with EAGAIN once this user's tasks (threads included) reach the "
               "soft limit" if not exempt else "it will not stop a lab's forks here")
    return _fact(summary, meaning, soft=None if soft == resource.RLIM_INFINITY else soft,
                 hard=None if hard == resource.RLIM_INFINITY else hard, binds=exempt is None,
                 exempt=exempt, tasks=used)


def pids_fact() -> dict:
    most, used = procfs.pid_max(), procfs.tasks_in_use()
    ceiling, why = limits.ceiling()
    return _fact(f"pid_max {most}, {used} tasks in use; a lab may hold up to {ceiling} "
                 "processes now",
                 "every process holds a PID until it is reaped, zombies included: a lab's "
                 f"max_procs is capped at {why}, so one experiment cannot starve the machine",
                 pid_max=most, tasks_in_use=used, lab_ceiling=ceiling, ceiling_reason=why)


# --- who adopts orphans, and do they reap them? --------------------------------------------

def measure_orphan(timeout: float = REAP_TIMEOUT) -> dict:
    """Make one orphan, see who adopts it, let it exit, and time how long until it is reaped.

    A probe forks the orphan-to-be, which blocks reading our pipe, prints its PID and exits;
    once we have reaped the probe, the orphan's PPID in /proc names its adopter. Closing the
    pipe lets it exit; then it stays a zombie until its adopter calls wait(2).
    """
    rfd, wfd = os.pipe()
    try:
        try:
            answer = run_probe(["orphan", str(rfd)], pass_fds=(rfd,))
        finally:
            os.close(rfd)
        if not answer.get("ok"):
            return {"error": f"the probe could not make an orphan: {_refusal(answer)}"}
        pid, start = answer["pid"], answer["start"]
        adopter = _adopter(pid, start)
    finally:
        os.close(wfd)  # EOF: the orphan exits now, whatever happened above
    exited = time.monotonic()
    if adopter is None:
        return {"error": f"the orphan {pid} was gone before its PPID could be read"}
    if adopter["adopter_pid"] == os.getpid():
        reaped_ms = _reap_ourselves(pid, start, exited, timeout)
    else:
        reaped_ms = _wait_reaped(pid, start, exited, timeout)
    return {**adopter, "orphan_pid": pid, "reaped": reaped_ms is not None,
            "reap_ms": reaped_ms, "timeout_s": timeout, "measured_at": time.time()}


def _adopter(pid: int, start: int) -> dict | None:
    stat = procfs.read_stat(pid)
    if stat is None or stat.starttime != start:
        return None
    parent = procfs.read_stat(stat.ppid)
    return {"adopter_pid": stat.ppid, "adopter_name": parent.comm if parent else None,
            "adopter_start": parent.starttime if parent else None}


def _wait_reaped(pid: int, start: int, since: float, timeout: float) -> float | None:
    """Milliseconds until (pid, start) left /proc, or None if it was still there at timeout.

    The start time tells our orphan from a new process that got its PID after the reaping.
    """
    while procfs.start_time(pid) == start:
        if time.monotonic() - since > timeout:
            _kill_if_alive(pid, start)
            return None
        time.sleep(POLL)
    return (time.monotonic() - since) * 1000


def _kill_if_alive(pid: int, start: int) -> None:
    """An orphan that did not even exit (no zombie yet) is ended, so nothing of ours lives on."""
    stat = procfs.read_stat(pid)
    if stat is not None and stat.state != "Z" and stat.starttime == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _reap_ourselves(pid: int, start: int, since: float, timeout: float) -> float | None:
    """We are the subreaper that adopted it: only our own waitpid can reap it, so we do."""
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # someone else in this process reaped it (a SIGCHLD handler)
            return (time.monotonic() - since) * 1000
        if done:
            return (time.monotonic() - since) * 1000
        if time.monotonic() - since > timeout:
            _kill_if_alive(pid, start)
            os.waitpid(pid, 0)
            return None
        time.sleep(POLL)


# --- the per-boot cache --------------------------------------------------------------------

def cache_paths() -> list[str]:
    """Where the measurement is kept: $XDG_CACHE_HOME or ~/.cache, else a private temp dir."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [os.path.join(base, "labkit", "doctor.json"),
            os.path.join(tempfile.gettempdir(), f"labkit-{os.getuid()}", "doctor.json")]


def _boot_id() -> str | None:
    return _read("/proc/sys/kernel/random/boot_id")


def load_cache() -> dict[str, dict]:
    """This boot's measurements, by "adopter PID:adopter start time"."""
    entries: dict[str, dict] = {}
    for path in reversed(cache_paths()):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("boot_id") == _boot_id():
            for key, entry in (data.get("adopters") or {}).items():
                entries[key] = {**entry, "cache_file": path}
    return entries


def save_cache(entries: dict[str, dict]) -> str | None:
    """Write the cache to the first place that takes it; its path, or None."""
    adopters = {key: {k: v for k, v in entry.items() if k != "cache_file"}
                for key, entry in entries.items()}
    data = json.dumps({"boot_id": _boot_id(), "adopters": adopters})
    for path in cache_paths():
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            if os.lstat(folder).st_uid != os.getuid():  # a shared /tmp: only a dir of our own
                continue
            temporary = f"{path}.{os.getpid()}.tmp"
            with open(temporary, "w") as f:
                f.write(data)
            os.replace(temporary, path)
            return path
        except OSError:
            continue
    return None


def _ancestors() -> list[tuple[int, int]]:
    """(PID, start time) of our parent, its parent, ... up to the top of our PID namespace."""
    chain = []
    pid = os.getppid()
    while pid > 0 and len(chain) < 4096:
        stat = procfs.read_stat(pid)
        if stat is None:
            break
        chain.append((pid, stat.starttime))
        pid = stat.ppid
    return chain


def cached_adopter(entries: dict[str, dict]) -> dict | None:
    """The cached measurement for the adopter our orphans would have now, if we can know it.

    /proc does not show which processes are subreapers, so an ancestor may be skipped only when
    an earlier measurement passed over it (it is listed "below" an adopter): then the first
    cached ancestor is the adopter. An ancestor nobody measured might be a subreaper: measure.
    """
    passed = {tuple(p) for entry in entries.values() for p in entry.get("below", [])}
    for pid, start in _ancestors():
        entry = entries.get(f"{pid}:{start}")
        if entry is not None:
            return entry
        if (pid, start) not in passed:
            return None
    return None


def _below(adopter_pid: int) -> list[list[int]]:
    """Us and our ancestors under the adopter: none of them was a subreaper just now."""
    chain = [(os.getpid(), procfs.start_time(os.getpid()))]
    for pid, start in _ancestors():
        if pid == adopter_pid:
            return [list(p) for p in chain]
        chain.append((pid, start))
    return []


def orphans_fact(measure: bool = True, refresh: bool = False,
                 timeout: float = REAP_TIMEOUT) -> dict:
    if _is_subreaper():
        # Our orphans come back to us; measuring costs nothing (we reap the orphan ourselves).
        if not measure:
            return _orphans_self_unmeasured()
        return describe_orphans(measure_orphan(timeout), cached=False)
    entries = load_cache()
    hit = None if refresh else cached_adopter(entries)
    if hit is not None:
        return describe_orphans(hit, cached=True, cache_file=hit.get("cache_file"))
    if not measure:
        return _fact("not measured (measure=False)",
                     "labkit.doctor() measures it with one short-lived orphan, whose zombie may "
                     "remain where PID 1 does not reap", measured=False, cached=False)
    result = measure_orphan(timeout)
    path = None
    if "error" not in result:
        result["below"] = _below(result["adopter_pid"])
        entries[f"{result['adopter_pid']}:{result['adopter_start']}"] = result
        path = save_cache(entries)
    return describe_orphans(result, cached=False, cache_file=path)


def _is_subreaper() -> bool:
    try:
        return linux.is_child_subreaper()
    except OSError:  # prctl forbidden (seccomp): then we are not one either
        return False


def _orphans_self_unmeasured() -> dict:
    me = os.getpid()
    return _fact(f"this process (PID {me}): it is a child subreaper (not measured)",
                 "orphans of its descendants come back to it, and are reaped only when its own "
                 "code calls wait(2); PID 1's behaviour was not measured",
                 measured=False, cached=False, adopter_pid=me, adopter_is_self=True)


def describe_orphans(result: dict, cached: bool, cache_file: str | None = None) -> dict:
    """The orphan measurement as a fact: who adopted, did it reap, and what that means."""
    if "error" in result:
        return _fact(f"not measured: {result['error']}", "run labkit.doctor() again",
                     measured=False, cached=False, error=result["error"])
    pid, name = result["adopter_pid"], result["adopter_name"]
    is_self = pid == os.getpid() and not cached
    when = datetime.fromtimestamp(result["measured_at"]).strftime("%Y-%m-%d %H:%M:%S")
    how = (f"measured at {when}, cached" if cached else f"measured at {when}"
           + (f", cached for this boot in {cache_file}" if cache_file else ""))
    data = dict(measured=True, cached=cached, measured_at=when, adopter_pid=pid,
                adopter_name=name, adopter_is_pid1=pid == 1, adopter_is_self=is_self,
                orphan_pid=result["orphan_pid"], reaped=result["reaped"],
                reap_ms=None if result["reap_ms"] is None else round(result["reap_ms"], 1),
                timeout_s=result["timeout_s"],
                zombie_may_remain=not result["reaped"] and not is_self, cache_file=cache_file,
                error=None)
    who = (f"this process (PID {pid}, {name}), a child subreaper" if is_self else
           f"PID 1 ({name})" if pid == 1 else f"the subreaper PID {pid} ({name}), not PID 1")
    return _fact(f"{who}; {_reaped_text(data, is_self)} ({how})",
                 _orphans_meaning(data, is_self), **data)


def _reaped_text(data: dict, is_self: bool) -> str:
    if is_self:
        return "the doctor reaped the test orphan itself with waitpid"
    if data["reaped"]:
        return f"it reaped the test orphan {data['reap_ms']:.0f} ms after it exited"
    return f"it did NOT reap the test orphan within {data['timeout_s']:g} s"


def _orphans_meaning(data: dict, is_self: bool) -> str:
    pid1 = "" if data["adopter_is_pid1"] else "; PID 1's own behaviour was not measured"
    if is_self:
        return ("orphans of this process's descendants come back to it, and are reaped only "
                "when its own code calls wait(2)" + pid1)
    if not data["reaped"]:
        return ("it does not reap: every orphan that reaches it stays a zombie (one zombie from "
                "this measurement may remain); labs use their own init, which reaps" + pid1)
    where = "" if data["adopter_is_pid1"] else "orphans here go to that subreaper"
    speed = ("promptly" if data["reap_ms"] < 200 else
             "but slowly (it polls): zombies linger meanwhile")
    return f"{where + ', which ' if where else 'it '}reaps {speed}{pid1}"
