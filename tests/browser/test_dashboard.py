"""The dashboard in a real browser: JupyterLab, Chromium, a click on Fork, real zombies.

Starts `jupyter lab` on a free port with a random token, opens tests/browser/dashboard.ipynb in
Debian's Chromium (driven by Playwright; its own browser download is not used), runs all cells
from the Run menu, clicks Fork on the page and waits for the zombie count on the page to read 30
(and `ps` to agree). It saves a screenshot to .ci/artifacts/dashboard.png, then shuts the kernel
and the server down and proves that no lab process is left.

Needs `chromium` (Debian: apt-get install -y chromium) and the `playwright` package
(requirements-dev.txt). Without them the test fails, saying so: the issue requires it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator

import psutil
import pytest
from conftest import reap_adopted, wait_until
from support import JupyterServer, child_env, free_port, jupyterlab_args, ps_zombies_of

pytestmark = pytest.mark.slow  # a real JupyterLab in a real Chromium: minutes

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NOTEBOOK = os.path.join(HERE, "dashboard.ipynb")
ARTIFACTS = os.path.join(REPO, ".ci", "artifacts")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# JupyterLab settings for a quiet, deterministic page: every cell in the DOM (the default
# windowing mode leaves off-screen cells out), no autosave into the notebook, no news or update
# checks over the network.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"checkForUpdates": False, "fetchNews": "false"},
}
TIMEOUT_MS = 45_000  # for any one thing the page must show (a loaded CI machine is slow)


def lab_processes(top: psutil.Process) -> list[psutil.Process]:
    """labkit's processes below `top`: the lab roots (python -m labkit.pause), their agents,
    parents and children."""
    found = []
    for proc in top.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if (proc.name() in ("lab-parent", "lab-child", "lab-agent")
                    or any("labkit" in part for part in proc.cmdline())):
                found.append(proc)
    return found


class Server(JupyterServer):
    """`jupyter lab` from this interpreter, serving a copy of the helper notebook."""

    def __init__(self, tmp: str) -> None:
        super().__init__(free_port(), secrets.token_hex(16), os.path.join(tmp, "jupyter.log"))
        self.root = os.path.join(tmp, "root")
        os.makedirs(self.root)
        # A copy: the page may write to the notebook it shows; the repository stays clean.
        shutil.copy(NOTEBOOK, self.root)
        settings = os.path.join(tmp, "settings")
        for name, values in SETTINGS.items():
            path = os.path.join(settings, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(values, f)
        env = child_env(
            JUPYTER_CONFIG_DIR=os.path.join(tmp, "config"),
            JUPYTER_DATA_DIR=os.path.join(tmp, "data"),
            JUPYTER_RUNTIME_DIR=os.path.join(tmp, "runtime"),
            IPYTHONDIR=os.path.join(tmp, "ipython"),
        )
        command = [sys.executable, *jupyterlab_args(self.port, self.token, self.root, settings,
                                                     os.path.join(tmp, "workspaces"))]
        if os.geteuid() == 0:
            command.append("--allow-root")
        self.launch(command, env)


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    srv = Server(str(tmp_path))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def require_browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: this test drives Debian's Chromium. Install it "
                    "with: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -r requirements-dev.txt "
                    "(Playwright's own browser download is not needed: the test uses "
                    f"{CHROMIUM})")
    return sync_playwright


def test_the_helper_notebook_is_stored_clean():
    with open(NOTEBOOK) as f:
        raw = json.load(f)
    assert all(not c.get("outputs") and not c.get("execution_count")
               for c in raw["cells"] if c["cell_type"] == "code")
    assert "widgets" not in raw["metadata"]
    assert raw["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.timeout(180)  # a hung page or server fails this test, not the whole run
def test_fork_clicked_in_jupyterlab_makes_zombies_that_the_page_shows(server, tmp_path):
    sync_playwright = require_browser()
    from playwright.sync_api import expect

    jupyter = psutil.Process(server.proc.pid)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1050})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)  # expect() has its own default: 5 s
            page.goto(f"{server.url}/lab/tree/dashboard.ipynb?token={server.token}")
            # The status bar names the kernel once it is connected; the notebook's own
            # indicator says "idle" already while the kernel is still starting.
            status_bar = page.locator("#jp-main-statusbar")
            expect(status_bar).to_contain_text("Python 3 (ipykernel) | Idle")
            # Fold the file browser away: the screenshot is of the notebook.
            opened = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
            if opened.count():
                opened.first.click()

            run_all_cells(page)
            dashboard = page.locator(".labkit-dashboard")
            zombies = dashboard.locator(".labkit-count-zombie")
            expect(zombies).to_have_text("zombie: 0")
            expect(status_bar).to_contain_text("Python 3 (ipykernel) | Idle")
            fork = dashboard.get_by_role("button", name="Fork", exact=True)
            expect(fork).to_be_enabled()

            fork.click()
            expect(zombies).to_have_text("zombie: 30")
            expect(dashboard.locator(".labkit-status")).to_contain_text("forked 30 children")
            expect(dashboard.get_by_role("button", name="Reap", exact=True)).to_be_enabled()
            # the live plot is a real picture (once the browser has decoded the latest one:
            # each refresh replaces it, so wait for it rather than reading it mid-swap)
            page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                   arg=dashboard.locator("img").element_handle(), timeout=30_000)

            # The page shows what the kernel sees: ps counts the same 30 zombies.
            labs = lab_processes(jupyter)
            parents = [proc for proc in labs if proc.name() == "lab-parent"]
            assert len(parents) == 1, [proc.name() for proc in labs]
            assert ps_zombies_of(parents[0].pid) == 30

            dashboard.scroll_into_view_if_needed()
            os.makedirs(ARTIFACTS, exist_ok=True)
            page.screenshot(path=os.path.join(ARTIFACTS, "dashboard.png"))
            dashboard.screenshot(path=os.path.join(ARTIFACTS, "dashboard-widget.png"))

            # The parent exits: the lab root adopts and reaps its zombies, and the page says so.
            dashboard.get_by_role("button", name="Parent exits", exact=True).click()
            expect(zombies).to_have_text("zombie: 0")
            expect(dashboard.locator(".labkit-events")).to_contain_text("reaped PID")
            dashboard.screenshot(path=os.path.join(ARTIFACTS, "dashboard-exit.png"))
        except BaseException:
            # What the page showed when it went wrong, for whoever reads the CI log.
            with contextlib.suppress(Exception):
                os.makedirs(ARTIFACTS, exist_ok=True)
                page.screenshot(path=os.path.join(ARTIFACTS, "dashboard-failure.png"))
            print(f"jupyter lab's log:\n{server.log()}")
            raise
        finally:
            context.close()

    # Shutting the kernel down closes its lab (Lab's finalizer at exit; PR_SET_PDEATHSIG if
    # the kernel is killed instead): every process of it is gone.
    assert labs
    server.shutdown_kernels()
    assert wait_until(lambda: not any(alive(proc) for proc in labs), 20), \
        [proc.pid for proc in labs if alive(proc)]
    server.stop()
    assert server.proc.returncode is not None
    me = psutil.Process()
    assert lab_processes(me) == [], "labkit processes remain after the server stopped"


def run_all_cells(page) -> None:
    """Run > Run All Cells, as a learner would; once more if no cell started (a click that
    lands while JupyterLab is still settling the new kernel is lost)."""
    from playwright.sync_api import TimeoutError as PageTimeout
    from playwright.sync_api import expect

    first_prompt = page.locator(".jp-CodeCell .jp-InputArea-prompt").first
    for attempt in range(2):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            expect(first_prompt).not_to_have_text("[ ]:", timeout=10_000)
            return
        except (AssertionError, PageTimeout):
            if attempt:
                raise


def alive(proc: psutil.Process) -> bool:
    """Still there. A lab root whose kernel died is adopted by pytest (a subreaper): reap it
    first, so that only a process nobody reaped counts."""
    reap_adopted()
    try:
        return proc.is_running()
    except psutil.Error:
        return False
