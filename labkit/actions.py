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
show Linux's own rules, which are not the simulator's: an orphan goes to another live thread of
its parent, else to the nearest living ancestor that is a child subreaper, else to PID 1 of its
PID namespace (prctl(2) PR_SET_CHILD_SUBREAPER, pid_namespaces(7); kernel/exit.c
find_new_reaper). The actors are single-threaded and none is a subreaper, so in a lab the orphan
goes to the lab root, "init": a grandparent adopts only when it is that subreaper or that init.
A process that exits stays a zombie until its parent waits for it; init reaps what it adopts.

A script is checked in full (a dry run over its own tree) before any process is created, and a
bad action is named with its position: ScriptError("action 3 'b+b': b cannot fork itself").

    run = labkit.actions.run("a+b; b+c; b-")        # a Run: run.steps, run.final, run.text()
    labkit.actions.random_script(seed=3)            # a reproducible problem (not fork.py -s 3's)
    labkit.actions.check({"c": "init", "b": "a"}, run, states={"b": "zombie"})
    q = labkit.actions.inverse(seed=3)              # fork.py -t: the trees, guess the actions

The language (parse, the dry run, render, random scripts) is labkit.script; running a script on
real processes is labkit.action_runner; this module checks predictions against what the kernel
did, and is the public face of all three (`from labkit import actions`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from labkit import checks
from labkit.action_runner import ANSWER_TIMEOUT, SETTLE_TIMEOUT, Run, Step, run
from labkit.i18n import N_, _, language
from labkit.observe import ZOMBIE
from labkit.script import (
    ADOPTION_RULE,
    FIRST,
    INIT,
    MAX_ACTIONS,
    NAMES,
    Action,
    ScriptError,
    parse,
    random_script,
    render,
    script_of,
)
from labkit.verdict import Verdict

__all__ = ["ADOPTION_RULE", "ANSWER_TIMEOUT", "FIRST", "INIT", "MAX_ACTIONS", "NAMES",
           "SETTLE_TIMEOUT", "Action", "Feedback", "Question", "Run", "ScriptError", "Step",
           "check", "check_actions", "inverse", "parse", "parse_tree", "random_script", "render",
           "run", "script_of"]

# --- checking predictions ----------------------------------------------------------------------


@dataclass
class Feedback(Verdict):
    """What was wrong with a prediction, one line per problem; str() is "correct" if nothing."""

    problems: list[str]
    expected: dict[str, tuple[str, str]]
    run: Run | None = None
    # The language its problems were written in: str() says the verdict in the same one.
    lang: str = field(default_factory=language, repr=False, compare=False)

    def _text(self) -> str:
        if self.correct:
            return _("correct")
        return _("not quite:") + "\n" + "\n".join(f"- {p}" for p in self.problems)


_ZOMBIE_WORDS = {"zombie", "z", "defunct", "exited"}
_ALIVE_WORDS = {"alive", "running", "sleeping", "live", "r", "s", ""}


def _state(word: object, name: str) -> str:
    if not isinstance(word, str) or word.lower() not in _ZOMBIE_WORDS | _ALIVE_WORDS:
        raise ValueError(_("the state of {name} must be 'zombie' or 'alive' (or 'running', "
                           "'sleeping'), not {word!r}").format(name=name, word=word))
    return ZOMBIE if word.lower() in _ZOMBIE_WORDS else "alive"


def _parent(word: object, name: str) -> str:
    if isinstance(word, str) and word.lower() in (INIT, "root"):
        return INIT
    if isinstance(word, str) and len(word) == 1 and word in NAMES and word != name:
        return word
    raise ValueError(_("the parent of {name} must be another process's letter or 'init', not "
                       "{word!r}").format(name=name, word=word))


def parse_tree(text: str) -> dict[str, tuple[str, str]]:
    """A tree written as Run.text() prints it (the last one, if there are several) as
    letter -> (parent, "zombie" or "alive"). Indentation gives the parent; "(zombie)" a state;
    a top line `init` is optional."""
    if not isinstance(text, str):
        raise TypeError(_("a tree is text, not {text!r}").format(text=text))
    tree: dict[str, tuple[str, str]] = {}
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^(?P<lead>[\s│├└─|`+\-_\\]*)(?P<name>[A-Za-z]+)(?P<rest>[^:?]*)$", line)
        if not line.strip() or any(mark in line for mark in ":?：？"):
            continue  # blank, or a heading ("Action: a forks b", "Process Tree?", translated)
        if m is None:
            raise ValueError(_("line {number} of the tree, {line!r}, is not a process: write "
                               "one letter per line, indented under its parent").format(
                                   number=number, line=line.strip()))
        column, name = len(m["lead"]), m["name"]
        if name == INIT:
            tree, stack = {}, [(column, INIT)]  # a new tree starts: keep only the last
            continue
        if not (len(name) == 1 and name in NAMES):
            raise ValueError(_("line {number} of the tree: names must be one lowercase letter "
                               "or init, not {name!r}").format(number=number, name=name))
        if name in tree:
            raise ValueError(_("line {number} of the tree: {name} appears twice").format(
                number=number, name=name))
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
                raise ValueError(_("names must be one lowercase letter, not {name!r}")
                                 .format(name=name))
            if isinstance(value, (tuple, list)) and len(value) == 2:
                tree[name] = (_parent(value[0], name), _state(value[1], name))
            else:
                tree[name] = (_parent(value, name), "alive")
    else:
        raise TypeError(_("a prediction is a dict of parents like {{'b': 'a', 'c': 'init'}} or "
                          "a tree as text, not {prediction!r}").format(prediction=prediction))
    for name, word in (states or {}).items():
        # A state for a process whose parent was not predicted: only the state is checked.
        tree[name] = (tree[name][0] if name in tree else None, _state(word, name))
    return tree


def _alive_word(state: str) -> str:
    return _("a zombie") if state == ZOMBIE else _("alive")


def _history(run: Run, name: str) -> list[tuple[int, str, str]]:
    assert run.model is not None
    proc = run.model.procs.get(name)
    return proc.events if proc is not None else []


def _why_parent(run: Run, name: str, parent: str, guessed: str | None) -> str:
    events = _history(run, name)
    adopted = [e for e in events if e[1] == "adopted"]
    if parent == INIT and adopted:
        i, _what, old = adopted[-1]
        said = dict(name=name, old=old, i=i, guessed=guessed)
        if guessed is None or guessed in (INIT, old):
            return _("{name}'s parent {old} exited (action {i}), so {name} was adopted by init "
                     "(the lab root)").format(**said)
        grandparent = next((e[2] for e in _history(run, old) if e[1] == "exited"), None)
        if guessed == grandparent:
            return _("{name}'s parent {old} exited (action {i}), so {name} was adopted by init "
                     "(the lab root), not by {guessed} ({rule})").format(
                         rule=_(ADOPTION_RULE), **said)
        return _("{name}'s parent {old} exited (action {i}), so {name} was adopted by init "
                 "(the lab root), not by {guessed}").format(**said)
    if name == FIRST:
        return _("{first} is the first process: init (the lab root) is its parent").format(
            first=FIRST)
    forked = next((e for e in events if e[1] == "forked"), None)
    if forked is None:
        return _("{name} was never forked").format(name=name)
    return _("{parent} forked {name} (action {i}) and {parent} has not exited").format(
        parent=forked[2], name=name, i=forked[0])


def _why_state(run: Run, name: str, state: str, parent: str) -> str:
    exited = next((e for e in _history(run, name) if e[1] == "exited"), None)
    if state != ZOMBIE:
        return _("{name} has not exited").format(name=name)
    assert exited is not None
    if parent == INIT:
        return _("{name} exited (action {i}) and this lab's init does not reap, so it stays a "
                 "zombie").format(name=name, i=exited[0])
    return _("{name} exited (action {i}) and its parent {parent} has not waited for it, so it "
             "stays a zombie").format(name=name, i=exited[0], parent=parent)


def _why_gone(run: Run, name: str) -> str:
    events = _history(run, name)
    reaped = next((e for e in events if e[1] == "reaped"), None)
    if reaped is None:
        return _("there is no process {name} in this script").format(name=name)
    exited = next(e for e in events if e[1] == "exited")
    i, _what, by = reaped
    if by != INIT:
        return _("{name} exited (action {exited}) and {by}'s wait reaped it (action {i})").format(
            name=name, exited=exited[0], by=by, i=i)
    adopted = [e for e in events if e[1] == "adopted"]
    if adopted and adopted[-1][0] == i and exited[0] < i:
        return _("{name} was a zombie when its parent {parent} exited (action {i}): init "
                 "adopted it and reaped it at once").format(name=name, parent=adopted[-1][2],
                                                             i=i)
    return _("{name} exited (action {exited}) while its parent was init, which reaped it at "
             "once").format(name=name, exited=exited[0])


def _compare(run: Run, guess: Mapping[str, tuple[str | None, str]],
             actual: Mapping[str, tuple[str, str]], implied_first: bool) -> list[str]:
    problems = []
    for name, (parent, state) in actual.items():
        state = ZOMBIE if state == ZOMBIE else "alive"
        if name not in guess:
            if implied_first and name == FIRST and parent == INIT and state != ZOMBIE:
                continue  # `a` under init, alive: the start of every script
            why = (_why_state(run, name, state, parent) if state == ZOMBIE else
                   _why_parent(run, name, parent, None))
            text = (_("missing: {name} is still there, {state}, under init: {why}")
                    if parent == INIT else
                    _("missing: {name} is still there, {state}, a child of {parent}: {why}"))
            problems.append(text.format(name=name, state=_alive_word(state), parent=parent,
                                        why=why))
            continue
        guessed_parent, guessed_state = guess[name]
        if guessed_parent is not None and guessed_parent != parent:
            problems.append(_("wrong parent: {name}'s parent is {parent}, not {guessed}: {why}")
                            .format(name=name, parent=parent, guessed=guessed_parent,
                                    why=_why_parent(run, name, parent, guessed_parent)))
        if guessed_state != state:
            problems.append(_("wrong state: {name} is {state}, not {guessed}: {why}").format(
                name=name, state=_alive_word(state), guessed=_alive_word(guessed_state),
                why=_why_state(run, name, state, parent)))
    for name in guess:
        if name not in actual:
            problems.append(_("extra: {name} is gone: {why}").format(name=name,
                                                                     why=_why_gone(run, name)))
    return problems


_RULES = N_("Did it exit? Then it stays a zombie until its parent waits (wait(2)). Did its "
            "parent exit first? Then it was an orphan, and {adoption_rule}. Init reaps what it "
            "adopts, at once")


def _involving(actions: Sequence[Action], names: set[str]) -> str:
    which = [str(a.index) for a in actions if {a.actor, a.target} & names]
    if len(which) > 1:
        return _("actions {some} and {last}").format(some=_(", ").join(which[:-1]),
                                                      last=which[-1])
    return _("action {i}").format(i=which[0]) if which else _("no action")


def _hints(result: Run, guess: Mapping[str, tuple[str | None, str]],
           actual: Mapping[str, tuple[str, str]]) -> list[str]:
    """What is wrong with a guess, as pointers to the rules: never the right parent or state."""
    problems = []
    for name, (parent, state) in actual.items():
        if name not in guess:
            continue
        guessed_parent, guessed_state = guess[name]
        if (guessed_parent not in (None, parent)
                or (guessed_state == ZOMBIE) != (state == ZOMBIE)):
            names = {name} | ({guessed_parent} if guessed_parent else set())
            problems.append(_("{name} is not as you wrote it. Follow {name} and its parent "
                              "through the script ({actions}). {rules}").format(
                                  name=name, actions=_involving(result.actions, names),
                                  rules=_(_RULES).format(adoption_rule=_(ADOPTION_RULE))))
    missing = [n for n, (p, s) in actual.items() if n not in guess
               and not (n == FIRST and p == INIT and s != ZOMBIE)]
    if missing:
        text = (_("{n} process is still there that your prediction leaves out: a process is "
                  "gone only once it has been reaped, by its parent's wait or by init")
                if len(missing) == 1 else
                _("{n} processes are still there that your prediction leaves out: a process "
                  "is gone only once it has been reaped, by its parent's wait or by init"))
        problems.append(text.format(n=len(missing)))
    for name in guess:
        if name not in actual:
            problems.append(_("{name} is not there at the end. Which process reaped it, and at "
                              "which action? (A zombie is reaped by its parent's wait; a "
                              "process whose parent is init is reaped at once when it exits)")
                            .format(name=name) if name in result.pids else
                            _("there is no process {name} in this script").format(name=name))
    return problems


def check(prediction: Mapping[str, object] | str, run_or_script: Run | str | Sequence[str],
          states: Mapping[str, str] | None = None, mode: str = "auto",
          reveal: bool = True) -> Feedback:
    """Compare a prediction of the final tree with what the kernel did.

    `prediction`: {letter: parent} ("init" for the lab root; `a` may be left out), with values
    (parent, state) or a `states` dict ({"c": "zombie"}) for zombies; or a tree as text in the
    format Run.text() prints. `run_or_script`: a Run, or a script to run now (in a new lab).
    `reveal=False` (graded exercises): the feedback points to the rules and names what is wrong,
    never the right parent or state, and keeps neither the real tree nor the run.
    """
    reveal = checks.flag(reveal, "reveal")
    guess = _prediction(prediction, states)
    result = run_or_script if isinstance(run_or_script, Run) else run(run_or_script, mode=mode)
    if not reveal:
        return Feedback(_hints(result, guess, result.final), {}, None)
    problems = _compare(result, guess, result.final, implied_first=True)
    return Feedback(problems, dict(result.final), result)


# --- the inverse question (fork.py -t) ---------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """The trees of a seeded run without its actions: which actions made them?

    It keeps what the learner is shown (the trees, action by action, with the actions hidden)
    and nothing of the run that made them: no script, no answer to read off.
    """

    seed: int | str
    trees: tuple[dict[str, tuple[str, str]], ...]   # letter -> (parent, "zombie" or "alive")
    _text: str = field(repr=False)
    _final_text: str = field(repr=False)

    @property
    def tree(self) -> dict[str, tuple[str, str]]:
        """The final tree."""
        return dict(self.trees[-1])

    def text(self, final_only: bool = False) -> str:
        return self._final_text if final_only else self._text

    def __str__(self) -> str:
        return self.text()


def _alive_or_zombie(structure: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    return {n: (p, ZOMBIE if s == ZOMBIE else "alive") for n, (p, s) in structure.items()}


def inverse(seed: int | str, actions: int = 5, fork_percentage: float = 0.7, wait: bool = True,
            mode: str = "auto", orphan: bool = False) -> Question:
    """fork.py -t: the trees of random_script(seed, ...) run on real processes, actions hidden.
    Answer with check_actions(your_actions, question)."""
    done = run(random_script(seed, actions, fork_percentage, wait, orphan), mode=mode)
    steps = ([done.start] if done.start else []) + done.steps
    return Question(seed, tuple(_alive_or_zombie(s.structure) for s in steps),
                    done.text(actions=False), done.text(actions=False, final_only=True))


def check_actions(actions: str | Sequence[str],
                  tree: Question | Run | Mapping[str, object] | str,
                  mode: str = "auto") -> Feedback:
    """Run the learner's actions on real processes and compare the final tree with `tree` (a
    Question, a Run, a {letter: parent or (parent, state)} dict, or a tree as text). Any
    actions that lead to the same tree are right."""
    if isinstance(tree, Question):
        tree = tree.tree
    target = (dict(tree.final) if isinstance(tree, Run) else
              {n: (p, s) for n, (p, s) in _prediction(tree, None).items() if p is not None})
    target = {n: (p, ZOMBIE if s == ZOMBIE else "alive") for n, (p, s) in target.items()}
    mine = run(actions, mode=mode)
    problems = []
    for name, (parent, state) in target.items():
        got = mine.final.get(name)
        said = dict(name=name, state=_alive_word(state), parent=parent)
        if got is None:
            problems.append(_("{name} should be there ({state}, under {parent}) but your "
                              "actions leave no {name}: {why}").format(
                                  why=_why_gone(mine, name), **said) if name in mine.pids else
                            _("{name} should be there ({state}, under {parent}) but your "
                              "actions leave no {name}").format(**said))
            continue
        if got[0] != parent:
            problems.append(_("{name} should be under {parent}; your actions leave it under "
                              "{got}: {why}").format(got=got[0], why=_why_parent(
                                  mine, name, got[0], None), **said))
        if (got[1] == ZOMBIE) != (state == ZOMBIE):
            problems.append(_("{name} should be {state}; your actions leave it {got}: {why}")
                            .format(got=_alive_word(got[1]),
                                    why=_why_state(mine, name, got[1], got[0]), **said))
    for name, (parent, state) in mine.final.items():
        if name not in target and not (name == FIRST and parent == INIT):
            problems.append(_("your actions leave {name} ({state}, under {parent}), which the "
                              "tree does not have").format(name=name, state=_alive_word(state),
                                                           parent=parent))
    return Feedback(problems, target, mine)
