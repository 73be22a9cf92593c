"""The language of what labkit tells a learner, and the catalogues that translate it.

    _(message)      the message in the learner's language (the English when it has no translation)
    N_(message)     marks a constant for translation where it is defined; pass it to _() when used
    language()      "en" or "zh"
    use(lang)       a context manager that sets the language (tests, teachers' tools)
    columns(text)   how many terminal columns text takes (a CJK character takes two)
    ljust(text, n)  text padded to n columns, for tables whose cells may be Chinese

A notebook's code cells are the same in every edition (tools/i18n.py builds notebooks/zh/ from the
English), so no cell can tell the checks which language to speak. The language follows where the
notebook is: Jupyter starts a kernel in its notebook's folder, and jupyter_server 2 also puts the
notebook's path in the kernel's environment as JPY_SESSION_NAME. A notebook whose folder is named
`zh`, or ends in `-zh` (an nbgrader assignment of the Chinese edition), gets Chinese. LABKIT_LANG
(`en` or `zh`) overrides both.

A message is written in English in the code, with `str.format` fields for its values:
`_("{n} zombies are left").format(n=n)`. Its translation is an entry of a gettext catalogue,
labkit/messages/LANG/*.po (msgid the English, msgstr the translation, the same fields; a fuzzy
entry is not used). The catalogues are read with the standard library only: pause, the agent and
the trials that run inside the lab import nothing else. tests/test_i18n.py fails when a message
in labkit has no translation or a translation has lost a field.
"""

from __future__ import annotations

import ast
import contextlib
import glob
import os
import unicodedata
from collections.abc import Iterator
from functools import cache

LANGUAGES = ("en", "zh")
ENV = "LABKIT_LANG"
SESSION_ENV = "JPY_SESSION_NAME"  # jupyter_server's sessionmanager.get_kernel_env
MESSAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "messages")

_override: list[str] = []


def folder_language(folder: str) -> str:
    """The language of a notebook in `folder`: "zh" for `.../zh` or `.../NAME-zh`, else "en"."""
    name = os.path.basename(os.path.normpath(folder))
    return "zh" if name == "zh" or name.endswith("-zh") else "en"


def language() -> str:
    """The language to speak to the learner: use(), then LABKIT_LANG, then the notebook's folder."""
    if _override:
        return _override[-1]
    chosen = os.environ.get(ENV, "").strip().lower()
    if chosen in LANGUAGES:
        return chosen
    session = os.environ.get(SESSION_ENV)
    if session:
        return folder_language(os.path.dirname(session))
    try:
        return folder_language(os.getcwd())
    except OSError:  # the folder was removed under us
        return "en"


@contextlib.contextmanager
def use(lang: str) -> Iterator[None]:
    """Speak `lang` inside the block, whatever the folder says."""
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    _override.append(lang)
    try:
        yield
    finally:
        _override.pop()


def N_(message: str) -> str:  # noqa: N802 (gettext's name)
    """`message` unchanged: marks a constant for the catalogue; translate it with _() at use."""
    return message


def _(message: str) -> str:
    """`message` in the learner's language; the English when there is no translation."""
    lang = language()
    if lang == "en":
        return message
    return catalogue(lang).get(message) or message


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Every translated message of `lang`: msgid -> msgstr, from labkit/messages/LANG/*.po."""
    found: dict[str, str] = {}
    for path in sorted(glob.glob(os.path.join(MESSAGES, lang, "*.po"))):
        with open(path, encoding="utf-8") as f:
            found.update(read_po(f.read()))
    return found


def read_po(text: str) -> dict[str, str]:
    """The translated, non-fuzzy entries of a PO file's text (msgctxt and plurals are not used)."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    fuzzy = False
    current: list[str] | None = None

    def finish() -> None:
        if msgid is not None and msgstr is not None and not fuzzy:
            english, translated = "".join(msgid), "".join(msgstr)
            if english and translated:
                entries[english] = translated

    for line in text.splitlines() + [""]:
        line = line.strip()
        if not line:
            finish()
            msgid = msgstr = current = None
            fuzzy = False
        elif line.startswith("#,"):
            fuzzy = fuzzy or "fuzzy" in line
        elif line.startswith("#"):
            continue
        elif line.startswith("msgid "):
            msgid = current = [ast.literal_eval(line[6:])]
        elif line.startswith("msgstr "):
            msgstr = current = [ast.literal_eval(line[7:])]
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
    return entries


def columns(text: str) -> int:
    """How many terminal columns `text` takes: a wide or fullwidth character takes two (UAX #11)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def ljust(text: str, width: int) -> str:
    """`text` padded with spaces to `width` terminal columns (str.ljust counts characters)."""
    return text + " " * max(0, width - columns(text))
