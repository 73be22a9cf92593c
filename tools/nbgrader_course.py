"""Set up an nbgrader course folder with the course's exercise notebooks, in English, in Chinese,
or both, each as an assignment of its own.

    python tools/nbgrader_course.py COURSEDIR               both editions
    python tools/nbgrader_course.py COURSEDIR --lang zh     the Chinese edition only (or en)

Each exercise notebook (one with solution cells, as tools/make_student_version.py finds them) is
copied to COURSEDIR/source/ASSIGNMENT/NN-name.ipynb, where ASSIGNMENT is `NN-name` for the English
edition and `NN-name-zh` for the Chinese (notebooks/zh/). The suffix is not decoration: both
editions have the same code cells, so labkit speaks the language of the notebook's folder
(labkit.i18n.folder_language: `zh`, or a name ending in `-zh`), and `nbgrader autograde` runs a
submission in autograded/STUDENT/ASSIGNMENT. A Chinese assignment named without `-zh` is graded
with English feedback. The student id is that folder's parent, so keep nbgrader's default
`directory_structure`.

COURSEDIR/nbgrader_config.py is written when there is none: the course id, and a cell timeout
of 300 s (a check forks a storm of 1,000 children; nbgrader's default is 30 s). A teacher's
notebook already in source/ that differs from the repository's is kept unless --force.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys

from make_student_version import EDITIONS, exercise_notebooks

from labkit.i18n import folder_language

SUFFIX = {"en": "", "zh": "-zh"}  # what folder_language reads back from the assignment's name
CONFIG = """\
c = get_config()  # noqa: F821 (nbgrader's config loader defines it)
c.CourseDirectory.course_id = {course_id!r}
# A check forks a storm of 1,000 children: nbgrader's default of 30 s a cell is too short.
c.Execute.timeout = 300
# labkit reads the student being graded from autograded/STUDENT/ASSIGNMENT: keep the default
# directory_structure.
"""


def assignment_name(path: str, lang: str) -> str:
    """The nbgrader assignment of the teacher's notebook `path` of edition `lang`."""
    name = os.path.splitext(os.path.basename(path))[0] + SUFFIX[lang]
    if folder_language(name) != lang:  # SUFFIX and labkit.i18n disagree: grading would too
        raise ValueError(f"assignment {name} would be graded in {folder_language(name)}, "
                         f"not {lang}")
    return name


def assignments(langs: list[str]) -> list[tuple[str, str]]:
    """(assignment, teacher's notebook) of every exercise notebook of the editions `langs`."""
    return [(assignment_name(path, lang), path) for lang in langs
            for path in exercise_notebooks(EDITIONS[lang][0])]


def setup(root: str, langs: list[str], course_id: str = "zombie-lab",
          force: bool = False) -> list[str]:
    """Put every assignment of `langs` in root/source/ (and a config if there is none); what
    was done, one line each."""
    done = []
    for name, path in assignments(langs):
        target = os.path.join(root, "source", name, os.path.basename(path))
        if os.path.exists(target) and not filecmp.cmp(path, target, shallow=False) \
                and not force:
            done.append(f"kept {target}: it differs from {path} (--force replaces it)")
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(path, target)
        done.append(f"assignment {name}: {target}")
    config = os.path.join(root, "nbgrader_config.py")
    if not os.path.exists(config):
        with open(config, "w", encoding="utf-8") as f:
            f.write(CONFIG.format(course_id=course_id))
        done.append(f"wrote {config}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", metavar="COURSEDIR", help="the nbgrader course folder")
    parser.add_argument("--lang", choices=[*EDITIONS, "all"], default="all",
                        help="the edition(s) to add (default: all)")
    parser.add_argument("--course-id", default="zombie-lab",
                        help="for a new nbgrader_config.py (default: zombie-lab)")
    parser.add_argument("--force", action="store_true",
                        help="replace teacher's notebooks in source/ that differ")
    args = parser.parse_args(argv)
    langs = list(EDITIONS) if args.lang == "all" else [args.lang]
    try:
        for line in setup(args.root, langs, args.course_id, args.force):
            print(line)
    except OSError as exc:
        print(f"nbgrader_course: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
