# ruff: noqa: E401, I001  (one import line, as the notebook's cell has it)
# Tempting because it is how every program runs a command (subprocess.run, Popen.wait, a
# shell's `wait $!`): the init thinks of itself as its command's parent only. It forwards the
# signals and reports the status right, but the orphans it adopts are never waited for.
import os, signal, sys
child = 0

def forward(signo, frame):
    if child:
        os.kill(child, signo)

signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)

child = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, setsigdef=[signal.SIGPIPE])

_, status = os.waitpid(child, 0)        # the command, and only the command
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
