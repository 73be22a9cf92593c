"""binder/ follows repo2docker's rules, agrees with the root requirements, and docs/z2jh-config.yaml
holds the keys a classroom JupyterHub needs.

repo2docker reads only binder/ when it exists (the root's requirements.txt is then ignored), so
binder/requirements.txt must carry every runtime requirement, pinned (==) so that Binder rebuilds
the same image, and each pin inside the root range that `make lab` installs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINDER = os.path.join(REPO, "binder")
# The Ubuntu packages for the commands the notebooks run (checked with apt-cache on Debian 12;
# the same names exist in Ubuntu 24.04, repo2docker's base image).
APT_EXPECTED = {"procps", "psmisc", "util-linux", "fonts-noto-cjk"}  # the font: notebooks/zh/

# tests/as-user.sh stages a copy without binder/ and requirements.txt (it copies a fixed list);
# in a checkout (a .git next to tests/) a missing binder/ is a failure, not a skip.
pytestmark_binder = pytest.mark.skipif(
    not os.path.isdir(BINDER) and not os.path.isdir(os.path.join(REPO, ".git")),
    reason="binder/ is not in this copy of the repository (a staged copy)")


def lines(path: str) -> list[str]:
    """The file's lines without comments and blank lines."""
    with open(path) as f:
        return [s for s in (line.partition("#")[0].strip() for line in f) if s]


def requirements(path: str) -> dict[str, Requirement]:
    return {Requirement(line).name.lower(): Requirement(line) for line in lines(path)}


@pytestmark_binder
def test_binder_requirements_are_exact_pins_without_includes():
    for line in lines(os.path.join(BINDER, "requirements.txt")):
        assert not line.startswith("-"), f"an option line breaks Binder's caching: {line!r}"
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"not an exact pin: {line!r}"
        assert "*" not in specs[0].version, f"not an exact pin: {line!r}"


@pytestmark_binder
def test_binder_pins_agree_with_root_ranges():
    root = requirements(os.path.join(REPO, "requirements.txt"))
    pinned = requirements(os.path.join(BINDER, "requirements.txt"))
    assert set(root) <= set(pinned), f"missing on Binder: {sorted(set(root) - set(pinned))}"
    for name, req in root.items():
        version = next(iter(pinned[name].specifier)).version
        assert req.specifier.contains(version, prereleases=True), (
            f"binder pins {name}=={version}, outside the root range {req.specifier}")


@pytestmark_binder
def test_runtime_is_python_312():
    assert lines(os.path.join(BINDER, "runtime.txt")) == ["python-3.12"]


def index_mode(path: str) -> str | None:
    """The file's mode in git's index (100755 for an executable), or None outside a checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-s", "--", path], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.split()[0] if out.returncode == 0 and out.stdout else None


@pytestmark_binder
@pytest.mark.parametrize("name", ["postBuild", "start"])
def test_scripts_are_executable_bash(name):
    path = os.path.join(BINDER, name)
    with open(path) as f:
        text = f.read()
    assert text.startswith("#!/bin/bash\n")
    assert os.access(path, os.X_OK), f"binder/{name} is not executable (chmod +x)"
    mode = index_mode(path)
    assert mode in (None, "100755"), f"git records binder/{name} as {mode}, not 100755"


@pytestmark_binder
def test_postbuild_stops_on_errors_and_installs_labkit():
    text = open(os.path.join(BINDER, "postBuild")).read()
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert re.match(r"set -e(uo pipefail)?$", commands[0]), "the first command must be set -e"
    assert any(re.search(r"pip install .*--no-deps \.$", line) for line in commands)


@pytestmark_binder
def test_start_execs_its_arguments_under_the_lab_init():
    text = open(os.path.join(BINDER, "start")).read()
    commands = [line.strip() for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == 'exec python -m labkit.pause --subreaper --drain -- "$@"'
    assert 'exec "$@"' in commands  # the opt-out keeps repo2docker's contract too


@pytestmark_binder
def test_start_runs_the_command_under_a_subreaper():
    """binder/start really execs the pause, which runs the command and passes its status on."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    # binder/start runs `python`: this interpreter's (a venv's bin/ has one).
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    code = ("import os, sys; "
            "sys.exit(0 if os.environ.get('LABKIT_INIT_PID') == str(os.getppid()) else 3)")
    done = subprocess.run(["bash", os.path.join(BINDER, "start"), sys.executable, "-c", code],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(["bash", os.path.join(BINDER, "start"), "sh", "-c", "exit 7"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, done.stderr


@pytestmark_binder
def test_apt_packages_are_the_expected_real_ones():
    assert set(lines(os.path.join(BINDER, "apt.txt"))) == APT_EXPECTED


def test_z2jh_config_has_the_keys_that_matter():
    with open(os.path.join(REPO, "docs", "z2jh-config.yaml")) as f:
        config = yaml.safe_load(f)
    singleuser = config["singleuser"]
    assert singleuser["extraPodConfig"]["shareProcessNamespace"] is True
    assert singleuser["memory"]["limit"]
    assert singleuser["cpu"]["limit"]
    # The server under an init that reaps (classroom/ does the same), and culled pods deleted.
    assert singleuser["cmd"][:3] == ["python", "-m", "labkit.pause"]
    assert config["cull"]["enabled"] is True
    # No per-pod PID limit exists in a pod's spec: it is the kubelet's podPidsLimit, node
    # configuration, which the README and the file's comments explain.
    assert "podPidsLimit" in open(os.path.join(REPO, "docs", "z2jh-config.yaml")).read()


def test_readme_and_docs_carry_the_same_z2jh_snippet():
    with open(os.path.join(REPO, "docs", "z2jh-config.yaml")) as f:
        in_docs = yaml.safe_load(f)
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert any(yaml.safe_load(block) == in_docs for block in blocks)


@pytestmark_binder
@pytest.mark.slow
def test_the_package_postbuild_installs_carries_the_recordings(tmp_path):
    """binder/postBuild installs labkit as a package (not a checkout): notebooks 05 and 06 must
    still find their recorded runs there, where Binder denies namespaces and shows them."""
    target = tmp_path / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), REPO], check=True, capture_output=True,
                   timeout=300)
    probe = ("import labkit.recorded as r; print(r.RECORDED_DIR); "
             "print(sorted(r.load(n)['notebook'] for n in "
             "('05-the-pause-container', '06-namespaces-and-pods')))")
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)},
                         timeout=60)
    assert out.returncode == 0, out.stderr
    where, names = out.stdout.splitlines()
    assert where.startswith(str(target))
    assert names == "['05-the-pause-container', '06-namespaces-and-pods']"
