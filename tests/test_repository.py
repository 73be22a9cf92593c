"""What the repository itself must hold: no half-finished merge."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKERS = (b"<<<<<<< ", b">>>>>>> ")


def test_no_tracked_file_holds_a_merge_conflict_marker():
    """A marker left by a merge breaks what reads the file (pip read one as a requirement)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.split(b"\0")
    found = []
    for name in filter(None, files):
        path = REPO / name.decode()
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if line.startswith(MARKERS) or line == b"=======":
                found.append(f"{name.decode()}:{number}")
    assert not found, found
