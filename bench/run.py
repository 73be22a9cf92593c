"""Run every benchmark of the lab and print one table of ratios against same-run baselines.

    make bench                                  (under the lab's pause init, in .venv)
    .venv/bin/python bench/run.py [--reps N] [--heavy-reps N] [--only fork,snapshot,lifecycle]
                                  [--modes auto|subreaper[,pid-namespace]] [--markdown FILE]

Each measurement is repeated (`--reps`, after one uncounted warm-up round) and interleaved with
its baseline; the table shows medians and their ratio, the goal beside it and whether this run
met it. Nothing asserts an absolute time: the exit status is 0 unless a benchmark failed or left
a process behind. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(HERE) not in sys.path:  # labkit, when it is not installed (PYTHONPATH=.)
    sys.path.insert(1, os.path.dirname(HERE))

BENCHMARKS = ("fork", "snapshot", "observe", "lifecycle", "visual", "inits")


def machine() -> str:
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = f.read().strip()
    return (f"{datetime.date.today().isoformat()}; {os.cpu_count()} cores; Linux "
            f"{platform.release()}; Python {platform.python_version()}; psutil "
            f"{psutil.__version__}; pid_max {pid_max}; load average {load} at start")


def text_table(header: list[str], rows: list) -> str:
    cells = [header] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row.cells()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=9,
                        help="repetitions of each light measurement (default 9)")
    parser.add_argument("--heavy-reps", type=int, default=4,
                        help="repetitions of closing a 5,000-process lab (default 4)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--modes", default="auto",
                        help="lab modes to measure: subreaper,pid-namespace or auto (default: "
                             "subreaper, and pid-namespace where this machine allows it)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown or args.reps < 1 or args.heavy_reps < 1:
        parser.error(f"unknown benchmark {unknown}" if unknown else "repetitions must be >= 1")

    import _common as common

    common.become_subreaper()
    if args.modes == "auto":
        modes = common.lab_modes()
    else:
        modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
        if "subreaper" not in modes or not set(modes) <= set(common.SHORT):
            parser.error("--modes must include subreaper; known: subreaper,pid-namespace")
    about = f"{machine()}; lab modes {', '.join(modes)}"
    print(f"Zombie Lab benchmarks: {about}", flush=True)
    zombies_before = common.zombies_on_machine()
    started = time.monotonic()
    rows: list = []
    failed = []
    for name in chosen:
        began = time.monotonic()
        try:
            if name == "fork":
                import bench_fork
                rows += bench_fork.run(args.reps, modes)
            elif name == "snapshot":
                import bench_snapshot
                rows += bench_snapshot.run(args.reps, modes)
            elif name == "observe":
                import bench_observe
                rows += bench_observe.run(args.reps, modes)
            elif name == "visual":
                import bench_visual
                rows += bench_visual.run(args.reps, modes)
            elif name == "inits":  # the pause init beside its peers (10 s idle window)
                import bench_inits
                rows += bench_inits.run(args.reps)
            else:
                import bench_lifecycle
                rows += bench_lifecycle.run(args.reps, args.heavy_reps, modes)
        except Exception as exc:  # e.g. too few free PIDs for a 5,000-process lab right now
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"  {name}: FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        print(f"  {name}: {time.monotonic() - began:.1f} s", flush=True)
    elapsed = time.monotonic() - started

    common.reap_adopted()
    left = common.leftovers()
    zombies_after = common.zombies_settled(zombies_before)
    print()
    print(text_table(common.HEADER, rows))
    print()
    print(f"{len(chosen)} benchmarks in {elapsed:.0f} s; {args.reps} runs each (+1 warm-up), "
          f"medians. Zombies on the machine (ps -eo stat): {zombies_before} before, "
          f"{zombies_after} after; processes of ours left: {len(left)}")
    if zombies_after > zombies_before and not left:
        print("  (more zombies than before, none of them ours: another user's, or processes "
              "the machine's PID 1 has not reaped yet)")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Run of {about}; {args.reps} runs each (+1 warm-up), medians; "
                    f"{elapsed:.0f} s in all.\n\n{markdown_table(common.HEADER, rows)}\n")
        print(f"Markdown table written to {args.markdown}")
    if left:
        print(f"LEFT BEHIND: {left[:10]}", file=sys.stderr)
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if left or failed else 0


if __name__ == "__main__":
    sys.exit(main())
