"""Issue 11's goals: watching a lab costs what the lab costs, not what the machine holds.

Machine: a snapshot of a 10-process lab on a machine with 5,000 unrelated processes (started
here, in their own process group, and removed here) vs the same snapshot without them. Goal:
<= 1.5x. For context, the same with the former reader of every process (observe.ProcReader).

Recording: this process's CPU time per wall second while a recorder samples a lab at 10 Hz and
the main thread sleeps, vs the same window without a recorder. Idle: a 2,000-process lab (1,000
zombies, 1,000 sleeping children), goal <= 2% of a core. Burst: a 1,000-child fork burst in the
window (the same burst in the baseline), goal <= 8% of a core.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from _common import SHORT, Row, median, ms, reap_adopted, spread, timed

from labkit import Lab
from labkit.observe import ProcReader, take_snapshot

UNRELATED = 5000
WINDOW = 3.0  # seconds of recording per run
SPAWNER = """\
import os, signal, sys
n = int(sys.argv[1])
for _ in range(n - 1):
    if os.fork() == 0:
        signal.pause()
        os._exit(0)
print("ready", flush=True)
signal.pause()
"""


class Crowd:
    """`n` sleeping processes that belong to no lab, in a process group of their own."""

    def __init__(self, n: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SPAWNER, str(n)],
                                     stdout=subprocess.PIPE, start_new_session=True)
        if self.proc.stdout.readline() != b"ready\n":
            self.close()
            raise RuntimeError("the unrelated processes could not be started")

    def close(self) -> None:
        """Kill the group; its orphans come to this process (a subreaper), which reaps them."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        deadline = time.monotonic() + 30
        while _group_alive(self.proc.pid) and time.monotonic() < deadline:
            reap_adopted()
            time.sleep(0.02)
        reap_adopted()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def snapshot_times(lab: Lab, reps: int) -> list[float]:
    lab.snapshot()
    return [timed(lab.snapshot) for _ in range(reps)]


def full_scan_times(lab: Lab, reps: int) -> list[float]:
    reader = ProcReader()
    try:
        roles = {lab.root_pid: "root"}
        take_snapshot(lab.root_pid, roles, (), reader)
        return [timed(lambda: take_snapshot(lab.root_pid, roles, (), reader))
                for _ in range(reps)]
    finally:
        reader.close()


def machine_rows(reps: int, mode: str) -> list[Row]:
    with Lab(mode=mode) as lab:
        lab.parent("none").fork(7)
        lab.wait_for(lambda s: len(s) == 10)
        reps = max(reps, 20)
        quiet, quiet_old = snapshot_times(lab, reps), full_scan_times(lab, reps)
        crowd = Crowd(UNRELATED)
        try:
            crowded, crowded_old = snapshot_times(lab, reps), full_scan_times(lab, reps)
        finally:
            crowd.close()
    tag = SHORT[mode]
    ratio = median(crowded) / median(quiet)
    return [
        Row("11 machine", f"[{tag}] snapshot of a 10-process lab, {UNRELATED:,} unrelated "
            "processes vs none", ms(median(crowded)), ms(median(quiet)), ratio, "<= 1.5x",
            ratio <= 1.5, spread(crowded, quiet)),
        Row("11 machine", f"context [{tag}]: the same with a reader of every process "
            "(observe.ProcReader)", ms(median(crowded_old)), ms(median(quiet_old)),
            median(crowded_old) / median(quiet_old), "", None, "what a snapshot cost before"),
    ]


def recorder_cpu(mode: str, record: bool, burst: bool) -> float:
    """CPU seconds this process spent per wall second of a WINDOW, recording or not."""
    with Lab(mode=mode, max_procs=3100) as lab:
        parent = lab.parent("none")
        parent.fork(1000)
        parent.fork(1000, lifetime=120)
        lab.wait_for(lambda s: len(s.zombies) == 1000, timeout=30)
        burster = lab.parent("none")
        recorder = lab.record(interval=0.1) if record else None
        if recorder is not None:
            recorder.start()
        cpu, wall = time.process_time(), time.monotonic()
        if burst:
            burster.fork(1000)
        time.sleep(max(0.0, WINDOW - (time.monotonic() - wall)))
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        if recorder is not None:
            recorder.stop()
    return cpu / wall


def record_rows(reps: int, mode: str) -> list[Row]:
    runs = max(2, reps // 3)
    rows = []
    for burst, goal in ((False, 0.02), (True, 0.08)):
        busy, idle = [], []
        for _ in range(runs):
            busy.append(recorder_cpu(mode, True, burst))
            idle.append(recorder_cpu(mode, False, burst))
        share = median(busy) - median(idle)
        what = "during a 1,000-child fork burst" if burst else "idle"
        rows.append(Row("11 record", f"[{SHORT[mode]}] recording a 2,000-process lab at 10 Hz, "
                        f"{what}: CPU share of one core vs not recording", f"{median(busy):.1%}",
                        f"{median(idle):.1%}", None, f"<= {goal:.0%} of a core", share <= goal,
                        f"{runs} runs of {WINDOW:g} s; recorder's own share {share:.1%}"))
    return rows


def run(reps: int, modes: list[str]) -> list[Row]:
    rows: list[Row] = []
    for mode in modes:
        rows += machine_rows(reps, mode)
    for mode in modes:
        rows += record_rows(reps, mode)
    return rows
