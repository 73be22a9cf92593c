"""labkit's exceptions. Each says what went wrong and what the learner can do about it."""

from __future__ import annotations

import errno as _errno

from labkit.i18n import _


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


class ProcUnreadable(OSError, LabError):
    """/proc could not be read, for a reason that does not mean "that process exited": most
    often EMFILE (this process has no file descriptor left) or ENFILE (the machine has none).
    The lab's processes cannot be counted then, so labkit raises this rather than report a
    snapshot that misses some, or let a cap be checked against too low a count.
    `.errno` and `.filename` are the kernel's; the message says what to do."""

    @classmethod
    def about(cls, exc: OSError, path: str) -> ProcUnreadable:
        """The error for `exc`, raised while reading `path` in /proc."""
        import resource

        err = exc.errno or 0
        if err == _errno.EMFILE:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            advice = (_("this process has no file descriptor left (RLIMIT_NOFILE: soft limit "
                        "{soft}, hard {hard}). Close files or labs you no longer need "
                        "(lab.close())") if soft == hard else
                      _("this process has no file descriptor left (RLIMIT_NOFILE: soft limit "
                        "{soft}, hard {hard}). Close files or labs you no longer need "
                        "(lab.close()), or raise the soft limit: resource.setrlimit("
                        "resource.RLIMIT_NOFILE, ({hard}, {hard}))")).format(soft=soft,
                                                                            hard=hard)
        elif err == _errno.ENFILE:
            advice = _("the machine's table of open files is full (/proc/sys/fs/file-max): "
                       "close files or labs you no longer need, then try again")
        else:
            advice = _("the process table could not be read; try again, or start a new lab")
        return cls(err, _("{strerror}: {path} could not be read, so the lab's processes cannot "
                          "be counted; {advice}").format(strerror=exc.strerror, path=path,
                                                         advice=advice), path)

    def __str__(self) -> str:
        return f"[Errno {self.errno}] {self.strerror}"  # the path is in the message already


class ForkRefused(OSError, LabError):
    """The kernel refused fork() (errno EAGAIN): a PID budget or pid_max is spent.

    `.created` lists the children made before the refusal; they exist and count.
    """

    def __init__(self, errno: int, strerror: str, created: list[int], advice: str = "") -> None:
        super().__init__(errno, strerror)
        self.created = created
        self.advice = advice

    def __str__(self) -> str:
        text = _("[Errno {errno}] {strerror}: fork() was refused after {n} children").format(
            errno=self.errno, strerror=self.strerror, n=len(self.created))
        return (_("{text}. {advice}").format(text=text, advice=self.advice) if self.advice
                else text)
