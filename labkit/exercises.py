"""Checks for the course's exercises (notebooks/08-exercises.ipynb) that say what is wrong and
point to the rule to apply, never to the right value.

    check_ps(answers), check_ps_rules(answers)   a `ps` listing of a pod (ps_exercise())
    check_pod(answers)                 pods, PID 1 and PID budgets (pod_exercise())
    check_tree(prediction)             the final tree of a script (tree_script()), run for real
    check_reaper(on_sigchld)           a SIGCHLD handler, run for real as the handler of a fresh
                                       program whose 1,000 children exit at once
    check_popen(run_true)              a function that runs `true` n times: how many of the
                                       commands it started are left as zombies of this process

Per-student variants: the listing, the budget, the scripts and the order of the choices come
from seed_for(exercise, login()), so neighbours get different values; under nbgrader's
autograde, login() is the student being graded. The inverse question is inverse_question(),
checked by labkit.actions.check_actions. Every check returns a Result: true when right, and its
str() says what was measured and, if wrong, a hint.

The reaper's storm never forks this process (a notebook's kernel is threaded; fork(2) copies one
thread of it): the handler runs in a fresh `python -S` program (labkit.reaper_trial, standard
library only) started under labkit.pause --subreaper --drain, which reaps whatever it leaves.
"""

from __future__ import annotations

import ast
import getpass
import hashlib
import inspect
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from labkit import actions, checks, limits

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
    """Run labkit.reaper_trial with the handler `name` of `source`: its report (a dict)."""
    config = {"source": source, "name": name, "children": children, "tag": RESULT_TAG,
              "settle": SETTLE_SECONDS, "sleeper": SLEEPER_SECONDS}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_DIR, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "labkit.pause", "--subreaper", "--drain", "--owner",
               str(os.getpid()), "--", sys.executable, "-S", "-m", "labkit.reaper_trial",
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
    """What is wrong with a handler, from labkit.reaper_trial's report (empty: nothing)."""
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


# --- per-student variants ------------------------------------------------------------------


def login() -> str:
    """Who is doing the exercises, so that each student gets numbers of their own.

    Under nbgrader's autograde (it sets NBGRADER_EXECUTION=autograde) the notebook runs in
    autograded/STUDENT/ASSIGNMENT (nbgrader's default directory_structure): the student is the
    name of that folder's parent, whoever runs the grader. On a JupyterHub, JUPYTERHUB_USER;
    elsewhere the login name (getpass.getuser(), or uidN when the uid has no name)."""
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        return os.path.basename(os.path.dirname(os.getcwd()))
    if os.environ.get("JUPYTERHUB_USER"):
        return os.environ["JUPYTERHUB_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (pwd(3)): uid 1000 on some hosts
        return f"uid{os.getuid()}"


def seed_for(exercise: str, who: str | None = None) -> int:
    """A seed of one exercise for one student: the same every time, different for neighbours."""
    who = login() if who is None else who
    if not isinstance(exercise, str) or not isinstance(who, str):
        raise TypeError(f"exercise and who are names (str), not {exercise!r} and {who!r}")
    digest = hashlib.sha256(f"zombie-lab:{exercise}:{who}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def tree_script(who: str | None = None) -> str:
    """The script of the tree prediction for this student (labkit.actions.random_script)."""
    return actions.random_script(seed_for("tree", who), actions=7, fork_percentage=0.6,
                                 orphan=True)


def inverse_question(who: str | None = None) -> actions.Question:
    """The inverse question (fork.py -t) for this student, run on real processes."""
    return actions.inverse(seed_for("inverse", who), actions=7, fork_percentage=0.6,
                           orphan=True)


def check_tree(prediction: object, script: str | None = None) -> Result:
    """Check a predicted final tree of `script` (default: this student's) on real processes;
    the feedback points to the rules, never to the right tree."""
    script = tree_script() if script is None else script
    feedback = actions.check(prediction, script, reveal=False)
    return Result("tree prediction", list(feedback.problems))


# --- multiple choice, lettered per student -------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A question with answers (a), (b), (c)...; `right` is the index of the right one before the
    letters were shuffled, and `hints` what to say for each wrong one (index -> hint)."""

    question: str
    options: tuple[str, ...]
    right: int
    hints: Mapping[int, str]

    def lettered(self, seed: int) -> dict[str, str]:
        order = list(range(len(self.options)))
        random.Random(seed).shuffle(order)
        return {"abcdefgh"[i]: self.options[k] for i, k in enumerate(order)}

    def index_of(self, letter: str, seed: int) -> int:
        return self.options.index(self.lettered(seed)[letter])


def _choice(value: object, allowed: Mapping[str, str]) -> str | None:
    if isinstance(value, str) and value.strip().strip("()").lower() in allowed:
        return value.strip().strip("()").lower()
    return None


def _number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class _Answers:
    """Checks one dict of answers, collecting one problem per wrong or missing answer."""

    def __init__(self, answers: object, questions: Mapping[str, str]) -> None:
        self.questions = questions
        self.problems: list[str] = []
        self.answers: Mapping[str, object] = answers if isinstance(answers, Mapping) else {}
        if not isinstance(answers, Mapping):
            self.problems.append(f"answers is a dict like {{{next(iter(questions))!r}: ...}}, "
                                 f"not {answers!r}")
            return
        unknown = sorted(set(answers) - set(questions), key=str)
        if unknown:
            self.problems.append(f"unknown question names {unknown}: the questions are "
                                 f"{sorted(questions)}")

    def given(self, key: str) -> object:
        value = self.answers.get(key, Ellipsis)
        if value is Ellipsis:
            self.problems.append(f"{key}: not answered yet ({self.questions[key]})")
        return value

    def number(self, key: str, right: int, hint: Callable[[int], str]) -> None:
        value = self.given(key)
        if value is Ellipsis:
            return
        got = _number(value)
        if got is None:
            self.problems.append(f"{key}: answer with a number, not {value!r}")
        elif got != right:
            self.problems.append(f"{key}: not {got}. {hint(got)}")

    def choice(self, key: str, choice: Choice, seed: int) -> None:
        value = self.given(key)
        if value is Ellipsis:
            return
        letters = choice.lettered(seed)
        got = _choice(value, letters)
        if got is None:
            self.problems.append(f"{key}: answer one of {', '.join(map(repr, letters))}, "
                                 f"not {value!r}")
        elif choice.index_of(got, seed) != choice.right:
            self.problems.append(f"{key}: not ({got}). {choice.hints[choice.index_of(got, seed)]}")

    def result(self, title: str) -> Result:
        wrong = {p.split(":")[0] for p in self.problems}
        right = len(self.questions) - len(wrong & set(self.questions))
        return Result(title, self.problems, f"{right} of {len(self.questions)} answers right")


# --- 1. a ps listing of a pod ------------------------------------------------------------------

class Row(NamedTuple):
    """One line of the listing: `ps -e -o pid,ppid,nlwp,stat,args` (ps(1))."""

    pid: int
    ppid: int
    nlwp: int      # number of threads (tasks): each holds a PID of the namespace
    stat: str
    args: str


PS_COMMAND = "ps -e -o pid,ppid,nlwp,stat,args"
ORPHAN_HINT = (
    "An orphan goes to another live thread of its parent, else to the nearest living ancestor "
    "in its PID namespace that is a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER; tini -s "
    "sets it), else to PID 1 of that namespace (kernel/exit.c find_new_reaper, "
    "pid_namespaces(7)). Walk up the PPID column from the process that exits; a PPID of 0 means "
    "the parent is outside the pod's namespace, where the search stops")


def _ps_rows(seed: int) -> tuple[list[Row], tuple[int, int]]:
    """The listing for `seed`, and the orphan question (the PID that exits, the orphan)."""
    rng = random.Random(seed)
    node, threads = rng.randint(6, 19), rng.randint(4, 11)
    rows = [Row(1, 0, 1, "Ss", "/pause"),
            Row(node, 0, threads, "Ssl", "node server.js")]
    pid = node + rng.randint(14, 30)
    for _ in range(rng.randint(2, 5)):
        rows.append(Row(pid, node, 1, "Z", "[convert] <defunct>"))
        pid += rng.randint(1, 3)
    rows.append(Row(pid, node, 1, "S", "convert photo.jpg small.jpg"))
    tini = pid + rng.randint(3, 12)
    rows += [Row(tini, 0, 1, "Ss", "/sbin/tini -s -- /bin/sh backup.sh"),
             Row(tini + 1, tini, 1, "S", "/bin/sh backup.sh"),
             Row(tini + 2, tini + 1, 1, "R", "tar czf /backup/site.tgz /var/www"),
             Row(tini + rng.randint(8, 40), 0, 1, "R", PS_COMMAND)]
    question = (node, pid) if rng.random() < 0.5 else (tini + 1, tini + 2)
    return rows, question


AFTER_EXIT = Choice(
    "If node exits now, what becomes of its zombies?",
    ("they stay zombies for ever: their parent is gone",
     "the pause (PID 1) adopts them and reaps them at once",
     "node's own parent, outside the pod, reaps them"),
    1,
    {0: "A zombie whose parent exits is an orphan like any other, and is adopted; what does "
        "the adopter do with a zombie? (pause.c's sigreap; the kernel sends it SIGCHLD on "
        "adoption)",
     2: "The new parent is looked for only inside the orphan's PID namespace "
        "(kernel/exit.c find_new_reaper): a PPID of 0 says node's parent is outside it"})
KILL9 = Choice(
    "What does `kill -9` on one of the zombies do?",
    ("it removes the zombie", "nothing: the zombie has already exited; only a wait by its "
     "parent (or its parent's exit, then init's wait) removes it", "it kills the zombie's parent"),
    1,
    {0: "What is left in a zombie that a signal could end? It has already exited (kill(2), "
        "wait(2))",
     2: "A signal goes to the process it is sent to (kill(2)), not to its parent"})
WITHOUT_E = Choice(
    "In the same container, `ps -o pid,stat,args` (without -e) prints only two lines. Why?",
    ("the other processes exited in between",
     "without -e (or -A, ax), ps shows only the processes of its own user and terminal",
     "the pod's namespace hides the other containers' processes"),
    1,
    {0: "Read ps(1) on process selection: which processes does ps show when no selection option "
        "is given?",
     2: "This pod shares one PID namespace: every container sees every process (the listing "
        "above is proof). Read ps(1) on process selection"})

PS_CHOICES = {"after_exit": AFTER_EXIT, "kill9": KILL9, "without_e": WITHOUT_E}


def _lettering(seed: int, key: str) -> int:
    return seed_for(key, str(seed))


def _lettered_questions(choices: Mapping[str, Choice], seed: int) -> dict[str, str]:
    return {key: f"{c.question} " + "; ".join(f"({k}) {v}" for k, v in
                                              c.lettered(_lettering(seed, key)).items())
            for key, c in choices.items()}


def _letter(choices: Mapping[str, Choice], seed: int, key: str, words: str) -> str:
    found = [k for k, v in choices[key].lettered(_lettering(seed, key)).items() if words in v]
    if len(found) != 1:
        raise ValueError(f"{words!r} is in {len(found)} of the options of {key}, not in one")
    return found[0]


PS_QUESTIONS = {
    "zombies": "How many zombies does the listing show?",
    "must_wait": "Which PID must call wait() for those zombies to go away?",
    "pids_held": "How many PIDs of the pod's namespace were in use while this ps ran?",
    "states": "What do the STAT letters Z, S, R and l mean? A dict: {'Z': ..., 'S': ..., ...}",
}
PS_RULE_KEYS = ("adopter", "after_exit", "kill9", "without_e")
_STATE_WORDS = {"Z": ("zombie", "defunct"), "S": ("sleep", "interruptible"),
                "R": ("run",), "l": ("thread",)}


@dataclass(frozen=True)
class PsExercise:
    """A listing of a pod for one student, and its questions (never its answers)."""

    seed: int
    rows: tuple[Row, ...]
    orphan: tuple[int, int]          # (the PID that exits, the orphan whose parent it is)

    @property
    def listing(self) -> str:
        head = f"$ {PS_COMMAND}      (inside the pod, shareProcessNamespace: true)"
        lines = [head, f"{'PID':>7} {'PPID':>7} NLWP STAT COMMAND"]
        lines += [f"{r.pid:>7} {r.ppid:>7} {r.nlwp:>4} {r.stat:<4} {r.args}" for r in self.rows]
        return "\n".join(lines)

    @property
    def questions(self) -> dict[str, str]:
        gone, orphan = self.orphan
        name = next(os.path.basename(r.args.split()[0]) for r in self.rows if r.pid == gone)
        rules = {"adopter": f"If PID {gone} ({name}) exits now, all its threads with it, which "
                            f"PID becomes the parent of PID {orphan}?"}
        rules.update(_lettered_questions(PS_CHOICES, self.seed))
        return {**PS_QUESTIONS, **rules}

    def letter(self, key: str, words: str) -> str:
        """The letter of the option of question `key` that contains `words`."""
        return _letter(PS_CHOICES, self.seed, key, words)

    def text(self) -> str:
        width = max(map(len, self.questions))
        return self.listing + "\n\n" + "\n".join(
            f"{k:>{width}}: {textwrap.fill(q, 96 - width, subsequent_indent=' ' * (width + 2))}"
            for k, q in self.questions.items())

    def __str__(self) -> str:
        return self.text()


def ps_exercise(who: str | None = None) -> PsExercise:
    """The `ps` listing exercise for this student (or for `who`)."""
    seed = seed_for("ps", who)
    rows, orphan = _ps_rows(seed)
    return PsExercise(seed, tuple(rows), orphan)


def _ps_truth(ex: PsExercise) -> dict[str, int]:
    """The numeric answers, derived from the listing by the rules (as a student would)."""
    zombies = [r for r in ex.rows if r.stat.startswith("Z")]
    by_pid = {r.pid: r for r in ex.rows}
    up = by_pid[ex.orphan[0]].ppid
    while up and "tini -s" not in by_pid[up].args:  # up the tree, inside the namespace
        up = by_pid[up].ppid
    return {"zombies": len(zombies), "must_wait": zombies[0].ppid,
            "pids_held": sum(r.nlwp for r in ex.rows), "adopter": up or 1}


def _must_wait_hint(got: int) -> str:
    first = ("PID 1 reaps the orphans it adopts; these zombies still have a living parent. "
             if got == 1 else "")
    return first + "Only a zombie's parent can reap it (wait(2)): which column names it?"


def check_ps(answers: Mapping[str, object], who: str | None = None) -> Result:
    """Check the answers to PS_QUESTIONS on this student's listing; a wrong one gets a hint
    toward the rule, never the right value."""
    ex = ps_exercise(who)
    truth = _ps_truth(ex)
    check = _Answers(answers, PS_QUESTIONS)
    check.number("zombies", truth["zombies"], lambda got: (
        "Count the lines whose STAT begins with Z (ps(1) PROCESS STATE CODES; ps also marks "
        "them <defunct>). A line in S is alive, whatever its command"))
    check.number("must_wait", truth["must_wait"], _must_wait_hint)
    check.number("pids_held", truth["pids_held"], lambda got: (
        "Count tasks, not lines: every thread holds a PID of the namespace (the NLWP column; "
        "the l in STAT; notebook 07, proc(5) /proc/PID/task), a zombie holds its PID until it "
        "is reaped, and ps itself held one while it ran"))
    states = check.given("states")
    if states is not Ellipsis and not isinstance(states, Mapping):
        check.problems.append(f"states: a dict like {{'Z': '...', ...}}, not {states!r}")
    elif states is not Ellipsis:
        for letter, words in _STATE_WORDS.items():
            said = states.get(letter)
            if not isinstance(said, str) or not any(w in said.lower() for w in words):
                check.problems.append(
                    f"states: {letter} does not mean {said!r}: see ps(1) PROCESS STATE CODES "
                    "(and proc(5), /proc/PID/stat field 3)")
    return check.result("ps listing")


def check_ps_rules(answers: Mapping[str, object], who: str | None = None) -> Result:
    """Check the answers to the listing's rule questions (adopter and the choices)."""
    ex = ps_exercise(who)
    questions = {k: v for k, v in ex.questions.items() if k in PS_RULE_KEYS}
    check = _Answers(answers, questions)
    check.number("adopter", _ps_truth(ex)["adopter"], lambda got: (
        ("0 is not a process. " if got == 0 else "") + ORPHAN_HINT))
    for key, choice in PS_CHOICES.items():
        check.choice(key, choice, _lettering(ex.seed, key))
    return check.result("ps rules")


# --- 3. pods, PID 1 and PID budgets (notebooks 05-07) ---------------------------------------

SIGTERM = Choice(
    "A container's PID 1 installs no handler for SIGTERM, and `docker stop` sends it SIGTERM. "
    "What happens?",
    ("it exits at once, as any process would",
     "nothing at first: the kernel drops a signal the PID 1 of a namespace has no handler for; "
     "after the grace period (10 s by default) docker sends SIGKILL, which it cannot refuse",
     "the kernel kills every process of the container at once"),
    1,
    {0: "Is the PID 1 of a PID namespace like any process when a signal comes? Read "
        "pid_namespaces(7) on the namespace's init and signals (notebook 05)",
     2: "The kernel kills the rest of a namespace when its PID 1 exits (pid_namespaces(7)); "
        "does a signal without a handler make PID 1 exit?"})
ISOLATED = Choice(
    "In a pod without shareProcessNamespace (the default), a process in the app container is "
    "orphaned, and nothing in that container is a subreaper. Which process adopts it?",
    ("the pause, PID 1 of the pod",
     "PID 1 of the app container's own PID namespace: the container's main process",
     "the kubelet"),
    1,
    {0: "Do the pause and the app share a PID namespace here? Only with shareProcessNamespace: "
        "true (Kubernetes docs, 'Share Process Namespace between Containers in a Pod'; "
        "notebook 05)",
     2: "The new parent is looked for inside the orphan's PID namespace (kernel/exit.c "
        "find_new_reaper): is the kubelet in it?"})
TEARDOWN = Choice(
    "How does the kubelet stop a pod?",
    ("it kills the pause, and the kernel then kills everything else in the pod",
     "it stops each container (its STOPSIGNAL, a grace period, 30 s by default, then SIGKILL), "
     "and only then the sandbox with its pause",
     "it sends SIGKILL to every process of the pod at once"),
    1,
    {0: "That is the kernel's rule for a PID namespace whose PID 1 exits (pid_namespaces(7)), "
        "not the kubelet's procedure: read 'Pod termination' in the Kubernetes docs "
        "(notebook 06)",
     2: "Would a database in the pod get a chance to write its files? Read 'Pod termination' in "
        "the Kubernetes docs: is there a grace period?"})
POD_CHOICES = {"sigterm": SIGTERM, "isolated": ISOLATED, "teardown": TEARDOWN}


@dataclass(frozen=True)
class PodExercise:
    """Questions on notebooks 05-07 for one student: a PID budget with numbers of their own,
    and choices lettered for them."""

    seed: int
    pids_max: int
    threads: int

    @property
    def questions(self) -> dict[str, str]:
        budget = (f"A pod's cgroup has pids.max = {self.pids_max}. In it run the pause (one "
                  f"thread), a server with {self.threads} threads, and a worker (one thread) "
                  "that forks children which exit at once and are never waited for. How many "
                  "children can the worker fork before fork(2) fails with EAGAIN?")
        return {"budget": budget, **_lettered_questions(POD_CHOICES, self.seed)}

    def letter(self, key: str, words: str) -> str:
        """The letter of the option of question `key` that contains `words`."""
        return _letter(POD_CHOICES, self.seed, key, words)

    def text(self) -> str:
        return "\n".join(f"{k}: " + textwrap.fill(q, 88, subsequent_indent="    ")
                         for k, q in self.questions.items())

    def __str__(self) -> str:
        return self.text()


def pod_exercise(who: str | None = None) -> PodExercise:
    """The pods, PID 1 and budgets exercise for this student (or for `who`)."""
    seed = seed_for("pod", who)
    rng = random.Random(seed)
    return PodExercise(seed, rng.randint(24, 90), rng.randint(3, 17))


def check_pod(answers: Mapping[str, object], who: str | None = None) -> Result:
    """Check the answers to this student's PodExercise; hints, never the right values."""
    ex = pod_exercise(who)
    check = _Answers(answers, ex.questions)
    check.number("budget", ex.pids_max - ex.threads - 2, lambda got: (
        "A zombie keeps its PID until it is reaped, and the pids controller counts every task "
        "of the cgroup: each thread of each process, the pause and the worker included "
        "(cgroups(7); notebook 07). fork fails when one more task would pass pids.max"))
    for key, choice in POD_CHOICES.items():
        check.choice(key, choice, _lettering(ex.seed, key))
    return check.result("pods, PID 1 and budgets")
