"""The process boundary: the programs that run inside the lab load only the standard library and
the lab's own inside modules, never psutil, numpy, matplotlib, ipywidgets or the kernel side
(labkit.lab, labkit.observe). Each is imported as a lab program is started: a bare interpreter
(-S: no site, so no site-packages) with the environment labkit.programs gives it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import programs

# Modules whose code runs in a lab process: the programs, and what they import.
PROGRAMS = ("pause", "agent", "parent", "actor", "probe", "unshare", "nsenter", "lessons",
            "capstone_trial", "reaper_trial")
LIBRARIES = ("linux", "procfs", "wire", "programs", "errors", "i18n")
INSIDE = frozenset({"labkit", *(f"labkit.{name}" for name in PROGRAMS + LIBRARIES)})
SHOW = "import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"


def breaches(statement: str, env: dict[str, str] | None = None) -> list[str]:
    """What `statement`, run in a bare interpreter started as a lab program is, loads beyond
    the standard library and INSIDE (or why it could not run at all)."""
    done = subprocess.run(programs.bare_python("-c", SHOW.format(statement=statement)),
                          capture_output=True, text=True, env=programs.environment(env),
                          cwd="/", timeout=60)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"status {done.returncode}"]
        return [f"{statement!r} failed: {lines[-1]}"]
    loaded = json.loads(done.stdout)
    return [name for name in loaded if name != "__main__" and name not in INSIDE
            and name.split(".")[0] not in sys.stdlib_module_names]


@pytest.mark.parametrize("name", PROGRAMS + LIBRARIES)
def test_an_inside_module_loads_only_the_standard_library_and_inside_modules(name: str):
    assert breaches(f"import labkit.{name}") == []


@pytest.mark.parametrize("statement", ["import labkit.checks", "import labkit.observe",
                                       "import labkit.lab"])
def test_the_check_catches_a_kernel_side_module(statement: str):
    # checks is standard library only but kernel side; observe and lab need psutil, which a
    # bare interpreter cannot even find.
    assert breaches(statement)


def test_the_check_catches_a_module_from_outside_the_standard_library():
    # Found on PYTHONPATH, as a careless environment might have it: the import succeeds, and
    # the check still names it.
    import psutil

    site = psutil.__file__.rsplit("/psutil/", 1)[0]
    assert "psutil" in breaches("import psutil", {"PYTHONPATH": site})


def test_only_labkit_programs_spells_out_how_a_lab_program_starts():
    # One place for a program's command line and PYTHONPATH, so that a change to either is
    # made once (labkit.programs); the others call it.
    package = Path(programs.__file__).parent
    spelled = [path.name for path in sorted(package.glob("*.py")) if path.name != "programs.py"
               and any(words in path.read_text() for words in ('"PYTHONPATH"', '"-m", "labkit.'))]
    assert spelled == []
