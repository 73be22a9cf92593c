# ruff: noqa: E401, I001  (one import line, as the notebook's cell has it)
import os, signal, sys
child = 0                               # no command yet: no one to pass a signal to

def forward(signo, frame):              # runs when SIGTERM or SIGINT arrives
    if child:
        os.kill(child, signo)           # kill(2): the same signal, on to the command

signal.signal(signal.SIGTERM, forward)  # before the command starts: no window
signal.signal(signal.SIGINT, forward)   # (and SIGINT no longer raises KeyboardInterrupt)

# The command is sys.argv[1:]. Python ignores SIGPIPE, and an ignored signal stays ignored
# across exec (signal(7)): the command gets the default action back.
child = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, setsigdef=[signal.SIGPIPE])

while True:                             # reap every child: the command and any orphan
    pid, status = os.wait()             # waitpid(2) for any child; a handler may run meanwhile
    if pid == child:                    # the command has ended, so the init's work is done
        code = os.waitstatus_to_exitcode(status)      # -N: killed by signal N
        sys.exit(code if code >= 0 else 128 - code)   # as shells and tini report it
