"""The Chinese edition (notebooks/zh/, built by tools/i18n.py from locale/zh/*.po) is complete,
current and built: a changed English cell, a missing translation or a hand-edited Chinese notebook
fails here, named by notebook and cell. Only notebooks that have a catalogue are held to it; the
ones without are listed (run with -s, or see the skip/summary line) so the gap stays visible."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys

import mistune  # nbconvert's Markdown renderer (requirements-dev.txt)
import nbformat
import polib
import pytest
from support import REPO

i18n = importlib.import_module("i18n")  # tools/i18n.py; support puts tools/ on sys.path

PATHS = i18n.Paths()
STEMS = PATHS.stems()

# tests/as-user.sh stages a copy without locale/ (a fixed list); in a checkout it must be there.
pytestmark = pytest.mark.skipif(
    not os.path.isdir(PATHS.locale) and not os.path.isdir(os.path.join(REPO, ".git")),
    reason="locale/ is not staged in this copy of the repository")

LINK = re.compile(r"\]\(([^)#\s]+\.ipynb)[)#]")


def test_which_english_notebooks_have_no_chinese_edition_yet():
    """Not a failure: the gap, printed (pytest -s) and shown in the summary when there is one."""
    missing = i18n.untranslated(PATHS)
    print(f"\nEnglish notebooks without a {PATHS.lang} catalogue yet: {missing or 'none'}")
    assert "00-start-here" in STEMS, "the Chinese edition starts with 00-start-here"
    if missing:
        pytest.xfail(f"no {PATHS.lang} catalogue yet: {', '.join(missing)}")


def test_every_catalogue_is_complete_current_and_built():
    """Lists every missing, fuzzy, stale or obsolete entry and every out-of-date notebook."""
    found = i18n.problems(PATHS)
    assert not found, "run `python tools/i18n.py extract`, translate, then `build`:\n" + \
        "\n".join(found)


@pytest.mark.parametrize("stem", STEMS)
def test_the_committed_chinese_notebook_is_what_build_makes(stem):
    with open(PATHS.translated(stem), encoding="utf-8") as f:
        assert f.read() == i18n.dumps(i18n.built(PATHS, stem))


@pytest.mark.parametrize("stem", STEMS)
def test_code_cells_are_the_english_ones(stem):
    """One source of truth for code: same cells, same ids, same order, same metadata."""
    english = i18n.read_json(PATHS.english(stem))["cells"]
    chinese = i18n.read_json(PATHS.translated(stem))["cells"]
    assert [(c["id"], c["cell_type"]) for c in chinese] == \
        [(c["id"], c["cell_type"]) for c in english]
    for en, zh in zip(english, chinese, strict=True):
        if en["cell_type"] == "code":
            assert (zh["source"], zh["metadata"]) == (en["source"], en["metadata"])
            assert zh["outputs"] == [] and zh["execution_count"] is None


@pytest.mark.parametrize("stem", STEMS)
def test_every_markdown_cell_is_translated(stem):
    """A cell whose translation equals the English would pass as 'translated': none may, unless
    it has no words to translate (a line of code, a link)."""
    english = i18n.read_json(PATHS.english(stem))["cells"]
    chinese = i18n.read_json(PATHS.translated(stem))["cells"]
    for en, zh in zip(english, chinese, strict=True):
        if en["cell_type"] == "markdown":
            text = i18n.source(zh)
            assert re.search(r"[\u4e00-\u9fff]", text), f"{stem}#{en['id']} has no Chinese"


@pytest.mark.parametrize("stem", STEMS)
def test_bold_and_italic_render_in_chinese_prose(stem):
    """CommonMark's flanking rules: `**先预测：**这` stays literal asterisks (a closing `**` after
    punctuation must be followed by a space or punctuation), as it does in JupyterLab. Chinese
    puts the colon outside (`**先预测**：`) or a space around code (`和 **`x`** 了`)."""
    render = mistune.create_markdown()
    for cell in i18n.read_json(PATHS.translated(stem))["cells"]:
        if cell["cell_type"] == "markdown":
            html = re.sub(r"<pre>.*?</pre>|<code>.*?</code>", "", render(i18n.source(cell)),
                          flags=re.S)
            stray = [html[max(0, m.start() - 20):m.end() + 20] for m in re.finditer(r"\*", html)]
            assert not stray, f"{stem}#{cell['id']}: unrendered emphasis: {stray[:3]}"


@pytest.mark.parametrize("stem", STEMS)
def test_links_between_notebooks_resolve(stem):
    """A Chinese notebook links to the Chinese edition of a notebook when there is one (and to
    its own English edition)."""
    text = "".join(i18n.source(c) for c in i18n.read_json(PATHS.translated(stem))["cells"])
    for target in LINK.findall(text):
        if "://" in target:
            continue
        assert os.path.exists(os.path.join(PATHS.built, target)), f"{stem}: {target}"
        name = os.path.basename(target)[:-6]
        if target == f"../{stem}.ipynb":
            continue
        assert (name in STEMS) == (target == os.path.basename(target)), \
            f"{stem}: {target} should go to the {'Chinese' if name in STEMS else 'English'} one"


def test_each_start_here_links_to_the_other():
    english = json.dumps(i18n.read_json(PATHS.english("00-start-here")), ensure_ascii=False)
    chinese = json.dumps(i18n.read_json(PATHS.translated("00-start-here")), ensure_ascii=False)
    assert "](zh/00-start-here.ipynb)" in english
    assert "](../00-start-here.ipynb)" in chinese


# ---- the tool itself, on a copy (tmp_path): what a translator and a reviewer meet ----------

@pytest.fixture
def copy(tmp_path):
    """notebooks/00-start-here.ipynb and its catalogue in tmp_path, built: Paths over the copy."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(PATHS.english("00-start-here"), notebooks)
    (tmp_path / "locale" / PATHS.lang).mkdir(parents=True)
    shutil.copy(PATHS.catalogue("00-start-here"), tmp_path / "locale" / PATHS.lang)
    paths = i18n.Paths(notebooks=str(notebooks), lang=PATHS.lang)
    i18n.build(paths)
    assert i18n.problems(paths) == []
    return paths


def edit_english(paths: i18n.Paths, index: int, new: str) -> str:
    """Replace the text of the index-th markdown cell; its msgctxt."""
    path = paths.english("00-start-here")
    nb = i18n.read_json(path)
    cell = [c for c in nb["cells"] if c["cell_type"] == "markdown"][index]
    cell["source"] = i18n.lines(new)
    i18n.write_json(path, nb)
    return f"00-start-here#{cell['id']}"


def test_a_changed_english_cell_whose_translation_did_not_change_fails(copy):
    ctxt = edit_english(copy, 1, "A sentence the translator has not seen.")
    assert f"{ctxt}: stale" in "\n".join(i18n.problems(copy))
    i18n.extract(copy, [])
    assert f"{ctxt}: fuzzy" in "\n".join(i18n.problems(copy))
    entry = polib.pofile(copy.catalogue("00-start-here")).find(ctxt, by="msgctxt")
    assert entry.fuzzy and entry.msgstr and entry.previous_msgid  # kept, flagged, with the old
    # gettext's rule: the fuzzy translation is not used; the notebook shows the new English
    nb = i18n.built(copy, "00-start-here")
    assert "A sentence the translator has not seen." in json.dumps(nb)


def test_a_missing_entry_fails(copy):
    path = copy.catalogue("00-start-here")
    po = polib.pofile(path)
    gone = po[2]
    po.remove(gone)
    po.save(path)
    assert f"{gone.msgctxt}: missing" in "\n".join(i18n.problems(copy))


def test_a_cell_gone_from_the_english_leaves_an_obsolete_entry(copy):
    path = copy.english("00-start-here")
    nb = i18n.read_json(path)
    gone = next(c for c in nb["cells"] if c["cell_type"] == "markdown" and c is not nb["cells"][0])
    nb["cells"].remove(gone)
    i18n.write_json(path, nb)
    i18n.extract(copy, [])
    assert f"00-start-here#{gone['id']}: obsolete" in "\n".join(i18n.problems(copy))
    i18n.extract(copy, [], drop_obsolete=True)
    i18n.build(copy)
    assert i18n.problems(copy) == []


def test_a_hand_edited_chinese_notebook_fails(copy):
    path = copy.translated("00-start-here")
    nb = i18n.read_json(path)
    nb["cells"][0]["source"] = ["# 手改的标题\n"]
    i18n.write_json(path, nb)
    assert "differs from build" in "\n".join(i18n.problems(copy))


def test_extract_keeps_every_translation_when_nothing_changed(copy):
    before = open(copy.catalogue("00-start-here"), encoding="utf-8").read()
    i18n.extract(copy, [])
    assert open(copy.catalogue("00-start-here"), encoding="utf-8").read() == before


def test_readme_zh_is_linked_and_its_binder_badge_opens_the_chinese_course():
    """README.zh.md's badge is the English README's Binder URL with the path changed."""
    english = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    chinese = open(os.path.join(REPO, "README.zh.md"), encoding="utf-8").read()
    assert "](README.zh.md)" in english.split("\n## ")[0]   # at the top, before any section
    badge = re.compile(r"\]\((https://mybinder\.org/v2/[^)]*urlpath=lab/tree/([^)]*))\)")
    [(en_url, en_path)] = badge.findall(english)
    [(zh_url, zh_path)] = badge.findall(chinese)
    assert zh_path == f"notebooks/{PATHS.lang}/00-start-here.ipynb"
    assert zh_url == en_url.replace(en_path, zh_path)
    assert os.path.exists(os.path.join(REPO, zh_path))


@pytest.mark.parametrize("stem", [s for s in STEMS if any(
    c.get("metadata", {}).get("nbgrader", {}).get("solution")
    for c in i18n.read_json(PATHS.english(s))["cells"])])
def test_the_student_version_of_a_chinese_exercise_hides_what_the_english_one_hides(stem):
    """tools/make_student_version.py OUT.ipynb notebooks/zh/NN.ipynb: the same cells become
    stubs as in the English, and no model answer is left in the Chinese prose."""
    student = importlib.import_module("make_student_version").student_version
    english = student(nbformat.read(PATHS.english(stem), as_version=4))
    chinese = student(nbformat.read(PATHS.translated(stem), as_version=4))
    assert [c.source for c in chinese.cells if c.cell_type == "code"] == \
        [c.source for c in english.cells if c.cell_type == "code"]
    for en, zh in zip(english.cells, chinese.cells, strict=True):
        if en.metadata.get("nbgrader", {}).get("solution"):
            assert zh.source == en.source, f"{stem}#{en.id}: the stub differs"
        assert "BEGIN SOLUTION" not in zh.source


def test_the_check_command_says_so_and_exits_0_when_all_is_current():
    """`python tools/i18n.py check`, as a maintainer runs it (exit 1 is proven on the copy)."""
    done = subprocess.run([sys.executable, os.path.join(REPO, "tools", "i18n.py"), "check"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) == (i18n.problems(PATHS) == []), done.stdout + done.stderr


def test_the_check_command_lists_each_problem_and_exits_1(copy, capsys):
    ctxt = edit_english(copy, 0, "# A new title")
    assert i18n.report(copy) == 1
    assert f"{ctxt}: stale" in capsys.readouterr().out
