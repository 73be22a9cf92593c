"""Notebooks run headless with their kernel under the lab's init: the one kernelspec and the one
way to execute that `make site` (tools/make_site.py) and the tests (tests/support.py) share.

The kernel runs as `python -m labkit.pause --subreaper --drain -- python -m ipykernel_launcher`,
as Jupyter runs it on a hub whose init reaps: whatever a notebook orphans (the doctor's
measurement, a lab whose root was killed) is adopted by that pause and reaped at once, instead of
waiting for a pytest that reaps only between tests, or for a shell that never does. Interrupts
go as messages, so that they reach ipykernel, not the init.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

KERNEL_NAME = "python3"  # the name every notebook's kernelspec asks for
UNDER_PAUSE = ["-m", "labkit.pause", "--subreaper", "--drain", "--"]
DISPLAY_NAME = "Python 3 (under labkit.pause)"


def kernel_argv(prefix: Sequence[str] = ()) -> list[str]:
    """The kernel's command line: `prefix` (e.g. a seccomp filter), then the pause, then it."""
    return [*prefix, sys.executable, *UNDER_PAUSE, sys.executable, "-m", "ipykernel_launcher",
            "-f", "{connection_file}"]


def install_kernel(spec_root: str | os.PathLike, prefix: Sequence[str] = (),
                   env: Mapping[str, str] | None = None,
                   display_name: str = DISPLAY_NAME) -> str:
    """Write the kernelspec KERNEL_NAME under `spec_root` (spec_root/kernels/python3); the
    folder to put on JUPYTER_PATH. `env`: variables the kernel gets on top of the server's."""
    spec_dir = os.path.join(spec_root, "kernels", KERNEL_NAME)
    os.makedirs(spec_dir, exist_ok=True)
    spec = {"argv": kernel_argv(prefix), "display_name": display_name, "language": "python",
            "interrupt_mode": "message"}
    if env:
        spec["env"] = dict(env)
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump(spec, f)
    return os.fspath(spec_root)


@contextmanager
def on_jupyter_path(spec_root: str) -> Iterator[str]:
    """JUPYTER_PATH names `spec_root` first while the block runs, then is as it was."""
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [spec_root, old]))
    try:
        yield spec_root
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


def execute(nb, folder: str | None = None, timeout: float = 60.0,
            allow_errors: bool = False):
    """Run every cell of the notebook `nb` (in place, and returned) with the kernel KERNEL_NAME
    that JUPYTER_PATH finds, in `folder` (default: this process's). nbclient's
    CellExecutionError on the first failing cell unless `allow_errors`."""
    from nbclient import NotebookClient  # only the callers that run notebooks pay for it

    resources = {"metadata": {"path": folder}} if folder else {}
    NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=allow_errors,
                   resources=resources).execute()
    return nb
