"""A class on one server: the real JupyterHub of classroom/ (its proxy, configurable-http-proxy,
its idle culler), local student accounts, every student's server started through the Hub's REST
API, and the course's heavy steps run in every student's own kernel at once, over the kernel
websocket, as the browser does.

It proves that each student's work gets what a lone learner gets, that a fork bomb stops at its
own student's budget (pids.max) while the others still fork and the host keeps a safe share of
its PIDs, and that stopping or culling a server leaves nothing: no lab process, no zombie, no
cgroup, no process of the student. It prints the class's figures.

Sizes (environment, for a small run): CLASSROOM_TEST_STUDENTS (10), CLASSROOM_TEST_BUDGET
(2400, the Hub's default: each student's pids.max), CLASSROOM_TEST_ZOMBIES (300 per student).
"""

from __future__ import annotations

import errno
import http.cookiejar
import json
import os
import pathlib
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
import websocket

from labkit import budget, limits, procfs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "classroom"))
import budget_spawner  # noqa: E402
from conftest import reap_adopted  # noqa: E402
from conftest import wait_until as _wait_until  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]

STUDENTS = int(os.environ.get("CLASSROOM_TEST_STUDENTS", "10"))
BUDGET = int(os.environ.get("CLASSROOM_TEST_BUDGET", "2400"))
ZOMBIES = int(os.environ.get("CLASSROOM_TEST_ZOMBIES", "300"))
BUDGET_LAB = 40                # notebook 07's Lab(pid_limit=40)
BOMBER, KILLED = 0, 1          # the student with the fork bomb; the one whose kernel is killed
CULLED = {KILLED, STUDENTS - 1}  # left to the idle culler; the others but the bomber: the API
CULL_TIMEOUT = 30
ACTIVITY = 5                   # seconds between activity reports: the browser's polling keeps
                               # a working student's server active for the culler
BOMB = ":(){ :|:& };:"         # the classic; bash retries a refused fork, then gives up
HUB = shutil.which("jupyterhub", path=os.path.dirname(sys.executable)) or "jupyterhub"

# The heavy steps of the course, as a student's cells would run them. Each prints one JSON line.
WORK = """
import json, time, labkit
from labkit import exhaustion, fullscan
with labkit.Lab(max_procs={zombies} + 20) as lab:
    parent = lab.parent("none")
    with lab.record(interval=0.1) as rec:
        parent.fork({zombies})
        snap = lab.wait_for(lambda s: len(s.zombies) == {zombies}, timeout=60)
    zombies, samples, peak = len(snap.zombies), len(rec.series.times), max(rec.series.total)
    mode = lab.mode
    start = time.perf_counter()
    for _ in range(10):
        lab.snapshot()
    snapshot_ms = (time.perf_counter() - start) * 100  # one reading of the lab's processes
    start = time.perf_counter()
    for _ in range(10):
        table = fullscan.read_table()
    fullscan_ms = (time.perf_counter() - start) * 100  # one reading of the whole machine
lab = exhaustion.budget_lab({budget_lab})
filled = exhaustion.fill_with_zombies(lab, lab.parent("none"))
usage = exhaustion.describe(lab)
print(json.dumps(dict(zombies=zombies, samples=samples, peak=peak, made=filled.made, mode=mode,
      snapshot_ms=snapshot_ms, fullscan_ms=fullscan_ms, table=len(table),
      errno=getattr(filled.refusal, "errno", None),
      mechanism=usage.mechanism, full=usage.full, own=usage.own)))
lab.close()
"""
OPEN_LAB = """
import json, os, labkit
lab = labkit.Lab(max_procs=60)
lab.parent("none").fork(50)
print(json.dumps(dict(kernel=os.getpid(), root=lab.root_pid)))
"""
START_BOMB = f"""
import subprocess
bomb = subprocess.Popen(["bash", "-c", {BOMB!r}], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
print("bomb started")
"""


# --- the machine: accounts, ports, the Hub -----------------------------------------------------

def free_ports(count: int) -> int:
    """The first of `count` consecutive free TCP ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + count < 65535 and all(port_free(first + i) for i in range(count)):
            return first
    raise RuntimeError("no free ports")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_until(predicate, timeout: float):
    """conftest's wait_until at a gentler pace: the predicates here ask the Hub over HTTP."""
    return _wait_until(predicate, timeout, interval=0.2)


def user_processes(uids: set[int]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        if proc.info["uids"] and proc.info["uids"].real in uids:
            found.append(proc)
    return found


def class_left(uids: set[int]) -> list[psutil.Process]:
    """The students' processes still there, once this process has reaped the orphans it
    adopted (killed zombies whose parent died come here, to the nearest subreaper)."""
    reap_adopted()
    return user_processes(uids)


@pytest.fixture
def accounts():
    """STUDENTS local accounts (useradd), their homes in a folder of their own; removed after."""
    base = f"/tmp/zombie-class-{secrets.token_hex(3)}"
    os.makedirs(base, mode=0o755)
    names = [f"zl{secrets.token_hex(2)}s{i:02d}" for i in range(STUDENTS)]
    made = []
    try:
        for name in names:
            subprocess.run(["useradd", "--create-home", "--base-dir", base, "--shell",
                            "/bin/bash", name], check=True, capture_output=True)
            made.append(name)
        yield names
    finally:
        uids = {pwd.getpwnam(name).pw_uid for name in made}
        for proc in user_processes(uids):  # only after a failure: the test proves none is left
            try:
                proc.kill()
            except psutil.Error:
                pass
        wait_until(lambda: not class_left(uids), 30)
        for name in made:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def needs(tool: str, how: str) -> None:
    """Skip where `tool` is missing, but fail in CI: .ci/run installs it."""
    if shutil.which(tool) is None:
        message = f"{tool} is not installed ({how})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def hub(tmp_path, accounts):
    """The Hub of classroom/ on 127.0.0.1, with a teacher's token; stopped (and its servers
    with it) after the test."""
    needs("configurable-http-proxy", "npm install -g configurable-http-proxy")
    try:
        budget_spawner.class_cgroup()
    except OSError as exc:
        pytest.skip(f"no cgroup with pids for the class here: {exc}")
    port, token = free_ports(3), secrets.token_hex(16)
    env = dict(os.environ, CLASSROOM_AUTH="dummy", CLASSROOM_PORT=str(port),
               CLASSROOM_ADMIN_TOKEN=token, CLASSROOM_PIDS_MAX=str(BUDGET),
               CLASSROOM_CULL_TIMEOUT=str(CULL_TIMEOUT), CLASSROOM_CULL_EVERY="5",
               CLASSROOM_ACTIVITY_INTERVAL=str(ACTIVITY),
               PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    log = open(tmp_path / "hub.log", "w")
    proc = subprocess.Popen([HUB, "-f", os.path.join(REPO, "classroom", "jupyterhub_config.py")],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    api = Api(f"http://127.0.0.1:{port}", token, proc.pid, tmp_path / "hub.log")
    try:
        if not wait_until(api.up, 60):
            pytest.fail(f"the Hub did not answer:\n{(tmp_path / 'hub.log').read_text()[-3000:]}")
        yield api
    finally:
        proc.send_signal(signal.SIGTERM)  # cleanup_servers: the Hub stops every server
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        # pytest shows a test's output only when it fails: the Hub's last words, for the reason.
        print("--- the Hub's log, its end:\n" + (tmp_path / "hub.log").read_text()[-3000:])
        # Only after a failure is anything left here: the test proves that nothing is.
        _, parent = budget_spawner.class_cgroup()
        budget_spawner.sweep(parent)
        os.rmdir(parent)


class Api:
    """The Hub's REST API and the students' servers behind its proxy, with the teacher's token."""

    def __init__(self, url: str, token: str, pid: int, log: pathlib.Path) -> None:
        self.url, self.pid, self._log = url, pid, log
        self.http = requests.Session()
        # A token, never cookies: a server's cookie would make it ask POSTs for an XSRF token.
        self.http.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self.http.headers["Authorization"] = f"token {token}"
        self.token = token

    def log(self) -> str:
        return self._log.read_text()

    def up(self) -> bool:
        try:
            return self.http.get(f"{self.url}/hub/api/", timeout=5).ok
        except requests.RequestException:
            return False

    def hub(self, method: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, f"{self.url}/hub/api/{path}", timeout=60, **kw)

    def start(self, name: str) -> bool:
        """Add the student and start their server (the API answers 202 if it takes a while)."""
        return (self.hub("POST", f"users/{name}").status_code in (201, 409)
                and self.hub("POST", f"users/{name}/server").status_code in (201, 202))

    def server(self, name: str) -> dict | None:
        return self.hub("GET", f"users/{name}").json()["servers"].get("")

    def ready(self, name: str) -> bool:
        server = self.server(name)
        return bool(server and server["ready"])

    def stopped(self, name: str) -> bool:
        return self.server(name) is None

    def user(self, method: str, name: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, f"{self.url}/user/{name}/api/{path}", timeout=60, **kw)


class Kernel:
    """A kernel of a student's server, driven over its websocket as JupyterLab does."""

    def __init__(self, api: Api, name: str) -> None:
        response = api.user("POST", name, "kernels", json={"name": "python3"})
        response.raise_for_status()
        self.id, self.session = response.json()["id"], uuid.uuid4().hex
        ws_url = api.url.replace("http", "ws", 1)
        self.ws = websocket.create_connection(
            f"{ws_url}/user/{name}/api/kernels/{self.id}/channels?session_id={self.session}",
            header=[f"Authorization: token {api.token}"], timeout=300)

    def run(self, code: str) -> tuple[str, str]:
        """Execute `code`; (status, what it printed), status "ok" or "error: NAME: VALUE"."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "session": self.session, "username": "student",
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        out, status, idle = [], None, False
        while status is None or not idle:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                out.append("\n".join(content["traceback"]))
            elif kind == "execute_reply":
                status = content["status"]
                if status == "error":
                    status = f"error: {content['ename']}: {content['evalue']}"
            elif kind == "status":
                idle = content["execution_state"] == "idle"
        return status, "".join(out)

    def close(self) -> None:
        self.ws.close()


class Figures:
    """Sampled in the background: the host's tasks (each holds a PID) and the class's (the class
    cgroup's pids.current counts every student's, zombies included)."""

    def __init__(self) -> None:
        self.pid_max, self.base = procfs.pid_max(), procfs.tasks_in_use()
        self.peak = self.class_peak = 0
        self.available = self.lowest_available = mem_available()
        _, self.cgroup = budget_spawner.class_cgroup()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, procfs.tasks_in_use())
            self.lowest_available = min(self.lowest_available, mem_available())
            try:
                with open(os.path.join(self.cgroup, "pids.current")) as f:
                    self.class_peak = max(self.class_peak, int(f.read()))
            except OSError:
                pass

    def __enter__(self) -> Figures:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Browser:
    """What an open JupyterLab tab does: ask the server for its kernels every few seconds
    (activity the idle culler sees), until the student leaves."""

    def __init__(self, api: Api, names: list[str]) -> None:
        self.api, self.open = api, set(names)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(ACTIVITY / 2):
            for name in list(self.open):
                try:
                    self.api.user("GET", name, "kernels")
                except requests.RequestException:
                    pass

    def leave(self, name: str) -> None:
        self.open.discard(name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def cgroup_of(name: str) -> str:
    version, parent = budget_spawner.class_cgroup()
    return os.path.join(parent, name)


def cgroup_value(name: str, entry: str) -> str:
    with open(os.path.join(cgroup_of(name), entry)) as f:
        return f.read()


def bomb_refused(name: str) -> int:
    """How many forks the kernel refused at the student's pids.max (pids.events: "max N")."""
    try:
        return int(dict(line.split() for line in cgroup_value(name, "pids.events")
                        .splitlines())["max"])
    except (OSError, KeyError):
        return 0


# --- the class -----------------------------------------------------------------------------

def test_a_class_works_side_by_side_and_leaves_nothing(hub, accounts):
    names = accounts
    uids = {pwd.getpwnam(name).pw_uid for name in names}
    zombies_before = host_zombies()
    started = time.monotonic()
    with Figures() as figures:
        with ThreadPoolExecutor(len(names)) as pool:  # the class logs in at once
            assert all(pool.map(hub.start, names))
        for name in names:
            assert wait_until(lambda n=name: hub.ready(n), 240), f"{name}'s server never started"
        browser = Browser(hub, names)
        kernels = {name: Kernel(hub, name) for name in names}

        # The budget is each student's own: their server and everything it starts.
        idle = [int(cgroup_value(name, "pids.current")) for name in names]
        for name in names:  # the course, in each student's home, theirs to write in
            account = pwd.getpwnam(name)
            first = os.path.join(account.pw_dir, "zombie-lab", "00-start-here.ipynb")
            assert os.stat(first).st_uid == account.pw_uid
        for name in names:
            assert int(cgroup_value(name, "pids.max")) == BUDGET
        assert all(idle), idle

        # One student runs a fork bomb; it fills their budget, and only theirs.
        bomber = names[BOMBER]
        status, _ = kernels[bomber].run(START_BOMB)
        assert status == "ok"
        assert wait_until(lambda: bomb_refused(bomber) > 0, 120), "the bomb never hit pids.max"
        assert int(cgroup_value(bomber, "pids.current")) <= BUDGET
        refused_first = bomb_refused(bomber)

        # Everyone else works at once, while the bomb holds its budget.
        workers = [name for name in names if name != bomber]
        work_started = time.monotonic()
        work = WORK.format(zombies=ZOMBIES, budget_lab=BUDGET_LAB)
        with ThreadPoolExecutor(len(workers)) as pool:
            results = dict(zip(workers, pool.map(lambda n: kernels[n].run(work), workers),
                               strict=True))
        work_time = time.monotonic() - work_started
        bomb_current = int(cgroup_value(bomber, "pids.current"))
        # The bomb kept pressing on its own budget while the others forked.
        assert bomb_refused(bomber) > refused_first, "the bomb stopped before the work did"
        refused = bomb_refused(bomber)

        for name, (status, out) in results.items():
            assert status == "ok", f"{name}: {status}\n{out[-2000:]}"
            result = json.loads(out.strip().splitlines()[-1])
            assert result["zombies"] == ZOMBIES, (name, result)
            assert result["peak"] >= ZOMBIES and result["samples"] > 1, (name, result)
            # notebook 07's budget lab: the kernel's EAGAIN at the lab's own cgroup's pids.max,
            # made in the student's delegated cgroup, as on a laptop
            assert result["errno"] == errno.EAGAIN and result["full"] and result["own"], \
                (name, result)
            assert result["made"] == BUDGET_LAB - budget.LAB_OWN, (name, result)
            assert result["mechanism"].startswith("cgroup pids.max"), (name, result)

        memory = [student_memory(pwd.getpwnam(name).pw_uid) for name in workers]
        readings = [json.loads(out.strip().splitlines()[-1]) for _, out in results.values()]
        snapshot_ms = [r["snapshot_ms"] for r in readings]
        fullscan_ms = [r["fullscan_ms"] for r in readings]
        table = max(r["table"] for r in readings)
        modes = sorted({r["mode"] for r in readings})

        # A kernel SIGKILLed with a lab open: the lab dies with it.
        killed = names[KILLED]
        status, out = kernels[killed].run(OPEN_LAB)
        assert status == "ok", out
        opened = json.loads(out.strip().splitlines()[-1])
        os.kill(opened["kernel"], signal.SIGKILL)
        assert wait_until(lambda: not psutil.pid_exists(opened["root"]), 30), \
            "the lab root outlived its SIGKILLed kernel"
        for kernel in kernels.values():
            kernel.close()

        # The bomber's server loses its init (SIGKILL, as the OOM killer might): the server, its
        # kernel and the bomb are orphans outside any tree the Hub knows, still in the cgroup.
        # The Hub sees its server gone (its poll), and stop() must find them by the cgroup.
        os.kill(server_init(hub.pid, pwd.getpwnam(bomber).pw_uid), signal.SIGKILL)

        # Stop the others through the REST API, but two left idle, for the culler.
        for i, name in enumerate(names):
            if i not in CULLED and i != BOMBER:
                browser.leave(name)
                assert hub.hub("DELETE", f"users/{name}/server").status_code in (202, 204)
        for i in CULLED:
            browser.leave(names[i])
        browser.close()
        for name in names:
            assert wait_until(lambda n=name: hub.stopped(n), CULL_TIMEOUT + 120), \
                f"{name}'s server was neither stopped nor culled"
    elapsed = time.monotonic() - started
    culled = [line for line in hub.log().splitlines() if "Culling server" in line]
    assert all(any(names[i] in line for line in culled) for i in CULLED), culled
    bomb_kills = kills_logged(hub.log(), bomber)
    assert bomb_kills > 0, "the bomber's cgroup was emptied without a kill: a test that proves less"

    # Nothing is left of the class: no student process (lab, zombie or bomb), no cgroup, no
    # zombie of the Hub's. (Other work on this machine may hold labs and zombies of its own.)
    # What the bomber's dead init left was killed as orphans, adopted by this test's process
    # (a subreaper, as PID 1 would be on a class server): they are gone once it reaps them.
    assert wait_until(lambda: not class_left(uids), 30), class_left(uids)
    assert not [d for d in os.listdir(figures.cgroup)
                if os.path.isdir(os.path.join(figures.cgroup, d))]
    assert wait_until(lambda: not hub_zombies(hub.pid), 30), hub_zombies(hub.pid)
    zombies_after = host_zombies()

    # The host kept a safe share of its PIDs free, whatever the bomb did.
    lowest_free = figures.pid_max - figures.peak
    assert lowest_free >= figures.pid_max * limits.SHARE, (lowest_free, figures.pid_max)
    print(f"\nclass: {STUDENTS} students, budget {BUDGET} PIDs each, {ZOMBIES} zombies each, "
          f"one fork bomb; the class's tasks at peak {figures.class_peak:,} (pids.current of "
          f"its cgroup); host tasks {figures.base:,} before, {figures.peak:,} at peak; free PIDs "
          f"at the lowest {lowest_free:,} of {figures.pid_max:,}; the bomb held "
          f"{bomb_current} of {BUDGET}, {refused:,} forks refused; its orphans took "
          f"{bomb_kills:,} SIGKILLs to end; host zombies "
          f"{zombies_before} before, {zombies_after} after; memory available "
          f"{figures.available:,} MB before, {figures.lowest_available:,} MB at the lowest; "
          f"{elapsed:.0f} s in all, {work_time:.0f} s for the heavy steps side by side\n"
          f"per student: {min(idle)}-{max(idle)} tasks with a kernel open; "
          f"(server + kernel, labs closed): {min(memory):.0f}-{max(memory):.0f} MB "
          f"PSS; labs in mode {', '.join(modes)}; one lab.snapshot() of {ZOMBIES} zombies, "
          f"under load: "
          f"{min(snapshot_ms):.1f}-{max(snapshot_ms):.1f} ms; one full scan of the host's "
          f"{table:,} processes: {min(fullscan_ms):.0f}-{max(fullscan_ms):.0f} ms")


def student_memory(uid: int) -> float:
    """MB of memory the student's processes hold: the sum of their Pss (proportional set size:
    shared pages divided among their users; proc(5), /proc/PID/smaps_rollup)."""
    total = 0
    for proc in user_processes({uid}):
        try:
            with open(f"/proc/{proc.pid}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return total / 1024


def server_init(hub_pid: int, uid: int) -> int:
    """The PID of the student's server's init (labkit.pause), the Hub's child."""
    for child in psutil.Process(hub_pid).children():
        if child.uids().real == uid and "labkit.pause" in child.cmdline():
            return child.pid
    raise LookupError(f"no server init of uid {uid} under the Hub")


def kills_logged(log: str, name: str) -> int:
    """The SIGKILLs BudgetSpawner logged when it emptied the student's cgroup."""
    for line in log.splitlines():
        if f"{name}: emptied and removed" in line:
            return int(line.rsplit("(", 1)[1].split()[0])
    return 0


def mem_available() -> int:
    """MemAvailable of /proc/meminfo, in MB (proc(5))."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def host_zombies() -> int:
    return sum(1 for p in psutil.process_iter(["status"])
               if p.info["status"] == psutil.STATUS_ZOMBIE)


def hub_zombies(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if p.status() == psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []
