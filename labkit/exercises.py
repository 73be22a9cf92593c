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

What a learner reads (questions, hints, verdicts) is in the notebook's language (labkit.i18n:
Chinese in notebooks/zh/); the choices' options are matched by their English words (letter()),
and a learner may name the STAT letters' states in English or Chinese.

The checks measured on real processes (the reaper, the Popen loop) live in labkit.live_checks;
the reaper's storm runs in labkit.reaper_trial. This module has the questions and their checks.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import random
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from labkit import actions
from labkit.i18n import N_, _, columns, language
from labkit.live_checks import (  # re-exported: `from labkit import exercises` keeps them
    BLOCKED_SECONDS,
    HANDLER_NAME,
    MARKER,
    REAPER_TIMEOUT,
    RESULT_TAG,
    SETTLE_SECONDS,
    SLEEPER_SECONDS,
    STORM,
    Result,
    check_popen,
    check_reaper,
    diagnose_reaper,
    handler_source,
    run_reaper,
    zombie_children,
)

__all__ = ["BLOCKED_SECONDS", "HANDLER_NAME", "MARKER", "REAPER_TIMEOUT", "RESULT_TAG",
           "SETTLE_SECONDS", "SLEEPER_SECONDS", "STORM", "Choice", "PodExercise", "PsExercise",
           "Result", "Row", "check_pod", "check_popen", "check_ps", "check_ps_rules",
           "check_reaper", "check_tree", "diagnose_reaper", "handler_source", "inverse_question",
           "login", "pod_exercise", "ps_exercise", "run_reaper", "seed_for", "tree_script",
           "zombie_children"]


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
    return Result(_("tree prediction"), list(feedback.problems))


# --- multiple choice, lettered per student -------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A question with answers (a), (b), (c)...; `right` is the index of the right one before the
    letters were shuffled, and `hints` what to say for each wrong one (index -> hint). The texts
    are the English (N_): letters are found by English words, and _() translates them to show."""

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
    """Checks one dict of answers, collecting one problem per wrong or missing answer.
    `questions` are as shown to the learner (translated)."""

    def __init__(self, answers: object, questions: Mapping[str, str]) -> None:
        self.questions = questions
        self.problems: list[str] = []
        self.wrong: set[str] = set()
        self.answers: Mapping[str, object] = answers if isinstance(answers, Mapping) else {}
        if not isinstance(answers, Mapping):
            self.problems.append(_("answers is a dict like {{{key!r}: ...}}, not {answers!r}")
                                 .format(key=next(iter(questions)), answers=answers))
            return
        unknown = sorted(set(answers) - set(questions), key=str)
        if unknown:
            self.problems.append(_("unknown question names {unknown}: the questions are "
                                   "{names}").format(unknown=unknown, names=sorted(questions)))

    def wrong_answer(self, key: str, problem: str) -> None:
        self.wrong.add(key)
        self.problems.append(problem)

    def given(self, key: str) -> object:
        value = self.answers.get(key, Ellipsis)
        if value is Ellipsis:
            self.wrong_answer(key, _("{key}: not answered yet ({question})").format(
                key=key, question=self.questions[key]))
        return value

    def number(self, key: str, right: int, hint: Callable[[int], str]) -> None:
        value = self.given(key)
        if value is Ellipsis:
            return
        got = _number(value)
        if got is None:
            self.wrong_answer(key, _("{key}: answer with a number, not {value!r}").format(
                key=key, value=value))
        elif got != right:
            self.wrong_answer(key, _("{key}: not {got}. {hint}").format(key=key, got=got,
                                                                      hint=hint(got)))

    def choice(self, key: str, choice: Choice, seed: int) -> None:
        value = self.given(key)
        if value is Ellipsis:
            return
        letters = choice.lettered(seed)
        got = _choice(value, letters)
        if got is None:
            self.wrong_answer(key, _("{key}: answer one of {letters}, not {value!r}").format(
                key=key, letters=", ".join(map(repr, letters)), value=value))
        elif choice.index_of(got, seed) != choice.right:
            self.wrong_answer(key, _("{key}: not ({got}). {hint}").format(
                key=key, got=got, hint=_(choice.hints[choice.index_of(got, seed)])))

    def result(self, title: str) -> Result:
        right = len(self.questions) - len(self.wrong & set(self.questions))
        return Result(title, self.problems, _("{right} of {total} answers right").format(
            right=right, total=len(self.questions)))


# --- 1. a ps listing of a pod ------------------------------------------------------------------

class Row(NamedTuple):
    """One line of the listing: `ps -e -o pid,ppid,nlwp,stat,args` (ps(1))."""

    pid: int
    ppid: int
    nlwp: int      # number of threads (tasks): each holds a PID of the namespace
    stat: str
    args: str


PS_COMMAND = "ps -e -o pid,ppid,nlwp,stat,args"
ORPHAN_HINT = N_(
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
    for _row in range(rng.randint(2, 5)):
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
    N_("If node exits now, what becomes of its zombies?"),
    (N_("they stay zombies for ever: their parent is gone"),
     N_("the pause (PID 1) adopts them and reaps them at once"),
     N_("node's own parent, outside the pod, reaps them")),
    1,
    {0: N_("A zombie whose parent exits is an orphan like any other, and is adopted; what does "
           "the adopter do with a zombie? (pause.c's sigreap; the kernel sends it SIGCHLD on "
           "adoption)"),
     2: N_("The new parent is looked for only inside the orphan's PID namespace "
           "(kernel/exit.c find_new_reaper): a PPID of 0 says node's parent is outside it")})
KILL9 = Choice(
    N_("What does `kill -9` on one of the zombies do?"),
    (N_("it removes the zombie"),
     N_("nothing: the zombie has already exited; only a wait by its parent (or its parent's "
        "exit, then init's wait) removes it"),
     N_("it kills the zombie's parent")),
    1,
    {0: N_("What is left in a zombie that a signal could end? It has already exited (kill(2), "
           "wait(2))"),
     2: N_("A signal goes to the process it is sent to (kill(2)), not to its parent")})
WITHOUT_E = Choice(
    N_("In the same container, `ps -o pid,stat,args` (without -e) prints only two lines. Why?"),
    (N_("the other processes exited in between"),
     N_("without -e (or -A, ax), ps shows only the processes of its own user and terminal"),
     N_("the pod's namespace hides the other containers' processes")),
    1,
    {0: N_("Read ps(1) on process selection: which processes does ps show when no selection "
           "option is given?"),
     2: N_("This pod shares one PID namespace: every container sees every process (the "
           "listing above is proof). Read ps(1) on process selection")})

PS_CHOICES = {"after_exit": AFTER_EXIT, "kill9": KILL9, "without_e": WITHOUT_E}


_NO_LINE_START = set("，。；：、）？！”")


def _fill(text: str, width: int, indent: str) -> str:
    """`text` wrapped to `width` columns, later lines indented. English wraps at spaces, as
    textwrap does; Chinese has no spaces between words, so it may break between any two of its
    characters, and each of them counts two columns."""
    if language() == "en":
        return textwrap.fill(text, width, subsequent_indent=indent)
    lines, line = [], ""
    for piece in re.findall(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]|[^\s\u2e80-\u9fff"
                            r"\uf900-\ufaff\uff00-\uffef]+|\s+", text):
        limit = width - (columns(indent) if lines else 0)
        # A line may not start with closing punctuation (，。；：）、): it stays on the last.
        if line and columns(line + piece) > limit and piece not in _NO_LINE_START:
            lines.append(line.rstrip())
            line = "" if piece.isspace() else piece
        else:
            line += piece
    lines.append(line.rstrip())
    return ("\n" + indent).join(lines)


def _lettering(seed: int, key: str) -> int:
    return seed_for(key, str(seed))


def _lettered_questions(choices: Mapping[str, Choice], seed: int) -> dict[str, str]:
    """Each question with its lettered options, as the learner reads them (translated)."""
    return {key: _("{question} {options}").format(
                question=_(c.question),
                options=_("; ").join(_("({letter}) {option}").format(letter=k, option=_(v))
                                     for k, v in c.lettered(_lettering(seed, key)).items()))
            for key, c in choices.items()}


def _letter(choices: Mapping[str, Choice], seed: int, key: str, words: str) -> str:
    found = [k for k, v in choices[key].lettered(_lettering(seed, key)).items() if words in v]
    if len(found) != 1:
        raise ValueError(f"{words!r} is in {len(found)} of the options of {key}, not in one")
    return found[0]


PS_QUESTIONS = {
    "zombies": N_("How many zombies does the listing show?"),
    "must_wait": N_("Which PID must call wait() for those zombies to go away?"),
    "pids_held": N_("How many PIDs of the pod's namespace were in use while this ps ran?"),
    "states": N_("What do the STAT letters Z, S, R and l mean? A dict: {'Z': ..., 'S': ..., "
                 "...}"),
}
PS_RULE_KEYS = ("adopter", "after_exit", "kill9", "without_e")
# A learner of either edition may answer in either language.
_STATE_WORDS = {"Z": ("zombie", "defunct", "僵尸"), "S": ("sleep", "interruptible", "睡眠", "休眠"),
                "R": ("run", "运行"), "l": ("thread", "线程")}


@dataclass(frozen=True)
class PsExercise:
    """A listing of a pod for one student, and its questions (never its answers)."""

    seed: int
    rows: tuple[Row, ...]
    orphan: tuple[int, int]          # (the PID that exits, the orphan whose parent it is)

    @property
    def listing(self) -> str:
        head = f"$ {PS_COMMAND}      " + _("(inside the pod, shareProcessNamespace: true)")
        lines = [head, f"{'PID':>7} {'PPID':>7} NLWP STAT COMMAND"]
        lines += [f"{r.pid:>7} {r.ppid:>7} {r.nlwp:>4} {r.stat:<4} {r.args}" for r in self.rows]
        return "\n".join(lines)

    @property
    def questions(self) -> dict[str, str]:
        gone, orphan = self.orphan
        name = next(os.path.basename(r.args.split()[0]) for r in self.rows if r.pid == gone)
        rules = {"adopter": _("If PID {gone} ({name}) exits now, all its threads with it, "
                              "which PID becomes the parent of PID {orphan}?").format(
                                  gone=gone, name=name, orphan=orphan)}
        rules.update(_lettered_questions(PS_CHOICES, self.seed))
        return {**{k: _(q) for k, q in PS_QUESTIONS.items()}, **rules}

    def letter(self, key: str, words: str) -> str:
        """The letter of the option of question `key` that contains `words`."""
        return _letter(PS_CHOICES, self.seed, key, words)

    def text(self) -> str:
        width = max(map(len, self.questions))
        return self.listing + "\n\n" + "\n".join(
            f"{k:>{width}}: {_fill(q, 96 - width, ' ' * (width + 2))}"
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
    if got == 1:
        return _("PID 1 reaps the orphans it adopts; these zombies still have a living parent. "
                 "Only a zombie's parent can reap it (wait(2)): which column names it?")
    return _("Only a zombie's parent can reap it (wait(2)): which column names it?")


def check_ps(answers: Mapping[str, object], who: str | None = None) -> Result:
    """Check the answers to PS_QUESTIONS on this student's listing; a wrong one gets a hint
    toward the rule, never the right value."""
    ex = ps_exercise(who)
    truth = _ps_truth(ex)
    check = _Answers(answers, {k: q for k, q in ex.questions.items() if k in PS_QUESTIONS})
    check.number("zombies", truth["zombies"], lambda got: _(
        "Count the lines whose STAT begins with Z (ps(1) PROCESS STATE CODES; ps also marks "
        "them <defunct>). A line in S is alive, whatever its command"))
    check.number("must_wait", truth["must_wait"], _must_wait_hint)
    check.number("pids_held", truth["pids_held"], lambda got: _(
        "Count tasks, not lines: every thread holds a PID of the namespace (the NLWP column; "
        "the l in STAT; notebook 07, proc(5) /proc/PID/task), a zombie holds its PID until it "
        "is reaped, and ps itself held one while it ran"))
    states = check.given("states")
    if states is not Ellipsis and not isinstance(states, Mapping):
        check.wrong_answer("states", _("states: a dict like {{'Z': '...', ...}}, not "
                                       "{states!r}").format(states=states))
    elif states is not Ellipsis:
        for letter, words in _STATE_WORDS.items():
            said = states.get(letter)
            if not isinstance(said, str) or not any(w in said.lower() for w in words):
                check.wrong_answer("states", _(
                    "states: {letter} does not mean {said!r}: see ps(1) PROCESS STATE CODES "
                    "(and proc(5), /proc/PID/stat field 3)").format(letter=letter, said=said))
    return check.result(_("ps listing"))


def check_ps_rules(answers: Mapping[str, object], who: str | None = None) -> Result:
    """Check the answers to the listing's rule questions (adopter and the choices)."""
    ex = ps_exercise(who)
    questions = {k: v for k, v in ex.questions.items() if k in PS_RULE_KEYS}
    check = _Answers(answers, questions)
    check.number("adopter", _ps_truth(ex)["adopter"], lambda got: (
        _("0 is not a process. {rule}").format(rule=_(ORPHAN_HINT)) if got == 0 else
        _(ORPHAN_HINT)))
    for key, choice in PS_CHOICES.items():
        check.choice(key, choice, _lettering(ex.seed, key))
    return check.result(_("ps rules"))


# --- 3. pods, PID 1 and PID budgets (notebooks 05-07) ---------------------------------------

SIGTERM = Choice(
    N_("A container's PID 1 installs no handler for SIGTERM, and `docker stop` sends it "
       "SIGTERM. What happens?"),
    (N_("it exits at once, as any process would"),
     N_("nothing at first: the kernel drops a signal the PID 1 of a namespace has no handler "
        "for; after the grace period (10 s by default) docker sends SIGKILL, which it cannot "
        "refuse"),
     N_("the kernel kills every process of the container at once")),
    1,
    {0: N_("Is the PID 1 of a PID namespace like any process when a signal comes? Read "
           "pid_namespaces(7) on the namespace's init and signals (notebook 05)"),
     2: N_("The kernel kills the rest of a namespace when its PID 1 exits (pid_namespaces(7)); "
           "does a signal without a handler make PID 1 exit?")})
ISOLATED = Choice(
    N_("In a pod without shareProcessNamespace (the default), a process in the app container "
       "is orphaned, and nothing in that container is a subreaper. Which process adopts it?"),
    (N_("the pause, PID 1 of the pod"),
     N_("PID 1 of the app container's own PID namespace: the container's main process"),
     N_("the kubelet")),
    1,
    {0: N_("Do the pause and the app share a PID namespace here? Only with "
           "shareProcessNamespace: true (Kubernetes docs, 'Share Process Namespace between "
           "Containers in a Pod'; notebook 05)"),
     2: N_("The new parent is looked for inside the orphan's PID namespace (kernel/exit.c "
           "find_new_reaper): is the kubelet in it?")})
TEARDOWN = Choice(
    N_("How does the kubelet stop a pod?"),
    (N_("it kills the pause, and the kernel then kills everything else in the pod"),
     N_("it stops each container (its STOPSIGNAL, a grace period, 30 s by default, then "
        "SIGKILL), and only then the sandbox with its pause"),
     N_("it sends SIGKILL to every process of the pod at once")),
    1,
    {0: N_("That is the kernel's rule for a PID namespace whose PID 1 exits "
           "(pid_namespaces(7)), not the kubelet's procedure: read 'Pod termination' in the "
           "Kubernetes docs (notebook 06)"),
     2: N_("Would a database in the pod get a chance to write its files? Read 'Pod "
           "termination' in the Kubernetes docs: is there a grace period?")})
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
        budget = _("A pod's cgroup has pids.max = {pids_max}. In it run the pause (one thread), "
                   "a server with {threads} threads, and a worker (one thread) that forks "
                   "children which exit at once and are never waited for. How many children can "
                   "the worker fork before fork(2) fails with EAGAIN?").format(
                       pids_max=self.pids_max, threads=self.threads)
        return {"budget": budget, **_lettered_questions(POD_CHOICES, self.seed)}

    def letter(self, key: str, words: str) -> str:
        """The letter of the option of question `key` that contains `words`."""
        return _letter(POD_CHOICES, self.seed, key, words)

    def text(self) -> str:
        return "\n".join(f"{k}: " + _fill(q, 88, "    ") for k, q in self.questions.items())

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
    check.number("budget", ex.pids_max - ex.threads - 2, lambda got: _(
        "A zombie keeps its PID until it is reaped, and the pids controller counts every task "
        "of the cgroup: each thread of each process, the pause and the worker included "
        "(cgroups(7); notebook 07). fork fails when one more task would pass pids.max"))
    for key, choice in POD_CHOICES.items():
        check.choice(key, choice, _lettering(ex.seed, key))
    return check.result(_("pods, PID 1 and budgets"))
