"""Pod: the seed's pod in Python. A pause holds the namespaces; members join them with setns.

    kernel (this process; threaded, never forks pod processes)
     ├─ launcher: python -m labkit.unshare --pid --uts --ipc --net --mount-proc ...   (outside)
     │   └─ pause, PID 1 of the pod: python -m labkit.pause                          (inside)
     │       └─ orphans of members (adopted, reaped)
     └─ python -m labkit.nsenter --target <pause> ... --own-mount   (one per member, outside)
         └─ member: COMMAND                                                          (inside)

`unshare --pid --uts --ipc --mount -f` makes the pause; `docker run --net=container:pause
--ipc=container:pause --pid=container:pause` is each member (labkit.nsenter). The members share
the pause's hostname, System V IPC objects, loopback network and PID numbering, and are kept
apart from the host's. Each member has a mount namespace of its own, as each container of a real
pod has (its own image; only volumes are shared): a copy of the pause's, so it keeps the pod's
/proc. Sharing the PID namespace is what Kubernetes does only with `shareProcessNamespace: true`
(off by default: then each container has its own PID namespace and its own PID 1).

Closing the pod stops it as the kubelet does: each member first (SIGTERM, a grace period, then
SIGKILL), then the pause. `stop_pause_only()` shows the kernel's rule instead: when PID 1 of a PID
namespace exits, the kernel SIGKILLs every other process in it (pid_namespaces(7)).
"""

from __future__ import annotations

import errno
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence

from labkit import checks, nsenter, procfs, programs, unshare
from labkit.errors import AgentError, LabClosedError, LabError, NamespaceUnavailable
from labkit.i18n import N_, _
from labkit.runtime import ReapEvent, read_events

START_TIMEOUT = 10.0   # seconds for the pause, or a member, to come up (a slow Binder start)
CLOSE_TIMEOUT = 10.0
STOP_GRACE = 2.0       # seconds a member has to end after SIGTERM before it is killed; the
                       # kubelet's default, terminationGracePeriodSeconds, is 30
MAX_TIMEOUT = 3600.0
HOSTNAME = re.compile(r"[A-Za-z0-9.-]{1,64}")  # 64: HOST_NAME_MAX, the UTS field (uname(2))
# labkit.unshare's exit codes for a step the kernel refused: a namespace, its ID maps, the
# /proc mount, the hostname, the loopback.
REFUSED = (*unshare.REFUSED, unshare.EXIT_HOSTNAME, unshare.EXIT_LOOPBACK)
STILL_WORKS = N_("What still works: a Lab in subreaper mode (labkit.Lab(mode='subreaper')), "
                 "where the lab's pause adopts and reaps orphans as a child subreaper (prctl(2) "
                 "PR_SET_CHILD_SUBREAPER) without any namespace")


def launcher_error(code: int, output: str) -> LabError:
    """What a launcher (labkit.unshare) that exited with `code` before the pause ran means.

    Its last line names the step the kernel refused and the errno, e.g. `labkit.unshare: new
    pid/uts/ipc/net/mount namespaces (unshare) refused: EPERM (Operation not permitted)`.
    """
    lines = [line for line in output.splitlines() if line.strip()]
    said = lines[-1] if lines else "(it said nothing)"
    if code in REFUSED:
        return NamespaceUnavailable(_("a pod is not possible here: {said}. {still}").format(
            said=said, still=_(STILL_WORKS)))
    return AgentError(_("the pod's launcher (labkit.unshare) exited with status {code}: "
                        "{said}").format(code=code, said=said))


def _member_error(code: int, message: str, argv: list[str]) -> Exception:
    """The exception for a member that did not start (labkit.nsenter's status line)."""
    if code == nsenter.EXIT_NOT_FOUND:
        return FileNotFoundError(errno.ENOENT, message, argv[0])
    if code == nsenter.EXIT_NOT_EXECUTABLE:
        return PermissionError(errno.EACCES, message, argv[0])
    if code == nsenter.EXIT_SETNS and "EPERM" in message:
        return NamespaceUnavailable(_("joining the pod is not possible here: {said}. {still}")
                                    .format(said=message, still=_(STILL_WORKS)))
    return AgentError(_("a member could not join the pod (it may have been stopped from "
                        "outside; close it and start a new one): {said}").format(said=message))


def _check_hostname(hostname: object) -> str:
    if not isinstance(hostname, str):
        raise TypeError(_("hostname must be a string such as 'pod-a', not {value!r} of type "
                          "{kind}").format(value=hostname, kind=type(hostname).__name__))
    if not HOSTNAME.fullmatch(hostname):
        raise ValueError(_("hostname {value!r} is not allowed: use 1 to 64 characters among "
                           "letters, digits, '-' and '.', such as 'pod-a'").format(value=hostname))
    return hostname


def _check_argv(argv: object) -> list[str]:
    if isinstance(argv, (str, bytes)):
        raise TypeError(_("argv must be a list of strings such as ['hostname'] or "
                          "['ps', '-ef'], not the single string {argv!r} (no shell splits it)")
                        .format(argv=argv))
    if not isinstance(argv, Sequence) or not argv:
        raise TypeError(_("argv must be a non-empty list of strings such as ['hostname'], "
                          "not {argv!r}").format(argv=argv))
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(_("every argument must be a string, not {arg!r} of type {kind} "
                              "(in {argv!r})").format(arg=arg, kind=type(arg).__name__,
                                                      argv=argv))
        if "\0" in arg:
            raise ValueError(_("an argument cannot contain a NUL character: {arg!r}").format(
                arg=arg))
    if not argv[0]:
        raise ValueError(_("argv[0], the program to run, is empty"))
    return list(argv)


def _read_status(fd: int, timeout: float) -> str | None:
    """What labkit.nsenter wrote to its status pipe before end-of-file ("" = the member
    started), or None if the pipe stayed open past `timeout`."""
    data = b""
    deadline = time.monotonic() + timeout
    poller = select.poll()  # not select(2): a kernel with a big lab holds fds >= 1024
    poller.register(fd, select.POLLIN)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(int(remaining * 1000) + 1):
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode(errors="replace")
        data += chunk


def _close_streams(proc: subprocess.Popen) -> None:
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _stop_member(proc: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """End one member and its nsenter: SIGTERM (nsenter passes it on), then SIGKILL the member."""
    _stop_members([proc], grace)


def _stop_members(procs: list[subprocess.Popen], grace: float) -> None:
    """What the kubelet does to a pod's containers, all at once: SIGTERM (a container's
    STOPSIGNAL), up to `grace` seconds to end, then SIGKILL.

    A member is killed, never its nsenter first: a member whose nsenter died would be adopted
    outside the pod (see labkit.nsenter), by whoever reaps orphans here.
    """
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
            continue
        except subprocess.TimeoutExpired:
            pass
        # nsenter is alive and has not reaped its child: that PID still names the member.
        for child in procfs.children(proc.pid):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Session:
    """The processes and files of one pod; kept apart from Pod so a finalizer can end them."""

    def __init__(self, hostname: str, user: bool) -> None:
        self.dir = tempfile.mkdtemp(prefix="labkit-pod-")
        self.events_path = os.path.join(self.dir, "events.jsonl")
        self.log_path = os.path.join(self.dir, "launcher.log")
        self.members: list[subprocess.Popen] = []
        self.closed = False
        self.ready = False  # the pause runs, with SIGTERM blocked (wait_for_pause)
        command = programs.unshare("--pid", "--mount-proc", "--uts", "--ipc", "--net",
                                   "--hostname", hostname, "--owner", str(os.getpid()))
        if user:
            # The only way an unprivileged user may make the others (user_namespaces(7)).
            command.append("--user")
        command += ["--", *programs.pause("--events", self.events_path)]
        try:
            with open(self.log_path, "wb") as log:
                # A new session: a terminal's Ctrl-C reaches us, and we close the pod, rather
                # than the pause dying behind our back.
                self.launcher = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env=programs.environment(), start_new_session=True)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def wait_for_pause(self, timeout: float) -> int:
        """The pause's host PID, once it runs as PID 1 with its signals blocked.

        It is the launcher's only child. Its comm is "pause" only once it has exec'd and
        blocked SIGTERM (labkit.pause): by then the namespaces are set up (labkit.unshare does
        that before the exec), and a stop request sent from now on is not lost. Before that,
        PID 1 of a namespace ignores a signal it has no handler for (pid_namespaces(7)).
        """
        deadline = time.monotonic() + timeout
        while True:
            code = self.launcher.poll()
            if code is not None:
                raise launcher_error(code, self.log())
            for child in procfs.children(self.launcher.pid):
                stat = procfs.read_stat(child)
                if stat is not None and stat.comm == "pause":
                    self.ready = True
                    return child
            if time.monotonic() > deadline:
                raise AgentError(_("the pod's pause did not start within {timeout:g} s; its "
                                   "launcher said: {said}").format(
                                       timeout=timeout, said=self.log().strip() or _("(nothing)")))
            time.sleep(0.005)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the pause, wait for the launcher and every member's nsenter. Idempotent."""
        if self.closed:
            return
        self.closed = True
        # SIGTERM to the launcher, our own child (its PID cannot have been reused), which passes
        # it on to the pause. The pause exits; being PID 1 of the pod, its exit makes the
        # kernel SIGKILL every other process in the pod (pid_namespaces(7)), members included.
        # A pause not yet ready may not have blocked SIGTERM, and would ignore it: kill the
        # launcher instead, and the pause dies by its PR_SET_PDEATHSIG (SIGKILL).
        if self.launcher.poll() is None:
            self.launcher.send_signal(signal.SIGTERM if self.ready else signal.SIGKILL)
        try:
            self.launcher.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.launcher.kill()  # the pause goes too: its PR_SET_PDEATHSIG is SIGKILL
            self.launcher.wait()
        # Each nsenter reaps its killed member and exits with 137 (128 + SIGKILL). The pause's
        # own exit completes only once every process of its namespace is reaped, these members
        # too (kernel/pid_namespace.c, zap_pid_ns_processes): their nsenter must be alive to.
        for proc in self.members:
            try:
                proc.wait(CLOSE_TIMEOUT)
            except subprocess.TimeoutExpired:
                _stop_member(proc)

    def remove_files(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _finalize(session: _Session) -> None:
    try:
        session.close()
    finally:
        session.remove_files()


class Pod:
    """A Kubernetes-style pod: a pause as PID 1 holding new UTS, IPC, network and PID namespaces
    (and a mount namespace for its /proc; a user namespace when we are not root), which members
    join with setns(2). Each member then gets a mount namespace of its own.

        with Pod(hostname="pod-a") as pod:
            pod.run(["hostname"]).stdout      # 'pod-a\\n'
            server = pod.start(["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"])
            print(pod.ps())                   # the pause is PID 1; the members are there too

    close() (or leaving `with`) stops each member, then the pause, as the kubelet does. At
    interpreter exit, or when this process dies, only the pause is stopped, and the kernel ends
    everything else in the pod.
    """

    def __init__(self, hostname: str = "pod-a") -> None:
        self.hostname = _check_hostname(hostname)
        self.user_namespace = os.geteuid() != 0
        self._lock = threading.RLock()
        self._events: list[ReapEvent] = []
        self._events_offset = 0
        self._session = _Session(self.hostname, self.user_namespace)
        self._finalizer = weakref.finalize(self, _finalize, self._session)
        try:
            self.pid: int = self._session.wait_for_pause(START_TIMEOUT)
        except BaseException:
            self._finalizer()
            raise
        self.launcher_pid: int = self._session.launcher.pid

    # --- members ----------------------------------------------------------------------------

    def _nsenter(self, argv: list[str]) -> list[str]:
        joins = ["--user"] if self.user_namespace else []
        joins += ["--uts", "--ipc", "--net", "--pid", "--mount", "--own-mount"]
        return programs.nsenter(self.pid, *joins)

    def start(self, argv: Sequence[str], **popen_kwargs) -> subprocess.Popen:
        """Start `argv` as a member of the pod; returns once it runs (its program exec'd).

        The Popen is for labkit.nsenter, which waits outside the pod for the member and passes
        SIGTERM/SIGINT/SIGHUP on to it: `.wait()`, `.returncode`, `.terminate()` and
        `.communicate()` act on the member. Keyword arguments go to subprocess.Popen (stdout=,
        text=, ...); stdin defaults to /dev/null.
        """
        argv = _check_argv(argv)
        with self._lock:
            self._check_open()
            return self._start(argv, popen_kwargs)

    def _start(self, argv: list[str], kwargs: dict) -> subprocess.Popen:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("start_new_session", True)  # a terminal's Ctrl-C is ours to pass on
        kwargs["env"] = programs.environment(kwargs.get("env"))
        status_r, status_w = os.pipe()
        kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), status_w)
        command = self._nsenter(argv) + ["--status-fd", str(status_w), "--", *argv]
        try:
            proc = subprocess.Popen(command, **kwargs)
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        try:
            status = _read_status(status_r, START_TIMEOUT)
        finally:
            os.close(status_r)
        if status:
            proc.wait()
            _close_streams(proc)
            code, _, message = status.strip().partition(" ")
            raise _member_error(int(code), message, argv)
        if status is None:
            _stop_member(proc)
            raise AgentError(_("a member ({name!r}) did not start within {timeout:g} s").format(
                name=argv[0], timeout=START_TIMEOUT))
        self._session.members.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float = 30.0,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run `argv` as a member of the pod and wait for it; its exit status and output (text).

        As subprocess.run(argv, capture_output=True, text=True, timeout=timeout): a member that
        outlives `timeout` is stopped and TimeoutExpired raised. A program that cannot be found
        raises FileNotFoundError.
        """
        argv = _check_argv(argv)
        timeout = checks.seconds(timeout, "timeout", low=0.001, high=MAX_TIMEOUT)
        if input is not None and not isinstance(input, str):
            raise TypeError(_("input must be a string or None, not {kind}").format(
                kind=type(input).__name__))
        with self._lock:
            self._check_open()
            proc = self._start(argv, {
                "stdin": subprocess.DEVNULL if input is None else subprocess.PIPE,
                "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True})
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_member(proc)
            raise subprocess.TimeoutExpired(argv, timeout, *self._leftovers(proc)) from None
        except BaseException:
            _stop_member(proc)
            raise
        finally:
            with self._lock:
                if proc in self._session.members:
                    self._session.members.remove(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    @staticmethod
    def _leftovers(proc: subprocess.Popen) -> tuple[str | None, str | None]:
        """Output of a stopped member; an orphan of it in the pod may still hold the pipes."""
        try:
            return proc.communicate(timeout=0.5)
        except subprocess.TimeoutExpired:
            _close_streams(proc)
            return None, None

    def ps(self) -> str:
        """`ps -eo pid,ppid,stat,comm` run inside the pod: the table its members see.

        The pause is PID 1. Members show PPID 0: their parent (labkit.nsenter) is outside.
        """
        done = self.run(["ps", "-eo", "pid,ppid,stat,comm"])
        if done.returncode != 0:
            raise AgentError(_("ps failed inside the pod (status {status}): {said}").format(
                status=done.returncode, said=done.stderr.strip()))
        return done.stdout

    @property
    def members(self) -> list[subprocess.Popen]:
        """Members started with start() that are still running."""
        with self._lock:
            return [proc for proc in self._session.members if proc.poll() is None]

    # --- the pause's reaps ------------------------------------------------------------------

    @property
    def events(self) -> list[ReapEvent]:
        """Every process the pod's pause has reaped: orphans of members, adopted by PID 1.

        `ns_pid` is the PID inside the pod; `pid` (the host PID) is None: the process is gone.
        """
        with self._lock:
            self._read_events()
            return list(self._events)

    def _read_events(self) -> None:
        self._events_offset, new = read_events(self._session.events_path, self._events_offset)
        for e in new:
            self._events.append(ReapEvent(None, e["status"], e["time"], e["monotonic"],
                                          e["pid"]))

    # --- lifetime ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._session.closed:
            raise LabClosedError(_("this pod is closed: its processes are gone. "
                                   "Start a new one with labkit.Pod()"))

    @property
    def closed(self) -> bool:
        return self._session.closed

    def close(self, grace: float = STOP_GRACE) -> None:
        """Stop the pod as the kubelet does: every member gets SIGTERM and `grace` seconds to
        end before SIGKILL, and only then is the pause (the sandbox) stopped. Idempotent."""
        grace = checks.seconds(grace, "grace", high=MAX_TIMEOUT)
        with self._lock:
            if self._session.closed:
                return
            _stop_members(self._session.members, grace)
            self.stop_pause_only()

    def stop_pause_only(self) -> None:
        """Stop only the pause, the pod's PID 1, leaving its members running: the kernel then
        SIGKILLs every other process of its PID namespace (pid_namespaces(7)). Not how a pod is
        stopped (see close()): the namespace's rule, shown on its own. Idempotent."""
        with self._lock:
            if self._session.closed:
                return
            self._session.close()
            self._read_events()
            self._finalizer()

    def __enter__(self) -> Pod:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pause {self.pid}, {len(self.members)} members"
        return f"<Pod hostname={self.hostname!r} ({state})>"
