"""What the benchmarks share: timing, medians, result rows, fresh interpreters, leak checks.

Every benchmark compares the lab with a baseline measured in the same run, interleaved with it
(A, B, A, B, ...) so that the machine's noise hits both alike, and reports medians and their ratio.
Absolute times are printed for context; nothing asserts them.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from labkit import linux


def lab_modes() -> list[str]:
    """The lab modes this machine allows: "subreaper" everywhere, "pid-namespace" where the
    kernel lets us create one (what Lab(mode="auto") picks then)."""
    from labkit import Lab

    modes = ["subreaper"]
    try:
        with Lab(mode="pid-namespace") as lab:
            if lab.mode == "pid-namespace":
                modes.append("pid-namespace")
    except Exception:  # refused here: the table says which modes were measured
        pass
    return modes


SHORT = {"subreaper": "subreaper", "pid-namespace": "pid-ns"}


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> float:
    """Seconds that fn() took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_seconds(code: str) -> float:
    """Run `code` in a fresh interpreter (this one's executable); it prints one float: seconds."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, stdin=subprocess.DEVNULL, env=env)
    return float(out.stdout.split()[-1])


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


@dataclass
class Row:
    """One line of the results table.

    `ratio` is lab / baseline for times (lower is better) unless `higher_is_better`, in which
    case it is baseline / lab ("x faster"). `goal` is a bound on the ratio (or on `value` when
    `absolute`), `met` whether it held in this run; None means "for context, no goal".
    """

    group: str
    name: str
    value: str            # the lab's median, formatted
    baseline: str         # the baseline's median, formatted ("" when none)
    ratio: float | None
    goal: str = ""
    met: bool | None = None
    note: str = ""        # spread, sizes, anything that helps to read the ratio

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        met = {True: "yes", False: "NO", None: ""}[self.met]
        return [self.group, self.name, self.value, self.baseline, ratio, self.goal, met, self.note]


HEADER = ["Goal", "Measurement", "Lab (median)", "Baseline (median)", "Ratio", "Goal", "Met",
          "Notes"]


def spread(top: list[float], bottom: list[float]) -> str:
    """How much to trust a ratio of medians (top / bottom): the range of the per-run ratios, and
    the ratio of the fastest runs (the least disturbed by the machine's other work)."""
    pairs = [a / b for a, b in zip(top, bottom, strict=True)]
    return (f"runs {min(pairs):.2f}-{max(pairs):.2f}x, fastest runs "
            f"{min(top) / min(bottom):.2f}x")


# --- leaving nothing behind -------------------------------------------------------------------

def zombies_on_machine() -> int:
    """Zombies on the whole machine, as `ps -eo stat | grep -c '^Z'` counts them."""
    out = subprocess.run(["ps", "-eo", "stat="], capture_output=True, text=True, check=True)
    return sum(1 for line in out.stdout.split() if line.startswith("Z"))


def zombies_settled(before: int, timeout: float = 3.0) -> int:
    """The machine's zombie count once it is back to `before`, or after `timeout` s: PID 1 reaps
    adopted orphans only every ~2 s here, and other users' zombies come and go."""
    deadline = time.monotonic() + timeout
    while True:
        count = zombies_on_machine()
        if count <= before or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def become_subreaper() -> None:
    """Whatever a benchmark orphans is adopted by this process, not by the machine's PID 1."""
    try:
        linux.set_child_subreaper()
    except OSError:
        pass


def reap_adopted() -> int:
    count = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return count
        if pid == 0:
            return count
        count += 1


def leftovers(timeout: float = 5.0) -> list[str]:
    """Our descendants still alive or unreaped after `timeout` s (reaping what we adopted)."""
    deadline = time.monotonic() + timeout
    while True:
        reap_adopted()
        try:
            left = psutil.Process().children(recursive=True)
        except psutil.Error:
            left = []
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    described = []
    for proc in left:
        try:
            described.append(f"{proc.pid} {proc.name()} ({proc.status()})")
        except psutil.Error:
            pass
    return described
