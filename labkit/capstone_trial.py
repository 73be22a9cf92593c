"""The capstone's programs, run inside each check (labkit.capstone grades with them):

    python -m labkit.capstone_trial witness WORKDIR -- python -S INIT COMMAND...
    python -S -m labkit.capstone_trial workload orphans REPORT COUNT
    python -S -m labkit.capstone_trial workload signals REPORT RECEIVED

The witness starts a learner's init as a child subreaper, reaps it and writes down its status;
the workloads are the commands the init runs: one leaves orphans to it, one notes the signals
it is sent. Apart from the grader because they run in the lab's processes, which must start
fast and load nothing heavy: standard library and labkit.linux only (tests/test_boundary.py).
The files the witness writes in WORKDIR are named here, once, for both ends.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from labkit import linux

WORKLOAD_LIFETIME = 120       # seconds: a workload left behind by a broken harness ends itself
WITNESS_PIDS, WITNESS_STATUS = "pids.json", "status.json"  # written by the witness, in WORKDIR


def write_json(path: str, data: dict) -> None:
    """All at once: the grader polls for the file and must never read half of it."""
    with open(path + ".tmp", "w") as out:
        json.dump(data, out)
    os.rename(path + ".tmp", path)


def orphans_workload(report: str, count: int) -> int:
    """Leave `count` children as orphans of our parent (the init), blocked on a pipe; let them
    exit together on SIGUSR1; exit 0 on SIGUSR2."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    go_r, go_w = os.pipe()
    rep_r, rep_w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(rep_r)
        pids, error = [], ""
        for _ in range(count):
            try:
                pid = os.fork()
            except OSError as exc:
                # The errno's text only: the grader says after how many, in the learner's language.
                error = exc.strerror or str(exc)
                break
            if pid == 0:
                os.close(go_w)  # only the command may hold it: its close is the release
                os.close(rep_w)
                os.read(go_r, 1)
                os._exit(0)
            pids.append(pid)
        os.write(rep_w, json.dumps({"pids": pids, "error": error}).encode())
        os._exit(0)
    os.close(go_r)
    os.close(rep_w)
    chunks = []
    while chunk := os.read(rep_r, 65536):
        chunks.append(chunk)
    os.waitpid(middle, 0)  # the middle is gone: its children are the init's orphans now
    told = json.loads(b"".join(chunks)
                      or b'{"pids": [], "error": "the middle process died before it reported"}')
    report_data = {"command": os.getpid(), "orphans": told["pids"]}
    if told["error"]:
        report_data["error"] = told["error"]
    write_json(report, report_data)
    signal.sigwait({signal.SIGUSR1})
    os.close(go_w)
    signal.sigwait({signal.SIGUSR2})
    return 0


def signals_workload(report: str, received: str) -> int:
    """Note SIGTERM or SIGINT in `received`, then die of it, as a program without a handler
    would; otherwise sleep."""
    def note(signo: int, frame) -> None:
        with open(received, "a") as out:
            out.write(signal.Signals(signo).name + "\n")
        signal.signal(signo, signal.SIG_DFL)
        os.kill(os.getpid(), signo)

    for signo in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signo, note)
    write_json(report, {"command": os.getpid()})
    while True:
        signal.pause()


def witness(workdir: str, argv: list[str]) -> int:
    """Start argv (the init) as a child subreaper, reap it, write down its status, and live on
    until SIGTERM: our exit is pause's signal to kill and reap what is left, and the grader
    first looks at what the init left."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # taken by sigwait, below
    init = os.fork()
    if init == 0:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())  # a mask survives execve
            linux.set_child_subreaper()  # survives execve (prctl(2)); fork would clear it
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    write_json(os.path.join(workdir, WITNESS_PIDS), {"init": init, "witness": os.getpid()})
    _, status = os.waitpid(init, 0)
    write_json(os.path.join(workdir, WITNESS_STATUS),
               {"status": os.waitstatus_to_exitcode(status)})
    signal.alarm(WORKLOAD_LIFETIME)  # alone, it ends itself (SIGALRM's default action)
    signal.sigwait({signal.SIGTERM})
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["witness"] and argv[2:3] == ["--"] and len(argv) > 3:
        return witness(argv[1], argv[3:])
    if argv[:1] == ["workload"] and len(argv) >= 4:
        # Alone, a workload ends itself: SIGALRM's default action kills (signal(7)).
        signal.alarm(WORKLOAD_LIFETIME)
        if argv[1] == "orphans":
            return orphans_workload(argv[2], int(argv[3]))
        if argv[1] == "signals":
            return signals_workload(argv[2], argv[3])
    print("usage: python -m labkit.capstone_trial witness WORKDIR -- COMMAND...\n"
          "       python -m labkit.capstone_trial workload orphans REPORT COUNT\n"
          "       python -m labkit.capstone_trial workload signals REPORT RECEIVED",
          file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
