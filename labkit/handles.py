"""Parent: the handle a notebook holds on one lab parent process (`lab.parent()` makes it).

Not labkit.parent, which is the program that runs AS the parent inside the lab (standard library
only, the policies); this is the kernel's side, which drives that process through its lab's
agent. It is Lab's close companion: it sends its requests through the lab's private channel and
lock (labkit.lab), and the refusals of both (a fork past the PID budget, a parent gone) are
worded by _refusal here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from labkit import checks, linux
from labkit.errors import AgentError, ForkRefused, ParentGoneError
from labkit.i18n import _

if TYPE_CHECKING:
    from labkit.lab import Lab

MAX_LIFETIME = 3600.0   # every child's life is bounded: nothing of a lab outlives an hour


def _refusal(reply: dict, created: list[int], lab: Lab | None = None, what: str = "",
             exiting: Sequence[int] = ()) -> Exception:
    if reply.get("gone"):
        return ParentGoneError(reply["error"])
    if reply.get("errno") is not None:
        advice = lab._budget_advice(reply["errno"], exiting) if lab is not None else None
        return ForkRefused(reply["errno"], reply["error"], created, what + (
            advice or _("Zombies and live processes hold PIDs: reap them or let their parent "
                        "exit, then try again")))
    return AgentError(reply.get("error", _("the lab's agent refused the request")))


class Parent:
    """A lab parent process. Its policy decides what happens to its exited children."""

    def __init__(self, lab: Lab, pid: int, policy: str) -> None:
        self._lab = lab
        self.pid = pid
        self.policy = policy
        self.alive = True

    def _check(self) -> None:
        self._lab._check_open()
        if not self.alive:
            raise ParentGoneError(_("parent {pid} has exited; make a new one with lab.parent()")
                                  .format(pid=self.pid))

    def fork(self, n: int = 1, lifetime: float = 0.0) -> list[int]:
        """Fork n children that each exit after `lifetime` seconds; returns their PIDs."""
        lab = self._lab
        n = checks.count(n, "n (the number of children)", high=lab.max_procs,
                         why_high="(the lab's max_procs)")
        lifetime = checks.seconds(lifetime, "lifetime", high=MAX_LIFETIME)
        with lab._lock:
            self._check()
            if n == 0:
                return []
            lab._room_for(n)
            reply = lab._request({"op": "fork", "parent": self.pid, "n": n,
                                  "lifetime": lifetime}, timeout=30.0 + n * 0.01)
            if not reply["ok"]:
                if reply.get("gone"):
                    self.alive = False
                lab._host_pid.update(zip(reply.get("ns_pids", []), reply.get("pids", []),
                                         strict=True))
                if reply.get("errno") is not None:
                    lab._note(f"fork refused ({linux.errno_name(reply['errno'])}) after "
                              f"{len(reply.get('pids', []))}")
                created = reply.get("pids", [])
                raise _refusal(reply, created, lab, exiting=created if lifetime == 0 else ())
            lab._note(f"fork {n}")
            lab._host_pid.update(zip(reply["ns_pids"], reply["pids"], strict=True))
            return reply["pids"]

    def reap(self) -> int:
        """The parent calls waitpid for every exited child now; returns how many it reaped."""
        lab = self._lab
        with lab._lock:
            self._check()
            reply = lab._request({"op": "reap", "parent": self.pid})
            if not reply["ok"]:
                if reply.get("gone"):
                    self.alive = False
                raise _refusal(reply, [])
            lab._note(f"reap {reply['reaped']}")
            return reply["reaped"]

    def exit(self) -> None:
        """The parent exits: its children are orphans, adopted by the lab root."""
        lab = self._lab
        with lab._lock:
            self._check()
            lab._request({"op": "exit", "parent": self.pid})
            self.alive = False
            lab._note(f"parent {self.pid} exits")

    def children(self) -> list[int]:
        """PIDs of this parent's children now (zombies included)."""
        return [p.pid for p in self._lab.snapshot().children(self.pid)]

    def __repr__(self) -> str:
        return f"<Parent {self.pid} policy={self.policy!r}{'' if self.alive else ' (exited)'}>"
