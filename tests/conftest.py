"""Test harness: every test must leave no process behind, and a failing one cannot poison the host.

The pytest process makes itself a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER), so that
whatever a test orphans is adopted here, not by the machine's PID 1 (which on Binder never reaps,
and here reaps only every ~2 s). After every test the `no_leaks` fixture proves that this
process has no descendants left, waiting a little for processes that are on their way out; any
it finds fail the test and are killed and reaped. `make test` also runs pytest under
`python -m labkit.pause --subreaper --drain`, which reaps anything that escapes even this.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import psutil
import pytest

from labkit import i18n, linux

# The seed's C pause, the maintainers' reference, kept beside the repository (never in it).
REFERENCE_C = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "shared", "reference", "pause.c")
LEAK_GRACE = 5.0  # seconds a test's processes may take to be gone after it ends


def pytest_configure(config: pytest.Config) -> None:
    linux.set_child_subreaper()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.skip("needs root; this run is the unprivileged one")


def descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def reap_adopted() -> list[int]:
    """Reap zombies that were adopted by this (subreaper) process; their PIDs."""
    reaped = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def wait_until(predicate, timeout: float, interval: float = 0.02):
    """Poll `predicate` until it returns something truthy or `timeout` s pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves any process behind (live or zombie), then clean up after it."""
    yield

    def gone() -> bool:
        reap_adopted()
        return not descendants()

    if wait_until(gone, LEAK_GRACE):
        return
    left = descendants()
    described = [f"{p.pid} {_describe(p)}" for p in left]
    for proc in left:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    wait_until(gone, LEAK_GRACE)
    pytest.fail(f"the test left {len(left)} processes behind: {described[:10]}")


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.name()} ({proc.status()}) {' '.join(proc.cmdline())[:80]}"
    except psutil.Error:
        return "(gone)"


def zombie_count() -> int:
    """Zombies on the whole machine, as `ps -eo stat | grep -c Z` counts them."""
    out = subprocess.run(["ps", "-eo", "stat="], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.split() if line.startswith("Z"))


@pytest.fixture(scope="module")
def kernel_under_an_init(tmp_path_factory):
    """Notebooks' kernels run as Jupyter does on a hub, but under an init that reaps
    (tools/headless.py): pytest is a subreaper that reaps only between tests, so an orphan made
    inside a notebook (the doctor's measurement) would otherwise wait for it and be reported as
    never reaped."""
    import support  # it imports this module: not at the top
    with support.on_jupyter_path(support.install_kernel(tmp_path_factory.mktemp("jupyter"))):
        yield


@pytest.fixture(scope="session")
def pause_c(tmp_path_factory) -> str:
    """The seed's pause.c, compiled once per session outside the repo.

    CI always has shared/ beside the clone: there its absence is a failure; in a learner's
    clone, a skip.
    """
    if not os.path.isfile(REFERENCE_C):
        message = f"the C reference {REFERENCE_C} is not beside this clone"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI keeps shared/ beside the clone")
        pytest.skip(message + " (only the maintainers' checkout has it)")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc) to build the reference pause.c: install gcc")
    binary = tmp_path_factory.mktemp("pause-c") / "pause-c"
    built = subprocess.run([cc, "-O2", "-o", str(binary), REFERENCE_C],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"cc could not build {REFERENCE_C}:\n{built.stderr}")
    return str(binary)


@pytest.fixture
def english(monkeypatch, tmp_path):
    """A process with no language set (labkit.i18n): no LABKIT_LANG, no Jupyter session, an
    English folder. Returns monkeypatch, for tests that then set one."""
    monkeypatch.delenv(i18n.ENV, raising=False)
    monkeypatch.delenv(i18n.SESSION_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch
