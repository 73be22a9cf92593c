"""Issue 4's goals: redrawing the growth plot, and what recording a lab costs.

Redraw: `plot.growth` of a recording of a 5,000-process lab (600 samples, one minute at 10 Hz),
rendered to PNG (what a notebook output or the dashboard's image needs), against the floor of
matplotlib itself: a bare Figure with the same total as one line, rendered the same way.
Goal: <= 100 ms.

Dashboard refresh: one `Dashboard.refresh()` that redraws (snapshot, labels, plot to PNG) of a
1,000-zombie lab, this process's CPU time, against the bare one-line Figure rendered to PNG in
the same run. (It was a test's bound once; a CPU figure is a measurement, not a behaviour.)

Recorder: a 2,000-process lab (1,000 zombies, 1,000 sleeping children) recorded at 10 Hz for a
few seconds while this process's main thread sleeps; the process's CPU time over that window is
the recorder's. Baseline: the same window without a recorder. Goal: <= 10% of one core.
"""

from __future__ import annotations

import io
import time

from _common import SHORT, Row, median, ms, spread, timed
from matplotlib.figure import Figure

from labkit import Lab, plot
from labkit.observe import Series

SAMPLES = 600
WINDOW = 3.0  # seconds of recording per run


def recording_of_a_big_lab() -> Series:
    """A minute at 10 Hz of a lab that grows to 5,000 zombies and is reaped (made, not recorded:
    the redraw's cost depends on the samples, not on how they were taken)."""
    series = Series()
    series.start = 0.0
    for i in range(SAMPLES):
        zombies = min(5000, i * 25) if i < 400 else max(0, 5000 - (i - 400) * 50)
        series.times.append(i / 10)
        series.counts.setdefault("zombie", []).append(zombies)
        series.counts.setdefault("sleeping", []).append(3)
        series.total.append(zombies + 3)
        series.pids_in_use.append(zombies + 120)
    series.marks = [(1.0, "parent 1234 (none)"), (1.1, "fork 5000"), (40.0, "reap 5000")]
    return series


def draw_growth(series: Series) -> None:
    """What a notebook or the dashboard pays for a picture: the figure, rendered to PNG."""
    plot.growth(series).savefig(io.BytesIO(), format="png")


def draw_floor(series: Series) -> None:
    fig = Figure(figsize=plot.FIGSIZE, dpi=plot.DPI)
    fig.add_subplot().plot(series.times, series.total)
    fig.savefig(io.BytesIO(), format="png")


def refresh_cpu(reps: int) -> list[float]:
    """CPU seconds of each of `reps` dashboard refreshes that redraw, in a 1,000-zombie lab."""
    from labkit.widgets import Dashboard  # ipywidgets only for this row

    with Lab(max_procs=1010) as lab:
        dash = Dashboard(lab, children=1000)
        try:
            dash.fork_button.click()
            lab.wait_for(lambda s: len(s.zombies) == 1000, timeout=30)
            dash.idle_redraw = 0.0  # draw on every refresh, as while the lab changes
            dash.refresh()  # warm-up
            costs = []
            for _ in range(reps):
                started = time.process_time()
                dash.refresh()
                costs.append(time.process_time() - started)
        finally:
            dash.close()
    return costs


def cpu_of(fn) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def recorder_cpu(mode: str, record: bool) -> float:
    """CPU seconds this process spent per wall second while its main thread slept."""
    with Lab(mode=mode, max_procs=2100) as lab:
        parent = lab.parent("none")
        parent.fork(1000)
        parent.fork(1000, lifetime=120)
        lab.wait_for(lambda s: len(s.zombies) == 1000, timeout=30)
        recorder = lab.record(interval=0.1) if record else None
        if recorder is not None:
            recorder.start()
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(WINDOW)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        if recorder is not None:
            recorder.stop()
    return cpu / wall


def run(reps: int, modes: list[str]) -> list[Row]:
    series = recording_of_a_big_lab()
    draw_growth(series)  # warm-up: fonts, caches
    growth, floor = [], []
    for _ in range(reps):
        growth.append(timed(lambda: draw_growth(series)))
        floor.append(timed(lambda: draw_floor(series)))
    rows = [Row("4 redraw", f"plot.growth, {SAMPLES} samples of a 5,000-process lab, to PNG, "
                "vs a bare one-line Figure", ms(median(growth)), ms(median(floor)),
                median(growth) / median(floor), "<= 100 ms", median(growth) <= 0.100,
                spread(growth, floor))]
    refresh = refresh_cpu(reps)
    bare = [cpu_of(lambda: draw_floor(series)) for _ in range(reps)]
    rows.append(Row("4 refresh", "dashboard refresh that redraws, 1,000-process lab (CPU) vs a "
                    "bare one-line Figure to PNG", ms(median(refresh)), ms(median(bare)),
                    median(refresh) / median(bare), "<= 40 ms", median(refresh) <= 0.040,
                    f"{reps} refreshes; fastest {ms(min(refresh))}"))
    runs = max(2, reps // 3)
    for mode in modes:
        busy = [recorder_cpu(mode, True) for _ in range(runs)]
        idle = [recorder_cpu(mode, False) for _ in range(runs)]
        share = median(busy) - median(idle)
        rows.append(Row("4 record", f"[{SHORT[mode]}] recording a 2,000-process lab at 10 Hz: "
                        "CPU share of one core vs not recording", f"{median(busy):.1%}",
                        f"{median(idle):.1%}", None, "<= 10% of a core", share <= 0.10,
                        f"{runs} runs of {WINDOW:g} s; recorder's own share {share:.1%}"))
    return rows
