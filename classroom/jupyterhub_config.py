"""JupyterHub for a Zombie Lab class on one Linux server (README: "Teaching a class").

    cd /srv/zombie-lab-hub      # the Hub's database and cookie secret are kept here
    sudo /opt/zombie-lab/.venv/bin/jupyterhub -f /opt/zombie-lab/classroom/jupyterhub_config.py

As root (the Hub starts each student's server as their Linux account, in a cgroup of their own),
listening on 127.0.0.1 only: put a TLS reverse proxy (nginx, Caddy) in front for a class. Every
setting a teacher may change is an environment variable, read below:

  CLASSROOM_PIDS_MAX       each student's PID budget (their cgroup's pids.max)       2400
  CLASSROOM_CULL_TIMEOUT   seconds idle before the culler stops a server             3600
  CLASSROOM_CULL_EVERY     seconds between the culler's rounds                        60
  CLASSROOM_PORT           the proxy's public port (its API: +1, the Hub: +2)         8000
  CLASSROOM_AUTH           "pam" (the students' Linux accounts) or "dummy" (tests)    pam
  CLASSROOM_ADMIN_TOKEN    if set, a "teacher" service with this API token may create
                           users and start, stop and use their servers (the REST API)
  CLASSROOM_ACTIVITY_INTERVAL  seconds between activity reports (servers and proxy)   300
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from budget_spawner import BudgetSpawner, copy_course  # noqa: E402

c = get_config()  # noqa: F821 (JupyterHub's config loader provides it)
setting = os.environ.get
PORT = int(setting("CLASSROOM_PORT", "8000"))
ACTIVITY = int(setting("CLASSROOM_ACTIVITY_INTERVAL", "300"))
COURSE = os.path.join(REPO, "notebooks")
COURSE_FOLDER = "zombie-lab"

# --- where it listens: this machine only -----------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PORT + 1}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{PORT + 2}"
c.JupyterHub.last_activity_interval = ACTIVITY

# --- who may log in ----------------------------------------------------------------------------
if setting("CLASSROOM_AUTH", "pam") == "dummy":
    # Anyone with any password: for tests on 127.0.0.1 only, never for a class.
    c.JupyterHub.authenticator_class = "dummy"
else:
    # The students' Linux accounts (the same accounts their servers run as).
    c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_existing_users = True  # users the teacher added (admin page or REST API)
c.Authenticator.admin_users = set(filter(None, setting("CLASSROOM_ADMINS", "").split(",")))

# --- each student's server: their account, their PID budget, the course ---------------------
c.JupyterHub.spawner_class = BudgetSpawner
c.BudgetSpawner.pids_max = int(setting("CLASSROOM_PIDS_MAX", "2400"))
# The server runs under the lab's own init: orphans are reaped in the student's tree, and the
# Hub's SIGINT/SIGTERM reach the server (labkit.pause forwards them as tini does).
c.Spawner.cmd = [sys.executable, "-m", "labkit.pause", "--subreaper", "--drain", "--",
                 sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = f"/lab/tree/{COURSE_FOLDER}/00-start-here.ipynb"
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": str(ACTIVITY)}
# A class logs in at once on few cores: a server may take a while to answer.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180


def course_for_the_student(spawner: BudgetSpawner) -> None:
    """The course's notebooks in the student's home (labkit itself is importable from the
    Hub's environment, the server's Python)."""
    import pwd

    account = pwd.getpwnam(spawner.user.name)
    copy_course(COURSE, account.pw_dir, COURSE_FOLDER, account.pw_uid, account.pw_gid)


c.Spawner.pre_spawn_hook = course_for_the_student

# --- services: the idle culler, and the teacher's token ---------------------------------------
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                f"--timeout={int(setting('CLASSROOM_CULL_TIMEOUT', '3600'))}",
                f"--cull-every={int(setting('CLASSROOM_CULL_EVERY', '60'))}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    # jupyterhub-idle-culler's README: the scopes it needs to find idle servers and stop them.
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
if setting("CLASSROOM_ADMIN_TOKEN"):
    c.JupyterHub.services.append({"name": "teacher", "api_token": setting("CLASSROOM_ADMIN_TOKEN")})
    c.JupyterHub.load_roles.append({
        "name": "teacher",
        "scopes": ["admin:users", "admin:servers", "access:servers", "list:users", "read:users"],
        "services": ["teacher"],
    })
