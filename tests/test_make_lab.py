"""`make lab` serves the course: JupyterLab opens notebooks/00-start-here.ipynb, and stops cleanly.

In a checkout with .venv the test runs `make lab` itself, in the repository, with LAB_ARGS for a
headless server on a free port with a random token: the venv is up to date (make test built it),
so make only starts the server. Where there is no .venv (tests/as-user.sh's staged copy, or a dev
tree run with another interpreter) it runs what the Makefile's lab target runs, with this
interpreter: `python -m jupyter lab --ServerApp.root_dir=REPO [--allow-root] LAB_ARGS NOTEBOOK`.
Building a venv here would take minutes and the network; that is `make test`'s job.

Jupyter's config, data and runtime directories and IPython's go to tmp_path: HOME is not touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest
from support import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = "notebooks/00-start-here.ipynb"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def lab_command(lab_args: list[str]) -> tuple[list[str], str]:
    """The command to run, and how it was chosen."""
    venv_python = os.path.join(REPO, ".venv", "bin", "python")
    if os.path.exists(os.path.join(REPO, "Makefile")) and os.access(venv_python, os.X_OK) \
            and shutil.which("make"):
        return ["make", "--no-print-directory", "lab", "LAB_ARGS=" + " ".join(lab_args)], "make"
    root = ["--allow-root"] if os.geteuid() == 0 else []
    return ([sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={REPO}", *root,
             *lab_args, NOTEBOOK], "python -m jupyter lab")


@pytest.mark.slow
def test_make_lab_serves_the_course(tmp_path):
    pytest.importorskip("jupyterlab")
    port, token = free_port(), secrets.token_hex(16)
    lab_args = ["--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.token={token}", "--ServerApp.open_browser=False"]
    command, how = lab_command(lab_args)
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[name] = str(tmp_path / name.lower())
    env.pop("JUPYTER_PATH", None)
    log = open(tmp_path / "lab.log", "w+")
    # A process group of its own: SIGINT goes to make and jupyter together, as Ctrl-C would.
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def output() -> str:
        log.flush()
        log.seek(0)
        return f"{how}: {' '.join(command)}\n" + log.read()[-4000:]

    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not listening(port):
            assert proc.poll() is None, f"the server exited with {proc.returncode}\n{output()}"
            assert time.monotonic() < deadline, f"no server on port {port}\n{output()}"
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        status, page = get(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
        assert status == 200, output()
        assert "JupyterLab" in page and "jupyter-config-data" in page, page[:500]
        status, body = get(f"{base}/api/contents/{NOTEBOOK}?token={token}")
        assert status == 200, output()
        assert '"type": "notebook"' in body or '"type":"notebook"' in body
        assert get(f"{base}/api/contents/{NOTEBOOK}?token=wrong")[0] == 403
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C; jupyter stops at a second one at once
            time.sleep(0.5)
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        try:
            code = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
            pytest.fail(f"the server did not stop within {STOP_TIMEOUT} s of SIGINT\n{output()}")
        log.close()
    # jupyter exits 0 on SIGINT; make reports a child killed by SIGINT as 2, or dies of it.
    assert code in (0, 2, -signal.SIGINT, 130), f"exit status {code}\n{output()}"
    assert not listening(port), f"port {port} is still open after the server stopped"
    left = [p for p in psutil.process_iter(["cmdline"])
            if token in " ".join(p.info["cmdline"] or [])]
    assert not left, f"still running: {[p.pid for p in left]}"
