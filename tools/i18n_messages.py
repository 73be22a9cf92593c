"""The catalogues of what labkit says to a learner (checker feedback, hints, errors), kept in step
with the code as tools/i18n.py keeps the notebooks' catalogues in step with the English cells.

    python tools/i18n_messages.py extract    write or update labkit/messages/LANG/MODULE.po
    python tools/i18n_messages.py check      list what is missing, fuzzy, broken or obsolete

A message is a string literal passed to labkit.i18n's `_()` or `N_()` in labkit/MODULE.py. Each
module with messages has one catalogue per language, so that two people translating two modules
never edit the same file. `extract` adds the new messages with an empty translation, keeps every
translation whose English is unchanged, and marks the others obsolete (`#~`). `check` exits 1
when a message has no translation, a translation is fuzzy, a translation has not the same
`{fields}` as its English (str.format would fail or drop a value), or an entry is obsolete.
"""

from __future__ import annotations

import argparse
import ast
import glob
import os
import string
import sys

import polib
from i18n import load, new_catalogue  # tools/i18n.py: the notebooks' catalogues

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "labkit")
LANG = "zh"
MARKERS = ("_", "N_")


def messages(path: str) -> list[tuple[str, int]]:
    """Each `_("...")` / `N_("...")` literal in a Python file, with its line, in order, once."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in MARKERS and len(node.args) == 1
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            found.setdefault(node.args[0].value, node.lineno)
    return sorted(found.items(), key=lambda item: item[1])


def modules(package: str = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    """module name -> its messages, for every module of the package that has any."""
    found = {}
    for path in sorted(glob.glob(os.path.join(package, "*.py"))):
        listed = messages(path)
        if listed:
            found[os.path.basename(path)[:-3]] = listed
    return found


def catalogue_path(module: str, lang: str = LANG, package: str = PACKAGE) -> str:
    return os.path.join(package, "messages", lang, module + ".po")


def fields(text: str) -> set[str]:
    """The str.format fields of a message ({n}, {pid!r}, {share:.0%} -> n, pid, share)."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:  # a lone brace: not a format string
        return set()


def extract(lang: str = LANG, package: str = PACKAGE) -> list[str]:
    """Write or update every module's catalogue; the paths written."""
    written = []
    for module, listed in modules(package).items():
        path = catalogue_path(module, lang, package)
        kept = {e.msgid: e for e in load(path) if not e.obsolete}
        po = new_catalogue()
        for msgid, _line in listed:
            entry = kept.pop(msgid, None) or polib.POEntry(msgid=msgid, msgstr="")
            # The file only: line numbers would change the catalogue at every edit of the module.
            entry.occurrences = [(f"labkit/{module}.py", "")]
            po.append(entry)
        for gone in kept.values():
            gone.obsolete = True
            po.append(gone)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        text = str(po) + "\n"
        if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            written.append(path)
    return written


def problems(lang: str = LANG, package: str = PACKAGE) -> list[str]:
    """One line per problem: `labkit/MODULE.py:LINE: what` (empty when all is current)."""
    found = []
    listed = modules(package)
    for module, entries in listed.items():
        path = catalogue_path(module, lang, package)
        po = polib.pofile(path) if os.path.exists(path) else []
        known = {e.msgid: e for e in po if not e.obsolete}
        for msgid, line in entries:
            where = f"labkit/{module}.py:{line}"
            e = known.get(msgid)
            if e is None or not e.msgstr:
                found.append(f"{where}: no {lang} translation of {msgid[:50]!r}")
            elif e.fuzzy:
                found.append(f"{where}: fuzzy {lang} translation of {msgid[:50]!r}")
            elif fields(e.msgstr) != fields(msgid):
                found.append(f"{where}: the {lang} translation has fields "
                             f"{sorted(fields(e.msgstr))}, the English {sorted(fields(msgid))}")
        current = {msgid for msgid, _ in entries}
        for e in po:
            if e.obsolete or e.msgid not in current:
                found.append(f"{os.path.relpath(path, REPO)}: obsolete {e.msgid[:50]!r} "
                             "(run extract, then delete the #~ entry)")
    for path in glob.glob(os.path.join(package, "messages", lang, "*.po")):
        module = os.path.basename(path)[:-3]
        if module not in listed:
            found.append(f"{os.path.relpath(path, REPO)}: labkit/{module}.py has no messages")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["extract", "check"])
    args = ap.parse_args(argv)
    if args.command == "extract":
        for path in extract():
            print("wrote", os.path.relpath(path, REPO))
        return 0
    found = problems()
    print("\n".join(found) or f"{LANG}: every labkit message translated")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
