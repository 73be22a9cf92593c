"""The whole course in a real browser, served the way mybinder.org serves it.

mybinder.org runs JupyterLab as uid 1000, in a container whose seccomp profile denies namespaces,
under a PID 1 that is a small Python entrypoint (repo2docker's): it starts the server, waits for
that one child and never reaps an orphan. This test rebuilds that session here:

    unshare --pid --fork --mount-proc          a new PID namespace with its own /proc
      [setpriv --reuid 1000 ...]               as root: drop to uid 1000 (the unprivileged run
                                               uses `unshare --user --map-current-user` instead)
        no-namespaces                          the seccomp filter of tests/tools/no_namespaces.c,
                                               installed after unshare (which it would deny)
          python entrypoint.py                 PID 1 of the namespace: waits only for its child
            binder/start                       our session init, as on Binder: labkit.pause as a
                                               child subreaper, which reaps every orphan
              python -m jupyterlab             the server, its kernels, their labs

The server's files live in a world-readable staging directory under /tmp (notebooks copied into
a home owned by uid 1000, a copy of labkit on PYTHONPATH). Chromium, driven by Playwright, opens
every notebook in notebooks/ in turn, runs all its cells from the Run menu and waits for the
kernel to be idle; no cell may show an error, the notebooks that draw must show their plots (and
02 its dashboard), and a screenshot of each goes to .ci/artifacts/<notebook>.png. The Chinese
edition (notebooks/zh/) runs in a session of its own, 00, 02 and 05 of it (screenshots
.ci/artifacts/zh-<notebook>.png): its headings and prose must be drawn with real Chinese glyphs,
not the boxes a browser without a CJK font draws (tests/browser/cjk.py decides by the pixels).
Between notebooks the kernel is shut down: its labs must be gone, and no zombie may be left, neither
with the entrypoint (an orphan that reached Binder's PID 1 would stay a zombie for the whole
session) nor with the session's pause (even the doctor's measuring orphan is reaped there).
At the end the server stops, the entrypoint exits, the namespace is gone, and nothing of ours is
left on the machine.

Needs chromium (apt-get install -y chromium), the playwright package, cc, unshare and setpriv.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import psutil
import pytest
from cjk import tofu
from conftest import reap_adopted, wait_until, zombie_count
from support import JupyterServer, free_port, jupyterlab_args
from test_dashboard import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SETTINGS,
    require_browser,
    run_all_cells,
)

pytestmark = pytest.mark.slow  # a real JupyterLab in a real Chromium: minutes

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NOTEBOOK_DIR = os.path.join(REPO, "notebooks")
# What the browser runs of each edition: all of the English; of the Chinese (whose code cells are
# the English ones, run in full headless by test_notebooks) the start, the dashboard's notebook
# and the pause container, the pages where Chinese prose meets plots, widgets and outputs.
EDITIONS = {
    "en": sorted(glob.glob(os.path.join(NOTEBOOK_DIR, "*.ipynb"))),
    "zh": sorted(p for p in glob.glob(os.path.join(NOTEBOOK_DIR, "zh", "*.ipynb"))
                 if os.path.basename(p)[:3] in ("00-", "02-", "05-")),
}
# Where a translation must show real glyphs: the first heading, and the first paragraph, with
# enough Chinese in it.
CHINESE_TEXT = (".jp-RenderedMarkdown :is(h1, h2)", ".jp-RenderedMarkdown p")
FILTER_SOURCE = os.path.join(REPO, "tests", "tools", "no_namespaces.c")
ARTIFACTS = os.path.join(REPO, ".ci", "artifacts")
UID = GID = 1000  # mybinder.org's user (jovyan)
# Notebooks that draw at least one matplotlib figure; 02 also shows the live dashboard.
DRAWS = {"01-processes", "02-zombies", "03-reaping", "04-orphans-and-init", "07-pid-exhaustion"}
DASHBOARD = {"02-zombies"}
PAGE_TIMEOUT_MS = 45_000  # for any one thing the page must show
RUN_TIMEOUT_MS = 60_000   # for one notebook's Run All to finish
MAX_SCREENSHOT_HEIGHT = 12_000

# PID 1 of the session, as repo2docker's entrypoint behaves: one child, signals passed on to it,
# waitpid(child) and nothing else. Stdlib only.
ENTRYPOINT = '''\
import os, signal, sys

child = 0

def forward(signum, frame):
    if child:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, forward)
child = os.fork()
if child == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
while True:
    try:
        _, status = os.waitpid(child, 0)   # only this child: orphans adopted here stay zombies
        break
    except InterruptedError:
        continue
sys.exit(os.waitstatus_to_exitcode(status))
'''

# Notes what the page showed at any moment, for outputs a later cell removes again (02 closes its
# dashboard in its clean-up cell, and a closed widget leaves the DOM).
OBSERVER_JS = """() => {
  window.__course = {dashboard: false};
  const look = () => {
    if (document.querySelector('.jp-OutputArea-output .labkit-dashboard')) {
      window.__course.dashboard = true;
    }
  };
  new MutationObserver(look).observe(document.body, {childList: true, subtree: true});
  look();
}"""

# Run All is over: the kernel is idle and no cell waits or runs ([*]).
DONE_JS = """() => {
  const bar = document.querySelector('#jp-main-statusbar');
  if (!bar || !bar.textContent.includes('| Idle')) return false;
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => !p.textContent.includes('*'));
}"""

# What the page shows once it is over.
REPORT_JS = """() => {
  const text = el => el.textContent.trim().slice(0, 600);
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  return {
    prompts: cells.map(c => c.querySelector('.jp-InputArea-prompt').textContent.trim()),
    errors: [...document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')].map(text),
    tracebacks: [...document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(text).filter(t => t.includes('Traceback')),
    images: [...document.querySelectorAll('.jp-OutputArea-output img')]
        .map(img => img.naturalWidth),
    dashboard: window.__course.dashboard,
    height: Math.max(...[...document.querySelectorAll('.jp-WindowedPanel-outer')]
        .map(el => el.scrollHeight), 0),
  };
}"""


def run_as(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


class BinderSession(JupyterServer):
    """JupyterLab as uid 1000, seccomp-filtered, under a non-reaping PID 1 in a PID namespace."""

    name = "the session"

    def __init__(self, stage: str) -> None:
        super().__init__(free_port(), secrets.token_hex(16), os.path.join(stage, "jupyter.log"))
        self.stage = stage
        self.root = os.geteuid() == 0
        self.home = os.path.join(stage, "home")
        self._prepare()

    # --- the files, readable by uid 1000 ---------------------------------------------------------

    def _prepare(self) -> None:
        cc = shutil.which("cc")
        if cc is None:
            pytest.fail("this test builds tests/tools/no_namespaces.c and needs `cc` "
                        "(Debian/Ubuntu: apt-get install gcc)")
        for tool in ("unshare", "setpriv"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} not found (Debian/Ubuntu: apt-get install util-linux)")
        tools = os.path.join(self.stage, "tools")
        os.makedirs(tools)
        self.no_namespaces = os.path.join(tools, "no-namespaces")
        built = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                                self.no_namespaces, FILTER_SOURCE],
                               capture_output=True, text=True, timeout=120)
        if built.returncode != 0:
            pytest.fail(f"cc could not build {FILTER_SOURCE}:\n{built.stderr}")
        self.entrypoint = os.path.join(tools, "entrypoint.py")
        with open(self.entrypoint, "w") as f:
            f.write(ENTRYPOINT)
        # Binder runs binder/start as the session's command: the server under the lab's init.
        self.start_script = os.path.join(tools, "start")
        shutil.copy(os.path.join(REPO, "binder", "start"), self.start_script)
        os.chmod(self.start_script, 0o755)
        # labkit as a world-readable copy: the clone may sit where uid 1000 cannot read.
        src = os.path.join(self.stage, "src")
        shutil.copytree(os.path.join(REPO, "labkit"), os.path.join(src, "labkit"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        # Every edition, each in its folder as in the clone: a kernel knows its notebook's
        # language by that folder (labkit.i18n).
        course = os.path.join(self.home, "course", "notebooks")
        for path in (p for paths in EDITIONS.values() for p in paths):
            target = os.path.join(course, os.path.relpath(path, NOTEBOOK_DIR))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy(path, target)
        settings = os.path.join(self.home, ".jupyter-settings")
        for name, values in SETTINGS.items():
            path = os.path.join(settings, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(values, f)
        subprocess.run(["chmod", "-R", "a+rX", self.stage], check=True)
        if self.root:
            subprocess.run(["chown", "-R", f"{UID}:{GID}", self.home], check=True)
        self.env = {
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
            "HOME": self.home, "USER": "jovyan", "LANG": "C.UTF-8", "TERM": "dumb",
            "PYTHONPATH": src,
            "JUPYTER_CONFIG_DIR": os.path.join(self.home, ".jupyter"),
            "JUPYTER_DATA_DIR": os.path.join(self.home, ".local", "share", "jupyter"),
            "JUPYTER_RUNTIME_DIR": os.path.join(self.home, ".local", "share", "jupyter",
                                                "runtime"),
            "IPYTHONDIR": os.path.join(self.home, ".ipython"),
            "MPLCONFIGDIR": os.path.join(self.home, ".config", "matplotlib"),
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
        }
        self.settings = settings

    def _become_user(self) -> list[str]:
        """The prefix that makes the rest of a command line run as uid 1000 in a PID namespace."""
        if self.root:
            return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
                    "setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--"]
        return ["unshare", "--user", "--map-current-user", "--pid", "--fork", "--mount-proc",
                "--kill-child", "--"]

    def check_usable(self) -> None:
        """Skip where this session cannot be built: the interpreter unreadable by uid 1000 (the
        run as uid 1000 covers it from its staged venv), or namespaces denied by the host."""
        probe = run_as([*self._become_user(), self.no_namespaces, sys.executable, "-c",
                        "import os, jupyterlab, ipykernel, labkit; print(os.getpid(), "
                        "os.geteuid())"], env=self.env, cwd=self.home)
        if probe.returncode != 0:
            if "unshare failed" in probe.stderr or "unshare:" in probe.stderr:
                pytest.skip(f"this host denies the PID namespace the session needs: "
                            f"{probe.stderr.strip()}")
            if self.root:
                pytest.skip(f"uid {UID} cannot run {sys.executable} with jupyterlab and labkit "
                            f"({probe.stderr.strip()[-300:]}); tests/as-user.sh runs this test "
                            "as that user from a staged, world-readable venv")
            pytest.fail(f"the session's interpreter does not start:\n{probe.stderr}")
        assert probe.stdout.split() == ["1", str(UID)], probe.stdout  # PID 1, uid 1000

    # --- the server -------------------------------------------------------------------------

    def start(self) -> None:
        command = [*self._become_user(), self.no_namespaces,
                   sys.executable, self.entrypoint, self.start_script, sys.executable,
                   *jupyterlab_args(self.port, self.token, os.path.join(self.home, "course"),
                                    self.settings, os.path.join(self.home, ".workspaces"))]
        self.launch(command, self.env, cwd=self.home)

    def init(self) -> psutil.Process:
        """The entrypoint: PID 1 of the namespace (the child of unshare)."""
        def found():
            with contextlib.suppress(psutil.Error):
                for proc in psutil.Process(self.proc.pid).children():
                    if self.entrypoint in proc.cmdline():
                        return proc
            return None
        proc = wait_until(found, 10)
        assert proc is not None, "no entrypoint under unshare"
        return proc

    def session_init(self, init: psutil.Process) -> psutil.Process:
        """binder/start's pause: PID 1's only child, the subreaper above the server."""
        children = init.children()
        assert len(children) == 1 and "labkit.pause" in children[0].cmdline(), children
        return children[0]

    def server(self, init: psutil.Process) -> psutil.Process:
        children = self.session_init(init).children()
        assert len(children) == 1 and "jupyterlab" in children[0].cmdline(), children
        return children[0]

    def shutdown_kernels(self) -> None:
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")
        super().shutdown_kernels()

    def stop(self) -> None:
        """SIGTERM to PID 1, which passes it on to the server; the namespace ends with PID 1."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(psutil.Error, AssertionError):
            self.init().send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # unshare --kill-child: PID 1, and so the namespace, goes with it
            self.proc.wait()


@pytest.fixture
def session() -> Iterator[BinderSession]:
    # Not pytest's tmp_path: as root that lies under a directory of mode 700 that uid 1000
    # cannot enter.
    stage = tempfile.mkdtemp(prefix="zombie-lab-binder.")
    os.chmod(stage, 0o755)
    try:
        srv = BinderSession(stage)
        srv.check_usable()
        try:
            yield srv
        finally:
            srv.stop()
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def tree_of(top: psutil.Process) -> list[psutil.Process]:
    try:
        return [top, *top.children(recursive=True)]
    except psutil.Error:
        return []


def labkit_processes(top: psutil.Process) -> list[str]:
    found = []
    for proc in tree_of(top)[1:]:
        with contextlib.suppress(psutil.Error):
            if (proc.name() in ("lab-parent", "lab-child", "lab-agent")
                    or any("labkit" in part for part in proc.cmdline())):
                found.append(f"{proc.pid} {proc.name()} {proc.status()}")
    return found


def kernels(top: psutil.Process) -> list[int]:
    found = []
    for proc in tree_of(top)[1:]:
        with contextlib.suppress(psutil.Error):
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                found.append(proc.pid)
    return found


def zombies_under(parents: list[psutil.Process]) -> list[str]:
    """Zombies whose parent is one of `parents`."""
    pids = {p.pid for p in parents}
    found = []
    for proc in psutil.process_iter(["ppid", "status", "name"]):
        if proc.info["ppid"] in pids and proc.info["status"] == psutil.STATUS_ZOMBIE:
            found.append(f"{proc.pid} {proc.info['name']} (parent {proc.info['ppid']})")
    return found


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def namespace_members(ns: str) -> list[int]:
    return [pid for pid in psutil.pids() if pid_namespace(pid) == ns]


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def label(path: str) -> str:
    """`02-zombies` for the English notebook, `zh-02-zombies` for its translation."""
    return os.path.splitext(os.path.relpath(path, NOTEBOOK_DIR))[0].replace(os.sep, "-")


def test_the_chinese_edition_has_the_notebooks_the_browser_runs():
    assert [stem(p)[:2] for p in EDITIONS["zh"]] == ["00", "02", "05"], EDITIONS["zh"]


@pytest.mark.timeout(1200)  # a hung page or server fails this test, not the whole run
@pytest.mark.parametrize("edition", EDITIONS)
def test_the_course_runs_in_jupyterlab_served_as_on_binder(session, edition):
    sync_playwright = require_browser()
    from playwright.sync_api import expect


    me = psutil.Process()
    zombies_before = zombie_count()
    session.start()
    session.wait_ready()
    init = session.init()
    server = session.server(init)
    ns = pid_namespace(init.pid)
    assert ns is not None and ns != pid_namespace(me.pid), "the session has no PID namespace"
    with open(f"/proc/{server.pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    # Binder-like: uid 1000, no capabilities, the seccomp filter on (mode 2).
    assert status["Uid"].split()[0] == str(UID), status["Uid"]
    assert int(status["CapEff"], 16) == 0, status["CapEff"]
    assert status["Seccomp"].strip() == "2", status["Seccomp"]

    timings: dict[str, float] = {}
    problems: list[str] = []
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        expect.set_options(timeout=PAGE_TIMEOUT_MS)  # expect() has its own default: 5 s
        try:
            for path in EDITIONS[edition]:
                name = label(path)
                t0 = time.monotonic()
                report = run_notebook(context, session, path, glyphs=edition == "zh")
                timings[name] = time.monotonic() - t0
                problems += check_page(stem(path), name, report)
                problems += after_kernel_shutdown(session, init, server, name)
        except BaseException:
            print(f"jupyter lab's log:\n{session.log()}")
            raise
        finally:
            context.close()
            browser.close()
    print("seconds per notebook:", {k: round(v, 1) for k, v in timings.items()})
    assert not problems, "\n".join(problems)

    # The end of the session: PID 1 exits when the server does, and the kernel kills and reaps
    # whatever was left in its namespace.
    session.stop()
    assert session.proc.returncode == 0, f"the session exited with {session.proc.returncode}:" \
        f"\n{session.log()}"
    reap_adopted()
    assert wait_until(lambda: not namespace_members(ns), 10), \
        f"processes remain in the session's PID namespace: {namespace_members(ns)}"
    assert labkit_processes(me) == []
    assert zombies_under(tree_of(me)) == []
    zombies_after = zombie_count()
    print(f"zombies on the machine: {zombies_before} before, {zombies_after} after")


def run_notebook(context, session: BinderSession, path: str, glyphs: bool = False) -> dict:
    """Open one notebook in a fresh tab and workspace, Run All, wait for the end; what the page
    showed, and with `glyphs` what is wrong with the Chinese of its text (report["tofu"]). The
    tab is closed and the kernel shut down afterwards."""
    from playwright.sync_api import expect

    name = label(path)
    page = context.new_page()
    try:
        # A workspace of its own: the page does not reopen (and restart kernels for) the
        # notebooks of the earlier ones.
        page.goto(f"{session.url}/lab/workspaces/{name}/tree/notebooks/"
                  f"{os.path.relpath(path, NOTEBOOK_DIR).replace(os.sep, '/')}"
                  f"?token={session.token}")
        status_bar = page.locator("#jp-main-statusbar")
        expect(status_bar).to_contain_text("Python 3 (ipykernel) | Idle")
        opened = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if opened.count():
            opened.first.click()  # fold the file browser away: the screenshot is of the notebook
        page.evaluate(OBSERVER_JS)
        run_all_cells(page)
        page.wait_for_function(DONE_JS, timeout=RUN_TIMEOUT_MS, polling=250)
        report = page.evaluate(REPORT_JS)
        screenshot(page, report["height"], os.path.join(ARTIFACTS, f"{name}.png"))
        report["tofu"] = [p for selector in CHINESE_TEXT for p in tofu(page, selector)] \
            if glyphs else []
        return report
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=os.path.join(ARTIFACTS, f"{name}-failure.png"))
        raise
    finally:
        page.close()  # without beforeunload: nothing asks about the unsaved notebook
        session.shutdown_kernels()


def screenshot(page, content_height: int, path: str) -> None:
    """The whole notebook in one picture: JupyterLab scrolls inside a fixed-size page, so the
    window is made as tall as the notebook first."""
    viewport = page.viewport_size
    tall = min(max(viewport["height"], content_height + 200), MAX_SCREENSHOT_HEIGHT)
    page.set_viewport_size({"width": viewport["width"], "height": tall})
    page.wait_for_timeout(300)  # let JupyterLab lay itself out again
    # Run All leaves the notebook scrolled to its last cell: back to the top.
    page.evaluate("() => document.querySelectorAll('.jp-WindowedPanel-outer')"
                  ".forEach(el => { el.scrollTop = 0; })")
    page.wait_for_timeout(200)
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(viewport)


def check_page(notebook: str, name: str, report: dict) -> list[str]:
    """What is wrong with the page of `notebook` (its stem: `02-zombies`, whatever its edition),
    reported under `name`."""
    problems = [f"{name}: Chinese not rendered: {text}" for text in report["tofu"]]
    unrun = [p for p in report["prompts"] if not (p.startswith("[") and p[1:-2].isdigit())]
    if unrun:
        problems.append(f"{name}: cells not run (prompts {report['prompts']})")
    for text in report["errors"] + report["tracebacks"]:
        problems.append(f"{name}: error output: {text}")
    if notebook in DRAWS and not any(width > 0 for width in report["images"]):
        problems.append(f"{name}: no plot rendered (images: {report['images']})")
    if notebook in DASHBOARD and not report["dashboard"]:
        problems.append(f"{name}: the dashboard widget never appeared")
    return problems


def after_kernel_shutdown(session: BinderSession, init: psutil.Process, server: psutil.Process,
                          name: str) -> list[str]:
    """The kernel is gone: so must be its labs, and no orphan may be left a zombie, neither of
    PID 1 (which never reaps) nor of the session's pause (binder/start), which must reap it."""
    problems = []
    if not wait_until(lambda: not kernels(init), 20):
        problems.append(f"{name}: the kernel did not shut down")
    if not wait_until(lambda: not labkit_processes(server), 20):
        problems.append(f"{name}: lab processes outlived the kernel: {labkit_processes(server)}")
    watched = [init, session.session_init(init)]
    if not wait_until(lambda: not zombies_under(watched), 5):
        problems.append(f"{name}: zombies left unreaped: {zombies_under(watched)}")
    return problems
