"""Honest degradation, on real processes: where namespaces are denied, labkit says so and works.

mybinder.org and any container under Docker's default seccomp profile deny user and PID
namespaces, setns and mount with EPERM. tests/tools/no_namespaces.c reproduces that policy with
a seccomp-BPF filter (see its header), so these tests run labkit under it here, as root and as
uid 1000: the filter must really deny, the doctor must report the denials with their errno and
what they mean, Lab(mode="auto") must fall back to a subreaper lab that works fully and say why,
Lab(mode="pid-namespace") must refuse with NamespaceUnavailable naming the mechanism, and the
first notebook must run headless.

The binary is built with cc into a temporary directory once per session, never into the repo.
Everything under the filter runs as a child process (a filter cannot be removed once installed).
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap

import nbformat
import pytest
from support import child_env, execute, install_kernel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(REPO, "tests", "tools", "no_namespaces.c")
NOTEBOOK = os.path.join(REPO, "notebooks", "00-start-here.ipynb")
EPERM_TEXT = "EPERM (Operation not permitted)"
# What labkit.unshare names when it is refused: without root it needs a user namespace first.
REFUSED = ("new pid/mount namespaces (unshare)" if os.geteuid() == 0 else
           "a new user namespace (unshare CLONE_NEWUSER)")

pytestmark = [
    pytest.mark.skipif(
        platform.machine() not in ("x86_64", "aarch64"),
        reason="the no-namespaces filter knows the system call numbers of x86_64 and aarch64 "
               "only"),
]


@pytest.fixture(scope="session")
def no_namespaces(tmp_path_factory) -> str:
    """tests/tools/no_namespaces.c, built with cc into a temporary directory: its path."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("tests/test_degradation.py builds tests/tools/no_namespaces.c and needs a C "
                    "compiler, but `cc` is not on PATH (Debian/Ubuntu: apt-get install gcc)",
                    pytrace=False)
    binary = tmp_path_factory.mktemp("tools") / "no-namespaces"
    built = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), SOURCE],
                           capture_output=True, text=True, timeout=120)
    if built.returncode != 0:
        pytest.fail(f"cc could not build {SOURCE}:\n{built.stderr}", pytrace=False)
    works = subprocess.run([str(binary), "true"], capture_output=True, text=True, timeout=30)
    if works.returncode != 0:
        pytest.fail(f"no-namespaces cannot install its seccomp filter here: {works.stderr}",
                    pytrace=False)
    return str(binary)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """The environment of a child: this labkit importable, and a doctor cache of its own."""
    return child_env(XDG_CACHE_HOME=str(tmp_path / "cache"))


def run(command: list[str], env: dict[str, str], timeout: float = 60.0):
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def python_under(no_namespaces: str, code: str, env: dict[str, str]) -> dict:
    """Run `code` in a fresh Python under the filter; the JSON object it printed last."""
    done = run([no_namespaces, sys.executable, "-c", textwrap.dedent(code)], env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# --- the filter itself ----------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) from util-linux")
@pytest.mark.parametrize("command", ["unshare -Urpf true", "unshare -pf true", "unshare -U true"])
@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_unshare_1_is_denied_under_the_filter(no_namespaces, env, command):
    done = run([no_namespaces, *command.split()], env)
    assert done.returncode != 0
    assert "Operation not permitted" in done.stderr


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) from util-linux")
@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_without_the_filter_this_machine_allows_namespaces(env):
    """The control: here the denials above come from the filter, not from the host."""
    done = run(["unshare", "-Urpf", "true"], env)
    if done.returncode != 0:
        pytest.skip(f"this host denies namespaces by itself ({done.stderr.strip()}): the tests "
                    "still show labkit's degradation, but cannot tell the filter's part")


SYSCALLS = """
    import ctypes, errno, json, os, platform, signal, subprocess, threading

    libc = ctypes.CDLL(None, use_errno=True)
    NR = {"x86_64": {"clone": 56, "clone3": 435}, "aarch64": {"clone": 220, "clone3": 435}}
    NR = NR[platform.machine()]
    NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET = (
        0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)
    MS_REC, MS_PRIVATE = 0x4000, 0x40000

    def result(ret):
        return "ok" if ret >= 0 else errno.errorcode[ctypes.get_errno()]

    def clone(flags):
        # Without the filter this would really clone: the child leaves at once, as after fork.
        ret = libc.syscall(ctypes.c_long(NR["clone"]), ctypes.c_long(flags | signal.SIGCHLD),
                           None, None, None, None)
        if ret == 0:
            os._exit(0)
        if ret > 0:
            os.waitpid(ret, 0)
        return result(ret)

    out = {}
    out["clone3"] = result(libc.syscall(ctypes.c_long(NR["clone3"]), None, ctypes.c_size_t(0)))
    out["clone NEWUSER|NEWPID"] = clone(NEWUSER | NEWPID)
    out["clone NEWNET"] = clone(NEWNET)
    out["clone NEWNS"] = clone(NEWNS)
    out["clone plain"] = clone(0)
    # A target that does not exist: were the filter to let mount(2) through, it would do nothing.
    out["mount"] = result(libc.mount(b"none", b"/nonexistent-labkit-target", b"tmpfs", 0, None))
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
    out["setns"] = result(libc.setns(fd, 0))
    out["unshare 0"] = result(libc.unshare(0))       # Docker denies unshare whatever its flags
    out["unshare NEWPID|NEWNS"] = result(libc.unshare(NEWPID | NEWNS))
    out["unshare NEWUTS|NEWIPC"] = result(libc.unshare(NEWUTS | NEWIPC))
    out["unshare NEWUSER"] = result(libc.unshare(NEWUSER))

    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    seen = []
    thread = threading.Thread(target=seen.append, args=("thread",))  # clone3 -> ENOSYS -> clone
    thread.start()
    thread.join()
    out["thread"] = seen
    out["subprocess"] = subprocess.run(["sh", "-c", "exit 3"]).returncode  # posix_spawn
    with open("/proc/self/status") as f:
        out["seccomp"] = [line.split()[1] for line in f if line.startswith("Seccomp:")]
    print(json.dumps(out))
"""


@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_namespace_calls_fail_as_docker_s_profile_makes_them_fail_and_fork_still_works(
        no_namespaces, env):
    out = python_under(no_namespaces, SYSCALLS, env)
    assert out == {
        "clone3": "ENOSYS",                # libc falls back to clone(2), whose flags are seen
        "clone NEWUSER|NEWPID": "EPERM", "clone NEWNET": "EPERM", "clone NEWNS": "EPERM",
        "clone plain": "ok",
        "mount": "EPERM", "setns": "EPERM",
        "unshare 0": "EPERM", "unshare NEWPID|NEWNS": "EPERM", "unshare NEWUTS|NEWIPC": "EPERM",
        "unshare NEWUSER": "EPERM",
        "fork": 7, "thread": ["thread"], "subprocess": 3,  # the lab needs all three
        "seccomp": ["2"],                  # SECCOMP_MODE_FILTER
    }


@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_the_filter_passes_on_the_command_s_exit_status_and_explains_misuse(no_namespaces,
                                                                              env):
    assert run([no_namespaces, "sh", "-c", "exit 9"], env).returncode == 9
    assert run([no_namespaces, "/nonexistent-labkit-command"], env).returncode == 127
    usage = run([no_namespaces], env)
    assert usage.returncode == 125 and "usage: no-namespaces COMMAND" in usage.stderr


# --- the doctor -----------------------------------------------------------------------------

@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_the_doctor_under_the_filter_reports_each_denial_with_eperm_and_its_meaning(
        no_namespaces, env):
    done = run([no_namespaces, sys.executable, "-m", "labkit", "doctor", "--json",
                "--no-measure"], env)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)

    users = facts["user_namespaces"]
    assert users["ok"] is False and users["errno"] == "EPERM"
    assert users["summary"].startswith(f"denied: {EPERM_TEXT}")
    assert "seccomp filter (Docker's default profile)" in users["meaning"]

    pid_ns = facts["pid_namespaces"]
    assert pid_ns["ok"] is False and pid_ns["errno"] == "EPERM"
    assert pid_ns["summary"].startswith(f"denied: {EPERM_TEXT}")
    assert "subreaper labs do the same job" in pid_ns["meaning"]
    ways = ["unshare -pf true", "unshare -Urpf true"] if os.geteuid() == 0 else [
        "unshare -Urpf true"]
    assert [t["command"] for t in pid_ns["tried"]] == ways  # root tries both, then gives up
    assert {t["errno"] for t in pid_ns["tried"]} == {"EPERM"}

    proc = facts["proc_mount"]
    assert proc["ok"] is False and proc["errno"] == "EPERM"
    assert proc["tried"] and {t["errno"] for t in proc["tried"]} == {"EPERM"}
    assert {t["step"] for t in proc["tried"]} == {"namespaces"}
    assert "namespaces it needs were refused" in proc["summary"] and EPERM_TEXT in proc["summary"]
    assert "no PID-namespace lab" in proc["meaning"]

    assert facts["subreaper"]["ok"] is True  # what the fallback stands on
    mode = facts["lab_mode"]
    assert mode["mode"] == "subreaper" and mode["pid_namespace"] is False
    assert mode["summary"] == "subreaper"
    assert "not possible here (PID namespaces denied, EPERM)" in mode["meaning"]


# --- Lab ------------------------------------------------------------------------------------

AUTO_LAB = """
    import json, os
    import psutil
    import labkit

    out = {}
    with labkit.Lab(mode="auto") as lab:
        out["mode"], out["reason"] = lab.mode, lab.mode_reason
        out["same_pid_namespace"] = (os.readlink(f"/proc/{lab.root_pid}/ns/pid")
                                     == os.readlink("/proc/self/ns/pid"))
        parent = lab.parent(policy="none")
        pids = parent.fork(20, lifetime=0.0)
        snap = lab.wait_for(lambda s: len(s.zombies) == 20, timeout=10)
        out["zombies_are_its_children"] = sorted(z.pid for z in snap.zombies) == sorted(pids) \\
            and {z.ppid for z in snap.zombies} == {parent.pid}
        out["reaped"] = parent.reap()
        out["zombies_after_reap"] = len(lab.snapshot().zombies)

        orphaner = lab.parent(policy="none")
        kids = orphaner.fork(5, lifetime=1.0)
        orphaner.exit()
        snap = lab.wait_for(
            lambda s: all(s.by_pid(k) is not None and s.by_pid(k).ppid == lab.root_pid
                          for k in kids), timeout=5)
        out["orphans_adopted_by_root"] = True
        lab.wait_for(lambda s: set(kids) <= {e.pid for e in lab.events}, timeout=10)
        out["orphans_reaped_by_root"] = True
        root = lab.root_pid
    out["closed"] = lab.closed and not psutil.pid_exists(root)
    out["left"] = [p.pid for p in psutil.Process().children(recursive=True)]
    print(json.dumps(out))
"""


@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_auto_falls_back_to_a_subreaper_lab_says_why_and_the_lab_works_fully(no_namespaces,
                                                                               env):
    out = python_under(no_namespaces, AUTO_LAB, env)
    assert out["mode"] == "subreaper"
    assert out["reason"] == (
        f"a PID-namespace lab is not possible here: labkit.unshare: {REFUSED} refused: "
        f"{EPERM_TEXT}. What still works: Lab(mode='subreaper'), where the lab root adopts "
        "orphans as a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER)")
    assert out["same_pid_namespace"] is True
    assert out["zombies_are_its_children"] is True
    assert out["reaped"] == 20 and out["zombies_after_reap"] == 0
    assert out["orphans_adopted_by_root"] and out["orphans_reaped_by_root"]
    assert out["closed"] is True and out["left"] == []


PID_NAMESPACE_LAB = """
    import json
    import psutil
    import labkit

    outcomes, messages = [], set()
    for _ in range(TRIES):
        try:
            lab = labkit.Lab(mode="pid-namespace")
        except labkit.NamespaceUnavailable as exc:
            outcomes.append("NamespaceUnavailable")
            messages.add(str(exc))
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
        else:
            lab.close()
            outcomes.append("a pid-namespace lab started")
    left = [p.pid for p in psutil.Process().children(recursive=True)]
    print(json.dumps({"outcomes": outcomes, "messages": sorted(messages), "left": left}))
"""


@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_a_pid_namespace_lab_is_refused_naming_the_mechanism_errno_and_what_works(
        no_namespaces, env):
    """Tried 20 times: the refusal must be told from a lab that failed to start every time
    (the root's exit is seen just after its pipe closes; a start that timed out would be a
    different outcome), and leave nothing."""
    out = python_under(no_namespaces, PID_NAMESPACE_LAB.replace("TRIES", "20"), env)
    assert out["outcomes"] == ["NamespaceUnavailable"] * 20
    [message] = out["messages"]
    assert message.startswith("a PID-namespace lab is not possible here: ")
    assert f"{REFUSED} refused: {EPERM_TEXT}" in message  # the mechanism and its errno
    assert "What still works: Lab(mode='subreaper')" in message
    assert out["left"] == []


POD = """
    import json
    import psutil
    import labkit

    outcomes, messages = [], set()
    for _ in range(5):
        try:
            pod = labkit.Pod()
        except labkit.NamespaceUnavailable as exc:
            outcomes.append("NamespaceUnavailable")
            messages.add(str(exc))
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
        else:
            pod.close()
            outcomes.append("a pod started")
    left = [p.pid for p in psutil.Process().children(recursive=True)]
    print(json.dumps({"outcomes": outcomes, "messages": sorted(messages), "left": left}))
"""


@pytest.mark.skipif(not os.path.exists(os.path.join(REPO, "labkit", "pod.py")),
                    reason="labkit/pod.py (labkit.Pod) is not written yet")
@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_a_pod_is_refused_naming_the_mechanism_errno_and_what_works(no_namespaces, env):
    out = python_under(no_namespaces, POD, env)
    assert out["outcomes"] == ["NamespaceUnavailable"] * 5
    [message] = out["messages"]
    refused = ("new pid/uts/ipc/net/mount namespaces (unshare)" if os.geteuid() == 0 else
               "a new user namespace (unshare CLONE_NEWUSER)")
    assert message.startswith("a pod is not possible here: ")
    assert f"{refused} refused: {EPERM_TEXT}" in message
    assert "What still works:" in message and "Lab(mode='subreaper')" in message
    assert out["left"] == []


# --- the first notebook ---------------------------------------------------------------------

@pytest.fixture
def kernel_under_the_filter(no_namespaces, env, tmp_path, monkeypatch):
    """A python3 kernelspec whose argv runs the kernel under the filter (and under the lab's
    init, as tests/test_notebooks.py does, so the doctor's orphan is reaped at once)."""
    spec_root = install_kernel(tmp_path / "jupyter", prefix=[no_namespaces],
                               display_name="Python 3 (no namespaces)")
    monkeypatch.setenv("JUPYTER_PATH", spec_root)
    for name in ("XDG_CACHE_HOME", "PYTHONPATH"):
        monkeypatch.setenv(name, env[name])


@pytest.mark.slow
@pytest.mark.user  # Binder is both: namespaces denied and uid 1000
def test_the_first_notebook_runs_headless_under_the_filter(kernel_under_the_filter):
    nb = execute(nbformat.read(NOTEBOOK, as_version=4), os.path.dirname(NOTEBOOK))
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") +
                      o.get("data", {}).get("text/html", "") for o in outputs)
    assert "Traceback" not in shown
    assert "skipped" not in shown.lower()  # what cannot run says so, and shows what can
    for label in ("User namespaces", "PID namespaces"):
        assert f"<td><b>{label}</b></td><td>denied: {EPERM_TEXT}" in shown
    assert "<td><b>Fresh /proc mount</b></td><td>denied: " in shown
    assert "not possible here (PID namespaces denied, EPERM)" in shown
    assert "<Lab mode='subreaper'" in shown  # the lab it then made is a subreaper lab
    assert "lab-child [child] zombie" in shown


# The English course and every translation (notebooks/zh/): the code cells are the same, but
# what labkit says follows the notebook's folder, and its refusals are what differs here.
COURSE = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb"))) + \
    sorted(glob.glob(os.path.join(REPO, "notebooks", "*", "*.ipynb")))


@pytest.mark.parametrize("path", [p for p in COURSE if p != NOTEBOOK],   # NOTEBOOK: above
                         ids=lambda p: os.path.relpath(p, os.path.join(REPO, "notebooks")))
@pytest.mark.slow
def test_every_notebook_runs_headless_where_namespaces_are_denied(kernel_under_the_filter, path):
    """As under Docker's default profile: a notebook that needs namespaces must say what it
    cannot show and go on with what still works, never fail. (Not repeated as uid 1000: the
    browser test runs every notebook as on Binder, uid 1000 with namespaces denied.)"""
    nb = execute(nbformat.read(path, as_version=4), os.path.dirname(path))
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # On Binder no lesson may vanish: the nearest real thing runs, the rest is a labelled
    # recording (labkit/recordings/), never a "Skipped".
    shown = [o.get("text", "") + json.dumps(o.get("data", {}), ensure_ascii=False) for o in outputs]
    said = [line for text in shown for line in text.splitlines()
            if "skipped" in line.lower() or "跳过" in line]
    assert not said, said[:3]
    assert not silent_sections(nb), "sections whose cells show nothing here"


def silent_sections(nb) -> list[str]:
    """The "## " sections whose code cells all ran and showed nothing: a lesson that vanished."""
    shown: dict[str, list[bool]] = {}
    title = None  # the imports before the first section may well print nothing
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                title = line if line.startswith("## ") else title
        elif cell.cell_type == "code" and title is not None:
            shown.setdefault(title, []).append(any(o.get("text", "").strip() or o.get("data")
                                                   for o in cell.outputs))
    return [title for title, cells in shown.items() if not any(cells)]
