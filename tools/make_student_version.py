"""Write the student version of an exercise notebook, as `nbgrader generate_assignment` would.

    python tools/make_student_version.py OUT.ipynb [SOURCE.ipynb]

SOURCE (default notebooks/08-exercises.ipynb) is the solutions copy. In every cell, the lines
from `### BEGIN SOLUTION` to `### END SOLUTION` are replaced by nbgrader's stub, indented as the
BEGIN marker was: `# YOUR CODE HERE` / `raise NotImplementedError()` in code, `YOUR ANSWER HERE`
in markdown. A solution cell without markers (nbgrader metadata "solution": true) is replaced as
a whole. Outputs and execution counts are cleared. nbgrader itself is not needed: the markers
and cell metadata (schema 3) are its conventions, so a teacher may also use nbgrader.
"""

from __future__ import annotations

import argparse
import os
import sys

import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOURCE = os.path.join(REPO, "notebooks", "08-exercises.ipynb")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # nbgrader's ClearSolutions
TEXT_STUB = ["YOUR ANSWER HERE"]


class MarkerError(ValueError):
    pass


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def clear_solution(source: str, stub: list[str], where: str) -> tuple[str, bool]:
    """`source` with each solution region replaced by `stub`; and whether there was one."""
    out, inside, replaced = [], False, False
    for number, line in enumerate(source.split("\n"), 1):
        if line.strip() == BEGIN:
            if inside:
                raise MarkerError(f"{where}, line {number}: {BEGIN} inside a solution region")
            inside = replaced = True
            indent = line[:line.find(BEGIN)]
            out += [indent + s for s in stub]
        elif line.strip() == END:
            if not inside:
                raise MarkerError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out), replaced


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with every solution cleared, and no outputs."""
    nb = nbformat.from_dict(nb)  # a deep copy
    for index, cell in enumerate(nb.cells):
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        meta = nbgrader_meta(cell)
        where = f"cell {index} ({meta.get('grade_id', cell.cell_type)})"
        cell.source, replaced = clear_solution(cell.source, stub, where)
        if replaced and not meta.get("solution"):
            raise MarkerError(f"{where} has a solution region but is not a solution cell "
                              "(nbgrader metadata \"solution\": true)")
        if meta.get("solution") and not replaced:
            cell.source = "\n".join(stub)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="where to write the student version")
    parser.add_argument("source", nargs="?", default=DEFAULT_SOURCE,
                        help="the solutions notebook (default: notebooks/08-exercises.ipynb)")
    args = parser.parse_args(argv)
    if os.path.abspath(args.out) == os.path.abspath(args.source):
        print("make_student_version: OUT must not be the solutions notebook itself",
              file=sys.stderr)
        return 2
    try:
        nb = student_version(nbformat.read(args.source, as_version=4))
    except (OSError, MarkerError) as exc:
        print(f"make_student_version: {exc}", file=sys.stderr)
        return 1
    nbformat.validate(nb)
    nbformat.write(nb, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
