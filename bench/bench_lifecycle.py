"""Goal 3: how long a lab takes to start, and to close with 5,000 processes in it.

Start: from `Lab()` to its first usable state (the constructor has returned, which means the
agent has said hello, and a first `lab.snapshot()` shows the root and the agent). A subreaper lab
starts two interpreters (the root, `python -m labkit.pause`, and the agent, `python -m
labkit.agent`), so the baseline is starting a bare `python -c pass` twice, one after the other; a
PID-namespace lab starts a third first (`python -m labkit.unshare`), so there it is three times.

Close: leaving the `with` block of a lab of 5,002 processes (zombies, or sleeping children that
must be killed first), in each mode, until the root has drained and been reaped, against closing
an empty lab of the same mode. The size is bench_snapshot's (lower CHILDREN there for a trial).
The goals are absolute (<= 300 ms; <= 1 s for zombies, <= 0.6 s for sleeping children); the
ratios are printed beside them.

The floor of closing sleeping children, measured in the same run: a bare `python -S` forks 5,000
children that sleep, in a process group of their own, reads each one's /proc/PID/stat and
children file once (the dentries a watched lab's snapshot leaves, which the kernel drops when
each is reaped: proc_flush_pid), then, timed from the signal to its last reap: one killpg(SIGKILL)
and waitpid(-1) until ECHILD. Nothing of Python runs per child but the wait; each child is a fork
of a small interpreter that, once killed, unmaps what it inherited (exit_mmap) on whichever core
is free. A lab's children are forks of its parents, which are such interpreters (labkit.parent).
The same program in C (children that are forks of a process of a few pages), where a C compiler
is there, shows what is the kernel's cost per process and what is the interpreter's size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from _common import SHORT, Row, median, ms, spread, timed
from bench_snapshot import LONG_LIFE, SIZE, build

from labkit import Lab

# Interpreters each mode starts: the root and the agent, and in a PID namespace the launcher
# (python -m labkit.unshare) that creates it before the root.
INTERPRETERS = {"subreaper": 2, "pid-namespace": 3}
# Seconds to close a full lab: goal 3's for zombies; issue 11's for sleeping children, each of
# which must be woken by SIGKILL and torn down before it is reaped.
CLOSE_GOAL = {"zombies": 1.0, "sleeping": 0.6}


FLOOR_CHILDREN = 5000
# The floor's program (python -S -c FLOOR N LIFE): no import but os, time and the C half of
# signal. Its children close its pipes, so that they end with it whatever happens.
FLOOR = """
import os, sys, time, _signal
n, life, pids = int(sys.argv[1]), float(sys.argv[2]), []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(0)
        os.close(1)
        time.sleep(life)
        os._exit(0)
    os.setpgid(pid, pids[0] if pids else pid)
    pids.append(pid)
for pid in pids:
    for path in (f"/proc/{pid}/stat", f"/proc/{pid}/task/{pid}/children"):
        fd = os.open(path, os.O_RDONLY)
        os.read(fd, 4096)
        os.close(fd)
print("ready", flush=True)
sys.stdin.readline()  # a line, or EOF if the benchmark is gone: either way, end them
start = time.perf_counter()
os.killpg(pids[0], _signal.SIGKILL)
reaped = 0
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
    reaped += 1
print(reaped, time.perf_counter() - start, flush=True)
"""


# FLOOR in C: the kernel's part alone (its children have a few pages each). pause(), not a sleep
# of LONG_LIFE: the parent's stdin ending ends them, as for FLOOR.
C_FLOOR = r"""
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    int n = atoi(argv[1]), reaped = 0;
    pid_t *pids = calloc(n, sizeof(pid_t));
    char path[64], buf[4096];
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) { close(0); close(1); pause(); _exit(0); }
        setpgid(pid, i ? pids[0] : pid);
        pids[i] = pid;
    }
    for (int i = 0; i < n; i++) {
        const char *files[2] = {"/proc/%d/stat", "/proc/%d/task/%d/children"};
        for (int f = 0; f < 2; f++) {
            snprintf(path, sizeof path, files[f], pids[i], pids[i]);
            int fd = open(path, O_RDONLY);
            if (fd >= 0) { if (read(fd, buf, sizeof buf) < 0) return 1; close(fd); }
        }
    }
    printf("ready\n");
    fflush(stdout);
    if (read(0, buf, sizeof buf) < 0) return 1;  /* a line, or EOF: either way, end them */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    kill(-pids[0], SIGKILL);
    while (waitpid(-1, NULL, 0) > 0) reaped++;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%d %.9f\n", reaped, (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
"""


def build_c_floor(directory: str) -> list[str] | None:
    """C_FLOOR compiled into `directory`, as a command line; None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    source, binary = os.path.join(directory, "floor.c"), os.path.join(directory, "floor")
    with open(source, "w") as f:
        f.write(C_FLOOR)
    done = subprocess.run([cc, "-O2", "-o", binary, source], capture_output=True)
    return [binary, str(FLOOR_CHILDREN)] if done.returncode == 0 else None


def close_floor(command: list[str] | None = None) -> float:
    """Seconds from one killpg to the last reap of FLOOR_CHILDREN sleeping children of
    `command` (FLOOR or C_FLOOR's)."""
    command = command or [sys.executable, "-S", "-c", FLOOR, str(FLOOR_CHILDREN), str(LONG_LIFE)]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    with proc:  # closing its stdin kills the children, whatever happened here
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the floor's parent did not start its children")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        reaped, seconds = proc.stdout.readline().split()
    if int(reaped) != FLOOR_CHILDREN:
        raise RuntimeError(f"the floor reaped {reaped} of {FLOOR_CHILDREN} children")
    return float(seconds)


def pythons(count: int) -> None:
    for _ in range(count):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def start_and_close(mode: str) -> tuple[float, float]:
    """(seconds until the lab is usable, seconds to close it empty)."""
    start = time.perf_counter()
    with Lab(mode=mode) as lab:
        snap = lab.snapshot()
        ready = time.perf_counter() - start
        if len(snap) < 2 or lab.mode != mode:
            raise RuntimeError(f"a new {mode} lab should show its root and agent: {snap}")
        closing = time.perf_counter()
    return ready, time.perf_counter() - closing


def close_full(mode: str, lifetime: float) -> tuple[float, int]:
    with Lab(mode=mode, max_procs=SIZE + 98) as lab:
        size = build(lab, lifetime)
        closing = time.perf_counter()
    return time.perf_counter() - closing, size


def run(reps: int, heavy_reps: int, modes: list[str]) -> list[Row]:
    counts = sorted({INTERPRETERS.get(mode, 2) for mode in modes})
    python: dict[int, list[float]] = {count: [] for count in counts}
    ready: dict[str, list[float]] = {mode: [] for mode in modes}
    closed: dict[str, list[float]] = {mode: [] for mode in modes}
    for rep in range(reps + 1):  # round 0 warms the page cache and is not counted
        for count in counts:
            seconds = timed(lambda count=count: pythons(count))
            if rep:
                python[count].append(seconds)
        for mode in modes:
            ready_time, close_time = start_and_close(mode)
            if rep:
                ready[mode].append(ready_time)
                closed[mode].append(close_time)
    heavy = [(mode, kind, life) for mode in modes
             for kind, life in (("zombies", 0.0), ("sleeping", LONG_LIFE))]
    full: dict[tuple[str, str], list[float]] = {(mode, kind): [] for mode, kind, _ in heavy}
    sizes = {}
    floor: list[float] = []
    c_floor: list[float] = []
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        c_command = build_c_floor(tmp)
        for _ in range(heavy_reps):
            floor.append(close_floor())
            if c_command is not None:
                c_floor.append(close_floor(c_command))
            for mode, kind, lifetime in heavy:
                seconds, sizes[mode, kind] = close_full(mode, lifetime)
                full[mode, kind].append(seconds)

    rows = []
    for mode in modes:
        count = INTERPRETERS.get(mode, 2)
        start, base = median(ready[mode]), median(python[count])
        rows.append(Row("3 lifecycle", f"[{SHORT[mode]}] Lab() ready vs `python -c pass` x{count}",
                        ms(start), ms(base), start / base, "<= 300 ms", start <= 0.300,
                        spread(ready[mode], python[count])))
    for mode, kind, _ in heavy:
        seconds, empty = median(full[mode, kind]), median(closed[mode])
        runs = full[mode, kind]
        goal = CLOSE_GOAL[kind]
        rows.append(Row("3 lifecycle", f"[{SHORT[mode]}] close() of {sizes[mode, kind]:,} {kind} "
                        "vs of an empty lab", ms(seconds), ms(empty), seconds / empty,
                        f"<= {goal:g} s", seconds <= goal,
                        f"{heavy_reps} run(s); fastest {min(runs) * 1e3:.0f} ms, slowest "
                        f"{max(runs) * 1e3:.0f} ms"))
    for mode in modes:  # the same closes against the floor: how much of them the lab adds
        runs, base = full[mode, "sleeping"], median(floor)
        rows.append(Row("3 lifecycle", f"[{SHORT[mode]}] close() of {sizes[mode, 'sleeping']:,} "
                        f"sleeping vs the floor: killpg + reap of {FLOOR_CHILDREN:,} bare "
                        "`python -S` forks", ms(median(runs)), ms(base), median(runs) / base,
                        "", None, spread(runs, floor)))
    if c_floor:
        rows.append(Row("3 lifecycle", f"context: the floor in C (killpg + reap of "
                        f"{FLOOR_CHILDREN:,} forks of a C program) vs the floor in Python",
                        ms(median(c_floor)), ms(median(floor)), median(c_floor) / median(floor),
                        "", None, "the kernel's part alone: each child has a few pages"))
    return rows
