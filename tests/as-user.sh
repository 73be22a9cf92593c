#!/usr/bin/env bash
# Run the test suite as an unprivileged user, as a learner on Binder or a JupyterHub would be.
#
#   bash tests/as-user.sh [PYTEST_ARGS...]        (as root; `make test` calls it)
#
# Runs as uid/gid 1000 (AS_USER_UID / AS_USER_GID to change), with no supplementary groups,
# via setpriv(1): the uid needs no entry in /etc/passwd. The clone, and so .venv, may sit where
# that user cannot read (/root is mode 700), so a world-readable copy is staged in /tmp:
#
#   /tmp/zombie-lab-user.XXXXXX/     owned by that user, removed on exit
#     repo/     .venv labkit tests pyproject.toml (+ tools bench notebooks docs README.md if present)
#     shared/   reference/ from the clone's ../shared (tests build ../shared/reference/pause.c)
#     home/     HOME, MPLCONFIGDIR, XDG_CACHE_HOME
#
# The staged labkit is imported through PYTHONPATH (the editable install's finder points at the
# original, which that user may not read; PYTHONPATH comes first on sys.path). The copied venv
# works from its new place: bin/python is a symlink to the system interpreter, and sys.prefix
# comes from the pyvenv.cfg next to bin/. Only `python -m ...` is used: the scripts in .venv/bin
# carry the original path in their #! line. The exit code is pytest's.
set -euo pipefail

uid=${AS_USER_UID:-1000}
gid=${AS_USER_GID:-1000}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "as-user.sh: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root to switch to uid $uid; this shell already is uid $(id -u), so run pytest directly"
command -v setpriv >/dev/null || die "setpriv not found (Debian/Ubuntu: apt-get install util-linux)"
[ -x "$repo/.venv/bin/python" ] || die "no $repo/.venv: run 'make venv' (or 'make test') first"

stage=$(mktemp -d /tmp/zombie-lab-user.XXXXXX)
cleanup() { rm -rf "$stage"; }
trap cleanup EXIT
trap 'exit 130' INT   # turn signals into a normal exit, so that the EXIT trap runs
trap 'exit 143' TERM
chmod 755 "$stage"

mkdir -p "$stage/repo" "$stage/home/.cache" "$stage/home/.config/matplotlib"
for item in .venv labkit tests tools binder classroom locale pyproject.toml requirements.txt requirements-dev.txt Makefile bench notebooks docs README.md README.zh.md; do
    if [ -e "$repo/$item" ]; then
        cp -a "$repo/$item" "$stage/repo/"
    fi
done
if [ -d "$repo/../shared/reference" ]; then
    mkdir "$stage/shared"
    cp -a "$repo/../shared/reference" "$stage/shared/"
fi
chmod -R a+rX "$stage"
chown -R "$uid:$gid" "$stage"   # pytest's tmp_path, caches and build products are theirs

py="$stage/repo/.venv/bin/python"
# A clean environment: nothing of root's (PATH into /root/.pyenv, PYTHONPATH, ...) leaks in.
user_env=(
    HOME="$stage/home"
    USER="uid$uid" LOGNAME="uid$uid"
    PATH="$stage/repo/.venv/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
    PYTHONPATH="$stage/repo"
    MPLCONFIGDIR="$stage/home/.config/matplotlib"
    XDG_CACHE_HOME="$stage/home/.cache"
    LANG="${LANG:-C.UTF-8}"
    TERM="${TERM:-dumb}"
)
for name in CI PYTEST_ADDOPTS TZ; do
    if [ -n "${!name:-}" ]; then
        user_env+=("$name=${!name}")
    fi
done
run_as_user() {
    setpriv --reuid "$uid" --regid "$gid" --clear-groups env -i "${user_env[@]}" "$@"
}

# The venv's interpreter must be usable by that user (a venv made from a python under /root,
# such as pyenv's, is not: its pyvenv.cfg points there). Say so rather than fail obscurely.
if ! (cd "$stage/repo" && run_as_user "$py" -c 'import labkit, psutil, pytest') 2>"$stage/probe.err"; then
    cat "$stage/probe.err" >&2
    die "uid $uid cannot run the staged venv ($(grep -E '^(home|executable) ' "$stage/repo/.venv/pyvenv.cfg" | tr '\n' ' ')).
Rebuild it from an interpreter every user can read: make clean && make test PYTHON=/usr/bin/python3"
fi

# Only the tests whose outcome can depend on the user (marked `user`: labs, budgets, namespaces,
# the doctor, the notebooks); AS_USER_ALL=1 runs every test that does not need root.
markers="user and not root"
if [ "${AS_USER_ALL:-}" = 1 ]; then
    markers="not root"
fi

# No explicit path given: the staged tests. With arguments, pytest's testpaths (tests/) applies
# unless they name their own paths (relative to the repo, e.g. tests/test_pause.py).
if [ "$#" -eq 0 ]; then
    set -- "$stage/repo/tests"
fi

cd "$stage/repo"
code=0
run_as_user "$py" -m labkit.pause --subreaper --drain -- \
    "$py" -m pytest -p no:cacheprovider -m "$markers" "$@" || code=$?
exit "$code"
