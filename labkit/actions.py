"""OSTEP's fork homework on real processes: `a+b; b+c; b-; a~` run in a lab, tree after tree.

The action language of remzi-arpacidusseau/ostep-homework `cpu-api/fork.py`, with one action added:
  x+y    x forks y             (y is a new letter)
  x-     x exits               (its children become orphans)
  x~     x waits: it reaps every child of its that has exited (waitpid(-1, WNOHANG) in a loop)
  x~y    x waits for y         (y is x's child and has exited)
Actions are separated by ";" or "," (OSTEP's -A uses commas). Processes are one lowercase letter;
`a` is the first process, and its parent is the lab root, shown as "init".

Unlike the simulator, nothing here is simulated: every letter is a real process (labkit.actor),
and each tree is read from /proc after the kernel has done what the action implies. So the trees
show Linux's own rules, which are not the simulator's: an orphan is adopted by the nearest
subreaper or by PID 1 of its namespace (prctl(2), pid_namespaces(7)) -- in a lab, the lab root,
"init" -- by a grandparent only when it is that subreaper or that init (kernel/exit.c,
find_new_reaper); a process that exits stays a zombie until its parent waits
for it; init reaps what it adopts.

A script is checked in full (a dry run over its own tree) before any process is created, and a
bad action is named with its position: ScriptError("action 3 'b+b': b cannot fork itself").

    run = labkit.actions.run("a+b; b+c; b-")        # a Run: run.steps, run.final, run.text()
    labkit.actions.random_script(seed=3)            # a reproducible problem, like fork.py -s 3
    labkit.actions.check({"c": "init", "b": "a"}, run, states={"b": "zombie"})
    q = labkit.actions.inverse(seed=3)              # fork.py -t: the trees, guess the actions
    labkit.actions.check_actions("a+b; ...", q)
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import socket
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from labkit import checks
from labkit.errors import AgentError, ForkRefused
from labkit.lab import MODES, Lab
from labkit.observe import ZOMBIE, Snapshot

INIT = "init"           # the lab root, as the trees name it
NAMES = "abcdefghijklmnopqrstuvwxyz"
FIRST = "a"
SETTLE_TIMEOUT = 10.0   # seconds the kernel may take to show what an action implies
ANSWER_TIMEOUT = 10.0   # seconds an actor may take to answer
MAX_ACTIONS = 60

_SYNTAX = re.compile(r"^(?P<x>[^+\-~]*)(?:(?P<op>[+~])(?P<y>[^+\-~]*)|(?P<exit>-))$")
_HELP = ("use x+y (x forks y), x- (x exits), x~ (x waits for its exited children) "
         "or x~y (x waits for y)")


class ScriptError(ValueError):
    """A script that cannot run, refused before any process exists. `index` is the action's
    position (1-based; 0 for the script as a whole), `action` its text, `reason` what is wrong."""

    def __init__(self, index: int, action: str, reason: str) -> None:
        self.index, self.action, self.reason = index, action, reason
        where = f"action {index} {action!r}: " if index else ""
        super().__init__(where + reason)


class Action(NamedTuple):
    """One action of a script: `op` is "fork", "exit" or "wait"; `target` the forked child, or
    the child waited for (None: every exited child)."""

    index: int          # 1-based position in the script
    text: str           # as written, without spaces: "a+b"
    op: str
    actor: str
    target: str | None

    def describe(self) -> str:
        if self.op == "fork":
            return f"{self.actor} forks {self.target}"
        if self.op == "exit":
            return f"{self.actor} exits"
        return f"{self.actor} waits" + (f" for {self.target}" if self.target else "")


def parse(script: str | Sequence[str], reaping_init: bool = True) -> list[Action]:
    """The actions of `script`, checked in full by a dry run; ScriptError names a bad one.

    `script`: "a+b; b+c; b-" (";" or "," between actions), or a list of actions.
    `reaping_init=False`: the lab root does not reap (Lab(reap=False)), which changes nothing
    about what is valid but is passed on to the dry run for the expected trees.
    """
    actions = _syntax(script)
    model = _Model(reaping_init)
    for action in actions:
        model.apply(action)
    return actions


def _syntax(script: str | Sequence[str]) -> list[Action]:
    if isinstance(script, str):
        texts = re.split(r"[;,\n]", script)
    elif isinstance(script, Sequence) and all(isinstance(t, str) for t in script):
        texts = list(script)
    else:
        raise TypeError(f"a script is a string like 'a+b; b-' or a list of actions like "
                        f"['a+b', 'b-'], not {script!r}")
    texts = ["".join(t.split()) for t in texts]
    texts = [t for t in texts if t]
    if len(texts) > MAX_ACTIONS:
        raise ScriptError(0, "", f"a script has at most {MAX_ACTIONS} actions, not {len(texts)}")
    actions = []
    for index, text in enumerate(texts, 1):
        m = _SYNTAX.match(text)
        if m is None:
            raise ScriptError(index, text, f"not an action: {_HELP}")
        names = [m["x"]] + ([m["y"]] if m["op"] == "+" or m["y"] else [])
        for name in names:
            if not (len(name) == 1 and name in NAMES):
                shown = f"not {name!r}" if name else "and one is missing"
                raise ScriptError(index, text, f"names must be one lowercase letter, a to z "
                                               f"({shown})")
        op = "fork" if m["op"] == "+" else "exit" if m["exit"] else "wait"
        actions.append(Action(index, text, op, m["x"], m["y"] or None))
    return actions


# --- the dry run: what Linux will do, predicted, to check a script and explain the trees --------


@dataclass
class _Proc:
    parent: str
    state: str = "alive"                 # "alive", "zombie" or "gone" (reaped)
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (action, what, who)


class _Model:
    """The script's own tree, action by action; refuses an action that cannot happen."""

    def __init__(self, reaping_init: bool = True) -> None:
        self.reaping_init = reaping_init
        self.procs: dict[str, _Proc] = {FIRST: _Proc(INIT)}

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.state == "alive"]

    def children(self, name: str, state: str | None = None) -> list[str]:
        return [n for n, p in self.procs.items() if p.parent == name and p.state != "gone"
                and (state is None or p.state == state)]

    def unused(self) -> str | None:
        return next((n for n in NAMES if n not in self.procs), None)

    def structure(self) -> dict[str, tuple[str, str]]:
        return {n: (p.parent, ZOMBIE if p.state == "zombie" else "alive")
                for n, p in self.procs.items() if p.state != "gone"}

    def _actor(self, action: Action, verb: str) -> _Proc:
        proc = self.procs.get(action.actor)
        if proc is None:
            raise ScriptError(action.index, action.text, f"no process named {action.actor}")
        if proc.state == "zombie":
            raise ScriptError(action.index, action.text, f"{action.actor} has exited (it is a "
                                                         f"zombie) and cannot {verb}")
        if proc.state == "gone":
            raise ScriptError(action.index, action.text, f"{action.actor} has exited and been "
                                                         f"reaped: it cannot {verb}")
        return proc

    def apply(self, action: Action) -> None:
        i, text, x, y = action.index, action.text, action.actor, action.target
        if action.op == "fork":
            if x == y:
                raise ScriptError(i, text, f"{x} cannot fork itself")
            self._actor(action, "fork")
            if y in self.procs:
                raise ScriptError(i, text, f"{y} already exists (names are not reused)")
            self.procs[y] = _Proc(x, events=[(i, "forked", x)])
        elif action.op == "exit":
            self._actor(action, "exit")
            self._exit(i, x)
        else:
            self._actor(action, "wait")
            if y is None:
                for child in self.children(x, "zombie"):
                    self._reap(i, child, x)
                return
            child = self.procs.get(y)
            if child is None:
                raise ScriptError(i, text, f"no process named {y}")
            if child.parent != x:
                raise ScriptError(i, text, f"{y} is not {x}'s child (its parent is "
                                           f"{child.parent}): a process waits only for its "
                                           f"own children")
            if child.state == "gone":
                raise ScriptError(i, text, f"{y} has already been reaped")
            if child.state == "alive":
                raise ScriptError(i, text, f"{y} is still running: {x} would wait for ever "
                                           f"(the script does one action at a time); let {y} "
                                           f"exit first ({y}-)")
            self._reap(i, y, x)

    def _exit(self, i: int, name: str) -> None:
        proc = self.procs[name]
        proc.events.append((i, "exited", proc.parent))  # who it was the child of
        # Orphans go to the nearest subreaper or PID 1: the lab root. Zombies among them are
        # reaped by it at once (it gets their SIGCHLD on adoption: exit_notify in the kernel).
        for child in self.children(name):
            self.procs[child].parent = INIT
            self.procs[child].events.append((i, "adopted", name))
            if self.procs[child].state == "zombie" and self.reaping_init:
                self._reap(i, child, INIT)
        if proc.parent == INIT and self.reaping_init:
            self._reap(i, name, INIT)
        else:
            proc.state = "zombie"

    def _reap(self, i: int, name: str, by: str) -> None:
        self.procs[name].state = "gone"
        self.procs[name].events.append((i, "reaped", by))


# --- running a script on real processes --------------------------------------------------------


class Step(NamedTuple):
    """The lab after one action (action None: the start, `a` alone)."""

    action: Action | None
    tree: str                                  # the tree as text, as Run.text() prints it
    structure: dict[str, tuple[str, str]]      # letter -> (parent letter or "init", state)
    snapshot: Snapshot                         # the whole lab at that moment


class _Link:
    """A line-by-line connection to one actor."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def send(self, line: str) -> None:
        self.sock.sendall((line + "\n").encode())

    def line(self, timeout: float = ANSWER_TIMEOUT) -> str | None:
        """The next line; None at end of file (the actor exited)."""
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise AgentError(f"an actor did not answer within {timeout:g} s") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        self.sock.close()


class _Actors:
    """The kernel's side of a run's actors: a listening socket and a link to each actor."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="labkit-actors-")  # 0700: only we may connect
        self.address = os.path.join(self.dir, "s")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.address)
        self.listener.listen(8)
        self.links: dict[str, _Link] = {}

    def accept(self, name: str) -> tuple[int, int]:
        """The new actor `name`'s connection; its host PID and its PID in the lab."""
        self.listener.settimeout(ANSWER_TIMEOUT)
        try:
            sock, _ = self.listener.accept()
        except TimeoutError:
            raise AgentError(f"actor {name} did not start within {ANSWER_TIMEOUT:g} s") from None
        link = _Link(sock)
        words = (link.line() or "").split()
        if len(words) != 4 or words[:2] != ["hello", name]:
            link.close()
            raise AgentError(f"actor {name} did not introduce itself (it said {words!r})")
        self.links[name] = link
        return int(words[2]), int(words[3])

    def close(self) -> None:
        """Closing a link makes its actor exit; the lab root reaps what is left."""
        for link in self.links.values():
            link.close()
        self.links.clear()
        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Run:
    """A script run on real processes: the tree after every action, read from the kernel."""

    script: str                      # normalized: "a+b; b+c; b-"
    actions: list[Action]
    mode: str                        # the lab's mode: "subreaper" or "pid-namespace"
    root_pid: int                    # host PID of the lab root ("init")
    start: Step | None = None        # `a` alone
    steps: list[Step] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)     # letter -> host PID
    ns_pids: dict[str, int] = field(default_factory=dict)  # letter -> PID inside the lab
    model: _Model | None = field(default=None, repr=False)
    _actors: _Actors | None = field(default=None, repr=False)

    @property
    def final(self) -> dict[str, tuple[str, str]]:
        """letter -> (parent, state) after the last action; reaped processes are absent."""
        return self.last.structure

    @property
    def last(self) -> Step:
        last = self.steps[-1] if self.steps else self.start
        assert last is not None
        return last

    def tree(self) -> str:
        return self.last.tree

    def text(self, actions: bool = True, trees: bool = True, final_only: bool = False) -> str:
        """OSTEP-style: the tree at the start, then each action and the tree after it.
        actions=False hides the actions ("Action?", fork.py -t); trees=False hides the trees
        ("Process Tree?"); final_only shows only the last tree (fork.py -F)."""
        where = (f"init is the lab root, pid {self.root_pid}: "
                 + ("PID 1 of the lab's PID namespace" if self.mode == "pid-namespace"
                    else "a child subreaper"))
        assert self.start is not None
        out = [f"Process Tree ({where}):", self.start.tree, ""]
        for step in self.steps:
            assert step.action is not None
            out.append(f"Action: {step.action.describe()}" if actions else "Action?")
            if not final_only:
                out += [step.tree if trees else "Process Tree?", ""]
        if final_only:
            out += ["", "Final Process Tree:" if trees else "Final Process Tree?"]
            out += [self.tree(), ""] if trees else [""]
        return "\n".join(out).rstrip() + "\n"

    def close(self) -> None:
        """End the run's actors (they exit; the lab root reaps them). Idempotent."""
        if self._actors is not None:
            self._actors.close()
            self._actors = None

    def __str__(self) -> str:
        return self.text()


def run(script: str | Sequence[str], lab: Lab | None = None, mode: str = "auto") -> Run:
    """Run `script` on real processes and record the real tree after each action.

    With no `lab`, a Lab(mode=mode) is made for the run and closed at its end (the Run keeps
    what was seen). With a lab, the actors stay alive in it until run.close() or lab.close().
    The script is checked in full first: a ScriptError means no process was created.
    """
    mode = checks.choice(mode, "mode", MODES)
    actions = parse(script, True if lab is None else lab.reap)
    if lab is None:
        with Lab(mode=mode) as own:
            result = _run(actions, own)
        result.close()  # after the lab's drain: nothing of it is left to react
        return result
    return _run(actions, lab)


def _run(actions: list[Action], lab: Lab) -> Run:
    lab._check_open()
    lab._room_for(1 + sum(a.op == "fork" for a in actions))
    model = _Model(lab.reap)
    actors = _Actors()
    result = Run(script_of(actions), actions, lab.mode, lab.root_pid, model=model,
                 _actors=actors)
    finalizer = weakref.finalize(result, actors.close)
    try:
        reply = lab._request({"op": "actor", "address": actors.address, "name": FIRST})
        if not reply["ok"]:
            raise AgentError(f"the first actor could not be started: {reply.get('error')}")
        _joined(result, lab, FIRST)
        result.start = _settle(result, lab, None)
        for action in actions:
            _do(result, lab, action)
            model.apply(action)
            result.steps.append(_settle(result, lab, action))
    except BaseException:
        finalizer()
        raise
    return result


def _joined(result: Run, lab: Lab, name: str) -> None:
    assert result._actors is not None
    host, inside = result._actors.accept(name)
    result.pids[name], result.ns_pids[name] = host, inside
    lab._host_pid[inside] = host  # so lab.events names the actors the root reaps


def _do(result: Run, lab: Lab, action: Action) -> None:
    """Tell the actor to act, and wait for its answer (not yet for the tree to settle)."""
    actors = result._actors
    assert actors is not None
    link = actors.links[action.actor]
    if action.op == "exit":
        link.send("exit")
        link.line()  # end of file: the actor has closed everything on its way out
        link.close()
        del actors.links[action.actor]
        return
    if action.op == "fork":
        lab._room_for(1)
        link.send(f"fork {action.target}")
    else:
        link.send("wait" if action.target is None else f"wait {result.ns_pids[action.target]}")
    answer = (link.line() or "").split()
    if answer[:1] == ["err"] and len(answer) == 2 and int(answer[1]) == errno.EAGAIN:
        raise ForkRefused(errno.EAGAIN, os.strerror(errno.EAGAIN), [],
                          f"action {action.index} {action.text!r}: the lab's PID budget is "
                          "spent")
    if answer[:1] != ["ok"]:
        raise AgentError(f"action {action.index} {action.text!r}: actor {action.actor} "
                         f"answered {' '.join(answer) or 'nothing'!r}")
    if action.op == "fork":
        assert action.target is not None
        _joined(result, lab, action.target)


def _observed(snap: Snapshot, result: Run, lab: Lab) -> dict[str, tuple[str, str]]:
    """The script's processes in `snap`, by letter: (parent letter or "init", state)."""
    letter = {pid: name for name, pid in result.pids.items()}
    seen = {}
    for p in snap.procs:
        name = letter.get(p.pid)
        if name is None:
            continue
        parent = (INIT if p.ppid == lab.root_pid else letter.get(p.ppid) or
                  ("agent" if p.ppid == lab.agent_pid else f"pid {p.ppid}"))
        seen[name] = (parent, p.state)
    return dict(sorted(seen.items(), key=lambda item: list(result.pids).index(item[0])))


def _same(seen: Mapping[str, tuple[str, str]], expected: Mapping[str, tuple[str, str]]) -> bool:
    return seen.keys() == expected.keys() and all(
        seen[n][0] == parent and (seen[n][1] == ZOMBIE) == (state == ZOMBIE)
        for n, (parent, state) in expected.items())


def _settle(result: Run, lab: Lab, action: Action | None) -> Step:
    """Snapshots until the kernel shows what the action implies (a zombie, an adoption, a
    reaped process gone): processes exit and are reaped on their own time, so we wait for
    the state rather than sleep. The Step holds what the kernel showed."""
    assert result.model is not None
    expected = result.model.structure()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        snap = lab.snapshot()
        seen = _observed(snap, result, lab)
        if _same(seen, expected):
            return Step(action, render(seen), seen, snap)
        if time.monotonic() > deadline:
            what = "the start" if action is None else f"action {action.index} {action.text!r}"
            raise AgentError(f"after {what} the kernel did not show the expected tree within "
                             f"{SETTLE_TIMEOUT:g} s.\nExpected:\n{render(expected)}\n"
                             f"Seen:\n{render(seen)}")
        time.sleep(0.002)


def render(structure: Mapping[str, tuple[str, str]]) -> str:
    """The tree as text, OSTEP's "fancy" style, init at the top and zombies marked:

        init
        ├── a
        │   └── b (zombie)
        └── c
    """
    kids: dict[str, list[str]] = {}
    for name, (parent, _) in structure.items():
        kids.setdefault(parent if parent in structure else INIT, []).append(name)
    lines = [INIT]

    def walk(name: str, prefix: str, last: bool) -> None:
        state = structure[name][1]
        lines.append(f"{prefix}{'└── ' if last else '├── '}{name}"
                     + (" (zombie)" if state == ZOMBIE else ""))
        below = kids.get(name, [])
        for i, child in enumerate(below):
            walk(child, prefix + ("    " if last else "│   "), i == len(below) - 1)

    top = kids.get(INIT, [])
    for i, name in enumerate(top):
        walk(name, "", i == len(top) - 1)
    return "\n".join(lines)


# --- seeded problems ---------------------------------------------------------------------------


def random_script(seed: int | str, actions: int = 5, fork_percentage: float = 0.7,
                  wait: bool = True) -> str:
    """A valid script of `actions` actions, the same for the same arguments (fork.py -s SEED).

    Forks name the next unused letter (b, c, ...); `a` never exits (as in fork.py); with
    `wait`, some of the other actions are waits by a process that has a zombie child.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, str)):
        raise TypeError(f"seed must be an int (or a str), not {seed!r}")
    actions = checks.count(actions, "actions", low=1, high=MAX_ACTIONS)
    if isinstance(fork_percentage, bool) or not isinstance(fork_percentage, (int, float)) \
            or not 0.0 < fork_percentage <= 1.0:
        raise ValueError(f"fork_percentage must be a number in (0, 1], not {fork_percentage!r}")
    wait = checks.flag(wait, "wait")
    rng = random.Random(seed)
    model = _Model()
    texts: list[str] = []
    while len(texts) < actions:
        live, fresh = model.alive(), model.unused()
        waiters = [n for n in live if model.children(n, "zombie")] if wait else []
        leavers = [n for n in live if n != FIRST]
        if fresh and (rng.random() < fork_percentage or not (waiters or leavers)):
            text = f"{rng.choice(live)}+{fresh}"
        elif waiters and (not leavers or rng.random() < 0.4):
            who = rng.choice(waiters)
            text = f"{who}~" + (rng.choice(model.children(who, "zombie"))
                                if rng.random() < 0.5 else "")
        elif leavers:
            text = f"{rng.choice(leavers)}-"
        else:
            break  # only `a` is left and every letter is used: nothing valid remains
        model.apply(_syntax(text)[0]._replace(index=len(texts) + 1))
        texts.append(text)
    return "; ".join(texts)


# --- checking predictions ----------------------------------------------------------------------


@dataclass
class Feedback:
    """What was wrong with a prediction, one line per problem; str() is "correct" if nothing."""

    problems: list[str]
    expected: dict[str, tuple[str, str]]
    run: Run | None = None

    @property
    def correct(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        if self.correct:
            return "correct"
        return "not quite:\n" + "\n".join(f"- {p}" for p in self.problems)


_ZOMBIE_WORDS = {"zombie", "z", "defunct", "exited"}
_ALIVE_WORDS = {"alive", "running", "sleeping", "live", "r", "s", ""}


def _state(word: object, name: str) -> str:
    if not isinstance(word, str) or word.lower() not in _ZOMBIE_WORDS | _ALIVE_WORDS:
        raise ValueError(f"the state of {name} must be 'zombie' or 'alive' (or 'running', "
                         f"'sleeping'), not {word!r}")
    return ZOMBIE if word.lower() in _ZOMBIE_WORDS else "alive"


def _parent(word: object, name: str) -> str:
    if isinstance(word, str) and word.lower() in (INIT, "root"):
        return INIT
    if isinstance(word, str) and len(word) == 1 and word in NAMES and word != name:
        return word
    raise ValueError(f"the parent of {name} must be another process's letter or 'init', "
                     f"not {word!r}")


def parse_tree(text: str) -> dict[str, tuple[str, str]]:
    """A tree written as Run.text() prints it (the last one, if there are several) as
    letter -> (parent, "zombie" or "alive"). Indentation gives the parent; "(zombie)" a state;
    a top line `init` is optional."""
    if not isinstance(text, str):
        raise TypeError(f"a tree is text, not {text!r}")
    tree: dict[str, tuple[str, str]] = {}
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^(?P<lead>[\s│├└─|`+\-_\\]*)(?P<name>[A-Za-z]+)(?P<rest>[^:?]*)$", line)
        if not line.strip() or ":" in line or "?" in line:
            continue  # blank, or a heading ("Action: a forks b", "Process Tree?")
        if m is None:
            raise ValueError(f"line {number} of the tree, {line.strip()!r}, is not a process: "
                             "write one letter per line, indented under its parent")
        column, name = len(m["lead"]), m["name"]
        if name == INIT:
            tree, stack = {}, [(column, INIT)]  # a new tree starts: keep only the last
            continue
        if not (len(name) == 1 and name in NAMES):
            raise ValueError(f"line {number} of the tree: names must be one lowercase letter "
                             f"or init, not {name!r}")
        if name in tree:
            raise ValueError(f"line {number} of the tree: {name} appears twice")
        while stack and stack[-1][0] >= column:
            stack.pop()
        rest = m["rest"].strip().strip("()[]").strip()
        state = _state(rest.split()[0] if rest else "", name)
        tree[name] = (stack[-1][1] if stack else INIT, state)
        stack.append((column, name))
    return tree


def _prediction(prediction: object, states: Mapping[str, str] | None
                ) -> dict[str, tuple[str | None, str]]:
    tree: dict[str, tuple[str | None, str]]
    if isinstance(prediction, str):
        tree = dict(parse_tree(prediction))
    elif isinstance(prediction, Mapping):
        tree = {}
        for name, value in prediction.items():
            if not (isinstance(name, str) and len(name) == 1 and name in NAMES):
                raise ValueError(f"names must be one lowercase letter, not {name!r}")
            if isinstance(value, (tuple, list)) and len(value) == 2:
                tree[name] = (_parent(value[0], name), _state(value[1], name))
            else:
                tree[name] = (_parent(value, name), "alive")
    else:
        raise TypeError("a prediction is a dict of parents like {'b': 'a', 'c': 'init'} or a "
                        f"tree as text, not {prediction!r}")
    for name, word in (states or {}).items():
        # A state for a process whose parent was not predicted: only the state is checked.
        tree[name] = (tree[name][0] if name in tree else None, _state(word, name))
    return tree


def _alive_word(state: str) -> str:
    return "a zombie" if state == ZOMBIE else "alive"


def _history(run: Run, name: str) -> list[tuple[int, str, str]]:
    assert run.model is not None
    proc = run.model.procs.get(name)
    return proc.events if proc is not None else []


def _why_parent(run: Run, name: str, parent: str, guessed: str | None) -> str:
    events = _history(run, name)
    adopted = [e for e in events if e[1] == "adopted"]
    if parent == INIT and adopted:
        i, _, old = adopted[-1]
        why = (f"{name}'s parent {old} exited (action {i}), so {name} was adopted by init "
               f"(the lab root)")
        if guessed is not None and guessed not in (INIT, old):
            why += f", not by {guessed}"
            grandparent = next((e[2] for e in _history(run, old) if e[1] == "exited"), None)
            if guessed == grandparent:
                why += (f" ({guessed} is {name}'s grandparent, but Linux gives an orphan to the "
                        "nearest living ancestor that is a child subreaper, else to PID 1 of its "
                        f"namespace, and {guessed} is neither)")
        return why
    if name == FIRST:
        return f"{FIRST} is the first process: init (the lab root) is its parent"
    forked = next((e for e in events if e[1] == "forked"), None)
    if forked is None:
        return f"{name} was never forked"
    return f"{forked[2]} forked {name} (action {forked[0]}) and {forked[2]} has not exited"


def _why_state(run: Run, name: str, state: str, parent: str) -> str:
    exited = next((e for e in _history(run, name) if e[1] == "exited"), None)
    if state != ZOMBIE:
        return f"{name} has not exited"
    assert exited is not None
    if parent == INIT:
        return (f"{name} exited (action {exited[0]}) and this lab's init does not reap, so it "
                "stays a zombie")
    return (f"{name} exited (action {exited[0]}) and its parent {parent} has not waited for "
            f"it, so it stays a zombie")


def _why_gone(run: Run, name: str) -> str:
    events = _history(run, name)
    reaped = next((e for e in events if e[1] == "reaped"), None)
    if reaped is None:
        return f"there is no process {name} in this script"
    exited = next(e for e in events if e[1] == "exited")
    i, _, by = reaped
    if by != INIT:
        return f"{name} exited (action {exited[0]}) and {by}'s wait reaped it (action {i})"
    adopted = [e for e in events if e[1] == "adopted"]
    if adopted and adopted[-1][0] == i and exited[0] < i:
        return (f"{name} was a zombie when its parent {adopted[-1][2]} exited (action {i}): "
                "init adopted it and reaped it at once")
    return (f"{name} exited (action {exited[0]}) while its parent was init, which reaped it "
            "at once")


def _compare(run: Run, guess: Mapping[str, tuple[str | None, str]],
             actual: Mapping[str, tuple[str, str]], implied_first: bool) -> list[str]:
    problems = []
    for name, (parent, state) in actual.items():
        state = ZOMBIE if state == ZOMBIE else "alive"
        if name not in guess:
            if implied_first and name == FIRST and parent == INIT and state != ZOMBIE:
                continue  # `a` under init, alive: the start of every script
            where = "under init" if parent == INIT else f"a child of {parent}"
            problems.append(f"missing: {name} is still there, {_alive_word(state)}, {where}: "
                            + (_why_state(run, name, state, parent) if state == ZOMBIE else
                               _why_parent(run, name, parent, None)))
            continue
        guessed_parent, guessed_state = guess[name]
        if guessed_parent is not None and guessed_parent != parent:
            problems.append(f"wrong parent: {name}'s parent is {parent}, not {guessed_parent}: "
                            + _why_parent(run, name, parent, guessed_parent))
        if guessed_state != state:
            problems.append(f"wrong state: {name} is {_alive_word(state)}, not "
                            f"{_alive_word(guessed_state)}: "
                            + _why_state(run, name, state, parent))
    for name in guess:
        if name not in actual:
            problems.append(f"extra: {name} is gone: {_why_gone(run, name)}")
    return problems


def check(prediction: Mapping[str, object] | str, run_or_script: Run | str | Sequence[str],
          states: Mapping[str, str] | None = None, mode: str = "auto") -> Feedback:
    """Compare a prediction of the final tree with what the kernel did.

    `prediction`: {letter: parent} ("init" for the lab root; `a` may be left out), with values
    (parent, state) or a `states` dict ({"c": "zombie"}) for zombies; or a tree as text in the
    format Run.text() prints. `run_or_script`: a Run, or a script to run now (in a new lab).
    """
    guess = _prediction(prediction, states)
    result = run_or_script if isinstance(run_or_script, Run) else run(run_or_script, mode=mode)
    problems = _compare(result, guess, result.final, implied_first=True)
    return Feedback(problems, dict(result.final), result)


# --- the inverse question (fork.py -t) ---------------------------------------------------------


@dataclass
class Question:
    """The trees of a seeded run without its actions: which actions made them?"""

    seed: int | str
    run: Run = field(repr=False)

    @property
    def tree(self) -> dict[str, tuple[str, str]]:
        return self.run.final

    @property
    def answer(self) -> str:
        return self.run.script

    def text(self, final_only: bool = False) -> str:
        return self.run.text(actions=False, final_only=final_only)

    def __str__(self) -> str:
        return self.text()


def inverse(seed: int | str, actions: int = 5, fork_percentage: float = 0.7, wait: bool = True,
            mode: str = "auto") -> Question:
    """fork.py -t: the trees of random_script(seed, ...) run on real processes, actions hidden.
    Answer with check_actions(your_actions, question)."""
    return Question(seed, run(random_script(seed, actions, fork_percentage, wait), mode=mode))


def check_actions(actions: str | Sequence[str],
                  tree: Question | Run | Mapping[str, object] | str,
                  mode: str = "auto") -> Feedback:
    """Run the learner's actions on real processes and compare the final tree with `tree` (a
    Question, a Run, a {letter: parent or (parent, state)} dict, or a tree as text). Any
    actions that lead to the same tree are right."""
    if isinstance(tree, Question):
        tree = tree.run
    target = (dict(tree.final) if isinstance(tree, Run) else
              {n: (p, s) for n, (p, s) in _prediction(tree, None).items() if p is not None})
    target = {n: (p, ZOMBIE if s == ZOMBIE else "alive") for n, (p, s) in target.items()}
    mine = run(actions, mode=mode)
    problems = []
    for name, (parent, state) in target.items():
        got = mine.final.get(name)
        if got is None:
            problems.append(f"{name} should be there ({_alive_word(state)}, under {parent}) "
                            f"but your actions leave no {name}"
                            + (f": {_why_gone(mine, name)}" if name in mine.pids else ""))
            continue
        if got[0] != parent:
            problems.append(f"{name} should be under {parent}; your actions leave it under "
                            f"{got[0]}: {_why_parent(mine, name, got[0], None)}")
        if (got[1] == ZOMBIE) != (state == ZOMBIE):
            problems.append(f"{name} should be {_alive_word(state)}; your actions leave it "
                            f"{_alive_word(got[1])}: {_why_state(mine, name, got[1], got[0])}")
    for name, (parent, state) in mine.final.items():
        if name not in target and not (name == FIRST and parent == INIT):
            problems.append(f"your actions leave {name} ({_alive_word(state)}, under {parent}),"
                            " which the tree does not have")
    return Feedback(problems, target, mine)


def script_of(actions: Iterable[Action]) -> str:
    """The script text of some actions: "a+b; b-"."""
    return "; ".join(a.text for a in actions)
