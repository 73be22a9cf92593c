# ruff: noqa: E401, I001  (one import line, as the notebook's cell has it)
# Tempting because Python hands over the command's status ready-made: os.waitstatus_to_exitcode
# (like Popen.returncode) gives the exit code, or -N when signal N killed it. Passed straight to
# sys.exit, -9 becomes 247 (an exit status is one byte), not the 128 + 9 that shells and tini
# report. Every exit of its own is passed on right, so only a killed command shows the bug.
import os, signal, sys
child = 0

def forward(signo, frame):
    if child:
        os.kill(child, signo)

signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)

child = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, setsigdef=[signal.SIGPIPE])

while True:
    pid, status = os.wait()
    if pid == child:
        sys.exit(os.waitstatus_to_exitcode(status))
