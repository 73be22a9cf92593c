"""How the doctor finds things out without risk, and how it states what it found.

Whatever forks or changes the process that tries it (prctl, unshare, mount) runs in a fresh
interpreter (`python -m labkit.probe`), never here: the caller may be a multi-threaded Jupyter
kernel. Every probe has a timeout, and the doctor kills what it started if one runs over.

Apart from labkit.machine (the facts) and labkit.adoption (the orphan measurement) because both
use it: running a probe, reading a file without pretending, and the shape of one fact.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess

from labkit import programs
from labkit.i18n import _

PROBE_TIMEOUT = 5.0   # seconds for one probe; a probe that runs over is killed with its group


# --- stating what was found ---------------------------------------------------------------

def fact(summary: str, meaning: str, **data) -> dict:
    """One fact as the doctor reports it: the raw values, a one-line summary, its meaning."""
    return {**data, "summary": summary, "meaning": meaning}


def read_text(path: str) -> str | None:
    """The file's text, or None where it is missing or not ours to read. No descriptor left
    (EMFILE, ENFILE) is raised: it says nothing about the file, and a fact must not pretend."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        return None


def refusal(answer: dict) -> str:
    """ "EPERM (Operation not permitted)" from a probe's answer."""
    if answer.get("errno"):
        return f"{answer['errno']} ({answer.get('error', '')})"
    return answer.get("error") or _("no reason given")


# --- probes: experiments in a fresh interpreter -------------------------------------------

def run_probe(args: list[str], pass_fds: tuple[int, ...] = (),
              timeout: float = PROBE_TIMEOUT) -> dict:
    """Run `python -m labkit.probe ARGS` and return its JSON answer; never hangs, never leaks.

    The probe gets a session (and process group) of its own, so that on a timeout or Ctrl-C one
    killpg(2) ends it together with anything it forked.
    """
    try:
        proc = subprocess.Popen(
            programs.probe(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=pass_fds, env=programs.environment(),
            start_new_session=True)
    except OSError as exc:
        return {"ok": False, "error": _("could not start the probe: {error}").format(error=exc)}
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": _("no answer within {timeout:g} s (the probe was "
                                        "killed)").format(timeout=timeout)}
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    return _answer(proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its pgid is its PID: start_new_session
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


def _answer(code: int, out: bytes, err: bytes) -> dict:
    lines = out.decode(errors="replace").strip().splitlines()
    if code == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    said = err.decode(errors="replace").strip().splitlines()
    return {"ok": False, "error": _("the probe failed (exit status {code}): {said}").format(
        code=code, said=said[-1] if said else _("it said nothing"))}


def attempts(probe: str, commands: tuple[str, str]) -> list[dict]:
    """Try `probe` plainly (root only) and then inside a new user namespace, until one works.

    `commands` are the unshare(1) equivalents, plain and with a user namespace, so that a
    learner can try the same thing in a terminal.
    """
    ways = [([probe], commands[0])] if os.geteuid() == 0 else []
    ways.append(([probe, "--user"], commands[1]))
    tried = []
    for args, command in ways:
        answer = run_probe(args)
        tried.append({"user_namespace": args[-1] == "--user", "command": command,
                      "ok": bool(answer.get("ok")), "errno": answer.get("errno"),
                      "error": None if answer.get("ok") else refusal(answer),
                      "step": answer.get("step")})
        if answer.get("ok"):
            break
    return tried

