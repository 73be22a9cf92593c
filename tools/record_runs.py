"""Record the experiments that need namespaces, from a real run on this machine.

    python tools/record_runs.py [NOTEBOOK ...]     (default: every recorded notebook)

Where a machine forbids namespaces (mybinder.org, Docker's default seccomp profile), notebooks
05 and 06 show these recordings instead, labelled RECORDED with where, when, on which kernel and
as whom they were made (labkit.recorded). Run this on a machine that allows namespaces, as root
or not; it refuses to write anything if an experiment cannot run here. Each recording is made by
the very functions the notebooks call live, and tests/test_recorded.py checks that a fresh run
still has the same structure.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from labkit import container, linux, podtour, recorded  # noqa: E402

EXPERIMENTS = {
    "05-the-pause-container": container.record,
    "06-namespaces-and-pods": podtour.record,
}


def provenance(notebook: str) -> dict:
    """Where, when, on which kernel and as whom: what the notebook prints beside the run."""
    uid = os.geteuid()
    return {"notebook": notebook,
            "recorded": {"machine": f"{platform.node()} ({platform.machine()})",
                         "kernel": platform.release(),
                         "user": "root (uid 0)" if uid == 0 else f"uid {uid}, not root",
                         "when": datetime.datetime.now(datetime.timezone.utc)
                         .strftime("%Y-%m-%d %H:%M UTC"),
                         "python": platform.python_version(),
                         "how": "python tools/record_runs.py"}}


def main(argv: list[str]) -> int:
    names = argv or list(EXPERIMENTS)
    unknown = [name for name in names if name not in EXPERIMENTS]
    if unknown:
        print(f"record_runs: no experiments for {unknown}; known: {list(EXPERIMENTS)}",
              file=sys.stderr)
        return 64
    linux.set_child_subreaper()  # what an experiment orphans comes back here, to be reaped
    os.makedirs(recorded.RECORDED_DIR, exist_ok=True)
    for name in names:
        run = provenance(name)
        run["steps"] = EXPERIMENTS[name]()
        container.stop_all()
        with open(recorded.path(name), "w") as f:
            json.dump(run, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"recorded {len(run['steps'])} experiments of {name} in {recorded.path(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
