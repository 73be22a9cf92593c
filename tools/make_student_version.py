"""Write the student versions of the course's exercise notebooks, as `nbgrader generate_assignment`
would, without needing nbgrader.

    python tools/make_student_version.py OUTDIR              every exercise notebook of both
                                                             editions, laid out as notebooks/ is
    python tools/make_student_version.py OUTDIR --lang zh    the Chinese edition only (or en)
    python tools/make_student_version.py OUT.ipynb SOURCE    one notebook

An exercise notebook is one with solution cells. Folder mode writes the English edition's into
OUTDIR (OUTDIR/08-exercises.ipynb) and the Chinese edition's, from notebooks/zh/, into OUTDIR/zh
(OUTDIR/zh/08-exercises.ipynb): the layout of notebooks/, which students keep. The folder name
is what makes labkit's feedback Chinese (labkit.i18n.folder_language: a folder named `zh` or
ending in `-zh`), since the code cells of both editions are the same.

A source notebook is the teacher's copy. Its cells follow nbgrader's conventions (metadata
schema 3): in every cell, a line that contains the solution-begin marker starts a region that
ends at the line with the end marker; in the student version the region becomes nbgrader's stub,
indented as the marker was (`# YOUR CODE HERE` / `raise NotImplementedError()` in code, `YOUR
ANSWER HERE` in markdown). A solution cell without a region is replaced as a whole. Hidden-test
regions (in grade cells only) are removed. Outputs and execution counts are cleared. The markers
are matched as nbgrader matches them: anywhere in a line, in every cell, prose included.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
# Each edition's teacher's notebooks, and the subfolder its student versions go to (folder mode).
EDITIONS = {"en": (NOTEBOOKS, ""), "zh": (os.path.join(NOTEBOOKS, "zh"), "zh")}
# nbgrader's ClearSolutions and ClearHiddenTests delimiters (a substring of the line).
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # nbgrader's ClearSolutions
TEXT_STUB = ["YOUR ANSWER HERE"]


class MarkerError(ValueError):
    pass


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def clear_region(source: str, stub: list[str], where: str, begin: str = BEGIN,
                 end: str = END) -> tuple[str, bool]:
    """`source` with each begin..end region replaced by `stub`; and whether there was one."""
    out, inside, replaced = [], False, False
    for number, line in enumerate(source.split("\n"), 1):
        if begin in line:
            if inside:
                raise MarkerError(f"{where}, line {number}: {begin!r} inside a region")
            inside = replaced = True
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + s for s in stub]
        elif end in line:
            if not inside:
                raise MarkerError(f"{where}, line {number}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: {begin!r} without {end!r} (nbgrader: \"no end "
                          "statement found\"); prose must not quote the markers")
    return "\n".join(out), replaced


def clear_solution(source: str, stub: list[str], where: str) -> tuple[str, bool]:
    return clear_region(source, stub, where)


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with every solution cleared, hidden tests removed, and no outputs."""
    nb = nbformat.from_dict(nb)  # a deep copy
    for index, cell in enumerate(nb.cells):
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        meta = nbgrader_meta(cell)
        where = f"cell {index} ({meta.get('grade_id', cell.cell_type)})"
        cell.source, replaced = clear_region(cell.source, stub, where)
        if replaced and not meta.get("solution"):
            raise MarkerError(f"{where} has a solution region but is not a solution cell "
                              "(nbgrader metadata \"solution\": true)")
        if meta.get("solution") and not replaced:
            cell.source = "\n".join(stub)
        cell.source, hidden = clear_region(cell.source, [], where, BEGIN_HIDDEN, END_HIDDEN)
        if hidden and not meta.get("grade"):
            raise MarkerError(f"{where} has hidden tests but is not a grade cell (nbgrader "
                              "metadata \"grade\": true)")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def has_solutions(nb: nbformat.NotebookNode) -> bool:
    return any(nbgrader_meta(c).get("solution") for c in nb.cells)


def exercise_notebooks(folder: str = NOTEBOOKS) -> list[str]:
    """The notebooks of `folder` that have solution cells, by name."""
    paths = sorted(glob.glob(os.path.join(folder, "*.ipynb")))
    return [p for p in paths if has_solutions(nbformat.read(p, as_version=4))]


def student_pairs(outdir: str, langs: list[str]) -> list[tuple[str, str]]:
    """(teacher's notebook, student version) of every exercise notebook of the editions `langs`,
    the student versions laid out under `outdir` as notebooks/ is (the Chinese in outdir/zh)."""
    pairs = []
    for lang in langs:
        folder, sub = EDITIONS[lang]
        pairs += [(p, os.path.join(outdir, sub, os.path.basename(p)))
                  for p in exercise_notebooks(folder)]
    return pairs


def write(source: str, out: str) -> None:
    nb = student_version(nbformat.read(source, as_version=4))
    nbformat.validate(nb)
    nbformat.write(nb, out)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a folder (every exercise notebook), or OUT.ipynb")
    parser.add_argument("source", nargs="?", help="the one teacher's notebook to convert")
    parser.add_argument("--lang", choices=[*EDITIONS, "all"], default="all",
                        help="folder mode: the edition(s) to write (default: all)")
    args = parser.parse_args(argv)
    if args.source is None:
        if args.out.endswith(".ipynb"):
            parser.error("give the SOURCE notebook for OUT.ipynb, or a folder for all of them")
        pairs = student_pairs(args.out, list(EDITIONS) if args.lang == "all" else [args.lang])
    else:
        if args.lang != "all":
            parser.error("--lang chooses editions in folder mode; give one SOURCE or a folder")
        pairs = [(args.source, args.out)]
    if any(os.path.abspath(out) == os.path.abspath(src) for src, out in pairs):
        print("make_student_version: OUT must not be the teacher's notebook itself",
              file=sys.stderr)
        return 2
    try:
        for src, out in pairs:
            if args.source is None:
                os.makedirs(os.path.dirname(out), exist_ok=True)
            write(src, out)
    except (OSError, MarkerError) as exc:
        print(f"make_student_version: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
