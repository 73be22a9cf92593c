"""labkit.Pod on real processes: the seed's pod, a pause holding namespaces that members join.

Each test starts a real pod (a pause as PID 1 of new UTS/IPC/NET/PID namespaces) and proves one
thing a member sees, or does not see, there. Run as root and as an unprivileged user (the pod then
lives in a user namespace of its own, which members join first).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import psutil
import pytest
from conftest import wait_until

import labkit
from labkit import linux, nsenter, procfs, unshare
from labkit.observe import namespace_pid
from labkit.pod import launcher_error
from labkit.programs import PACKAGE_DIR

pytestmark = pytest.mark.user  # a pod needs a user namespace when not root

ROOT = os.geteuid() == 0
PY = sys.executable


@pytest.fixture
def pod():
    with labkit.Pod(hostname="pod-a") as pod:
        yield pod


def ps_rows(text: str) -> list[dict]:
    """`ps -eo pid,ppid,stat,comm` output as dicts."""
    header, *lines = text.splitlines()
    assert header.split() == ["PID", "PPID", "STAT", "COMMAND"]
    rows = []
    for line in lines:
        pid, ppid, stat, comm = line.split(None, 3)
        rows.append({"pid": int(pid), "ppid": int(ppid), "stat": stat, "comm": comm})
    return rows


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The next line of a member's stdout, waiting at most `timeout` s (never forever)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return proc.stdout.readline()


def children_of_us() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True)]


# --- what members share, and the host does not -------------------------------------------------

def test_members_see_the_pods_hostname_while_the_host_keeps_its_own(pod):
    ours = socket.gethostname()
    assert ours != "pod-a"
    done = pod.run(["hostname"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "pod-a\n", "")
    assert pod.run(["uname", "-n"]).stdout == "pod-a\n"  # a second member: the same UTS
    assert socket.gethostname() == ours


def test_a_message_queue_made_by_one_member_is_seen_by_another_and_not_by_the_host(pod):
    made = pod.run(["ipcmk", "-Q"])  # System V IPC: lives in the IPC namespace
    assert made.returncode == 0, made.stderr
    qid = made.stdout.split(":")[-1].strip()  # "Message queue id: 0"
    listed = pod.run(["ipcs", "-q"]).stdout
    rows = [line.split() for line in listed.splitlines() if line.startswith("0x")]
    [key] = [row[0] for row in rows if row[1] == qid]
    host = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True).stdout
    assert key not in host, f"the host sees the pod's queue {key}:\n{host}"
    removed = pod.run(["ipcrm", "-q", qid])
    assert removed.returncode == 0, removed.stderr
    assert key not in pod.run(["ipcs", "-q"]).stdout


SERVER = """
import socket
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
conn.sendall(b"hello from " + socket.gethostname().encode())
conn.close()
"""
CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as conn:
    print(conn.recv(100).decode())
"""


def test_members_talk_over_the_pods_loopback_which_the_host_cannot_reach(pod):
    server = pod.start([PY, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    port = int(read_line(server, 10))
    # The host's 127.0.0.1 is another interface, in another network namespace: nobody listens.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    done = pod.run([PY, "-c", CLIENT, str(port)])
    assert (done.returncode, done.stdout) == (0, "hello from pod-a\n"), done.stderr
    assert server.wait(10) == 0
    server.stdout.close()


def test_ps_inside_shows_the_pause_as_pid_1_and_every_member(pod):
    member = pod.start(["sleep", "30"])
    [inside] = procfs.children(member.pid)  # the member: nsenter's child, in the pod
    rows = ps_rows(pod.ps())
    assert rows[0] == {"pid": 1, "ppid": 0, "stat": rows[0]["stat"], "comm": "pause"}
    sleeper = {"pid": namespace_pid(inside), "ppid": 0, "comm": "sleep"}
    # PPID 0: the member's parent, labkit.nsenter, is outside the pod's PID namespace.
    assert any({k: r[k] for k in sleeper} == sleeper for r in rows), rows
    assert any(r["comm"] == "ps" for r in rows)  # the ps member itself
    assert namespace_pid(pod.pid) == 1


def test_each_member_has_a_mount_namespace_of_its_own_as_each_container_of_a_pod(pod):
    """A real pod's containers share net, IPC and UTS (and PID when asked), never the mount
    namespace: each container has its own, with its own image (only volumes are shared).
    Both members live at once: a freed namespace's inode number may be given to the next."""
    first, second = (os.readlink(f"/proc/{member}/ns/mnt") for proc in
                     (pod.start(["sleep", "30"]), pod.start(["sleep", "30"]))
                     for member in procfs.children(proc.pid))
    pause = os.readlink(f"/proc/{pod.pid}/ns/mnt")
    ours = os.readlink("/proc/self/ns/mnt")
    assert len({first, second, pause, ours}) == 4, (first, second, pause, ours)


@pytest.mark.skipif(shutil.which("mount") is None, reason="needs mount(8) from util-linux")
def test_a_mount_made_by_one_member_is_seen_by_no_other_member_nor_the_host(pod, tmp_path):
    """Private propagation (mount_namespaces(7)): a member's tmpfs stays in its namespace."""
    target = str(tmp_path)
    made = pod.run(["sh", "-c", f"mount -t tmpfs lab {target} && touch {target}/mine && "
                    f"ls {target}"])
    assert (made.returncode, made.stdout) == (0, "mine\n"), made.stderr
    assert pod.run(["ls", "-A", target]).stdout == ""  # another member: the directory is empty
    assert os.listdir(target) == []
    assert target not in [point for point, _, _ in linux.mounts()]


def test_members_still_see_the_pods_process_table_from_their_own_mount_namespace(pod):
    """Their /proc is a copy of the pause's mount: the pod's PID namespace, not the host's."""
    assert pod.run(["cat", "/proc/1/comm"]).stdout == "pause\n"


# --- the pause is the pod's init ---------------------------------------------------------------

ORPHAN_MAKER = """
import os, sys, time
go = sys.argv[1]
pid = os.fork()
if pid == 0:  # the child: outlives its parent, until the test says go
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # let go of the member's stdout, so that pod.run returns now
    os.dup2(devnull, 2)
    while not os.path.exists(go):
        time.sleep(0.01)
    os._exit(7)
print(pid, flush=True)  # and the parent exits: the child is an orphan
"""


def test_a_members_orphan_is_adopted_and_reaped_by_the_pods_pause(pod, tmp_path):
    go = tmp_path / "go"
    done = pod.run([PY, "-c", ORPHAN_MAKER, str(go)])
    assert done.returncode == 0, done.stderr
    orphan = int(done.stdout)  # its PID inside the pod
    stat = pod.run(["cat", f"/proc/{orphan}/stat"]).stdout  # seen from inside
    assert procfs.parse_stat(stat.encode()).ppid == 1  # its PPID: 1, the pause
    # From the host: the pause's child, whose PID in the pod is `orphan`.
    assert [namespace_pid(c) for c in procfs.children(pod.pid)] == [orphan]
    go.touch()
    reaped = wait_until(lambda: [e for e in pod.events if e.ns_pid == orphan], 10)
    assert [(e.ns_pid, e.status) for e in reaped] == [(orphan, 7)]
    rows = ps_rows(pod.ps())
    assert not [r for r in rows if r["stat"].startswith("Z")], rows  # no zombie in the pod
    assert orphan not in [r["pid"] for r in rows]


def test_a_member_whose_nsenter_dies_is_adopted_outside_the_pod(pod):
    """The kernel picks an orphan's new parent in the PID namespace of the parent that died
    (kernel/exit.c, find_child_reaper), and a member's parent is outside: so the member goes
    to the nearest reaper out here (pytest is a child subreaper), not to the pod's PID 1."""
    member = pod.start(["sleep", "30"])
    [inside] = procfs.children(member.pid)
    member.kill()  # SIGKILL cannot be passed on: nsenter dies, the member lives
    member.wait()
    assert wait_until(lambda: procfs.read_stat(inside).ppid == os.getpid(), 10)
    assert namespace_pid(inside) != inside  # still a process of the pod's PID namespace
    os.kill(inside, signal.SIGKILL)
    os.waitpid(inside, 0)  # ours to reap now; the pod's exit would wait for this zombie


# --- lifetime -----------------------------------------------------------------------------------

def test_closing_the_pod_stops_each_member_then_the_pause_as_a_kubelet_does():
    """Container by container (SIGTERM, the grace period, then SIGKILL), and only then the
    sandbox: a member that handles SIGTERM's default dies of it (143); one that ignores it is
    killed after the grace (137)."""
    pod = labkit.Pod(hostname="pod-a")
    stubborn = pod.start([PY, "-c", "import signal, time\n"
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                          "print('ready', flush=True)\ntime.sleep(60)"],
                         stdout=subprocess.PIPE, text=True)
    assert read_line(stubborn, 10) == "ready\n"
    sleeper = pod.start(["sleep", "60"])
    pids = [pod.pid, pod.launcher_pid, stubborn.pid, sleeper.pid]
    pids += procfs.children(stubborn.pid) + procfs.children(sleeper.pid)
    assert len(pids) == 6
    pod.close(grace=0.5)
    assert (sleeper.returncode, stubborn.returncode) == (128 + 15, 128 + 9)
    stubborn.stdout.close()
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert children_of_us() == []
    assert pod.closed and pod.members == []
    pod.close()  # again: nothing to do
    with pytest.raises(labkit.LabClosedError):
        pod.run(["true"])
    with pytest.raises(labkit.LabClosedError):
        pod.start(["true"])


def test_stopping_only_the_pause_makes_the_kernel_kill_every_member():
    """The namespace rule, not the kubelet's procedure: PID 1 of a PID namespace exits, and the
    kernel SIGKILLs every other process in it (pid_namespaces(7)), even one ignoring SIGTERM."""
    pod = labkit.Pod(hostname="pod-a")
    sleeper = pod.start(["sleep", "60"])
    pod.stop_pause_only()
    assert sleeper.returncode == 128 + 9
    assert pod.closed and children_of_us() == []


def test_a_bad_grace_is_refused_before_anything_stops(pod):
    with pytest.raises(TypeError):
        pod.close(grace="1")
    with pytest.raises(ValueError):
        pod.close(grace=-1)
    assert not pod.closed


def test_a_member_that_outlives_its_timeout_is_stopped(pod):
    with pytest.raises(subprocess.TimeoutExpired):
        pod.run(["sleep", "30"], timeout=0.3)
    assert pod.members == []
    assert [r["comm"] for r in ps_rows(pod.ps())] == ["pause", "ps"]


def test_a_missing_program_is_file_not_found_and_exit_statuses_pass_through(pod):
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        pod.run(["no-such-program"])
    assert pod.run(["sh", "-c", "exit 3"]).returncode == 3
    assert pod.run(["sh", "-c", "kill -TERM $$"]).returncode == 128 + 15


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"hostname": ""}, ValueError),
    ({"hostname": "a" * 65}, ValueError),
    ({"hostname": "pod a"}, ValueError),
    ({"hostname": "pod/a"}, ValueError),
    ({"hostname": 42}, TypeError),
])
def test_a_bad_hostname_is_refused_before_anything_starts(kwargs, error):
    with pytest.raises(error, match="hostname"):
        labkit.Pod(**kwargs)
    assert children_of_us() == []


@pytest.mark.parametrize(("argv", "error"), [
    ("hostname", TypeError), ([], TypeError), (None, TypeError), (["ps", 1], TypeError),
    ([""], ValueError), (["echo", "a\0b"], ValueError),
])
def test_a_bad_argv_is_refused_before_any_member_starts(pod, argv, error):
    before = children_of_us()
    with pytest.raises(error):
        pod.run(argv)
    with pytest.raises(error):
        pod.start(argv)
    assert children_of_us() == before


def test_a_bad_timeout_is_refused(pod):
    with pytest.raises(TypeError):
        pod.run(["true"], timeout="1")
    with pytest.raises(ValueError):
        pod.run(["true"], timeout=-1)


# --- the seed's recipe, step by step ----------------------------------------------------------

def run_module(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR)
    return subprocess.run([PY, "-m", *args], capture_output=True, text=True, timeout=30,
                          env=env, **kwargs)


def test_unshare_pid_uts_ipc_mount_runs_the_command_as_pid_1_with_a_hostname_of_its_own():
    """`unshare --pid --uts --ipc --mount -f sh -c ...`, the seed's command, from Python."""
    ours = socket.gethostname()
    user = [] if ROOT else ["--user"]
    done = run_module(["labkit.unshare", "--pid", "--uts", "--ipc", "--mount-proc", *user, "--",
                       "sh", "-c", "echo $$; hostname x; hostname; ps -o pid,comm"])
    assert done.returncode == 0, done.stderr
    pid, hostname, header, *table = done.stdout.splitlines()
    assert (pid, hostname) == ("1", "x")  # the shell is PID 1; the new UTS holds "x"
    assert header.split() == ["PID", "COMMAND"]
    pids = sorted(int(row.split()[0]) for row in table)
    assert pids[0] == 1 and pids[-1] < 10, table  # only the namespace's own few processes
    assert socket.gethostname() == ours  # the host's hostname never changed


def test_nsenter_joins_the_namespaces_of_a_pods_pause_as_docker_run_container_does(pod):
    """`docker run --uts=container:pause --pid=container:pause ...`: labkit.nsenter by hand."""
    user = ["--user"] if pod.user_namespace else []
    done = run_module(["labkit.nsenter", "--target", str(pod.pid), *user, "--uts", "--pid",
                       "--mount", "--", "sh", "-c", "hostname; echo $PPID; cat /proc/1/comm"])
    assert (done.returncode, done.stdout) == (0, "pod-a\n0\npause\n"), done.stderr


@pytest.mark.root
def test_a_refused_namespace_is_reported_with_its_errno_and_what_still_works():
    """A real refusal: an unprivileged user may not make a network namespace without a user
    namespace of its own (user_namespaces(7)), so unshare(2) says EPERM. Run as uid 1000 from a
    copy of labkit it can read (this clone may sit under /root, mode 700)."""
    stage = tempfile.mkdtemp(prefix="labkit-pod-test-")
    try:
        shutil.copytree(os.path.join(PACKAGE_DIR, "labkit"), os.path.join(stage, "labkit"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        os.chmod(stage, 0o755)
        done = subprocess.run(
            [PY, "-B", "-m", "labkit.unshare", "--net", "--", "true"], capture_output=True,
            text=True, timeout=30, cwd="/", env={"PATH": "/usr/bin:/bin", "PYTHONPATH": stage},
            user=1000, group=1000, extra_groups=[])
    finally:
        shutil.rmtree(stage)
    assert done.returncode == unshare.EXIT_NAMESPACES, done.stderr
    error = launcher_error(done.returncode, done.stderr)
    assert isinstance(error, labkit.NamespaceUnavailable)
    message = str(error)
    assert "new net namespaces (unshare) refused: EPERM" in message
    assert "subreaper" in message


def test_a_launcher_that_fails_otherwise_is_not_called_a_refused_namespace():
    done = run_module(["labkit.unshare", "--bogus", "--", "true"])
    assert done.returncode == unshare.EXIT_USAGE
    error = launcher_error(done.returncode, done.stderr)
    assert isinstance(error, labkit.AgentError)
    assert not isinstance(error, labkit.NamespaceUnavailable)


def test_nsenter_names_the_target_it_cannot_open():
    done = run_module(["labkit.nsenter", "--target", "999999999", "--uts", "--", "true"])
    assert done.returncode == nsenter.EXIT_TARGET
    assert "/proc/999999999/ns/uts" in done.stderr and "ENOENT" in done.stderr
