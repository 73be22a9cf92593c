"""The course in other languages, kept in step with the English by gettext catalogues, as Sphinx
and Jupyter Book translations are.

    python tools/i18n.py extract [NOTEBOOK ...]   write or update locale/LANG/NN-name.po
    python tools/i18n.py build                    write notebooks/LANG/NN-name.ipynb
    python tools/i18n.py check                    list what is missing, fuzzy, stale or obsolete
    python tools/i18n.py ids NOTEBOOK ...         give cells without an id a stable one

The English notebooks in notebooks/ are the one source of truth. A catalogue holds one entry per
markdown cell: msgctxt is `NN-name#CELL-ID` (nbformat's cell id), msgid the English cell, msgstr
the translation. `extract` with no argument updates the catalogues that exist; name a notebook to
start its catalogue. An English cell that changed keeps its old translation, marked fuzzy, with
the old English as `#| msgid` so that the translator sees what changed; a cell that is gone
becomes an obsolete entry (`#~`), kept until `extract --drop-obsolete`.

`build` writes, for every notebook that has a catalogue, the English notebook with each markdown
cell replaced by its translation (gettext's rule: a missing or fuzzy translation falls back to the
English); code cells, their ids and metadata stay identical, outputs empty. A translation is
written as it reads in notebooks/LANG/, with one exception: a link to a sibling notebook
(`01-processes.ipynb`) stays on the translated edition when there is one and goes to the English
(`../01-processes.ipynb`) while there is none.

`check` exits 1 when any catalogue is incomplete or out of date, or a built notebook differs from
what `build` writes; it lists each problem by notebook and cell.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass

import polib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
LANG = "zh"
LANGUAGE_NAME = "zh_CN"  # the PO header's Language: Simplified Chinese
# A markdown link or image target that names a notebook next to this one: [text](01-x.ipynb)
SIBLING_LINK = re.compile(r"(\]\()([0-9][0-9]-[A-Za-z0-9_-]+\.ipynb)([)#])")


@dataclass(frozen=True)
class Paths:
    """Where one language lives: its catalogues and its notebooks (tests point it at a copy)."""

    notebooks: str = NOTEBOOKS
    lang: str = LANG

    @property
    def locale(self) -> str:
        return os.path.join(os.path.dirname(self.notebooks), "locale", self.lang)

    @property
    def built(self) -> str:
        return os.path.join(self.notebooks, self.lang)

    def catalogue(self, stem: str) -> str:
        return os.path.join(self.locale, stem + ".po")

    def english(self, stem: str) -> str:
        return os.path.join(self.notebooks, stem + ".ipynb")

    def translated(self, stem: str) -> str:
        return os.path.join(self.built, stem + ".ipynb")

    def stems(self) -> list[str]:
        """The notebooks that have a catalogue."""
        return sorted(os.path.basename(p)[:-3] for p in glob.glob(self.catalogue("*")))

    def english_stems(self) -> list[str]:
        return sorted(os.path.basename(p)[:-6] for p in glob.glob(self.english("*")))


# ---- notebooks as JSON (the repository's formatting: indent=1, UTF-8, trailing newline) ----

def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def write_json(path: str, nb: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(nb))


def source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def context(stem: str, cell: dict) -> str:
    if "id" not in cell:
        raise ValueError(f"{stem}: a cell has no id; run `python tools/i18n.py ids` on it first")
    return f"{stem}#{cell['id']}"


def markdown_cells(stem: str, nb: dict) -> list[tuple[str, str]]:
    """(msgctxt, English source) of every markdown cell, in order."""
    return [(context(stem, c), source(c)) for c in nb["cells"] if c["cell_type"] == "markdown"]


# ---- extract -------------------------------------------------------------------------------

def new_catalogue() -> polib.POFile:
    po = polib.POFile(wrapwidth=100)
    po.metadata = {
        "Project-Id-Version": "zombie-lab",
        "Language": LANGUAGE_NAME,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
    }
    return po


def load(path: str) -> polib.POFile:
    return polib.pofile(path, wrapwidth=100) if os.path.exists(path) else new_catalogue()


def merged(stem: str, nb: dict, old: polib.POFile, drop_obsolete: bool = False) -> polib.POFile:
    """The catalogue for `nb`, keeping every translation `old` holds (msgmerge's rules)."""
    by_ctxt = {e.msgctxt: e for e in old}
    # A cell re-created with the same text (a new id) keeps its translation, as msgmerge does.
    by_text = {e.msgid: e for e in old if e.msgstr and not e.fuzzy}
    po = new_catalogue()
    po.metadata.update({k: v for k, v in old.metadata.items() if k not in po.metadata})
    used = set()
    for ctxt, text in markdown_cells(stem, nb):
        prev = by_ctxt.get(ctxt)
        entry = polib.POEntry(msgctxt=ctxt, msgid=text, msgstr="")
        if prev is not None:
            used.add(ctxt)
            entry.msgstr, entry.tcomment = prev.msgstr, prev.tcomment
            entry.flags = [f for f in prev.flags if f != "fuzzy"]
            if prev.msgid != text and prev.msgstr:
                entry.flags.append("fuzzy")
                entry.previous_msgid = prev.previous_msgid or prev.msgid
            elif prev.fuzzy:
                entry.flags.append("fuzzy")
                entry.previous_msgid = prev.previous_msgid
        elif text in by_text:
            entry.msgstr = by_text[text].msgstr
        po.append(entry)
    if not drop_obsolete:
        for e in old:
            if e.msgctxt not in used and e.msgstr:
                e.obsolete = True
                po.append(e)
    return po


def extract(paths: Paths, stems: list[str], drop_obsolete: bool = False) -> list[str]:
    written = []
    for stem in stems or paths.stems():
        path = paths.catalogue(stem)
        po = merged(stem, read_json(paths.english(stem)), load(path), drop_obsolete)
        os.makedirs(paths.locale, exist_ok=True)
        po.save(path)
        written.append(path)
    return written


# ---- build ---------------------------------------------------------------------------------

def translation(entry: polib.POEntry | None, english: str) -> str:
    """gettext's rule: only a translated, non-fuzzy entry replaces the English."""
    if entry is None or entry.obsolete or entry.fuzzy or not entry.msgstr or entry.msgid != english:
        return english
    return entry.msgstr


def relink(text: str, has_edition: set[str]) -> str:
    def target(m: re.Match) -> str:
        name = m.group(2)
        return m.group(1) + (name if name[:-6] in has_edition else "../" + name) + m.group(3)

    return SIBLING_LINK.sub(target, text)


def lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def built(paths: Paths, stem: str) -> dict:
    """The translated notebook for `stem`, as `build` writes it."""
    nb = read_json(paths.english(stem))
    entries = {e.msgctxt: e for e in load(paths.catalogue(stem)) if not e.obsolete}
    has_edition = set(paths.stems())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = translation(entries.get(context(stem, cell)), source(cell))
            cell["source"] = lines(relink(text, has_edition))
        elif cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"]["zombie_lab_translation"] = {
        "language": LANGUAGE_NAME,
        "english": f"../{stem}.ipynb",
        "catalogue": f"../../locale/{paths.lang}/{stem}.po",
        "note": "Built by tools/i18n.py build: edit the catalogue, not this file.",
    }
    return nb


def build(paths: Paths) -> list[str]:
    written = []
    for stem in paths.stems():
        write_json(paths.translated(stem), built(paths, stem))
        written.append(paths.translated(stem))
    return written


# ---- check ---------------------------------------------------------------------------------

def problems(paths: Paths) -> list[str]:
    """One line per problem: `NN-name#CELL: what` (empty when everything is complete and built)."""
    found = []
    for stem in paths.stems():
        english = markdown_cells(stem, read_json(paths.english(stem)))
        po = load(paths.catalogue(stem))
        entries = {e.msgctxt: e for e in po if not e.obsolete}
        for ctxt, text in english:
            e = entries.get(ctxt)
            if e is None or not e.msgstr:
                found.append(f"{ctxt}: missing (no translation)")
            elif e.msgid != text:
                found.append(f"{ctxt}: stale (the English changed; run extract, then translate)")
            elif e.fuzzy:
                found.append(f"{ctxt}: fuzzy (the English changed; review, then drop the flag)")
        current = {ctxt for ctxt, _ in english}
        for e in po:
            if e.obsolete or e.msgctxt not in current:
                found.append(f"{e.msgctxt}: obsolete (no such cell; extract --drop-obsolete)")
        out = paths.translated(stem)
        if not os.path.exists(out):
            found.append(f"{stem}: {os.path.relpath(out, REPO)} missing (run build)")
        elif open(out, encoding="utf-8").read() != dumps(built(paths, stem)):
            found.append(f"{stem}: {os.path.relpath(out, REPO)} differs from build (run build)")
    for path in glob.glob(os.path.join(paths.built, "*.ipynb")):
        stem = os.path.basename(path)[:-6]
        if stem not in paths.stems():
            found.append(f"{stem}: {os.path.relpath(path, REPO)} has no catalogue")
    return found


def untranslated(paths: Paths) -> list[str]:
    """The English notebooks that have no catalogue yet."""
    return sorted(set(paths.english_stems()) - set(paths.stems()))


# ---- ids -----------------------------------------------------------------------------------

def add_ids(path: str) -> int:
    """Give each cell without an id one derived from the notebook's name, the cell's position and
    its text (stable: the same file gets the same ids); returns how many were added."""
    nb = read_json(path)
    taken = {c["id"] for c in nb["cells"] if "id" in c}
    added = 0
    for i, cell in enumerate(nb["cells"]):
        if "id" in cell:
            continue
        seed = f"{os.path.basename(path)}:{i}:{source(cell)}"
        cid = hashlib.sha1(seed.encode()).hexdigest()[:8]
        while cid in taken:
            cid = hashlib.sha1(cid.encode()).hexdigest()[:8]
        # nbformat's order: cell_type, execution_count?, id, metadata, ...
        items = list(cell.items())
        at = next(k for k, (key, _) in enumerate(items) if key == "metadata")
        items.insert(at, ("id", cid))
        nb["cells"][i] = dict(items)
        taken.add(cid)
        added += 1
    if added:
        write_json(path, nb)
    return added


def stem_of(arg: str) -> str:
    return os.path.basename(arg).removesuffix(".ipynb").removesuffix(".po")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="write or update the catalogues")
    ex.add_argument("notebooks", nargs="*", help="start or update these (default: all that exist)")
    ex.add_argument("--drop-obsolete", action="store_true", help="forget gone cells")
    sub.add_parser("build", help="write the translated notebooks")
    sub.add_parser("check", help="exit 1 if a catalogue or a built notebook is not current")
    ids = sub.add_parser("ids", help="give cells without an id a stable one")
    ids.add_argument("notebooks", nargs="+")
    args = ap.parse_args(argv)
    paths = Paths()
    if args.command == "extract":
        for path in extract(paths, [stem_of(n) for n in args.notebooks], args.drop_obsolete):
            print("wrote", os.path.relpath(path, REPO))
    elif args.command == "build":
        for path in build(paths):
            print("wrote", os.path.relpath(path, REPO))
    elif args.command == "ids":
        for path in args.notebooks:
            print(f"{path}: {add_ids(path)} ids added")
    else:
        return report(paths)
    return 0


def report(paths: Paths) -> int:
    """`check`: print every problem (or that there is none) and the notebooks not yet started;
    1 if there is a problem."""
    found = problems(paths)
    print("\n".join(found) or f"{paths.lang}: every catalogue complete, every notebook built")
    missing = untranslated(paths)
    if missing:
        print(f"no {paths.lang} catalogue yet (not checked): {', '.join(missing)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
