"""The action language of labkit.actions (OSTEP's fork.py, plus `x~`, a wait): its syntax,
parsed with the position of a bad action; the dry run; the tree as text; seeded random scripts.

Nothing here creates a process: `Model` predicts, action by action, what Linux will do. It
checks a script in full before labkit.action_runner runs it on real processes, and explains the
trees the kernel shows. Orphans go to the lab root, "init": the actors are single-threaded and
none is a subreaper (kernel/exit.c find_new_reaper).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from labkit import checks
from labkit.i18n import N_, _
from labkit.observe import ZOMBIE

INIT = "init"           # the lab root, as the trees name it
NAMES = "abcdefghijklmnopqrstuvwxyz"
FIRST = "a"
MAX_ACTIONS = 60
# Who adopts an orphan, as the kernel decides it (kernel/exit.c find_new_reaper).
ADOPTION_RULE = N_("Linux gives an orphan to another live thread of its parent, else to the "
                 "nearest living ancestor that is a child subreaper, else to PID 1 of its PID "
                 "namespace (prctl(2), kernel/exit.c find_new_reaper); no actor is a subreaper, "
                 "so here that is init: a grandparent adopts only when it is that subreaper or "
                 "that init")

_SYNTAX = re.compile(r"^(?P<x>[^+\-~]*)(?:(?P<op>[+~])(?P<y>[^+\-~]*)|(?P<exit>-))$")
_HELP = N_("use x+y (x forks y), x- (x exits), x~ (x waits for its exited children) "
         "or x~y (x waits for y)")


class ScriptError(ValueError):
    """A script that cannot run, refused before any process exists. `index` is the action's
    position (1-based; 0 for the script as a whole), `action` its text, `reason` what is wrong."""

    def __init__(self, index: int, action: str, reason: str) -> None:
        self.index, self.action, self.reason = index, action, reason
        if index:
            reason_text = _("action {index} {action!r}: {reason}").format(
                index=index, action=action, reason=reason)
        else:
            reason_text = reason
        super().__init__(reason_text)


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
            text = _("{actor} forks {target}")
        elif self.op == "exit":
            text = _("{actor} exits")
        else:
            text = _("{actor} waits for {target}") if self.target else _("{actor} waits")
        return text.format(actor=self.actor, target=self.target)


def parse(script: str | Sequence[str], reaping_init: bool = True) -> list[Action]:
    """The actions of `script`, checked in full by a dry run; ScriptError names a bad one.

    `script`: "a+b; b+c; b-" (";" or "," between actions), or a list of actions.
    `reaping_init=False`: the lab root does not reap (Lab(reap=False)), which changes nothing
    about what is valid but is passed on to the dry run for the expected trees.
    """
    actions = _syntax(script)
    model = Model(reaping_init)
    for action in actions:
        model.apply(action)
    return actions


def _syntax(script: str | Sequence[str]) -> list[Action]:
    if isinstance(script, str):
        texts = re.split(r"[;,\n]", script)
    elif isinstance(script, Sequence) and all(isinstance(t, str) for t in script):
        texts = list(script)
    else:
        raise TypeError(_("a script is a string like 'a+b; b-' or a list of actions like "
                          "['a+b', 'b-'], not {script!r}").format(script=script))
    texts = ["".join(t.split()) for t in texts]
    texts = [t for t in texts if t]
    if len(texts) > MAX_ACTIONS:
        raise ScriptError(0, "", _("a script has at most {most} actions, not {n}").format(
            most=MAX_ACTIONS, n=len(texts)))
    actions = []
    for index, text in enumerate(texts, 1):
        m = _SYNTAX.match(text)
        if m is None:
            raise ScriptError(index, text, _("not an action: {help}").format(help=_(_HELP)))
        names = [m["x"]] + ([m["y"]] if m["op"] == "+" or m["y"] else [])
        for name in names:
            if not (len(name) == 1 and name in NAMES):
                reason = (_("names must be one lowercase letter, a to z (not {name!r})") if name
                          else _("names must be one lowercase letter, a to z (and one is "
                                 "missing)"))
                raise ScriptError(index, text, reason.format(name=name))
        op = "fork" if m["op"] == "+" else "exit" if m["exit"] else "wait"
        actions.append(Action(index, text, op, m["x"], m["y"] or None))
    return actions


# --- the dry run: what Linux will do, predicted, to check a script and explain the trees --------


@dataclass
class Proc:
    parent: str
    state: str = "alive"                 # "alive", "zombie" or "gone" (reaped)
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (action, what, who)


class Model:
    """The script's own tree, action by action; refuses an action that cannot happen."""

    def __init__(self, reaping_init: bool = True) -> None:
        self.reaping_init = reaping_init
        self.procs: dict[str, Proc] = {FIRST: Proc(INIT)}

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

    def _actor(self, action: Action) -> Proc:
        proc = self.procs.get(action.actor)
        if proc is None:
            raise ScriptError(action.index, action.text, _("no process named {name}").format(
                name=action.actor))
        # One sentence per verb: a translation cannot take the verb as a word to slot in.
        said = {("zombie", "fork"): N_("{name} has exited (it is a zombie) and cannot fork"),
                ("zombie", "exit"): N_("{name} has exited (it is a zombie) and cannot exit"),
                ("zombie", "wait"): N_("{name} has exited (it is a zombie) and cannot wait"),
                ("gone", "fork"): N_("{name} has exited and been reaped: it cannot fork"),
                ("gone", "exit"): N_("{name} has exited and been reaped: it cannot exit"),
                ("gone", "wait"): N_("{name} has exited and been reaped: it cannot wait")}
        if proc.state in ("zombie", "gone"):
            raise ScriptError(action.index, action.text,
                              _(said[proc.state, action.op]).format(name=action.actor))
        return proc

    def apply(self, action: Action) -> None:
        i, text, x, y = action.index, action.text, action.actor, action.target
        if action.op == "fork":
            if x == y:
                raise ScriptError(i, text, _("{x} cannot fork itself").format(x=x))
            self._actor(action)
            if y in self.procs:
                raise ScriptError(i, text, _("{y} already exists (names are not reused)")
                                  .format(y=y))
            self.procs[y] = Proc(x, events=[(i, "forked", x)])
        elif action.op == "exit":
            self._actor(action)
            self._exit(i, x)
        else:
            self._actor(action)
            if y is None:
                for child in self.children(x, "zombie"):
                    self._reap(i, child, x)
                return
            child = self.procs.get(y)
            if child is None:
                raise ScriptError(i, text, _("no process named {name}").format(name=y))
            if child.parent != x:
                raise ScriptError(i, text, _("{y} is not {x}'s child (its parent is {parent}): "
                                             "a process waits only for its own children")
                                  .format(y=y, x=x, parent=child.parent))
            if child.state == "gone":
                raise ScriptError(i, text, _("{y} has already been reaped").format(y=y))
            if child.state == "alive":
                raise ScriptError(i, text, _("{y} is still running: {x} would wait for ever (the "
                                             "script does one action at a time); let {y} exit "
                                             "first ({y}-)").format(y=y, x=x))
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


def render(structure: Mapping[str, tuple[str, str]]) -> str:
    """The tree as text, OSTEP's "fancy" style, init at the top and zombies marked:

        init
        ├── a
        │   └── b (zombie)
        └── c
    """
    kids: dict[str, list[str]] = {}
    for name, (parent, _state) in structure.items():
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
                  wait: bool = True, orphan: bool = False) -> str:
    """A valid script of `actions` actions, the same for the same arguments, as fork.py -s
    SEED gives one. The generator is labkit's own: a seed here does not give the script that
    OSTEP's fork.py -s gives for the same number.

    Forks name the next unused letter (b, c, ...); `a` never exits (as in fork.py); with
    `wait`, some of the other actions are waits by a process that has a zombie child. With
    `orphan`, some process exits while a child of its is still there (alive or a zombie), so
    the script asks who adopts: drafts without one are drawn again, from the same generator.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, str)):
        raise TypeError(_("seed must be an int (or a str), not {seed!r}").format(seed=seed))
    actions = checks.count(actions, "actions", low=1, high=MAX_ACTIONS)
    if isinstance(fork_percentage, bool) or not isinstance(fork_percentage, (int, float)) \
            or not 0.0 < fork_percentage <= 1.0:
        raise ValueError(_("fork_percentage must be a number in (0, 1], not {value!r}").format(
            value=fork_percentage))
    wait = checks.flag(wait, "wait")
    orphan = checks.flag(orphan, "orphan")
    rng = random.Random(seed)
    for _attempt in range(1000):
        texts, model = _draft(rng, actions, fork_percentage, wait)
        if not orphan or any(e[1] == "adopted" for p in model.procs.values() for e in p.events):
            return "; ".join(texts)
    raise ValueError(_("no script of {actions} actions with an orphan was found for seed "
                       "{seed!r}: give more actions or a higher fork_percentage").format(
                           actions=actions, seed=seed))


def _draft(rng: random.Random, actions: int, fork_percentage: float,
           wait: bool) -> tuple[list[str], Model]:
    model = Model()
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
    return texts, model



def script_of(actions: Iterable[Action]) -> str:
    """The script text of some actions: "a+b; b-"."""
    return "; ".join(a.text for a in actions)
