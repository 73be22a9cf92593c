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
"""

from __future__ import annotations

import subprocess
import sys
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
    for _ in range(heavy_reps):
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
    return rows
