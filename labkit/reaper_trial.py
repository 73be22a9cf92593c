"""The reaper exercise's trial: a learner's SIGCHLD handler, run through a storm of exits.

    python -S -m labkit.reaper_trial CONFIG        (labkit.exercises.run_reaper starts it)

CONFIG is a JSON object: the handler's `source` and `name`, how many `children` exit at once,
how long they may take to `settle`, how long the one `sleeper` child may live, and the `tag`
that starts the report, the program's last line: tag + a JSON object (see main).

Standard library only and single-threaded: it forks a thousand children, and fork(2) copies
only the calling thread. It runs under labkit.pause --subreaper --drain, which reaps whatever
it leaves. The wait functions of `os` are wrapped to count the handler's waits and reaps.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable

stats: dict = {"calls": 0, "waits": 0, "blocking_waits": 0, "reaped": 0, "longest": 0.0,
               "errors": [], "error_count": 0, "phase": "storm"}
_real: dict[str, Callable] = {}
_handler: Callable | None = None


def _counted(name: str, real: Callable, blocking: Callable, reaped: Callable) -> Callable:
    def wrapper(*args):
        stats["waits"] += 1
        if blocking(args):
            stats["blocking_waits"] += 1
        result = real(*args)
        if reaped(args, result):
            stats["reaped"] += 1
        return result
    wrapper.__name__ = name
    return wrapper


def patch() -> None:
    """Wrap os.wait* to count calls, blocking calls (no WNOHANG) and children reaped."""
    def hangs(flags: int) -> bool:
        return not (flags & os.WNOHANG)
    plan = {
        "waitpid": (lambda a: hangs(a[1]), lambda a, r: r[0] > 0),
        "wait": (lambda a: True, lambda a, r: r[0] > 0),
        "wait3": (lambda a: hangs(a[0]), lambda a, r: r[0] > 0),
        "wait4": (lambda a: hangs(a[1]), lambda a, r: r[0] > 0),
        # waitid(2) with WNOWAIT leaves the child a zombie: only a report, no reap.
        "waitid": (lambda a: hangs(a[2]),
                   lambda a, r: r is not None and not (a[2] & getattr(os, "WNOWAIT", 0))),
    }
    for name, (blocking, reaped) in plan.items():
        if hasattr(os, name):
            _real[name] = getattr(os, name)
            setattr(os, name, _counted(name, _real[name], blocking, reaped))


def unpatch() -> None:
    for name, real in _real.items():
        setattr(os, name, real)


def state(pid: int) -> str | None:
    """'Z' (our zombie), 'live' (our child, running), or None (reaped: gone, or not ours)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # proc(5): the command name may hold spaces and parentheses; the fields follow the last ")".
    fields = data[data.rfind(b")") + 2:].split()
    if int(fields[1]) != os.getpid():
        return None
    return "Z" if fields[0] == b"Z" else "live"


def scan(pids: list[int]) -> tuple[int, list[int]]:
    states = [state(p) for p in pids]
    return states.count("live"), [p for p, s in zip(pids, states, strict=True) if s == "Z"]


def settle(pids: list[int], seconds: float) -> tuple[list[int], bool]:
    """Poll until none of pids is alive and two scans agree with no handler call between:
    every SIGCHLD has been handled (Python runs a handler between bytecodes, here during
    sleep) and what is left stays. (zombies, settled)"""
    end = time.monotonic() + seconds
    last = None
    while True:
        live, zombies = scan(pids)
        now = (live, len(zombies), stats["calls"])
        if live == 0 and now == last:
            return zombies, True
        if time.monotonic() > end:
            return zombies, False
        last = now
        time.sleep(0.01)


def on_sigchld(signum: int, frame: object) -> None:
    """The installed handler: calls the learner's, counting calls, errors and the longest."""
    stats["calls"] += 1
    start = time.monotonic()
    try:
        assert _handler is not None
        _handler(signum, frame)
    except BaseException as exc:
        stats["error_count"] += 1
        if len(stats["errors"]) < 3:
            stats["errors"].append([type(exc).__name__, str(exc), stats["phase"]])
    finally:
        stats["longest"] = max(stats["longest"], time.monotonic() - start)


def load(source: str, name: str) -> Callable:
    """The learner's handler, compiled in a namespace of its own with os, signal, time, sys."""
    namespace = {"__name__": "your_handler", "os": os, "signal": signal, "time": time, "sys": sys}
    exec(compile(source, "<your handler>", "exec"), namespace)
    return namespace[name]


def start_sleeper(seconds: float) -> tuple[int, int]:
    """One child that lives on, as a real program's children do, until the write end of its
    pipe is closed (or `seconds` pass): (its PID, the write end)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        try:
            waiting = select.poll()  # poll(2), not select(2): no FD_SETSIZE limit on r
            waiting.register(r, select.POLLIN)
            waiting.poll(seconds * 1000)
        finally:
            os._exit(0)
    os.close(r)
    return pid, w


def storm(children: int, out: dict) -> list[int]:
    """Fork `children` children that exit at once; a refused fork ends the storm early."""
    pids = []
    try:
        for _ in range(children):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            pids.append(pid)
    except OSError as exc:
        out["fork_error"] = [exc.errno, exc.strerror]
    return pids


def trial(config: dict) -> dict:
    """Install the handler, run the storm, then let the last child exit: the report."""
    global _handler
    out: dict = {"children": config["children"]}
    captured = io.StringIO()
    real_stdout, sys.stdout = sys.stdout, captured
    patch()
    try:
        _handler = load(config["source"], config["name"])
    except BaseException as exc:
        unpatch()
        sys.stdout = real_stdout
        out["setup_error"] = [type(exc).__name__, str(exc)]
        return out
    signal.signal(signal.SIGCHLD, on_sigchld)
    sleeper, w = start_sleeper(config["sleeper"])
    start = time.monotonic()
    pids = storm(config["children"], out)
    out["forked"] = len(pids)
    zombies, settled = settle(pids, config["settle"])
    out.update(storm_zombies=len(zombies), storm_settled=settled,
               storm_seconds=time.monotonic() - start, sleeper_alive=state(sleeper) == "live",
               storm_calls=stats["calls"], storm_waits=stats["waits"],
               storm_reaped=stats["reaped"])
    # The last child exits: the handler must cope with a process that has no children left.
    stats["phase"] = "last"
    os.close(w)
    zombies, settled = settle(pids + [sleeper], config["settle"])
    out.update(last_zombies=len(zombies), last_settled=settled, sleeper_zombie=sleeper in zombies)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    unpatch()
    sys.stdout = real_stdout
    out.update(stats)
    out["output"] = captured.getvalue()[:300]
    try:
        os.kill(sleeper, signal.SIGKILL)
    except OSError:
        pass
    return out


def reap_all() -> None:
    """Leave nothing behind: wait(2) until this process has no child left."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def main(argv: list[str] | None = None) -> None:
    config = json.loads((sys.argv[1:] if argv is None else argv)[0])
    out = trial(config)
    if "setup_error" in out:
        print(config["tag"] + json.dumps(out), flush=True)
        os._exit(0)
    reap_all()
    print(config["tag"] + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
