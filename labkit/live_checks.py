"""The exercise checks measured on real processes: a SIGCHLD reaper and a Popen loop.

    check_reaper(on_sigchld)           a SIGCHLD handler, run for real as the handler of a fresh
                                       program whose 1,000 children exit at once
    check_popen(run_true)              a function that runs `true` n times: how many of the
                                       commands it started are left as zombies of this process

Each returns a Result, the outcome of every exercise check (labkit.exercises): true when right,
and its str() says what was measured and, if wrong, a hint, never the right value.

The reaper's storm never forks this process (a notebook's kernel is threaded; fork(2) copies one
thread of it): the handler runs in a fresh `python -S` program (labkit.reaper_trial, standard
library only) started under labkit.pause --subreaper --drain, which reaps whatever it leaves.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from labkit import checks, limits, procfs, programs
from labkit.i18n import _, language
from labkit.verdict import Verdict

STORM = 1000             # children in the reaper's storm
HANDLER_NAME = "on_sigchld"
SETTLE_SECONDS = 5.0     # how long the storm's children may take to exit and be reaped
# The one child that lives on: at most this long. It must outlive the storm (forking it, then
# up to SETTLE_SECONDS of settling) on a loaded machine, or it looks killed; it is ended at once
# (its pipe closed) when the storm is over, so only a handler that blocks waits this long.
SLEEPER_SECONDS = 2 * SETTLE_SECONDS
BLOCKED_SECONDS = 0.5    # a handler call longer than this stalled the program
REAPER_TIMEOUT = 30.0
RESULT_TAG = "REAPER-RESULT "


@dataclass
class Result(Verdict):
    """The outcome of a check: `problems` (empty when right), and what was measured."""

    exercise: str
    problems: list[str]
    measured: str = ""
    facts: dict = field(default_factory=dict)
    # The language its problems were written in: str() says the verdict in the same one.
    lang: str = field(default_factory=language, repr=False, compare=False)

    def _text(self) -> str:
        # Whole lines, not fragments: a translation may order the title, verdict and measure.
        if self.measured:
            head = (_("{exercise}: correct ({measured})") if self.correct else
                    _("{exercise}: not yet ({measured})"))
        else:
            head = _("{exercise}: correct") if self.correct else _("{exercise}: not yet")
        head = head.format(exercise=self.exercise, measured=self.measured)
        return head + "".join(f"\n- {p}" for p in self.problems)

    def __repr__(self) -> str:
        return str(self)


# --- 1. a SIGCHLD reaper -------------------------------------------------------------------

def handler_source(handler: Callable | str, name: str = HANDLER_NAME) -> tuple[str, str]:
    """(source, function name) of a handler given as a function, as the source of a `def`, or
    as the body of one (which becomes `def on_sigchld(signum, frame):`). SyntaxError or
    ValueError if it is none of these."""
    if callable(handler):
        fname = getattr(handler, "__name__", "")
        if fname == "<lambda>" or not fname.isidentifier():
            raise ValueError(_("give the handler as a function made with def (not a lambda), "
                               "or as its source text"))
        try:
            text = textwrap.dedent(inspect.getsource(handler))
        except (OSError, TypeError):
            raise ValueError(_("the source of {name} cannot be found (was it defined in this "
                               "notebook or a file?); pass its source as a string instead")
                             .format(name=fname)) from None
        return text, fname
    if not isinstance(handler, str):
        raise TypeError(_("a handler is a function or its source text, not {handler!r}")
                        .format(handler=handler))
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
    raise ValueError(_("the source defines {n} functions and none is called {name}: say which "
                       "is the handler by naming it so").format(n=len(defs), name=name))


def _storm_size(children: int) -> tuple[int, str]:
    """The storm's size: `children`, unless this machine lets a lab have fewer now."""
    ceiling, why = limits.ceiling()
    if children <= ceiling:
        return children, ""
    return ceiling, _(" (not {children:,}: {why})").format(children=children, why=why)


def run_reaper(source: str, name: str, children: int = STORM,
               timeout: float = REAPER_TIMEOUT) -> dict:
    """Run labkit.reaper_trial with the handler `name` of `source`: its report (a dict)."""
    config = {"source": source, "name": name, "children": children, "tag": RESULT_TAG,
              "settle": SETTLE_SECONDS, "sleeper": SLEEPER_SECONDS}
    command = [*programs.keeper(os.getpid()), "--",
               *programs.module("reaper_trial", json.dumps(config), bare=True)]
    # The pause reaps whatever the program orphans; SIGTERM makes it kill and reap them all.
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=programs.environment(),
                            start_new_session=True)
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
    return _("your handler ran {calls:,} times and called wait {waits:,} times, reaping "
             "{reaped:,}").format(calls=report["storm_calls"], waits=report["storm_waits"],
                                  reaped=report["storm_reaped"])


def diagnose_reaper(report: dict) -> list[str]:
    """What is wrong with a handler, from labkit.reaper_trial's report (empty: nothing)."""
    if "timeout" in report:
        return [_("the check's program did not finish within {timeout:g} s: does your handler "
                  "loop forever? A loop must end when waitpid returns (0, 0) (children left, "
                  "none exited) or raises ChildProcessError (no children left)")
                .format(timeout=report["timeout"])]
    if "crashed" in report:
        return [_("the check's program ended with status {status} before it could report: "
                  "{stderr}").format(status=report["crashed"],
                                     stderr=report["stderr"] or _("(it said nothing)"))]
    if "setup_error" in report:
        kind, text = report["setup_error"]
        return [_("your handler could not be defined: {kind}: {text}").format(kind=kind,
                                                                              text=text)]
    problems = []
    n = report["forked"]
    blocked = report["longest"]
    if report["blocking_waits"] and blocked > BLOCKED_SECONDS:
        problems.append(_(
            "your handler blocked for {blocked:.1f} s: it waits without os.WNOHANG (or calls "
            "os.wait()), so once every exited child is reaped it waits for one that is still "
            "running (one child of the check lives on, as a real program's children do). While "
            "a handler runs, the whole program stands still. Pass os.WNOHANG: waitpid then "
            "returns (0, 0) at once when no exited child is left (waitpid(2))")
            .format(blocked=blocked))
    elif report["blocking_waits"]:
        problems.append(_(
            "your handler made {waits:,} blocking waits (waitpid without os.WNOHANG, or "
            "os.wait()): here each found a zombie at once, but with no exited child left it "
            "would wait for a running one and stop the whole program. Pass os.WNOHANG "
            "(waitpid(2))").format(waits=report["blocking_waits"]))
    zombies = report["storm_zombies"]
    if zombies:
        said = dict(zombies=zombies, n=n)
        if report["storm_calls"] == 0:
            problems.append(_("{zombies:,} of the {n:,} children remain zombies after the "
                              "storm: your handler never ran").format(**said))
        elif report["storm_waits"] == 0:
            problems.append(_("{zombies:,} of the {n:,} children remain zombies after the "
                              "storm: your handler never calls os.waitpid (or os.wait): "
                              "nothing reaps them. Call waitpid(-1, os.WNOHANG) in a loop")
                            .format(**said))
        elif report["storm_waits"] <= report["storm_calls"]:
            problems.append(_(
                "{zombies:,} of the {n:,} children remain zombies after the storm: {calls}. It "
                "calls waitpid once per signal, but signals coalesce: while one SIGCHLD is "
                "pending, more children's exits add nothing, so one call of the handler may "
                "stand for many dead children (signal(7)). Loop: call waitpid(-1, os.WNOHANG) "
                "until it returns (0, 0)").format(calls=_call_words(report), **said))
        else:
            problems.append(_(
                "{zombies:,} of the {n:,} children remain zombies after the storm: {calls}. It "
                "stops before every exited child is reaped: loop until waitpid(-1, os.WNOHANG) "
                "returns (0, 0), which means no exited child is left")
                .format(calls=_call_words(report), **said))
    elif not report["storm_settled"]:
        problems.append(_("the {n:,} children had not all exited and been reaped within "
                          "{settle:g} s: is your handler very slow?")
                        .format(n=n, settle=SETTLE_SECONDS))
    if not report["sleeper_alive"] and not blocked > BLOCKED_SECONDS:
        problems.append(_("the child that should have lived on was gone before its time: does "
                          "your handler kill children? A reaper only collects the ones that "
                          "exit"))
    if not zombies and report["last_zombies"]:
        problems.append(_("the last child stayed a zombie when it exited: your handler stopped "
                          "reaping after the storm"))
    problems += _raised(report)
    return problems


def _raised(report: dict) -> list[str]:
    """What the handler raised, each different error once."""
    problems = []
    seen = []
    for error in report["errors"]:
        if error in seen:
            continue
        seen.append(error)
        kind, text, phase = error
        when = (_("when the last child was reaped and the process had no children left")
                if phase == "last" else _("during the storm"))
        if kind == "ChildProcessError":
            problems.append(_(
                "your handler raised ChildProcessError ({text}) {when}: waitpid(-1, ...) fails "
                "with ECHILD when there are no children at all (waitpid(2)). Catch "
                "ChildProcessError and return. In a real program the exception would surface "
                "wherever the main program happened to be, and end it")
                .format(text=text, when=when))
        elif kind == "NotImplementedError":
            problems.append(_("your handler raised NotImplementedError: write its body (replace "
                              "`raise NotImplementedError()`)"))
        elif kind == "TypeError" and "positional argument" in text:
            problems.append(_("your handler raised TypeError: {text}: a signal handler is called "
                              "with two arguments, the signal number and the current stack "
                              "frame").format(text=text))
        else:
            problems.append(_("your handler raised {kind}: {text} ({when})")
                            .format(kind=kind, text=text, when=when))
    if report["error_count"] > len(report["errors"]):
        problems.append(_("(in all, {count:,} calls of your handler raised)")
                        .format(count=report["error_count"]))
    return problems


def check_reaper(handler: Callable | str, children: int = STORM,
                 timeout: float = REAPER_TIMEOUT) -> Result:
    """Run `handler` (a function, or its source, or the body of one) for real as the SIGCHLD
    handler of a fresh program that forks `children` children which exit at once, and one that
    lives on; then that last one exits too. Right when no zombie remains, no call blocks, and
    nothing raises."""
    children = checks.count(children, "children", low=1, high=100_000)
    timeout = checks.seconds(timeout, "timeout", low=1.0, high=600.0)
    title = _("SIGCHLD reaper")
    try:
        source, name = handler_source(handler)
    except SyntaxError as exc:
        return Result(title, [_("your handler does not compile: line {line}: {error}")
                              .format(line=exc.lineno, error=exc.msg)])
    except ValueError as exc:
        return Result(title, [str(exc)])
    n, fewer = _storm_size(children)
    report = run_reaper(source, name, n, timeout)
    problems = diagnose_reaper(report)
    measured = ""
    if "forked" in report:
        measured = _("{forked:,} children exited at once{fewer}; {zombies:,} zombies remained; "
                     "meanwhile the handler ran {calls:,} times and called wait {waits:,} times"
                     ).format(forked=report["forked"], fewer=fewer,
                              zombies=report["storm_zombies"], calls=report["storm_calls"],
                              waits=report["storm_waits"])
        if "fork_error" in report:
            measured = _("{measured}; fork was refused after {forked:,} ({error})").format(
                measured=measured, forked=report["forked"], error=report["fork_error"][1])
    return Result(title, problems, measured, report)


# --- 2. a Popen loop that leaks ------------------------------------------------------------

MARKER = "ran"


def _children_of(pid: int) -> dict[int, str]:
    """The children of `pid` now, with their state letters (proc(5), /proc/PID/stat)."""
    states = {child: procfs.state(child) for child in procfs.children(pid)}
    return {child: letter for child, letter in states.items() if letter is not None}


def _fake_true(directory: str) -> str:
    """A `true` that writes its PID to a file before it exits 0, so the check knows which
    commands ran (exec keeps the PID the Popen saw)."""
    path = os.path.join(directory, "true")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\necho $$ >> "{os.path.join(directory, MARKER)}"\nexit 0\n')
    os.chmod(path, 0o755)
    return path


def _pids_list(pids: list[int], most: int = 5) -> str:
    shown = ", ".join(map(str, sorted(pids)[:most])) + (", ..." if len(pids) > most else "")
    return _("PIDs {pids}").format(pids=shown)


def check_popen(run_true: Callable[[int], object], n: int = 50,
                timeout: float = 10.0) -> Result:
    """Call run_true(n), which should run `true` n times and return how many exited 0; then
    count the commands it left as zombies of this process. The check finds `true` on PATH as a
    script of its own that notes each run, and reaps the zombies it finds afterwards."""
    n = checks.count(n, "n", low=1, high=500)
    title = _("Popen loop")
    if not callable(run_true):
        return Result(title, [_("give the function itself (run_true), not {given!r}")
                              .format(given=run_true)])
    me = os.getpid()
    before = set(_children_of(me))
    directory = tempfile.mkdtemp(prefix="labkit-exercise-")
    problems: list[str] = []
    new: dict[int, str] = {}
    returned = None
    raised = False
    old_path = os.environ.get("PATH", os.defpath)
    try:
        _fake_true(directory)
        os.environ["PATH"] = directory + os.pathsep + old_path
        try:
            returned = run_true(n)
        except Exception as exc:  # the learner's bug, reported like the rest
            returned = None
            raised = True
            problems.append(_("your function raised {kind}: {error}").format(
                kind=type(exc).__name__, error=exc) if str(exc) else
                _("your function raised {kind}").format(kind=type(exc).__name__))
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
        problems.append(_("none of your commands ran `true`: start them with "
                          "subprocess.Popen([\"true\"]) (found on PATH)"))
    elif len(ran) != n:
        problems.append(_("you ran `true` {ran} times, not {n}").format(ran=len(ran), n=n))
    if zombies:
        problems.append(_zombie_words(zombies, len(ran), raised))
    if others:
        problems.append(_("{count} other children of this process are zombies ({pids}): "
                          "commands other than `true`, left unwaited")
                        .format(count=len(others), pids=_pids_list(others)))
    if not raised:
        if returned is None:
            problems.append(_("your function returned None: return how many of the commands "
                              "exited with status 0 ({ran} did)").format(ran=len(ran)))
        elif returned != len(ran) and ran:
            problems.append(_("your function returned {returned!r}, but all {ran} `true` "
                              "commands exited with status 0: a command's status is known only "
                              "once it has been waited for (poll() returns None while it runs)")
                            .format(returned=returned, ran=len(ran)))
    # Leave this process as we found it: reap what the function leaked (a Popen that is waited
    # for later finds its child gone, ECHILD, and takes status 0).
    for pid in zombies + others:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    measured = (_("`true` ran {ran} times; {zombies} was left as a zombie of this process, "
                  "now reaped by the check") if len(zombies) == 1 else
                _("`true` ran {ran} times; {zombies} were left as zombies of this process, now "
                  "reaped by the check") if zombies else
                _("`true` ran {ran} times; no zombie was left"))
    measured = measured.format(ran=len(ran), zombies=len(zombies))
    return Result(title, problems, measured,
                  {"ran": len(ran), "zombies": zombies, "returned": returned})


def _zombie_words(zombies: list[int], ran: int, raised: bool) -> str:
    """What the leaked zombies say about the learner's code (whole sentences, for translators)."""
    said = dict(count=len(zombies), ran=ran, pids=_pids_list(zombies))
    text = (_("{count} of the {ran} `true` commands you started is a zombie of this process "
              "({pids}): each exited, and nothing waited for it. A Popen's child stays a zombie "
              "until the Popen is waited for: p.wait() (or p.communicate(), or p.poll() once it "
              "has exited) calls waitpid(2). Wait for each before you return, or use "
              "subprocess.run, which waits") if len(zombies) == 1 else
            _("{count} of the {ran} `true` commands you started are zombies of this process "
              "({pids}): each exited, and nothing waited for it. A Popen's child stays a zombie "
              "until the Popen is waited for: p.wait() (or p.communicate(), or p.poll() once it "
              "has exited) calls waitpid(2). Wait for each before you return, or use "
              "subprocess.run, which waits")).format(**said)
    waited = ran - len(zombies)
    if waited and not raised:
        text = _("{text}. {waited} were reaped, so your code waits for some but not all: poll() "
                 "reaps only a command that has already exited, and returns None for one still "
                 "running").format(text=text, waited=waited)
    return text


def zombie_children() -> list[int]:
    """PIDs of this process's children that are zombies now."""
    return sorted(p for p, s in _children_of(os.getpid()).items() if s == "Z")
