"""Checks for the course's exercises (notebooks/08-exercises.ipynb) that say precisely what is
wrong, measured on real processes.

    check_reaper(on_sigchld)   a SIGCHLD handler, run for real as the handler of a fresh program
                               whose 1,000 children exit at once: how many zombies remain, why
    check_popen(run_true)      a function that runs `true` n times: how many of the commands it
                               started are left as zombies of this process
    check_ps(answers)          questions on PS_LISTING, a recorded `ps` listing of a pod

Tree predictions are checked by labkit.actions.check and check_actions. Every check returns a
Result: true when right, and its str() says what was measured and, if wrong, what to change.

The reaper's storm never forks this process (a notebook's kernel is threaded; fork(2) copies one
thread of it): the handler runs in a fresh `python -S` program (REAPER_PROGRAM, standard library
only) started under labkit.pause --subreaper --drain, which reaps whatever that program leaves.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from labkit import checks, limits

STORM = 1000             # children in the reaper's storm
HANDLER_NAME = "on_sigchld"
SETTLE_SECONDS = 5.0     # how long the storm's children may take to exit and be reaped
SLEEPER_SECONDS = 3.0    # the one child that lives on: at most this long
BLOCKED_SECONDS = 0.5    # a handler call longer than this stalled the program
REAPER_TIMEOUT = 30.0
RESULT_TAG = "REAPER-RESULT "
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Result:
    """The outcome of a check: `problems` (empty when right), and what was measured."""

    exercise: str
    problems: list[str]
    measured: str = ""
    facts: dict = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        head = f"{self.exercise}: " + ("correct" if self.correct else "not yet")
        if self.measured:
            head += f" ({self.measured})"
        return head + "".join(f"\n- {p}" for p in self.problems)

    def __repr__(self) -> str:
        return str(self)


# --- 1. a SIGCHLD reaper -------------------------------------------------------------------

# The program that runs the learner's handler: python -S -c REAPER_PROGRAM CONFIG. Standard
# library only, single-threaded (it forks). Its last line is RESULT_TAG + a JSON object.
REAPER_PROGRAM = r'''
import io, json, os, select, signal, sys, time

CONFIG = json.loads(sys.argv[1])
ME = os.getpid()
stats = {"calls": 0, "waits": 0, "blocking_waits": 0, "reaped": 0, "longest": 0.0,
         "errors": [], "error_count": 0, "phase": "storm"}

def counted(name, real, blocking, reaped):
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

REAL = {}
def patch():
    nohang = lambda flags: not (flags & os.WNOHANG)
    plan = {
        "waitpid": (lambda a: nohang(a[1]), lambda a, r: r[0] > 0),
        "wait": (lambda a: True, lambda a, r: r[0] > 0),
        "wait3": (lambda a: nohang(a[0]), lambda a, r: r[0] > 0),
        "wait4": (lambda a: nohang(a[1]), lambda a, r: r[0] > 0),
        "waitid": (lambda a: nohang(a[2]),
                   lambda a, r: r is not None and not (a[2] & getattr(os, "WNOWAIT", 0))),
    }
    for name, (blocking, reaped) in plan.items():
        if hasattr(os, name):
            REAL[name] = getattr(os, name)
            setattr(os, name, counted(name, REAL[name], blocking, reaped))

def unpatch():
    for name, real in REAL.items():
        setattr(os, name, real)

def state(pid):
    """'Z' (our zombie), 'live' (our child, running), or None (reaped: gone, or not ours)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if int(fields[1]) != ME:
        return None
    return "Z" if fields[0] == b"Z" else "live"

def scan(pids):
    states = [state(p) for p in pids]
    return states.count("live"), [p for p, s in zip(pids, states) if s == "Z"]

def settle(pids, seconds):
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

def on_sigchld(signum, frame):
    stats["calls"] += 1
    start = time.monotonic()
    try:
        handler(signum, frame)
    except BaseException as exc:
        stats["error_count"] += 1
        if len(stats["errors"]) < 3:
            stats["errors"].append([type(exc).__name__, str(exc), stats["phase"]])
    finally:
        stats["longest"] = max(stats["longest"], time.monotonic() - start)

out = {"children": CONFIG["children"]}
captured = io.StringIO()
real_stdout, sys.stdout = sys.stdout, captured
patch()
namespace = {"__name__": "your_handler", "os": os, "signal": signal, "time": time, "sys": sys}
try:
    exec(compile(CONFIG["source"], "<your handler>", "exec"), namespace)
    handler = namespace[CONFIG["name"]]
except BaseException as exc:
    unpatch()
    sys.stdout = real_stdout
    out["setup_error"] = [type(exc).__name__, str(exc)]
    print(CONFIG["tag"] + json.dumps(out), flush=True)
    os._exit(0)
signal.signal(signal.SIGCHLD, on_sigchld)

# One child lives on, as a real program's children do, until we close its pipe.
r, w = os.pipe()
sleeper = os.fork()
if sleeper == 0:
    os.close(w)
    try:
        waiting = select.poll()  # poll(2), not select(2): no FD_SETSIZE limit on r
        waiting.register(r, select.POLLIN)
        waiting.poll(CONFIG["sleeper"] * 1000)
    finally:
        os._exit(0)
os.close(r)

pids = []
start = time.monotonic()
try:
    for _ in range(CONFIG["children"]):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
except OSError as exc:
    out["fork_error"] = [exc.errno, exc.strerror]
out["forked"] = len(pids)
zombies, settled = settle(pids, CONFIG["settle"])
out.update(storm_zombies=len(zombies), storm_settled=settled,
           storm_seconds=time.monotonic() - start, sleeper_alive=state(sleeper) == "live",
           storm_calls=stats["calls"], storm_waits=stats["waits"], storm_reaped=stats["reaped"])

# The last child exits: the handler must cope with a process that has no children left.
stats["phase"] = "last"
os.close(w)
zombies, settled = settle(pids + [sleeper], CONFIG["settle"])
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
while True:  # leave nothing behind
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
print(CONFIG["tag"] + json.dumps(out), flush=True)
'''


def handler_source(handler: Callable | str, name: str = HANDLER_NAME) -> tuple[str, str]:
    """(source, function name) of a handler given as a function, as the source of a `def`, or
    as the body of one (which becomes `def on_sigchld(signum, frame):`). SyntaxError or
    ValueError if it is none of these."""
    if callable(handler):
        fname = getattr(handler, "__name__", "")
        if fname == "<lambda>" or not fname.isidentifier():
            raise ValueError("give the handler as a function made with def (not a lambda), or "
                             "as its source text")
        try:
            text = textwrap.dedent(inspect.getsource(handler))
        except (OSError, TypeError):
            raise ValueError(f"the source of {fname} cannot be found (was it defined in this "
                             "notebook or a file?); pass its source as a string instead") from None
        return text, fname
    if not isinstance(handler, str):
        raise TypeError(f"a handler is a function or its source text, not {handler!r}")
    text = textwrap.dedent(handler).strip("\n") + "\n"
    tree = ast.parse(text, "<your handler>")
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not defs:  # a body: make it the handler's
        text = f"def {name}(signum, frame):\n" + textwrap.indent(text, "    ")
        ast.parse(text, "<your handler>")
        return text, name
    named = [d for d in defs if d.name == name]
    if named or len(defs) == 1:
        return text, (named or defs)[0].name
    raise ValueError(f"the source defines {len(defs)} functions and none is called {name}: "
                     "say which is the handler by naming it so")


def _storm_size(children: int) -> tuple[int, str]:
    """The storm's size: `children`, unless this machine lets a lab have fewer now."""
    ceiling, why = limits.ceiling()
    if children <= ceiling:
        return children, ""
    return ceiling, f" (not {children:,}: {why})"


def run_reaper(source: str, name: str, children: int = STORM,
               timeout: float = REAPER_TIMEOUT) -> dict:
    """Run REAPER_PROGRAM with the handler `name` of `source`: its report (a dict)."""
    config = {"source": source, "name": name, "children": children, "tag": RESULT_TAG,
              "settle": SETTLE_SECONDS, "sleeper": SLEEPER_SECONDS}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_DIR, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "labkit.pause", "--subreaper", "--drain", "--owner",
               str(os.getpid()), "--", sys.executable, "-S", "-c", REAPER_PROGRAM,
               json.dumps(config)]
    # The pause reaps whatever the program orphans; SIGTERM makes it kill and reap them all.
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return {"timeout": timeout}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in out.splitlines() if line.startswith(RESULT_TAG)]
    if not lines:
        return {"crashed": proc.returncode,
                "stderr": "\n".join(line for line in err.splitlines()
                                    if "pause should be the first" not in line)[-600:]}
    return json.loads(lines[-1][len(RESULT_TAG):])


def _call_words(report: dict) -> str:
    return (f"your handler ran {report['storm_calls']:,} times and called wait "
            f"{report['storm_waits']:,} times, reaping {report['storm_reaped']:,}")


def diagnose_reaper(report: dict) -> list[str]:
    """What is wrong with a handler, from REAPER_PROGRAM's report (empty: nothing)."""
    if "timeout" in report:
        return [f"the check's program did not finish within {report['timeout']:g} s: does your "
                "handler loop forever? A loop must end when waitpid returns (0, 0) (children "
                "left, none exited) or raises ChildProcessError (no children left)"]
    if "crashed" in report:
        return [f"the check's program ended with status {report['crashed']} before it could "
                f"report: {report['stderr'] or '(it said nothing)'}"]
    if "setup_error" in report:
        kind, text = report["setup_error"]
        return [f"your handler could not be defined: {kind}: {text}"]
    problems = []
    n = report["forked"]
    blocked = report["longest"]
    if report["blocking_waits"] and blocked > BLOCKED_SECONDS:
        problems.append(
            f"your handler blocked for {blocked:.1f} s: it waits without os.WNOHANG (or calls "
            "os.wait()), so once every exited child is reaped it waits for one that is still "
            "running (one child of the check lives on, as a real program's children do). While "
            "a handler runs, the whole program stands still. Pass os.WNOHANG: waitpid then "
            "returns (0, 0) at once when no exited child is left (waitpid(2))")
    elif report["blocking_waits"]:
        problems.append(
            f"your handler made {report['blocking_waits']:,} blocking waits (waitpid without "
            "os.WNOHANG, or os.wait()): here each found a zombie at once, but with no exited "
            "child left it would wait for a running one and stop the whole program. Pass "
            "os.WNOHANG (waitpid(2))")
    zombies = report["storm_zombies"]
    if zombies:
        said = f"{zombies:,} of the {n:,} children remain zombies after the storm"
        if report["storm_calls"] == 0:
            problems.append(f"{said}: your handler never ran")
        elif report["storm_waits"] == 0:
            problems.append(f"{said}: your handler never calls os.waitpid (or os.wait): nothing "
                            "reaps them. Call waitpid(-1, os.WNOHANG) in a loop")
        elif report["storm_waits"] <= report["storm_calls"]:
            problems.append(
                f"{said}: {_call_words(report)}. It calls waitpid once per signal, but signals "
                "coalesce: while one SIGCHLD is pending, more children's exits add nothing, so "
                "one call of the handler may stand for many dead children (signal(7)). Loop: "
                "call waitpid(-1, os.WNOHANG) until it returns (0, 0)")
        else:
            problems.append(
                f"{said}: {_call_words(report)}. It stops before every exited child is reaped: "
                "loop until waitpid(-1, os.WNOHANG) returns (0, 0), which means no exited child "
                "is left")
    elif not report["storm_settled"]:
        problems.append(f"the {n:,} children had not all exited and been reaped within "
                        f"{SETTLE_SECONDS:g} s: is your handler very slow?")
    if not report["sleeper_alive"] and not blocked > BLOCKED_SECONDS:
        problems.append("the child that should have lived on was gone before its time: does "
                        "your handler kill children? A reaper only collects the ones that exit")
    if not zombies and report["last_zombies"]:
        problems.append("the last child stayed a zombie when it exited: your handler stopped "
                        "reaping after the storm")
    seen = []
    for error in report["errors"]:
        if error in seen:
            continue
        seen.append(error)
        kind, text, phase = error
        when = ("when the last child was reaped and the process had no children left"
                if phase == "last" else "during the storm")
        if kind == "ChildProcessError":
            problems.append(
                f"your handler raised ChildProcessError ({text}) {when}: waitpid(-1, ...) fails "
                "with ECHILD when there are no children at all (waitpid(2)). Catch "
                "ChildProcessError and return. In a real program the exception would surface "
                "wherever the main program happened to be, and end it")
        elif kind == "NotImplementedError":
            problems.append("your handler raised NotImplementedError: write its body (replace "
                            "`raise NotImplementedError()`)")
        elif kind == "TypeError" and "positional argument" in text:
            problems.append(f"your handler raised TypeError: {text}: a signal handler is called "
                            "with two arguments, the signal number and the current stack frame")
        else:
            problems.append(f"your handler raised {kind}: {text} ({when})")
    if report["error_count"] > len(report["errors"]):
        problems.append(f"(in all, {report['error_count']:,} calls of your handler raised)")
    return problems


def check_reaper(handler: Callable | str, children: int = STORM,
                 timeout: float = REAPER_TIMEOUT) -> Result:
    """Run `handler` (a function, or its source, or the body of one) for real as the SIGCHLD
    handler of a fresh program that forks `children` children which exit at once, and one that
    lives on; then that last one exits too. Right when no zombie remains, no call blocks, and
    nothing raises."""
    children = checks.count(children, "children", low=1, high=100_000)
    timeout = checks.seconds(timeout, "timeout", low=1.0, high=600.0)
    title = "SIGCHLD reaper"
    try:
        source, name = handler_source(handler)
    except SyntaxError as exc:
        return Result(title, [f"your handler does not compile: line {exc.lineno}: {exc.msg}"])
    except ValueError as exc:
        return Result(title, [str(exc)])
    n, fewer = _storm_size(children)
    report = run_reaper(source, name, n, timeout)
    problems = diagnose_reaper(report)
    measured = ""
    if "forked" in report:
        measured = (f"{report['forked']:,} children exited at once{fewer}; "
                    f"{report['storm_zombies']:,} zombies remained; meanwhile the handler ran "
                    f"{report['storm_calls']:,} times and called wait {report['storm_waits']:,} "
                    "times")
        if "fork_error" in report:
            measured += f"; fork was refused after {report['forked']:,} ({report['fork_error'][1]})"
    return Result(title, problems, measured, report)


# --- 2. a Popen loop that leaks ------------------------------------------------------------

MARKER = "ran"


def _children_of(pid: int) -> dict[int, str]:
    """The children of `pid` now, with their state letters (proc(5), /proc/PID/stat)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        if int(fields[1]) == pid:
            found[int(name)] = fields[0].decode()
    return found


def _fake_true(directory: str) -> str:
    """A `true` that writes its PID to a file before it exits 0, so the check knows which
    commands ran (exec keeps the PID the Popen saw)."""
    path = os.path.join(directory, "true")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\necho $$ >> "{os.path.join(directory, MARKER)}"\nexit 0\n')
    os.chmod(path, 0o755)
    return path


def _pids_list(pids: list[int], most: int = 5) -> str:
    shown = ", ".join(map(str, sorted(pids)[:most]))
    return f"PIDs {shown}" + (", ..." if len(pids) > most else "")


def check_popen(run_true: Callable[[int], object], n: int = 50,
                timeout: float = 10.0) -> Result:
    """Call run_true(n), which should run `true` n times and return how many exited 0; then
    count the commands it left as zombies of this process. The check finds `true` on PATH as a
    script of its own that notes each run, and reaps the zombies it finds afterwards."""
    n = checks.count(n, "n", low=1, high=500)
    title = "Popen loop"
    if not callable(run_true):
        return Result(title, [f"give the function itself (run_true), not {run_true!r}"])
    me = os.getpid()
    before = set(_children_of(me))
    directory = tempfile.mkdtemp(prefix="labkit-exercise-")
    problems: list[str] = []
    new: dict[int, str] = {}
    returned = None
    old_path = os.environ.get("PATH", os.defpath)
    try:
        _fake_true(directory)
        os.environ["PATH"] = directory + os.pathsep + old_path
        try:
            returned = run_true(n)
        except Exception as exc:  # the learner's bug, reported like the rest
            returned = None
            problems.append(f"your function raised {type(exc).__name__}: {exc}"
                            if str(exc) else f"your function raised {type(exc).__name__}")
        finally:
            os.environ["PATH"] = old_path
        # The commands it started exit on their own time: wait (with a deadline) until none of
        # this process's new children is still running, then look.
        deadline = time.monotonic() + timeout
        while True:
            new = {p: s for p, s in _children_of(me).items() if p not in before}
            if all(s == "Z" for s in new.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        try:
            with open(os.path.join(directory, MARKER)) as f:
                ran = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            ran = []
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    zombies = sorted(p for p, s in new.items() if s == "Z" and p in ran)
    others = sorted(p for p, s in new.items() if s == "Z" and p not in ran)
    if not ran:
        problems.append("none of your commands ran `true`: start them with "
                        "subprocess.Popen([\"true\"]) (found on PATH)")
    elif len(ran) != n:
        problems.append(f"you ran `true` {len(ran)} times, not {n}")
    raised = any(p.startswith("your function raised") for p in problems)
    if zombies:
        waited = len(ran) - len(zombies)
        are = "is a zombie" if len(zombies) == 1 else "are zombies"
        text = (f"{len(zombies)} of the {len(ran)} `true` commands you started {are} of "
                f"this process ({_pids_list(zombies)}): each exited, and nothing waited for it. "
                "A Popen's child stays a zombie until the Popen is waited for: p.wait() (or "
                "p.communicate(), or p.poll() once it has exited) calls waitpid(2). Wait for "
                "each before you return, or use subprocess.run, which waits")
        if waited and not raised:
            text += (f". {waited} were reaped, so your code waits for some but not all: "
                     "poll() reaps only a command that has already exited, and returns None for "
                     "one still running")
        problems.append(text)
    if others:
        problems.append(f"{len(others)} other children of this process are zombies "
                        f"({_pids_list(others)}): commands other than `true`, left unwaited")
    if not raised:
        if returned is None:
            problems.append(f"your function returned None: return how many of the commands "
                            f"exited with status 0 ({len(ran)} did)")
        elif returned != len(ran) and ran:
            problems.append(f"your function returned {returned!r}, but all {len(ran)} `true` "
                            f"commands exited with status 0: a command's status is known only "
                            "once it has been waited for (poll() returns None while it runs)")
    # Leave this process as we found it: reap what the function leaked (a Popen that is waited
    # for later finds its child gone, ECHILD, and takes status 0).
    for pid in zombies + others:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    were = "was" if len(zombies) == 1 else "were"
    measured = (f"`true` ran {len(ran)} times; {len(zombies)} {were} left as zombies of this "
                f"process, now reaped by the check" if zombies else
                f"`true` ran {len(ran)} times; no zombie was left")
    return Result(title, problems, measured,
                  {"ran": len(ran), "zombies": zombies, "returned": returned})


def zombie_children() -> list[int]:
    """PIDs of this process's children that are zombies now."""
    return sorted(p for p, s in _children_of(os.getpid()).items() if s == "Z")


# --- 4. a ps listing ---------------------------------------------------------------------

PS_LISTING = """\
$ ps -o pid,ppid,stat,args       (run inside the pod's PID namespace)
    PID    PPID STAT COMMAND
      1       0 Ss   /pause
      7       1 Ssl  node server.js
     31       7 Z    [convert] <defunct>
     32       7 Z    [convert] <defunct>
     33       7 Z    [convert] <defunct>
     40       7 S    convert photo.jpg small.jpg
     52       1 S    sh -c backup.sh
     53      52 R    tar czf /backup/site.tgz /var/www"""

PS_QUESTIONS = {
    "zombies": "How many zombies does the listing show?",
    "must_wait": "Which PID must call wait() for those zombies to go away?",
    "pids_held": "How many PIDs does the pod hold right now?",
    "adopter": "If node (PID 7) exits now, which PID becomes the parent of PID 40?",
    "after_exit": ("And the zombies 31-33 then? (a) they stay zombies for ever, (b) pause "
                   "adopts them and reaps them, (c) they are reaped by node's parent's parent"),
    "kill9": ("What does `kill -9 31` do? (a) removes the zombie, (b) nothing: 31 has already "
              "exited; only a wait by its parent removes it, (c) kills its parent, node"),
    "states": "What do the STAT letters Z, S and R mean? A dict: {'Z': ..., 'S': ..., 'R': ...}",
}

_STATE_WORDS = {"Z": ("zombie", "defunct"), "S": ("sleeping", "sleep", "interruptible"),
                "R": ("running", "runnable", "run")}


def _number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _choice(value: object) -> str | None:
    if isinstance(value, str) and value.strip().strip("()").lower() in ("a", "b", "c"):
        return value.strip().strip("()").lower()
    return None


def check_ps(answers: Mapping[str, object]) -> Result:
    """Check answers to PS_QUESTIONS about PS_LISTING, each with the reason when wrong."""
    title = "ps listing"
    if not isinstance(answers, Mapping):
        return Result(title, [f"answers is a dict like {{'zombies': 2, ...}}, not {answers!r}"])
    problems = []
    unknown = sorted(set(answers) - set(PS_QUESTIONS))
    if unknown:
        problems.append(f"unknown question names {unknown}: the questions are "
                        f"{sorted(PS_QUESTIONS)}")

    def number(key: str, right: int, why: str) -> None:
        if key not in answers or answers[key] is Ellipsis:
            problems.append(f"{key}: not answered yet ({PS_QUESTIONS[key]})")
            return
        got = _number(answers[key])
        if got is None:
            problems.append(f"{key}: answer with a number, not {answers[key]!r}")
        elif got != right:
            problems.append(f"{key}: not {got}. {why}")

    def choice(key: str, right: str, why: str) -> None:
        if key not in answers or answers[key] is Ellipsis:
            problems.append(f"{key}: not answered yet ({PS_QUESTIONS[key]})")
            return
        got = _choice(answers[key])
        if got is None:
            problems.append(f"{key}: answer 'a', 'b' or 'c', not {answers[key]!r}")
        elif got != right:
            problems.append(f"{key}: not ({got}). {why}")

    number("zombies", 3, "Count the lines whose STAT begins with Z (and whose command ends in "
                         "<defunct>): PIDs 31, 32 and 33. PID 40 is a convert still running "
                         "(S: sleeping)")
    number("must_wait", 7, "Only a zombie's parent can reap it, and the PPID column names the "
                           "parent: 7 (node). wait(2)")
    number("pids_held", 8, "Every line holds a PID, zombies included: that is why zombies hurt "
                           "(they hold PIDs until reaped). 8 lines, 8 PIDs")
    number("adopter", 1, "An orphan is adopted by the nearest subreaper or by PID 1 of its PID "
                         "namespace (prctl(2), pid_namespaces(7)); in the pod that is pause, "
                         "PID 1, never the orphan's grandparent")
    choice("after_exit", "b", "When node exits its zombies are orphans too: pause (PID 1) "
                              "adopts them and, as pause.c's sigreap does, reaps them at once")
    choice("kill9", "b", "A zombie has already exited: there is nothing left to kill, and a "
                         "signal to it changes nothing. Only its parent's wait removes it "
                         "(or the parent's exit, after which init reaps it)")
    if "states" not in answers or answers["states"] is Ellipsis:
        problems.append(f"states: not answered yet ({PS_QUESTIONS['states']})")
    elif not isinstance(answers["states"], Mapping):
        problems.append(f"states: a dict like {{'Z': 'zombie', ...}}, not {answers['states']!r}")
    else:
        for letter, words in _STATE_WORDS.items():
            said = answers["states"].get(letter)
            if not isinstance(said, str) or not any(w in said.lower() for w in words):
                problems.append(f"states: {letter} is {words[0]!r}, not {said!r} (proc(5), "
                                "/proc/PID/stat field 3; ps(1) PROCESS STATE CODES)")
    right = len(PS_QUESTIONS) - len({p.split(":")[0] for p in problems})
    return Result(title, problems, f"{right} of {len(PS_QUESTIONS)} answers right")
