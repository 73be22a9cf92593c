"""Goal 5: the lab's pause init beside its peers, each as PID 1 of a fresh PID namespace.

    python bench/bench_inits.py [--reps N] [--idle SECONDS] [--quick] [--markdown FILE]
    python bench/run.py --only inits          (the same rows in the common table)

Inits: `python -m labkit.pause`; the seed's pause.c (the baseline: built from
../shared/reference/pause.c into a temporary directory); tini, catatonit (`-P`, its pause mode)
and dumb-init, the Debian packages, each skipped (and said so) when not installed; tini and
dumb-init need a child and get one (`sleep 1000`); and the kernel's own auto-reap: PID 1 is a tiny
C program with SIGCHLD set to SIG_IGN (bench/storm.c `init`), the floor no reaper can beat.

Each round starts every init as PID 1 of its own namespace (`unshare -pf --mount-proc`, `-Urpf`
without root), in an order rotated each round, and for each (workloads from bench/storm.c, run
inside the namespace with nsenter):
  - RSS: VmRSS of PID 1 once it is ready;
  - orphans exit together: 2,000 children of a tiny C spawner become PID 1's orphans, blocked on
    a pipe held here; closing it makes them all exit at once. Wall time from the close until
    PID 1 has reaped them all (no child left but its own `sleep`, if any: /proc/PID/task/PID/
    children lists zombies until they are reaped), of which the part after the last orphan has
    exited (a second pipe, which only they hold, reaches EOF); PID 1's CPU time
    (/proc/PID/schedstat, first field, ns) and context switches over the same window;
  - zombies handed over: 2,000 children exit while their parent lives; then it exits, and the
    kernel hands PID 1 all 2,000 zombies at once. Wall time from the parent's release until all
    are reaped, and PID 1's CPU time: PID 1's own reaping speed, with no exit work in the way
    (3 per round);
  - one at a time: 300 orphans, each reaped alone (bench/storm.c `trickle`): PID 1's CPU time
    per orphan, i.e. per wakeup;
  - stop latency: SIGTERM from here (through a pidfd) until PID 1 has exited (the pidfd polls
    readable), namespace teardown included; for tini and dumb-init, also forwarding SIGTERM to
    their child and its death.
Then all of them idle at once, each in its namespace, for --idle seconds (10 s; 2 s with
--quick): the context switches (voluntary + involuntary, /proc/PID/status) PID 1 made meanwhile
are its wakeups. Medians over --reps rounds (after one uncounted warm-up round); ratios are
against pause.c measured in the same run. Nothing is asserted; the exit status is 1 only if a
process of ours is left behind.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:  # labkit (for _common), when it is not installed
    sys.path.insert(1, REPO)

from _common import HEADER, Row, ms, spread  # noqa: E402

REFERENCE_C = os.path.join(os.path.dirname(REPO), "shared", "reference", "pause.c")
STORM_C = os.path.join(HERE, "storm.c")
STORM = 2000
HANDOVERS = 3  # zombie handovers per round (each is ~10 ms: more samples, little time)
TRICKLE = 300  # orphans one at a time, each reaped alone: PID 1's cost per wakeup
IDLE_SECONDS = 10.0
QUICK_IDLE_SECONDS = 2.0
ROOT = os.geteuid() == 0
TIMEOUT = 30.0

GOAL_WALL, GOAL_CPU, GOAL_STOP = 1.10, 1.30, 0.010


@dataclass
class Init:
    label: str                      # as the table shows it
    argv: list[str] | None          # None: not available here (see `missing`)
    comm: str                       # Name in /proc/PID/status once it runs
    child: tuple[str, ...] = ()     # the child it needs, appended to argv
    missing: str = ""
    runs: dict[str, list[float]] = field(default_factory=dict)

    def add(self, what: str, value: float) -> None:
        self.runs.setdefault(what, []).append(value)

    def median(self, what: str) -> float | None:
        values = self.runs.get(what)
        return statistics.median(values) if values else None


def inits(tmp: str, storm: str) -> list[Init]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    found = []
    found.append(Init("labkit.pause", [sys.executable, "-m", "labkit.pause"], "pause"))
    pause_c = build(REFERENCE_C, os.path.join(tmp, "pause-c"))
    if isinstance(pause_c, str):
        found.append(Init("pause.c", [pause_c], "pause-c"))
    else:
        found.append(Init("pause.c", None, "pause-c", missing=pause_c[0]))
    sleep = ("sleep", "1000")
    for label, argv, child in (("tini", ["tini", "--"], sleep),
                               ("catatonit -P", ["catatonit", "-P"], ()),
                               ("dumb-init", ["dumb-init"], sleep)):
        if shutil.which(argv[0]):
            found.append(Init(label, argv, argv[0], child))
        else:
            found.append(Init(label, None, argv[0], child,
                              missing=f"not installed (apt-get install {argv[0]})"))
    found.append(Init("kernel auto-reap", [storm, "init"], "storm"))
    return found


def build(source: str, binary: str) -> str | tuple[str]:
    """cc -O2 source -> binary: its path, or (why not,)."""
    if not os.path.isfile(source):
        return (f"{source} not found",)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return ("no C compiler (cc)",)
    done = subprocess.run([cc, "-O2", "-o", binary, source], capture_output=True, text=True)
    if done.returncode != 0:
        return (f"cc failed: {done.stderr.strip()[:200]}",)
    return binary


# --- /proc ---------------------------------------------------------------------------------------

def status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def children(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []


def cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def switches(pid: int) -> int:
    fields = status(pid)
    return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])


def state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return ""
    return chr(data[data.rfind(b")") + 2])


def wchan(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except OSError:
        return ""


def cmdline(pid: str | int) -> tuple[str, ...]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return tuple(f.read().decode(errors="replace").split("\0")[:-1])
    except OSError:
        return ()


def wait_for(predicate, timeout: float = TIMEOUT, interval: float = 0.002):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- an init as PID 1 ----------------------------------------------------------------------------

CHLD, TERM = 1 << (signal.SIGCHLD - 1), 1 << (signal.SIGTERM - 1)


class Pid1:
    """An init running as PID 1 of a fresh PID namespace; ended (SIGKILL) if not stopped."""

    def __init__(self, init: Init) -> None:
        self.init = init
        prefix = ["unshare", "-pf", "--mount-proc"] if ROOT else ["unshare", "-Urpf",
                                                                 "--mount-proc"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
        self.launcher = subprocess.Popen(prefix + init.argv + list(init.child), env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        self.pidfd = -1
        try:
            if not wait_for(lambda: children(self.launcher.pid) or self.launcher.poll()
                            is not None) or self.launcher.poll() is not None:
                raise RuntimeError(f"unshare could not start {init.label} as PID 1 (exit "
                                   f"{self.launcher.poll()})")
            self.pid = int(children(self.launcher.pid)[0])
            self.pidfd = os.pidfd_open(self.pid)
            if not wait_for(self.ready) or self.launcher.poll() is not None:
                raise RuntimeError(f"{init.label} never became ready as PID 1: "
                                   f"{status(self.pid)}")
        except BaseException:
            self.close()
            raise

    def ready(self) -> bool:
        """Exec'd; SIGCHLD and SIGTERM caught, blocked or (SIGCHLD) ignored, or asleep in
        sigtimedwait (which unblocks what it waits for); and its child, if any, running."""
        fields = status(self.pid)
        if fields.get("Name") != self.init.comm:
            return False
        caught = int(fields["SigCgt"], 16) | int(fields["SigBlk"], 16)
        if not ((caught | int(fields["SigIgn"], 16)) & CHLD and caught & TERM
                or fields["State"][0] == "S" and "sigtimedwait" in wchan(self.pid)):
            return False
        return not self.init.child or any(cmdline(p) == self.init.child
                                          for p in children(self.pid))

    def nsenter(self) -> list[str]:
        prefix = ["nsenter", "-t", str(self.pid), "-p"]
        return prefix if ROOT else prefix + ["-U", "--preserve-credentials"]

    def orphans(self, storm: str, count: int) -> tuple[float, float, int, int]:
        """COUNT live orphans of PID 1 released at once: (seconds until all have exited,
        seconds until PID 1 has reaped them all, PID 1's CPU ns and context switches
        meanwhile)."""
        mine = children(self.pid)  # tini's and dumb-init's own child
        own = len(mine)
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        try:
            try:
                subprocess.run(self.nsenter() + [storm, "orphans", str(count), str(go_r),
                                                 str(done_w)],
                               check=True, pass_fds=(go_r, done_w), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, timeout=TIMEOUT)
            finally:
                os.close(go_r)
                os.close(done_w)  # now only the orphans hold it
            kids = wait_for(lambda: len(children(self.pid)) == own + count and [
                pid for pid in children(self.pid) if pid not in mine])
            if not kids:
                raise RuntimeError(f"{self.init.label}: {len(children(self.pid)) - own} of "
                                   f"{count} orphans arrived")
            if not wait_for(lambda: all(state(pid) == "S" for pid in kids)):
                raise RuntimeError(f"{self.init.label}: the orphans never all slept")
            cpu, woke = cpu_ns(self.pid), switches(self.pid)
            start = time.perf_counter()
            os.close(go_w)  # the release
            go_w = -1
            # Nothing here competes with the storm for the CPU until the last orphan has exited.
            if not select.select([done_r], [], [], TIMEOUT)[0] or os.read(done_r, 1):
                raise RuntimeError(f"{self.init.label}: the orphans did not exit")
            exited = time.perf_counter() - start
            wall = self.reaped(own, start)
            return exited, wall, cpu_ns(self.pid) - cpu, switches(self.pid) - woke
        finally:
            if go_w >= 0:
                os.close(go_w)  # on an error: the end of the orphans
            os.close(done_r)

    def zombies(self, storm: str, count: int) -> tuple[float, int]:
        """COUNT zombies handed to PID 1 at once (their parent exits): (seconds until PID 1 has
        reaped them all, PID 1's CPU ns meanwhile)."""
        own = len(children(self.pid))
        go_r, go_w = os.pipe()
        spawner = subprocess.Popen(self.nsenter() + [storm, "zombies", str(count), str(go_r)],
                                   pass_fds=(go_r,), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE)
        os.close(go_r)
        pidfd = -1
        try:
            if not select.select([spawner.stdout], [], [], TIMEOUT)[0] or (
                    spawner.stdout.readline() != b"ready\n"):
                raise RuntimeError(f"{self.init.label}: the zombie spawner did not start")
            parent = int(children(spawner.pid)[0])  # nsenter's child: the spawner
            pidfd = os.pidfd_open(parent)
            kids = wait_for(lambda: len(children(parent)) == count and children(parent))
            if not kids or not wait_for(lambda: all(state(pid) == "Z" for pid in kids)):
                raise RuntimeError(f"{self.init.label}: the spawner's children did not all die")
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            cpu = cpu_ns(self.pid)
            start = time.perf_counter()
            os.close(go_w)  # the spawner exits: its zombies are PID 1's from then on
            go_w = -1
            if not poller.poll(TIMEOUT * 1000):
                raise RuntimeError(f"{self.init.label}: the spawner did not exit")
            wall = self.reaped(own, start)
            return wall, cpu_ns(self.pid) - cpu
        finally:
            if go_w >= 0:
                os.close(go_w)
            if pidfd >= 0:
                os.close(pidfd)
            spawner.wait(TIMEOUT)
            spawner.stdout.close()

    def trickle(self, storm: str, count: int) -> tuple[int, int]:
        """COUNT orphans one at a time, each reaped alone: (PID 1's CPU ns, context switches)."""
        cpu, woke = cpu_ns(self.pid), switches(self.pid)
        subprocess.run(self.nsenter() + [storm, "trickle", str(count)], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=TIMEOUT)
        if not wait_for(lambda: len(children(self.pid)) == len(self.init.child and [1])):
            raise RuntimeError(f"{self.init.label}: trickled orphans left")
        return cpu_ns(self.pid) - cpu, switches(self.pid) - woke

    def reaped(self, own: int, start: float) -> float:
        """Seconds from `start` until PID 1 has no child but its `own` first ones.

        Only the head of PID 1's children list is read (64 bytes): its own child, if any, is
        first there, and the orphans come after it, so a PID past the first `own` means some
        are left. The kernel then formats only the first few entries, where reading the whole
        list (thousands of entries, each under tasklist_lock, which every reap takes for
        writing) each time would slow the reaper it measures. The whole list is read once at
        the end, to be sure.
        """
        path = f"/proc/{self.pid}/task/{self.pid}/children"
        while True:
            fd = os.open(path, os.O_RDONLY)
            try:
                head = os.read(fd, 64)
            finally:
                os.close(fd)
            if len(head.split()) <= own:
                break
            if time.perf_counter() - start > TIMEOUT:
                raise RuntimeError(f"{self.init.label}: children left after {TIMEOUT} s")
            time.sleep(0.00005)
        took = time.perf_counter() - start
        if not wait_for(lambda: len(children(self.pid)) == own):
            raise RuntimeError(f"{self.init.label}: {len(children(self.pid)) - own} left")
        return took

    def stop(self) -> float:
        """Seconds from SIGTERM until PID 1 has exited."""
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        start = time.perf_counter()
        signal.pidfd_send_signal(self.pidfd, signal.SIGTERM)
        if not poller.poll(TIMEOUT * 1000):
            raise RuntimeError(f"{self.init.label} did not exit within {TIMEOUT} s of SIGTERM")
        took = time.perf_counter() - start
        self.launcher.wait(TIMEOUT)
        return took

    def close(self) -> None:
        if self.pidfd >= 0:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(self.pidfd)
            self.pidfd = -1
        if self.launcher.poll() is None:
            try:
                self.launcher.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
                self.launcher.wait()


def one_round(init: Init, storm: str, count: int, counted: bool) -> None:
    pid1 = Pid1(init)
    try:
        rss = int(status(pid1.pid)["VmRSS"].split()[0]) * 1024
        exited, wall, cpu, woke = pid1.orphans(storm, count)
        handovers = [pid1.zombies(storm, count) for _ in range(HANDOVERS)]
        trickle_cpu, trickle_woke = pid1.trickle(storm, TRICKLE)
        stop = pid1.stop()
    finally:
        pid1.close()
    if counted:
        init.add("rss", rss)
        init.add("exited", exited)
        init.add("wall", wall)
        init.add("cpu", cpu / 1e9)
        init.add("woke", woke)
        for handover, handover_cpu in handovers:
            init.add("zwall", handover)
            init.add("zcpu", handover_cpu / 1e9)
        init.add("trickle", trickle_cpu / 1e9 / TRICKLE)
        init.add("trickle_woke", trickle_woke / TRICKLE)
        init.add("stop", stop)


def idle(available: list[Init], seconds: float) -> None:
    """Every init idle at once, each PID 1 of its namespace: its context switches meanwhile."""
    running: list[Pid1] = []
    try:
        for init in available:
            running.append(Pid1(init))
        time.sleep(0.5)  # past their start-up
        before = [(switches(p.pid), cpu_ns(p.pid)) for p in running]
        time.sleep(seconds)
        after = [(switches(p.pid), cpu_ns(p.pid)) for p in running]
        for pid1, (s0, c0), (s1, c1) in zip(running, before, after, strict=True):
            pid1.init.add("wakeups", s1 - s0)
            pid1.init.add("idle_cpu", (c1 - c0) / 1e9)
        for pid1 in running:
            pid1.stop()
    finally:
        for pid1 in running:
            pid1.close()


def measure(reps: int, idle_seconds: float, count: int = STORM,
            log=print) -> tuple[list[Init], str]:
    """Every available init, `reps` rounds (+1 warm-up), then the idle window: (inits, about)."""
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool}(1) (util-linux) is needed for PID namespaces")
    tmp = tempfile.mkdtemp(prefix="labkit-bench-inits-")
    try:
        storm = build(STORM_C, os.path.join(tmp, "storm"))
        if not isinstance(storm, str):
            raise RuntimeError(f"cannot build {STORM_C}: {storm[0]}")
        table = inits(tmp, storm)
        available = [init for init in table if init.argv]
        for rep in range(reps + 1):  # round 0 warms caches and is not counted
            # Each round in another order (rotated): no init always follows the same one.
            shift = rep % len(available)
            for init in available[shift:] + available[:shift]:
                one_round(init, storm, count, counted=rep > 0)
        log(f"  inits: {reps} rounds of a {count:,}-orphan storm done; idle window "
            f"{idle_seconds:g} s")
        idle(available, idle_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    about = (f"{count:,} orphans per storm, {reps} rounds (+1 warm-up), medians; idle window "
             f"{idle_seconds:g} s; {'root' if ROOT else 'uid ' + str(os.geteuid())}")
    return table, about


# --- tables --------------------------------------------------------------------------------------

SIDE_HEADER = ["Init (PID 1)", "Orphans: wall", "ratio", "after last exit", "PID-1 CPU",
               "ratio", "PID-1 wakeups", "Handover: wall", "ratio", "PID-1 CPU", "ratio",
               "One at a time: CPU each", "ratio", "Stop latency", "Idle wakeups", "VmRSS"]


def ratio(init: Init, base: Init | None, what: str) -> float | None:
    mine, theirs = init.median(what), base.median(what) if base else None
    if mine is None or not theirs:
        return None
    return mine / theirs


def times(init: Init, base: Init | None, what: str) -> list[str]:
    """[median, ratio against the baseline] as cells."""
    r = ratio(init, base, what)
    return [ms(init.median(what)), "" if r is None else f"{r:.2f}x"]


def micros(init: Init, base: Init | None, what: str) -> list[str]:
    r = ratio(init, base, what)
    return [f"{init.median(what) * 1e6:.1f} µs", "" if r is None else f"{r:.2f}x"]


def side_by_side(table: list[Init], idle_seconds: float) -> list[list[str]]:
    base = next((i for i in table if i.label == "pause.c" and i.argv), None)
    lines = []
    for init in table:
        if not init.argv:
            lines.append([init.label, f"skipped: {init.missing}"] + [""] * 14)
            continue
        tail = statistics.median(w - e for w, e in zip(init.runs["wall"], init.runs["exited"],
                                                          strict=True))
        wakeups = init.median("wakeups")
        lines.append([init.label, *times(init, base, "wall"), ms(tail), *times(init, base, "cpu"),
                      f"{init.median('woke'):.0f}",
                      *times(init, base, "zwall"), *times(init, base, "zcpu"),
                      *micros(init, base, "trickle"),
                      ms(init.median("stop")),
                      f"{wakeups:.0f} in {idle_seconds:g} s" if wakeups is not None else "",
                      f"{init.median('rss') / 2**20:.1f} MiB"])
    return lines


def rows(table: list[Init], idle_seconds: float) -> list[Row]:
    """The common table's rows: labkit.pause's goals against pause.c, then the peers."""
    by = {init.label: init for init in table}
    lab, base = by["labkit.pause"], by["pause.c"] if by["pause.c"].argv else None
    group = "5 inits"
    out = []

    def notes(what: str) -> str:
        values = lab.runs[what]
        span = f"labkit.pause {min(values) * 1e3:.1f}-{max(values) * 1e3:.1f} ms"
        if base is None or not all(base.runs[what]):
            return span
        return f"{spread(values, base.runs[what])}; {span}"

    orphans, handover = f"{STORM:,} orphans exit together", f"{STORM:,} zombies handed over"
    for what, name, goal in (
            ("wall", f"{orphans}: wall until all are reaped", GOAL_WALL),
            ("cpu", f"{orphans}: PID 1's CPU time", GOAL_CPU),
            ("zwall", f"{handover}: wall until all are reaped", GOAL_WALL),
            ("zcpu", f"{handover}: PID 1's CPU time", GOAL_CPU)):
        name += ", labkit.pause vs pause.c"
        if base is None:
            out.append(Row(group, name, ms(lab.median(what)), "", None, f"<= {goal:.2f}x",
                           None, f"pause.c {by['pause.c'].missing}: no baseline"))
            continue
        r = ratio(lab, base, what)
        out.append(Row(group, name, ms(lab.median(what)), ms(base.median(what)), r,
                       f"<= {goal:.2f}x", r <= goal, notes(what)))
    each, r = lab.median("trickle"), ratio(lab, base, "trickle")
    out.append(Row(group, f"{TRICKLE} orphans one at a time: PID 1's CPU per orphan (a wakeup "
                   "each), labkit.pause vs pause.c", f"{each * 1e6:.1f} µs",
                   f"{base.median('trickle') * 1e6:.1f} µs" if base else "", r, "", None,
                   "context: what the interpreter costs per wakeup"))
    stop = lab.median("stop")
    out.append(Row(group, "stop latency (SIGTERM to exit, from the host), labkit.pause vs "
                   "pause.c", ms(stop), ms(base.median("stop")) if base else "",
                   ratio(lab, base, "stop"), f"<= {GOAL_STOP * 1e3:.0f} ms",
                   stop <= GOAL_STOP, notes("stop")))
    wakeups = lab.median("wakeups")
    out.append(Row(group, f"wakeups while idle for {idle_seconds:g} s, labkit.pause vs pause.c",
                   f"{wakeups:.0f}", f"{base.median('wakeups'):.0f}" if base else "", None,
                   "0", wakeups == 0, "voluntary + involuntary context switches"))
    out.append(Row(group, "VmRSS, labkit.pause vs pause.c",
                   f"{lab.median('rss') / 2**20:.1f} MiB",
                   f"{base.median('rss') / 2**20:.1f} MiB" if base else "",
                   ratio(lab, base, "rss"), "", None, "context: an interpreter against C"))
    for init in table:
        if init.label in ("labkit.pause", "pause.c"):
            continue
        name = f"context: {init.label}: {orphans}, wall vs pause.c"
        if not init.argv:
            out.append(Row(group, name, "", "", None, "", None, f"skipped: {init.missing}"))
            continue

        def vs(what: str, init: Init = init) -> str:
            r = ratio(init, base, what)
            return f"{ms(init.median(what))}" + ("" if r is None else f" ({r:.2f}x)")

        note = (f"PID-1 CPU {vs('cpu')}; handover {vs('zwall')}, CPU {vs('zcpu')}; "
                f"stop {ms(init.median('stop'))}; {init.median('wakeups'):.0f} idle wakeups; "
                f"VmRSS {init.median('rss') / 2**20:.1f} MiB")
        out.append(Row(group, name, ms(init.median("wall")),
                       ms(base.median("wall")) if base else "", ratio(init, base, "wall"),
                       "", None, note))
    return out


def run(reps: int, idle_seconds: float = IDLE_SECONDS) -> list[Row]:
    """What bench/run.py calls: measure, print the side-by-side table, return the rows."""
    table, about = measure(reps, idle_seconds)
    print(f"\n  Inits side by side ({about}):")
    for line in text_lines(SIDE_HEADER, side_by_side(table, idle_seconds)):
        print("  " + line)
    print(flush=True)
    return rows(table, idle_seconds)


def text_lines(header: list[str], lines: list[list[str]]) -> list[str]:
    cells = [header] + lines
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
           for line in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def markdown_lines(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=9, help="counted rounds (default 9)")
    parser.add_argument("--idle", type=float, default=None,
                        help=f"idle window, seconds (default {IDLE_SECONDS:g}; "
                             f"{QUICK_IDLE_SECONDS:g} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"3 rounds and a {QUICK_IDLE_SECONDS:g} s idle window")
    parser.add_argument("--storm", type=int, default=STORM, help=f"orphans (default {STORM})")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    args = parser.parse_args(argv)
    reps = 3 if args.quick and args.reps == 9 else args.reps
    seconds = args.idle if args.idle is not None else (
        QUICK_IDLE_SECONDS if args.quick else IDLE_SECONDS)
    if reps < 1 or seconds <= 0 or args.storm < 1:
        parser.error("--reps, --idle and --storm must be positive")

    import _common as common
    from run import machine, markdown_table, text_table

    common.become_subreaper()
    zombies_before = common.zombies_on_machine()
    about_machine = machine()  # the load average before our storms add to it
    print(f"Inits side by side: {about_machine}", flush=True)
    started = time.monotonic()
    table, about = measure(reps, seconds, args.storm)
    elapsed = time.monotonic() - started
    side = side_by_side(table, seconds)
    goal_rows = rows(table, seconds) if args.storm == STORM else []
    left = common.leftovers()
    zombies_after = common.zombies_settled(zombies_before)
    print()
    print("\n".join(text_lines(SIDE_HEADER, side)))
    print()
    if goal_rows:
        print(text_table(HEADER, goal_rows))
        print()
    print(f"{about}; {elapsed:.0f} s in all. Zombies on the machine (ps -eo stat): "
          f"{zombies_before} before, {zombies_after} after; processes of ours left: {len(left)}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Run of {about_machine}; {about}; {elapsed:.0f} s in all.\n\n")
            f.write("\n".join(markdown_lines(SIDE_HEADER, side)) + "\n\n")
            if goal_rows:
                f.write(markdown_table(HEADER, goal_rows) + "\n")
        print(f"Markdown written to {args.markdown}")
    if left:
        print(f"LEFT BEHIND: {left[:10]}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
