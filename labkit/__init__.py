"""labkit: real zombies, orphans and init processes for a Jupyter course.

The public names load lazily (PEP 562), so that `python -m labkit.pause` and the other programs
that run inside the lab import only the standard library, never psutil or matplotlib.
"""

from __future__ import annotations

import importlib
import sys

__version__ = "0.1.0"

if not sys.platform.startswith("linux"):  # pragma: no cover - the course needs Linux's kernel
    raise ImportError(
        "labkit drives real Linux processes (fork, wait, prctl, namespaces) and runs only on "
        f"Linux, not on {sys.platform}. Open the course on mybinder.org instead (see README.md).")

_PUBLIC = {
    "Lab": "labkit.lab",
    "Parent": "labkit.handles",
    "Pod": "labkit.pod",
    "LabError": "labkit.errors",
    "LabClosedError": "labkit.errors",
    "CapacityError": "labkit.errors",
    "AgentError": "labkit.errors",
    "NamespaceUnavailable": "labkit.errors",
    "BudgetUnavailable": "labkit.errors",
    "ForkRefused": "labkit.errors",
    "ProcUnreadable": "labkit.errors",
    "ParentGoneError": "labkit.errors",
    "Snapshot": "labkit.observe",
    "Proc": "labkit.observe",
    "Series": "labkit.observe",
    "Recorder": "labkit.observe",
    "doctor": "labkit.machine",
    "Report": "labkit.machine",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
