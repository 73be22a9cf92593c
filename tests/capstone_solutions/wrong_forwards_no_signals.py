# ruff: noqa: E401, I001  (one import line, as the notebook's cell has it)
# Tempting because signals are invisible until something stops the container: the init runs
# its command, reaps every orphan and reports the status right, so a process listing looks
# perfect. With no handler, SIGTERM kills the init itself (its default action) and Python turns
# SIGINT into KeyboardInterrupt; the command is left running, an orphan. (As PID 1 of a
# namespace the kernel would drop both instead, and `docker stop` would wait 10 s.)
import os, signal, sys

child = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, setsigdef=[signal.SIGPIPE])

while True:
    pid, status = os.wait()
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
        sys.exit(code if code >= 0 else 128 - code)
