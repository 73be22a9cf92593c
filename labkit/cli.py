"""The command line: `python -m labkit doctor | zombies | orphans` (also installed as `labkit`).

For self-study without Jupyter, and for scripts (--json). The experiments are labkit's public
API; this module only parses, prints and explains. Bad input is refused here (exit status 2)
before any process exists, and every lab is closed by its with-block, on Ctrl-C as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import threading
import time

from labkit import limits
from labkit.errors import LabError
from labkit.i18n import N_, _, ljust
from labkit.parent import POLICIES

SAMPLE = 0.05          # seconds between samples of the lab's process table
AFTER = 1.0            # seconds we keep watching once every child has exited...
QUIET = 0.5            # ...and until the zombie count has stood still this long
SETTLE_LIMIT = 10.0    # seconds beyond the children's lifetime after which we stop watching
MAX_LIFETIME = 60.0    # the command watches the whole lifetime: keep it short
ROWS = 12              # rows of the timeline table

EXAMPLES = """\
examples:
  python -m labkit doctor                      what this machine allows
  python -m labkit zombies --children 30 --policy none
  python -m labkit zombies --children 30 --policy sigchld-once
  python -m labkit orphans --children 5 --mode subreaper
"""

POLICY_HELP = """\
policies (what the parent does about its exited children):
  none          never waits: every exited child stays a zombie
  wait          its main loop calls waitpid whenever a child exits
  sigchld       a SIGCHLD handler that loops waitpid(WNOHANG), as pause.c does
  sigchld-once  a handler that calls waitpid once per signal: signals coalesce, zombies remain
  ignore        SIGCHLD set to SIG_IGN: the kernel reaps, and no exit status is kept
"""


# --- arguments -----------------------------------------------------------------------------

def positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number: give a count of at least 1, such as 30") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small: give a count of at least 1")
    return value


def lifetime(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_LIFETIME:
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: give 0 to {MAX_LIFETIME:g} seconds")
    return value


def seconds(text: str) -> float:
    value = lifetime(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range: give more than 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m labkit", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Zombie Lab: real zombies, orphans and init processes, from a terminal.",
        epilog=EXAMPLES)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_doctor(commands)
    _add_zombies(commands)
    _add_orphans(commands)
    return parser


def _add_doctor(commands) -> None:
    sub = commands.add_parser(
        "doctor", help="what this machine allows: PID 1, subreaper, namespaces, PID limits",
        description="Try and measure what this machine allows the lab: who adopts orphans and "
                    "whether it reaps them, subreaper, user and PID namespaces, /proc mounts, "
                    "cgroup pids, RLIMIT_NPROC, the PID space.")
    sub.add_argument("--json", action="store_true", help="print the facts as one JSON object")
    sub.add_argument("--no-measure", action="store_true",
                     help="do not make the test orphan (where PID 1 does not reap, its zombie "
                          "stays until reboot; the result is cached per boot anyway)")
    sub.add_argument("--refresh", action="store_true",
                     help="measure again even if this boot's result is cached")
    sub.add_argument("--reap-timeout", type=seconds, default=5.0, metavar="S",
                     help="seconds the orphan's adopter gets to reap it (default 5)")
    sub.set_defaults(run=run_doctor, sub=sub)


def _add_zombies(commands) -> None:
    sub = commands.add_parser(
        "zombies", help="a parent forks N children and treats them by a policy: watch zombies",
        description="In a lab of its own, a parent forks N children that exit after LIFETIME\n"
                    "seconds; the parent treats them by POLICY. Shows the lab's process table\n"
                    "over time, then explains it.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=POLICY_HELP)
    sub.add_argument("--children", type=positive_count, required=True, metavar="N",
                     help="how many children to fork (at least 1; the machine sets the most)")
    sub.add_argument("--policy", choices=POLICIES, required=True,
                     help="what the parent does about exited children (see below)")
    sub.add_argument("--lifetime", type=lifetime, default=0.0, metavar="S",
                     help=f"seconds each child lives (0 to {MAX_LIFETIME:g}; default 0)")
    _add_mode(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.set_defaults(run=run_zombies, sub=sub)


def _add_orphans(commands) -> None:
    sub = commands.add_parser(
        "orphans", help="a parent exits before its children: who adopts and reaps them?",
        description="A parent forks N children that live LIFETIME seconds, then exits at once. "
                    "Shows the children's PPID before and after, and the lab root reaping them.")
    sub.add_argument("--children", type=positive_count, required=True, metavar="N",
                     help="how many children to fork (at least 1)")
    sub.add_argument("--lifetime", type=lifetime, default=0.5, metavar="S",
                     help=f"seconds each child lives (0 to {MAX_LIFETIME:g}; default 0.5)")
    _add_mode(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.set_defaults(run=run_orphans, sub=sub)


def _add_mode(sub) -> None:
    from labkit.lab import MODES

    sub.add_argument("--mode", choices=MODES, default="auto",
                     help="the lab's init: PID 1 of a PID namespace of its own, or a child "
                          "subreaper; auto (the default) takes the first the machine allows")


def check_room(args: argparse.Namespace) -> None:
    """Refuse more children than a lab may hold on this machine now (exit 2, nothing forked)."""
    ceiling, why = limits.ceiling()
    most = ceiling - limits.MIN_PROCS  # the lab's root, agent and parent count too
    if args.children > most:
        args.sub.error(f"argument --children: {args.children} is too large: at most {most} "
                       f"on this machine now ({limits.MIN_PROCS} fewer than a lab's cap of "
                       f"{ceiling}, for its root, agent and parent; the cap is {why})")


# --- running -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "children", None) is not None:
        check_room(args)
    with _terminate_as_exit():
        try:
            return args.run(args)
        except KeyboardInterrupt:
            print("labkit: interrupted; the lab was closed and its processes reaped",
                  file=sys.stderr)
            return 130
        except Terminated:
            print("labkit: terminated; the lab was closed and its processes reaped",
                  file=sys.stderr)
            return 128 + signal.SIGTERM
        except (ValueError, TypeError) as exc:  # labkit's own checks: nothing was forked
            print(f"labkit {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except (LabError, OSError) as exc:  # the kernel refused, or the lab broke
            print(f"labkit {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1


class Terminated(SystemExit):
    """SIGTERM arrived: raised in the main thread so that the with-blocks unwind."""


@contextlib.contextmanager
def _terminate_as_exit():
    """SIGTERM (kill, a CI timeout) unwinds the with-blocks as Ctrl-C does: the lab closes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signo, frame):
        raise Terminated(128 + signo)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_doctor(args: argparse.Namespace) -> int:
    from labkit.machine import doctor

    report = doctor(measure=not args.no_measure, refresh=args.refresh,
                    reap_timeout=args.reap_timeout)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0


def run_zombies(args: argparse.Namespace) -> int:
    from labkit.lab import Lab

    with Lab(mode=args.mode, max_procs=args.children + limits.MIN_PROCS) as lab:
        parent = lab.parent(args.policy)
        with lab.record(interval=SAMPLE) as recorder:
            pids = parent.fork(args.children, args.lifetime)
            settle(lab, args.lifetime)
        final = lab.snapshot().counts
        reaped = parent.reap()
        result = {"command": "zombies", "policy": args.policy, "children": args.children,
                  "lifetime": args.lifetime, **_lab_fields(lab), "parent_pid": parent.pid,
                  "pids": pids, "series": _series(recorder.series), "final": final,
                  "final_zombies": final.get("zombie", 0), "reaped": reaped}
    result["explanation"] = explain_zombies(result)
    print(json.dumps(result) if args.json else zombies_text(result, recorder.series))
    return 0


def settle(lab, life: float) -> None:
    """Watch until every child has exited and the zombie count has stood still for a while."""
    deadline = time.monotonic() + life + SETTLE_LIMIT
    exited_at = changed_at = None
    last = None
    while time.monotonic() < deadline:
        snap = lab.snapshot()
        states = [p.state for p in snap.procs if p.role == "child"]
        zombies = states.count("zombie")
        if zombies != last:
            last, changed_at = zombies, snap.time
        if exited_at is None and zombies == len(states):  # reaped ones are simply gone
            exited_at = snap.time
        if (exited_at is not None and snap.time - exited_at >= AFTER
                and snap.time - changed_at >= QUIET):
            return
        time.sleep(SAMPLE)


def run_orphans(args: argparse.Namespace) -> int:
    from labkit.lab import Lab

    with Lab(mode=args.mode, max_procs=args.children + limits.MIN_PROCS) as lab:
        parent = lab.parent("none")  # the policy does not matter: it exits before they do
        with lab.record(interval=SAMPLE) as recorder:
            pids = parent.fork(args.children, args.lifetime)
            before = _ppids(lab, pids)
            # exit() returns once the agent has reaped the parent; the kernel reparented its
            # children while the parent was exiting (exit_notify), so their PPIDs are final.
            parent.exit()
            after = _ppids(lab, pids)
            events = wait_reaped(lab, pids, args.lifetime + SETTLE_LIMIT)
        start = recorder.series.start
        orphans = [{"pid": pid, "ppid_before": before.get(pid), "ppid_after": after.get(pid),
                    "reaped_by_root": pid in events,
                    "status": events[pid].status if pid in events else None,
                    "reaped_at": round(events[pid].monotonic - start, 3) if pid in events
                    else None} for pid in pids]
        result = {"command": "orphans", "children": args.children, "lifetime": args.lifetime,
                  **_lab_fields(lab), "parent_pid": parent.pid, "orphans": orphans,
                  "series": _series(recorder.series)}
    print(json.dumps(result) if args.json else orphans_text(result, recorder.series))
    return 0


def _lab_fields(lab) -> dict:
    """What the output says about the lab itself: its root, and the mode it really runs in."""
    return {"root_pid": lab.root_pid, "mode": lab.mode, "mode_reason": lab.mode_reason}


def _ppids(lab, pids: list[int]) -> dict[int, int]:
    snap = lab.snapshot()
    return {p.pid: p.ppid for p in snap.procs if p.pid in set(pids)}


def wait_reaped(lab, pids: list[int], limit: float) -> dict:
    """The lab root's reap events for `pids`, waiting up to `limit` s for all of them."""
    deadline = time.monotonic() + limit
    while True:
        events = {e.pid: e for e in lab.events if e.pid in set(pids)}
        if len(events) == len(pids) or time.monotonic() > deadline:
            return events
        time.sleep(SAMPLE)


# --- printing ------------------------------------------------------------------------------

def _series(series) -> dict:
    return {"times": [round(t, 3) for t in series.times], "counts": series.counts,
            "total": series.total, "marks": [[round(t, 3), label] for t, label in series.marks]}


def timeline(series, rows: int = ROWS) -> str:
    """'What happened over time': lab processes by state, downsampled to about `rows` rows."""
    n = len(series.times)
    picks = sorted({round(i * (n - 1) / (rows - 1)) for i in range(rows)}) if n > rows else (
        range(n))
    zombie, running, sleeping = (series.state(s) for s in ("zombie", "running", "sleeping"))
    lines = [_("What happened over time (the lab's processes: root, agent, parent, children):"),
             _("  time (s)  zombie  sleeping/running  total")]
    for i in picks:
        lines.append(f"  {series.times[i]:8.2f}  {zombie[i]:6d}  {sleeping[i] + running[i]:16d}"
                     f"  {series.total[i]:5d}")
    if series.marks:
        said = "; ".join(_("{label} at {t:.2f} s").format(label=label, t=t)
                         for t, label in series.marks)
        lines.append(_("  actions: {said}").format(said=said))
    return "\n".join(lines)


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


# What each policy leaves, with {z} the zombies at the end ("sigchld-once" has its own sentence).
EXPLANATIONS = {
    "none": N_("{z} zombies: the parent never called wait(2), so the kernel keeps each exited "
               "child's PID and exit status in the process table for it. A zombie uses no memory "
               "or CPU, but it holds a PID. Zombies go when their parent reaps them, or when it "
               "exits: the lab's init then adopts and reaps them."),
    "wait": N_("{z} zombies: the parent's main loop calls waitpid(2) each time SIGCHLD wakes it, "
               "so a child is a zombie only between its exit and that call."),
    "sigchld": N_("{z} zombies: the parent's SIGCHLD handler loops waitpid(-1, WNOHANG) until "
                  "nothing is left, as pause.c does. The loop matters: standard signals do not "
                  "queue (signal(7)), so one SIGCHLD may stand for many exits."),
    "ignore": N_("{z} zombies: with SIGCHLD set to SIG_IGN the kernel reaps each child as it "
                 "exits and keeps no status (wait(2), NOTES): no zombies, but the parent can "
                 "never learn how a child ended."),
}


def explain_zombies(result: dict) -> str:
    z, n = result["final_zombies"], result["children"]
    policy = result["policy"]
    if policy == "sigchld-once":
        text = _("{z} zombies: the SIGCHLD handler calls waitpid once per signal, but the kernel "
                 "keeps at most one SIGCHLD pending, and more exits meanwhile add nothing "
                 "(signal(7)). {n} children exiting close together sent fewer signals than exits, "
                 "so some exits were never collected: the coalescing bug. The fix is to loop in "
                 "the handler (policy 'sigchld').").format(z=z, n=n)
        return text + (_(" This run was lucky: try more children.") if z == 0 else "")
    return _(EXPLANATIONS[policy]).format(z=z)


def root_is(mode: str) -> str:
    """What the lab root is in a lab of `mode` (lab.mode: what the lab really runs as)."""
    if mode == "pid-namespace":
        return _("PID 1 of the lab's own PID namespace; the PIDs shown are the host's")
    return _("a child subreaper")


def adoption_rule(mode: str) -> str:
    """Why the kernel gives a lab's orphans to its root, in a lab of `mode`.

    An orphan goes to the nearest living child-subreaper ancestor, else to PID 1 of its PID
    namespace (kernel/exit.c find_new_reaper; a subreaper outside the namespace never counts).
    """
    if mode == "pid-namespace":
        return _("the kernel gives an orphan to PID 1 of its PID namespace when no ancestor "
                 "inside it is a child subreaper (pid_namespaces(7)), and here that PID 1 is the "
                 "lab root, not the machine's init")
    return _("prctl(2) PR_SET_CHILD_SUBREAPER makes the kernel give orphans to the nearest "
             "subreaper ancestor instead of PID 1")


def zombies_text(result: dict, series) -> str:
    lines = [_("Lab root PID {root} (the Python pause, {root_is}); parent PID {parent} with "
               "policy {policy!r} forked {n} children (lifetime {life:g} s).").format(
                 root=result["root_pid"], root_is=root_is(result["mode"]),
                 parent=result["parent_pid"], policy=result["policy"], n=result["children"],
                 life=result["lifetime"]), "",
             timeline(series), "",
             _("At the end: {counts} ({total} lab processes).").format(
                 counts=_counts_text(result["final"]), total=sum(result["final"].values())),
             result["explanation"]]
    if result["final_zombies"]:
        lines.append(_("Then parent.reap() called waitpid for each: it collected {n} exit "
                       "statuses, and those zombies are gone.").format(n=result["reaped"]))
    return "\n".join(lines)


def orphans_text(result: dict, series) -> str:
    root, parent = result["root_pid"], result["parent_pid"]
    orphans = result["orphans"]
    lines = [_("Lab root PID {root}: the Python pause, this lab's init ({root_is}).").format(
                 root=root, root_is=root_is(result["mode"])),
             _("Parent PID {parent} forked {n} children (lifetime {life:g} s), then exited at "
               "once.").format(parent=parent, n=len(orphans), life=result["lifetime"]), "",
             _("  child   PPID before   PPID after the parent exited   reaped by the lab root")]
    for o in orphans:
        if o["ppid_after"] is None:
            after = _("(already gone)")
        elif o["ppid_after"] == root:
            after = _("{ppid} = the lab root").format(ppid=root)
        else:
            after = str(o["ppid_after"])
        reaped = (_("at {t:.2f} s, exit status {status}").format(t=o["reaped_at"],
                                                                  status=o["status"])
                  if o["reaped_by_root"] else _("no"))
        lines.append(f"  {o['pid']:<7} {str(o['ppid_before']):<13} {ljust(after, 30)} {reaped}")
    lines += ["", _adoption_text(result), "", timeline(series)]
    return "\n".join(lines)


def _adoption_text(result: dict) -> str:
    orphans, root = result["orphans"], result["root_pid"]
    seen = sum(o["ppid_after"] == root for o in orphans)
    early = sum(o["ppid_after"] is None and o["reaped_by_root"] for o in orphans)
    reaped = sum(o["reaped_by_root"] for o in orphans)
    text = _("{seen} of {n} were seen adopted by the lab's init, the Python pause, {root_is}: "
             "{rule}.").format(seen=seen, n=len(orphans), root_is=root_is(result["mode"]),
                               rule=adoption_rule(result["mode"]))
    if early:
        text += _(" {early} had exited before their parent did: their zombies were adopted too "
                  "and reaped at once (only a parent can reap, so the root's reap proves it)."
                  ).format(early=early)
    return text + _(" The lab root reaped {reaped} of {n} when they exited (its reap events, "
                    "from waitpid).").format(reaped=reaped, n=len(orphans))
