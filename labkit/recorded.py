"""Recorded runs: what a lesson shows where this machine forbids the real thing.

Some experiments need namespaces, which mybinder.org and Docker's default seccomp profile deny
(EPERM). There a notebook shows the nearest real thing it can run, and, for the rest, a run
recorded on a machine that allows them: real output, made by tools/record_runs.py from the very
functions the notebook calls live, stored in labkit/recordings/NOTEBOOK.json with where, when and on
which kernel it ran, and always labelled RECORDED where it is shown. tests/test_recorded.py checks
that a fresh run still has the same structure.

    lesson = Lesson("05-the-pause-container")
    result = lesson.show("pause_as_pid1", container.pause_as_pid1)   # live, or the recording
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

from labkit.errors import LabError, NamespaceUnavailable
from labkit.i18n import N_, _

# Package data, not a folder of the checkout: on Binder labkit is installed (binder/postBuild),
# and the recordings must travel with it.
RECORDED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recordings")
SITE = "site/{notebook}.html"  # the executed edition (`make site`), run where all is allowed
# What changes from one real run to the next: PIDs, namespace inode numbers, ports, times, the
# machine's name. structure() blurs these and keeps everything else.
VOLATILE = frozenset({"ns_pids", "seconds", "pid", "pids", "ns_pid", "port", "host", "links",
                      "time", "inode"})


def path(notebook: str) -> str:
    return os.path.join(RECORDED_DIR, f"{notebook}.json")


def load(notebook: str) -> dict:
    """The recording of `notebook`'s experiments; LabError naming the file if there is none."""
    try:
        with open(path(notebook)) as f:
            return json.load(f)
    except FileNotFoundError:
        raise LabError(_("no recorded run of {notebook} at {path}: make one on a machine that "
                         "allows namespaces with `python tools/record_runs.py`").format(
                             notebook=notebook, path=path(notebook))) from None


def label(recording: dict) -> str:
    """Where, when, on which kernel and as whom the run was made, and where to read it all."""
    made = recording["recorded"]
    site = SITE.format(notebook=recording["notebook"])
    return _("RECORDED, not run here: a real run on {machine} (Linux {kernel}, as {user}) at "
             "{when}, by tools/record_runs.py. The whole notebook, executed there: {site}").format(
                 machine=made["machine"], kernel=made["kernel"], user=made["user"],
                 when=made["when"], site=site)


def structure(value: object, key: str = "") -> object:
    """`value` with what differs between two real runs blurred: every number in strings, and
    whole values under VOLATILE keys. Two runs of the same experiment compare equal; a run
    whose statuses, names or shape changed does not."""
    if key in VOLATILE:
        return "~"
    if isinstance(value, dict):
        return {k: structure(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [structure(v, key) for v in value]
    if isinstance(value, str):  # hexadecimal (IPC keys) first, then decimal numbers
        return re.sub(r"\d+(\.\d+)?", "N", re.sub(r"0x[0-9a-fA-F]+", "0xH", value))
    return value


class NotHere(LabError):
    """Something an experiment needs is missing here (a command not installed): the lesson
    shows the recording, as for a refused namespace."""


EARLIER = N_("a step before this one could not run here")


class Lesson:
    """One notebook's experiments: each runs live where the machine allows it, or else is shown
    from the notebook's recording, labelled, after the reason the kernel gave."""

    def __init__(self, notebook: str) -> None:
        self.notebook = notebook
        self.refusal = EARLIER  # replaced by the real reason
        self._told = False

    def refused(self, reason: str, told: bool = False) -> None:
        """Note why the machine refused what the next experiments need (e.g. a Pod); `told`:
        the learner has just read it, so the next recording says "(see above)"."""
        if reason != self.refusal:  # a new reason is told in full, once
            self.refusal = reason
            self._told = told

    def show(self, step: str, experiment: Callable[..., dict], *args) -> dict:
        """Run `experiment(*args)` and print its lines; where it needs what the machine refused
        (it raises NamespaceUnavailable, or an argument is None: the Pod that could not be
        made), print and return the recorded result of `step` instead."""
        if None not in args:
            try:
                result = experiment(*args)
            except (NamespaceUnavailable, NotHere) as exc:
                self.refused(str(exc))
            else:
                print("\n".join(result["lines"]))
                return result
        return self.show_recorded(step)

    def show_recorded(self, step: str) -> dict:
        recording = load(self.notebook)
        why = _("(see above)") if self._told else _(self.refusal)
        self._told = True
        print(_("Not possible on this machine: {why}").format(why=why))
        print(label(recording) + "\n")
        result = recording["steps"][step]
        print("\n".join(result["lines"]))
        return result
