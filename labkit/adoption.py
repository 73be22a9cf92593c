"""Who adopts this process's orphans, and do they reap them: measured with one real orphan.

One measurement leaves a trace on some machines: to learn whether PID 1 reaps orphans, the
doctor makes one orphan. Where PID 1 never reaps (mybinder.org) its zombie stays until the
machine restarts, so the result is cached per boot and the orphan is made only once.

Apart from labkit.machine because it is the one fact with a cost and a memory: it makes a
process that may outlive it, and keeps a cache file that must tell this boot's adopters apart.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from datetime import datetime

from labkit import linux, procfs
from labkit.i18n import _
from labkit.probing import fact as _fact
from labkit.probing import read_text as _read
from labkit.probing import refusal as _refusal
from labkit.probing import run_probe

REAP_TIMEOUT = 5.0    # seconds we give the orphan's adopter to reap it
POLL = 0.005          # seconds between looks at the orphan in /proc


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
            return {"error": _("the probe could not make an orphan: {why}").format(
                why=_refusal(answer))}
        pid, start = answer["pid"], answer["start"]
        adopter = _adopter(pid, start)
    finally:
        os.close(wfd)  # EOF: the orphan exits now, whatever happened above
    exited = time.monotonic()
    if adopter is None:
        return {"error": _("the orphan {pid} was gone before its PPID could be read").format(
            pid=pid)}
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
        return _fact(_("not measured (measure=False)"),
                     _("labkit.doctor() measures it with one short-lived orphan, whose zombie "
                       "may remain where PID 1 does not reap"), measured=False, cached=False)
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
    return _fact(_("this process (PID {pid}): it is a child subreaper (not measured)").format(
                     pid=me),
                 _("orphans of its descendants come back to it, and are reaped only when its "
                   "own code calls wait(2); PID 1's behaviour was not measured"),
                 measured=False, cached=False, adopter_pid=me, adopter_is_self=True)


def describe_orphans(result: dict, cached: bool, cache_file: str | None = None) -> dict:
    """The orphan measurement as a fact: who adopted, did it reap, and what that means."""
    if "error" in result:
        return _fact(_("not measured: {why}").format(why=result["error"]),
                     _("run labkit.doctor() again"),
                     measured=False, cached=False, error=result["error"])
    pid, name = result["adopter_pid"], result["adopter_name"]
    is_self = pid == os.getpid() and not cached
    when = datetime.fromtimestamp(result["measured_at"]).strftime("%Y-%m-%d %H:%M:%S")
    how = (_("measured at {when}, cached") if cached else
           _("measured at {when}, cached for this boot in {cache_file}") if cache_file else
           _("measured at {when}")).format(when=when, cache_file=cache_file)
    data = dict(measured=True, cached=cached, measured_at=when, adopter_pid=pid,
                adopter_name=name, adopter_is_pid1=pid == 1, adopter_is_self=is_self,
                orphan_pid=result["orphan_pid"], reaped=result["reaped"],
                reap_ms=None if result["reap_ms"] is None else round(result["reap_ms"], 1),
                timeout_s=result["timeout_s"],
                zombie_may_remain=not result["reaped"] and not is_self, cache_file=cache_file,
                error=None)
    who = (_("this process (PID {pid}, {name}), a child subreaper") if is_self else
           _("PID 1 ({name})") if pid == 1 else
           _("the subreaper PID {pid} ({name}), not PID 1")).format(pid=pid, name=name)
    return _fact(_("{who}; {reaped} ({how})").format(who=who, reaped=_reaped_text(data, is_self),
                                                      how=how),
                 _orphans_meaning(data, is_self), **data)


def _reaped_text(data: dict, is_self: bool) -> str:
    if is_self:
        return _("the doctor reaped the test orphan itself with waitpid")
    if data["reaped"]:
        return _("it reaped the test orphan {ms:.0f} ms after it exited").format(
            ms=data["reap_ms"])
    return _("it did NOT reap the test orphan within {timeout:g} s").format(
        timeout=data["timeout_s"])


def _orphans_meaning(data: dict, is_self: bool) -> str:
    pid1 = "" if data["adopter_is_pid1"] else _("; PID 1's own behaviour was not measured")
    if is_self:
        said = _("orphans of this process's descendants come back to it, and are reaped only "
                 "when its own code calls wait(2)")
    elif not data["reaped"]:
        said = _("it does not reap: every orphan that reaches it stays a zombie (one zombie "
                 "from this measurement may remain); labs use their own init, which reaps")
    elif data["reap_ms"] < 200:
        said = (_("it reaps promptly") if data["adopter_is_pid1"] else
                _("orphans here go to that subreaper, which reaps promptly"))
    else:
        said = (_("it reaps but slowly (it polls): zombies linger meanwhile")
                if data["adopter_is_pid1"] else
                _("orphans here go to that subreaper, which reaps but slowly (it polls): "
                  "zombies linger meanwhile"))
    return said + pid1
