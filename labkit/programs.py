"""How each lab program is started: its command line and its environment, written once.

Both sides read this: the kernel side (lab, pod, container, machine, lessons, capstone,
exercises) to start a program, and the agent, inside the lab, to start parents and actors. So it
uses only the standard library, like the programs themselves. A program's exit codes live in
its own module (labkit.pause.EXIT_*, labkit.unshare.EXIT_*, labkit.nsenter.EXIT_*), which the
kernel side imports to read a status.

Every program is a module of this package run by this interpreter, so it needs only to find the
package: environment() puts it first on PYTHONPATH, wherever the program's working folder is.
Inside the lab, a program hands its own environment on unchanged (labkit.unshare adds the
descriptor of the host's /proc that the parents read).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_PROC_FD = "LABKIT_HOST_PROC_FD"  # set by labkit.unshare, for the lab inside only
PARENT_CODE = "LABKIT_PARENT_CODE"    # set by labkit.runtime: labkit.parent, compiled, for one lab


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (or ours) for a lab program started from outside: labkit importable, and without
    HOST_PROC_FD, whose descriptor a new program does not inherit."""
    env = dict(os.environ if env is None else env)
    env.pop(HOST_PROC_FD, None)
    env.pop(PARENT_CODE, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_DIR, env.get("PYTHONPATH")]))
    return env


def module(name: str, *args: str, bare: bool = False) -> list[str]:
    """`python [-S] -m labkit.NAME ARGS`. -S (no site): a bare interpreter, that starts faster
    and maps less memory, for the programs a lab starts by the hundred."""
    return [sys.executable, *(["-S"] if bare else []), "-m", f"labkit.{name}", *args]


def bare_python(*args: str) -> list[str]:
    """`python -S ARGS`: a learner's or a test's program, with no site to slow it."""
    return [sys.executable, "-S", *args]


def pause(*options: str) -> list[str]:
    """The lab's init (labkit.pause); end `options` with "--", COMMAND... to run a command."""
    return module("pause", *options)


def keeper(owner: int) -> list[str]:
    """A pause that adopts, drains and dies with `owner` (PR_SET_PDEATHSIG): put it above a
    program that may orphan processes, then "--" and the program."""
    return pause("--subreaper", "--drain", "--owner", str(owner))


def unshare(*options: str) -> list[str]:
    """labkit.unshare: new namespaces for a command (options, then "--", COMMAND...)."""
    return module("unshare", *options)


def nsenter(target: int, *joins: str) -> list[str]:
    """labkit.nsenter: join the namespaces `joins` of PID `target` (then "--", COMMAND...)."""
    return module("nsenter", "--target", str(target), *joins)


def agent(read_fd: int, write_fd: int) -> list[str]:
    """The lab's agent, on the pipe pair the kernel gave it."""
    return module("agent", "--fds", f"{read_fd},{write_fd}")


def parent(read_fd: int, write_fd: int, policy: str) -> list[str]:
    """A lab parent, run as a file: neither -m (runpy) nor an import from the labkit package
    (its __init__), which would load more modules, and a parent's fork speed and its children's
    exit are its memory (labkit.parent says why). The file is the lab's compiled copy where the
    lab wrote one (PARENT_CODE): a script given as source is compiled at every start, and the
    compiler's memory stays touched in the parent and in every child it forks."""
    code = os.environ.get(PARENT_CODE)
    program = code if code and os.path.isfile(code) else parent_source()
    return bare_python(program, str(read_fd), str(write_fd), policy)


def parent_source() -> str:
    """labkit/parent.py, the parent program's source (labkit.runtime compiles it for a lab)."""
    return os.path.join(PACKAGE_DIR, "labkit", "parent.py")


def actor(address: str, name: str) -> list[str]:
    """The launcher of the first actor of labkit.actions (labkit.actor)."""
    return bare_python("-c", "from labkit.actor import main; main()", address, name)


def probe(*args: str) -> list[str]:
    """The doctor's probe (labkit.probe), which measures what the machine allows."""
    return module("probe", *args)


def lessons_subreaper() -> list[str]:
    """Become a child subreaper, then exec the command after "--" (labkit.lessons)."""
    return module("lessons", "--subreaper")


def witness(workdir: str) -> list[str]:
    """The capstone's witness, between the lab's pause and a learner's init
    (labkit.capstone_trial)."""
    return module("capstone_trial", "witness", workdir)


def workload(*args: str) -> list[str]:
    """A capstone workload, run by a learner's init (labkit.capstone_trial)."""
    return module("capstone_trial", "workload", *args, bare=True)
