"""Notebook 06's experiments on a real pod (labkit.Pod), one function per claim.

Each function runs its experiment on real processes and returns a plain dict (JSON, so that
tools/record_runs.py can keep a run from a machine that allows namespaces): "lines" is what the
notebook prints, the other keys are what it checks. Where the machine forbids namespaces, the
notebook shows the recorded result of the same function instead (labkit.recorded).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from labkit import procfs, programs, unshare
from labkit.container import STOP_TIMEOUT, wait_until
from labkit.errors import LabError, NamespaceUnavailable
from labkit.i18n import N_, _
from labkit.pod import Pod
from labkit.recorded import Lesson, NotHere
from labkit.runtime import read_events

KINDS = ("uts", "ipc", "net", "pid", "mnt", "user")
SHARED = ("uts", "ipc", "net", "pid")  # what a pod's members share here; each has its own mnt
# The columns of namespace_table(): keys of its "links", translated only where printed.
WHO = (N_("this notebook"), N_("the pause"), N_("member 1"), N_("member 2"))
HOST_REFUSED = N_("refused")  # loopback()'s "from_host" when nothing listens there
HOST_GOT_NOTHING = N_("connected, got nothing")
REFUSED_EXIT = (*unshare.REFUSED, unshare.EXIT_HOSTNAME)  # the kernel refused a step


def open_pod(lesson: Lesson, hostname: str = "pod-a") -> Pod | None:
    """A Pod, or None where the kernel refuses its namespaces (the reason is printed, and noted
    in `lesson` so that the experiments that need the pod show their recording)."""
    try:
        return Pod(hostname=hostname)
    except NamespaceUnavailable as exc:
        print(exc)
        lesson.refused(str(exc), told=True)
        return None


def unshare_box() -> dict:
    """The seed's `unshare --pid --uts --ipc --mount -f sh` (without chroot), hostname `box`."""
    shell = 'echo "my PID: $$"; echo "my hostname: $(hostname)"; ps -eo pid,ppid,comm'
    user = [] if os.geteuid() == 0 else ["--user"]
    done = subprocess.run(programs.unshare("--pid", "--uts", "--ipc", "--mount-proc",
                                           "--hostname", "box", *user, "--", "sh", "-c", shell),
                          capture_output=True, text=True, timeout=30, env=programs.environment())
    if done.returncode in REFUSED_EXIT:
        raise NamespaceUnavailable(done.stderr.strip())
    if done.returncode != 0:
        raise LabError(_("labkit.unshare exited with {status}: {said}").format(
            status=done.returncode, said=done.stderr.strip()))
    said = done.stdout.splitlines()
    rows = [line.split() for line in said[3:]]
    return {"my_pid": said[0].split(": ")[1], "my_hostname": said[1].split(": ")[1],
            "ps": rows, "host_kept_its_name": socket.gethostname() != "box",
            "lines": said + [_("the host's hostname is still: {name}").format(
                name=socket.gethostname())]}


def _member_pids(pod: Pod, n: int) -> list[int]:
    """Host PIDs of `n` sleeping members started now (they end when the pod closes)."""
    members = [pod.start(["sleep", "300"]) for _ in range(n)]
    return [procfs.children(proc.pid)[0] for proc in members]


def _stop(pod: Pod) -> None:
    for proc in pod.members:
        proc.terminate()
        proc.wait(10)


def namespace_links(pod: Pod) -> dict:
    """/proc/PID/ns/* of this process, the pause and two members alive at once."""
    first, second = _member_pids(pod, 2)
    who = dict(zip(WHO, (os.getpid(), pod.pid, first, second), strict=True))
    links = {kind: {name: os.readlink(f"/proc/{pid}/ns/{kind}") for name, pid in who.items()}
             for kind in KINDS}
    _stop(pod)
    lines = [f"{'':5} " + " ".join(f"{_(name):17}" for name in who)]
    lines += [f"{kind:5} " + " ".join(f"{link:17}" for link in row.values())
              for kind, row in links.items()]
    # The user namespace is left out: the pod has one of its own only when we are not root.
    same = {kind: row["member 1"] == row["member 2"] == row["the pause"]
            for kind, row in links.items() if kind != "user"}
    apart = {kind: row["member 1"] != row["this notebook"]
             for kind, row in links.items() if kind != "user"}
    return {"links": links, "members_share_with_pause": same, "apart_from_notebook": apart,
            "lines": lines}


def hostnames(pod: Pod) -> dict:
    inside = pod.run(["hostname"]).stdout.strip()
    host = socket.gethostname()
    return {"inside": inside, "host": host, "host_differs": host != inside,
            "lines": [_("inside the pod: {inside!r}   on the host: {host!r}").format(
                inside=inside, host=host)]}


def _queues(listing: str) -> set[tuple[str, str]]:
    """The (key, msqid) pairs of an `ipcs -q` listing."""
    return {tuple(line.split()[:2]) for line in listing.splitlines() if line.startswith("0x")}


def message_queue(pod: Pod) -> dict:
    """One member makes a System V message queue; another lists it; the host does not."""
    if not (shutil.which("ipcmk") and shutil.which("ipcs")):
        raise NotHere(_("ipcmk and ipcs are not installed here (apt-get install util-linux)"))
    made = pod.run(["ipcmk", "-Q"]).stdout.strip()
    in_pod = pod.run(["ipcs", "-q"]).stdout
    on_host = subprocess.run(["ipcs", "-q"], capture_output=True, text=True).stdout
    qid = made.split(":")[1].strip()
    ours = [q for q in _queues(in_pod) if q[1] == qid]
    on_host_too = bool(ours) and ours[0] in _queues(on_host)
    key = ours[0][0] if ours else "?"
    return {"made": made, "seen_by_another_member": len(ours) == 1, "seen_by_host": on_host_too,
            "lines": [_("member 1 ran ipcmk -Q: {made}").format(made=made),
                      _("member 2 ran ipcs -q:"), *in_pod.strip().splitlines(),
                      (_("the host ran ipcs -q: {n} queues there, and the pod's key {key}")
                       if on_host_too else
                       _("the host ran ipcs -q: {n} queues there, not the pod's key {key}"))
                      .format(n=len(_queues(on_host)), key=key)]}


SERVER = """
import socket
server = socket.create_server(("127.0.0.1", 0))   # port 0: the kernel picks a free one
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
conn.sendall(b"hello from the server member")
conn.close()
"""
CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as conn:
    print(conn.recv(100).decode())
"""


def _host_connects(port: int) -> str:
    """What this process gets at 127.0.0.1:port: 'refused', or whatever answers there."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            return f"connected, got {conn.recv(100)!r}"
    except ConnectionRefusedError:
        return HOST_REFUSED
    except TimeoutError:
        return HOST_GOT_NOTHING


def loopback(pod: Pod) -> dict:
    """A member listens on 127.0.0.1; the host tries the port, then another member."""
    server = pod.start([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    from_host = _host_connects(port)
    client = pod.run([sys.executable, "-c", CLIENT, str(port)]).stdout.strip()
    server.wait(10)
    server.stdout.close()
    return {"port": port, "from_host": from_host, "from_member": client,
            "lines": [_("a member listens on 127.0.0.1:{port}").format(port=port),
                      _("the host connects to it: {result}").format(result=_(from_host)),
                      _("another member connects to it: {result}").format(result=client)]}


def _ps_rows(table: str) -> list[list[str]]:
    """`ps -eo pid,ppid,stat,comm` output as [pid, ppid, stat, comm] rows."""
    return [line.split(None, 3) for line in table.splitlines()[1:]]


def process_table(pod: Pod) -> dict:
    """`ps` run as a member, while another member sleeps."""
    _member_pids(pod, 1)
    table = pod.ps()
    _stop(pod)
    rows = _ps_rows(table)
    return {"pid_1": rows[0][3], "ppids": {row[3]: row[1] for row in rows},
            "lines": table.rstrip("\n").splitlines()}


def own_mounts(pod: Pod) -> dict:
    """A member mounts a tmpfs on a directory; another member and the host look in it."""
    if shutil.which("mount") is None:
        raise NotHere(_("mount(8) is not installed here (apt-get install mount)"))
    target = tempfile.mkdtemp(prefix="labkit-volume-")
    try:
        mounted = pod.run(["sh", "-c", f"mount -t tmpfs lab {target} && touch {target}/mine "
                           f"&& ls -A {target}"])
        other = pod.run(["ls", "-A", target]).stdout.split()
        host = os.listdir(target)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    first = mounted.stdout.split()
    return {"member_1_sees": first, "member_2_sees": other, "host_sees": host,
            "lines": [_("member 1 mounted a tmpfs on a directory and made a file in it"),
                      _("  member 1 sees in it: {files}").format(files=first),
                      _("  member 2 sees in it: {files}").format(files=other),
                      _("  the host sees in it: {files}").format(files=host)]}


def orphan_adoption(pod: Pod) -> dict:
    """A member backgrounds a sleep and exits: who adopts it, who reaps it."""
    orphan = int(pod.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"]).stdout)
    table = pod.ps()
    [row] = [r for r in _ps_rows(table) if r[0] == str(orphan)]
    pod.run(["sh", "-c", f"kill {orphan}"])  # SIGTERM, from another member
    [event] = wait_until(lambda: [e for e in pod.events if e.ns_pid == orphan],
                         _("the pause reaping PID {pid}").format(pid=orphan))
    left = [r for r in _ps_rows(pod.ps()) if r[0] == str(orphan)]
    return {"ns_pid": orphan, "orphan_ppid": row[1], "reaped_status": event.status,
            "still_listed": bool(left),
            "lines": table.rstrip("\n").splitlines() +
            [_("the orphan, PID {pid} in the pod, has PPID {ppid}").format(pid=orphan,
                                                                          ppid=row[1]),
             _("a member ran `kill {pid}`; the pause reaped it: status {status}, that is, "
               "killed by signal {signo}").format(pid=orphan, status=event.status,
                                                   signo=-event.status)]}


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None  # echo writes "PID\n" at once


def subreaper_pod() -> dict:
    """The nearest thing to a pod where namespaces are denied: a pause that is a child
    subreaper (prctl(2) PR_SET_CHILD_SUBREAPER), its members as its children. One member starts
    a background sleep and exits; the orphan goes to the pause, which reaps it once killed.

        pause --subreaper   └─ sh -c "member 1 (exits); exec sleep 300 (member 2)"
    """
    with tempfile.TemporaryDirectory(prefix="labkit-subreaper-pod-") as tmp:
        events, said = os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "orphan")
        members = f'sh -c "sleep 300 >/dev/null 2>&1 & echo \\$! > {said}"; exec sleep 300'
        pause = subprocess.Popen(programs.pause("--subreaper", "--drain", "--events", events, "--",
                                                "sh", "-c", members),
                                 stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=programs.environment())
        try:
            orphan = wait_until(lambda: _read_pid(said),
                                _("member 1 naming its background sleep"))
            kids = wait_until(lambda: (k := procfs.children(pause.pid)) and len(k) == 2 and
                              all(procfs.read_stat(c).comm == "sleep" for c in k) and k,
                              _("the pause holding member 2 and the orphan"))
            shared = all(os.readlink(f"/proc/{pause.pid}/ns/{kind}") ==
                         os.readlink(f"/proc/self/ns/{kind}") for kind in KINDS)
            os.kill(orphan, signal.SIGTERM)
            [event] = wait_until(lambda: [e for e in read_events(events, 0)[1]
                                          if e["pid"] == orphan],
                                 _("the pause reaping the orphan"))
        finally:
            pause.terminate()
            pause.wait(STOP_TIMEOUT)
    [member] = [k for k in kids if k != orphan]
    return {"orphan_adopted_by_pause": orphan in kids, "reaped_status": event["status"],
            "namespaces_shared_with_notebook": shared,
            "lines": [_("pause {pid}: a child subreaper, in this notebook's namespaces").format(
                          pid=pause.pid),
                      _(" ├─ {member} sleep   member 2, the pod's application: PPID {pid}")
                      .format(member=member, pid=pause.pid),
                      _(" └─ {orphan} sleep   the orphan of member 1 (exited): PPID {pid}")
                      .format(orphan=orphan, pid=pause.pid),
                      _("killed the orphan: the pause reaped it, status {status}").format(
                          status=event["status"]),
                      _("namespaces shared with this notebook (nothing isolated): all")
                      if shared else
                      _("namespaces shared with this notebook (nothing isolated): not all")]}


STUBBORN = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\ntime.sleep(300)")


def kubelet_stop(pod: Pod, grace: float = 1.0) -> dict:
    """pod.close(): each member gets SIGTERM, then SIGKILL after `grace`; then the pause."""
    stubborn = pod.start([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    stubborn.stdout.readline()  # its SIGTERM is ignored from now on
    sleeper = pod.start(["sleep", "300"])
    pod.close(grace=grace)
    stubborn.stdout.close()
    statuses = {"sleep": sleeper.returncode, "ignores SIGTERM": stubborn.returncode}
    return {"statuses": statuses, "closed": pod.closed,
            "lines": [_("pod.close(grace={grace:g}): each member SIGTERM, SIGKILL after the "
                        "grace, then the pause").format(grace=grace),
                      *(_("  member {name!r:18} exit status {code}").format(name=name, code=code)
                        for name, code in statuses.items())]}


def namespace_rule(hostname: str = "pod-b") -> dict:
    """A new pod whose pause alone is stopped: the kernel SIGKILLs its running member."""
    pod = Pod(hostname=hostname)
    try:
        member = pod.start(["sleep", "300"])
        pod.stop_pause_only()
    finally:
        pod.close()
    return {"member_status": member.returncode,
            "lines": [_("stopped only the pause (PID 1 of the pod's PID namespace)"),
                      _("  the member 'sleep' that was still running: exit status {status} "
                        "(128 + SIGKILL's 9)").format(status=member.returncode)]}


def record() -> dict[str, dict]:
    """Every experiment of notebook 06 that needs namespaces, run now (tools/record_runs.py)."""
    steps = {"unshare_box": unshare_box()}
    pod = Pod(hostname="pod-a")
    try:
        for step in (namespace_links, hostnames, message_queue, loopback, process_table,
                     orphan_adoption, own_mounts, kubelet_stop):  # the notebook's order
            steps[step.__name__] = step(pod)
    finally:
        pod.close()
    steps["namespace_rule"] = namespace_rule()
    return steps
