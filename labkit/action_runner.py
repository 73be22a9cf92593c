"""Running a script of labkit.script on real processes, and reading each tree from the kernel.

Every letter is a real process (labkit.actor), started in a lab and driven over a Unix socket;
after each action the runner takes snapshots until the kernel shows what the action implies
(a zombie, an adoption, a reaped process gone). It drives the lab through Lab's public methods
only, as a notebook could.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from labkit import checks
from labkit.errors import AgentError, ForkRefused
from labkit.i18n import _
from labkit.lab import MODES, Lab
from labkit.observe import ZOMBIE, Snapshot
from labkit.script import FIRST, INIT, Action, Model, parse, render, script_of

SETTLE_TIMEOUT = 10.0   # seconds the kernel may take to show what an action implies
ANSWER_TIMEOUT = 10.0   # seconds an actor may take to answer


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
    model: Model | None = field(default=None, repr=False)
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
        # A heading has a colon or a question mark (ASCII or full-width): parse_tree skips it.
        heading = (_("Process Tree (init is the lab root, pid {pid}: PID 1 of the lab's PID "
                     "namespace):") if self.mode == "pid-namespace" else
                   _("Process Tree (init is the lab root, pid {pid}: a child subreaper):"))
        assert self.start is not None
        out = [heading.format(pid=self.root_pid), self.start.tree, ""]
        for step in self.steps:
            assert step.action is not None
            out.append(_("Action: {action}").format(action=step.action.describe()) if actions
                       else _("Action?"))
            if not final_only:
                out += [step.tree if trees else _("Process Tree?"), ""]
        if final_only:
            out += ["", _("Final Process Tree:") if trees else _("Final Process Tree?")]
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
    lab.room_for(1 + sum(a.op == "fork" for a in actions))
    model = Model(lab.reap)
    actors = _Actors()
    result = Run(script_of(actions), actions, lab.mode, lab.root_pid, model=model,
                 _actors=actors)
    finalizer = weakref.finalize(result, actors.close)
    try:
        lab.start_actor(actors.address, FIRST)
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
    lab.know_pid(inside, host)  # so lab.events names the actors the root reaps


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
        lab.room_for(1)
        link.send(f"fork {action.target}")
    else:
        link.send("wait" if action.target is None else f"wait {result.ns_pids[action.target]}")
    answer = (link.line() or "").split()
    if answer[:1] == ["err"] and len(answer) == 2 and int(answer[1]) == errno.EAGAIN:
        raise ForkRefused(errno.EAGAIN, os.strerror(errno.EAGAIN), [],
                          _("action {index} {action!r}: the lab's PID budget is spent").format(
                              index=action.index, action=action.text))
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


