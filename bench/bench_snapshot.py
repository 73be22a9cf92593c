"""Goal 2: `lab.snapshot()` of a lab of 5,000 processes against psutil and against raw /proc reads.

The lab: 5 parents with policy "none", each forking 999 children: with lifetime 0 they are all
zombies; with a long lifetime they all sleep. Root + agent + 5 parents + 4,995 children = 5,002.
Both in a subreaper lab; zombies also in a PID-namespace lab where the machine allows one (its
snapshot also looks up each process's PID inside the namespace).

Baselines, each timed on the same machine at the same moment (interleaved with the snapshot):
- psutil.process_iter(['pid', 'ppid', 'status']) over every process (what a notebook would
  write without labkit; its Process cache is warm after the first, uncounted, round);
- psutil restricted to the lab: Process(root).children(recursive=True) and .status() of each;
- the least a Python program can do: listdir /proc, then open and read each /proc/PID/stat,
  once with the builtin open() and once with os.open/os.read/os.close (the syscall floor).
"""

from __future__ import annotations

import os
import time

import psutil
from _common import SHORT, Row, median, ms, spread, timed

from labkit import Lab

PARENTS = 5
CHILDREN = 999          # per parent
SIZE = 2 + PARENTS * (1 + CHILDREN)
LONG_LIFE = 300.0       # "sleeping" children outlive the benchmark; closing the lab ends them


def build(lab: Lab, lifetime: float, timeout: float = 30.0) -> int:
    """Fill the lab; wait until every child is in its final state (zombie or sleeping)."""
    for parent in [lab.parent("none") for _ in range(PARENTS)]:
        parent.fork(CHILDREN, lifetime=lifetime)
    want = "zombie" if lifetime == 0 else "sleeping"
    deadline = time.monotonic() + timeout
    while True:
        snap = lab.snapshot()
        if snap.counts.get(want, 0) >= PARENTS * CHILDREN or time.monotonic() > deadline:
            return len(snap)
        time.sleep(0.05)


def psutil_all() -> int:
    return len([p.info for p in psutil.process_iter(["pid", "ppid", "status"])])


def psutil_lab(root: int) -> int:
    top = psutil.Process(root)
    found = [(top.pid, top.status())]
    for proc in top.children(recursive=True):
        try:
            found.append((proc.pid, proc.status()))
        except psutil.NoSuchProcess:
            pass
    return len(found)


def proc_open() -> int:
    """listdir /proc, then open() + read() each /proc/PID/stat: nothing else."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    found.append(f.read())
            except OSError:
                pass
    return len(found)


def proc_syscalls() -> int:
    """The same with os.open/os.read/os.close: three syscalls per process, the floor."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fd = os.open(f"/proc/{name}/stat", os.O_RDONLY)
            except OSError:
                continue
            try:
                found.append(os.read(fd, 1024))
            finally:
                os.close(fd)
    return len(found)


def measure(mode: str, lifetime: float, reps: int, full: bool = True) -> list[Row]:
    """Rows for one lab; `full` adds psutil-on-the-lab and the builtin-open() loop."""
    kind = "zombies" if lifetime == 0 else "sleeping"
    with Lab(mode=mode, max_procs=SIZE + 98) as lab:
        size = build(lab, lifetime)
        root = lab.root_pid
        probes = {"snapshot": lab.snapshot, "psutil_all": psutil_all,
                  "psutil_lab": lambda: psutil_lab(root), "open": proc_open,
                  "syscalls": proc_syscalls}
        if not full:
            del probes["psutil_lab"], probes["open"]
        times: dict[str, list[float]] = {key: [] for key in probes}
        for rep in range(reps + 1):  # round 0 warms psutil's cache and the dentry cache
            for key, probe in probes.items():
                seconds = timed(probe)
                if rep:
                    times[key].append(seconds)
        machine = len(psutil.pids())
    snap = median(times["snapshot"])
    rows = []
    label = f"[{SHORT[mode]}] snapshot of {size:,} {kind}"
    for key, name in (("psutil_all", "psutil.process_iter (whole machine)"),
                      ("psutil_lab", "psutil children(recursive) + status()")):
        if key not in times:
            continue
        ref = median(times[key])
        rows.append(Row("2 snapshot", f"{label} vs {name}", ms(snap), ms(ref),
                        ref / snap, ">= 4x faster", ref / snap >= 4.0,
                        f"x faster; {spread(times[key], times['snapshot'])}; {machine:,} "
                        "processes on the machine"))
    for key, name in (("open", "listdir + open().read() each stat"),
                      ("syscalls", "listdir + os.open/read/close")):
        if key not in times:
            continue
        ref = median(times[key])
        rows.append(Row("2 snapshot", f"{label} vs {name}", ms(snap), ms(ref),
                        snap / ref, "<= 1.50x", snap / ref <= 1.5,
                        spread(times["snapshot"], times[key])))
    floor, ref = median(times["syscalls"]), median(times["psutil_all"])
    rows.append(Row("2 snapshot", f"context [{SHORT[mode]}, {kind}]: the syscall floor vs "
                    "psutil.process_iter", ms(floor), ms(ref), ref / floor,
                    note="x faster: the most any reader of every /proc/PID/stat can reach"))
    return rows


def run(reps: int, modes: list[str]) -> list[Row]:
    rows = measure("subreaper", 0.0, reps) + measure("subreaper", LONG_LIFE, reps)
    for mode in modes:
        if mode != "subreaper":
            rows += measure(mode, 0.0, reps, full=False)
    return rows
