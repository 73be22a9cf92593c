"""Helpers the tests share: one way to run a notebook headless under the lab's init, one way
to start a Jupyter server and talk to it, one way to wait, reap and list what a test left.

The notebook helpers are tools/headless.py's (`make site` runs notebooks the same way); the
reaping ones are re-exported from conftest.py, which the autouse `no_leaks` fixture uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

import pytest
from conftest import descendants, reap_adopted, wait_until  # noqa: F401 (re-exported)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(REPO, "tools")
if TOOLS not in sys.path:  # tools/ is no package
    sys.path.append(TOOLS)
from headless import execute, install_kernel, on_jupyter_path  # noqa: E402, F401

# --- spawning lab programs, counting their zombies ----------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """This environment, with this checkout's labkit first on PYTHONPATH (a child may run
    `python -m labkit.pause` from any folder), plus `extra`."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    return env


def sigmask(*signals: int) -> int:
    """The bits /proc/PID/status shows for a set of signals (bit N-1 for signal N)."""
    return sum(1 << (int(s) - 1) for s in signals)


def ps_zombies_of(ppid: int) -> int:
    """Zombies among ppid's children, as `ps` reports them (an oracle apart from labkit)."""
    out = subprocess.run(["ps", "-o", "stat=", "--ppid", str(ppid)],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.split() if line.startswith("Z"))


# --- a Jupyter server -----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jupyterlab_args(port: int, token: str, root_dir: str, settings: str,
                    workspaces: str) -> list[str]:
    """The arguments of a headless `python -m jupyterlab` on 127.0.0.1:`port`, with `token`,
    serving `root_dir`, with JupyterLab settings and workspaces of the test's own."""
    return ["-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.token={token}", f"--ServerApp.root_dir={root_dir}",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.extension_manager=readonly"]


class JupyterServer:
    """A Jupyter server a test starts (`launch`), asks (`api`) and stops (`stop`): on 127.0.0.1
    at `port`, with `token`, its output in `log_path`."""

    name = "jupyter lab"

    def __init__(self, port: int, token: str, log_path: str) -> None:
        self.port, self.token, self.log_path = port, token, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def launch(self, command: Sequence[str], env: dict[str, str], cwd: str | None = None
               ) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(list(command), env=env, cwd=cwd, stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL)

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll /api/status until the server answers; fail the test, with the log, if it exits
        or does not answer within `timeout` s."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                self.api("/api/status")
                return
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {timeout:g} s:\n{self.log()}")
            time.sleep(0.2)

    def shutdown_kernels(self) -> None:
        for kernel in self.api("/api/kernels"):
            self.api(f"/api/kernels/{kernel['id']}", method="DELETE")

    def stop(self) -> None:
        """SIGTERM (jupyter_server shuts its kernels down too), SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]


# Three English words in a row: a sentence of labkit's English. The Chinese keeps man page
# names, code and the kernel's names (waitpid(2), kernel/exit.c find_new_reaper, RLIMIT_NPROC),
# never three plain English words together.
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{2,}(?: [A-Za-z]{2,}\b){2,}")
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def english_in(text: str) -> list[str]:
    """The runs of three or more English words in `text` (none in a translated message)."""
    return ENGLISH_RUN.findall(text)
