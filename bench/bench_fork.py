"""Goals 1 and 4: forking through the lab against a bare os.fork loop in a fresh interpreter.

Lab: `Parent.fork(1000, lifetime=0)` timed from the caller, the whole request: kernel -> agent ->
lab parent (which forks) -> reply with 1,000 PIDs. In a subreaper lab, parents with policy "none"
(children stay zombies, as in the bare loop; the parent reaps them between runs) and "ignore" (the
kernel reaps); in a PID-namespace lab too where the machine allows one (policy "none").

Baseline: `python -c` running the loop below, timing only the loop (the children are reaped
after the clock stops, so none is left to the machine's PID 1). For context, the same loop in C,
compiled with cc into a temporary directory, when a C compiler is there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time

from _common import SHORT, Row, median, ms, python_seconds, spread, timed

from labkit import Lab

N = 1000
# Goal 1's bound on lab / bare loop; issue 11's for a PID-namespace lab, whose parent learns its
# children's host PIDs from its children file (labkit.parent) rather than from each child.
GOAL = {"subreaper": 1.20, "pid-namespace": 1.15}

BARE_LOOP = f"""
import os, time
pids = []
start = time.perf_counter()
for _ in range({N}):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    pids.append(pid)
elapsed = time.perf_counter() - start
for pid in pids:
    os.waitpid(pid, 0)
print(elapsed)
"""

# The same loop in an interpreter that has first imported what the lab's agent imports (the lab
# parent is a fork of the agent): how much of the lab's ratio is the heavier interpreter's.
AGENT_LOOP = "import labkit.agent\n" + BARE_LOOP

C_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000, made = 0;
    pid_t *pids = malloc(sizeof *pids * n);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid < 0) break;
        pids[made++] = pid;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (int i = 0; i < made; i++) waitpid(pids[i], NULL, 0);
    printf("%.9f\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return made == n ? 0 : 1;
}
"""


def build_c_loop(directory: str) -> str | None:
    """The C fork loop compiled into `directory`; None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    source = os.path.join(directory, "forkloop.c")
    binary = os.path.join(directory, "forkloop")
    with open(source, "w") as f:
        f.write(C_LOOP)
    done = subprocess.run([cc, "-O2", "-o", binary, source], capture_output=True)
    return binary if done.returncode == 0 else None


def c_seconds(binary: str) -> float:
    out = subprocess.run([binary, str(N)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def settle(lab: Lab, parents, base: int, timeout: float = 10.0) -> None:
    """Reap between runs: wait until the lab is back to its root, agent and parents."""
    deadline = time.monotonic() + timeout
    while True:
        for parent in parents:
            if parent.policy == "none":
                parent.reap()
        if len(lab.snapshot()) <= base or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def run(reps: int, modes: list[str]) -> list[Row]:
    tmp = tempfile.mkdtemp(prefix="labkit-bench-")
    # What is timed each round, interleaved: (mode, policy) through a lab, and the baselines.
    cases = [("subreaper", "none"), ("subreaper", "ignore")]
    cases += [(mode, "none") for mode in modes if mode != "subreaper"]
    times: dict[object, list[float]] = {key: [] for key in [*cases, "bare", "agent", "c"]}
    try:
        binary = build_c_loop(tmp)
        with contextlib.ExitStack() as stack:
            labs = {mode: stack.enter_context(Lab(mode=mode, max_procs=N + 200))
                    for mode in {mode for mode, _ in cases}}
            parents = {(mode, policy): labs[mode].parent(policy) for mode, policy in cases}
            bases = {mode: len(lab.snapshot()) for mode, lab in labs.items()}

            def lab_fork(mode: str, policy: str) -> float:
                parent = parents[mode, policy]
                holder: list[int] = []
                seconds = timed(lambda: holder.extend(parent.fork(N, lifetime=0.0)))
                if len(holder) != N:
                    raise RuntimeError(f"fork({N}) returned {len(holder)} PIDs")
                settle(labs[mode], [p for (m, _), p in parents.items() if m == mode],
                       bases[mode])
                return seconds

            for rep in range(reps + 1):  # the first round warms caches and is not counted
                sample: dict[object, float] = {"bare": python_seconds(BARE_LOOP)}
                for mode, policy in cases:
                    sample[mode, policy] = lab_fork(mode, policy)
                sample["agent"] = python_seconds(AGENT_LOOP)
                if binary:
                    sample["c"] = c_seconds(binary)
                if rep:
                    for key, value in sample.items():
                        times[key].append(value)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    bare = median(times["bare"])
    rows = []
    for mode, policy in cases:
        lab_time = median(times[mode, policy])
        ratio = lab_time / bare
        goal = GOAL[mode]
        rows.append(Row("1 fork", f"[{SHORT[mode]}] Parent.fork({N}), policy {policy!r}, vs "
                        "bare loop", ms(lab_time), ms(bare), ratio, f"<= {goal:.2f}x",
                        ratio <= goal, spread(times[mode, policy], times["bare"])))
    agent = median(times["agent"])
    rows.append(Row("1 fork", "context: bare loop after `import labkit.agent` vs bare loop",
                    ms(agent), ms(bare), agent / bare,
                    note="the lab parent's interpreter, without the lab"))
    c_note = ""
    if times["c"]:
        c_time = median(times["c"])
        rows.append(Row("1 fork", f"context: C fork loop ({N}) vs the Python bare loop",
                        ms(c_time), ms(bare), c_time / bare, note="C / Python"))
        c_note = f"; C loop {N / c_time:,.0f}/s"
    lab_rate = N / median(times["subreaper", "none"])
    bare_rate = N / bare
    others = "; ".join(f"{SHORT[mode]} {policy!r} {N / median(times[mode, policy]):,.0f}/s"
                       for mode, policy in cases[1:])
    rows.append(Row("4 rate", "children/s: lab (subreaper, 'none') vs bare loop",
                    f"{lab_rate:,.0f}/s", f"{bare_rate:,.0f}/s", lab_rate / bare_rate,
                    note=f"lab / bare; {others}{c_note}"))
    return rows
