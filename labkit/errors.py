"""labkit's exceptions. Each says what went wrong and what the learner can do about it."""

from __future__ import annotations


class LabError(Exception):
    """Base of every error labkit raises on its own account."""


class LabClosedError(LabError, ValueError):
    """The lab was closed: its processes are gone and it takes no more requests."""


class CapacityError(LabError, ValueError):
    """A request would take the lab past its process cap; nothing was forked."""


class AgentError(LabError, RuntimeError):
    """The lab's own processes misbehaved: the agent or a parent died or stopped answering."""


class NamespaceUnavailable(LabError, RuntimeError):
    """The kernel refused a namespace (or the /proc mount) the request needs; nothing was left
    running. The message names the refused mechanism, its errno, and what still works."""


class BudgetUnavailable(LabError, RuntimeError):
    """No real kernel mechanism can enforce the PID budget asked for (Lab(pid_limit=N)) here;
    nothing was started and nothing is simulated. The message says why and what would work."""


class ParentGoneError(AgentError):
    """The parent has exited (by Parent.exit(), or killed from outside) and takes no requests."""


class ForkRefused(OSError, LabError):
    """The kernel refused fork() (errno EAGAIN): a PID budget or pid_max is spent.

    `.created` lists the children made before the refusal; they exist and count.
    """

    def __init__(self, errno: int, strerror: str, created: list[int], advice: str = "") -> None:
        super().__init__(errno, strerror)
        self.created = created
        self.advice = advice

    def __str__(self) -> str:
        text = (f"[Errno {self.errno}] {self.strerror}: fork() was refused after "
                f"{len(self.created)} children")
        return f"{text}. {self.advice}" if self.advice else text
