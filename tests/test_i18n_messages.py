"""What labkit says to a learner (feedback, hints, errors) follows the notebook's language, and
its catalogues (labkit/messages/zh/*.po) are complete and current (tools/i18n_messages.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import polib
import pytest

from labkit import checks, i18n

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import i18n_messages  # noqa: E402


def test_every_labkit_message_has_a_current_chinese_translation():
    assert i18n_messages.problems() == []


def test_extract_changes_nothing_when_the_catalogues_are_current(tmp_path):
    copy = tmp_path / "labkit"
    shutil.copytree(os.path.join(REPO, "labkit"), copy)
    assert i18n_messages.extract(package=str(copy)) == []


@pytest.mark.parametrize("folder,lang", [("notebooks/zh", "zh"), ("autograded/ann/08-exercises-zh",
                                          "zh"), ("notebooks", "en"), ("zh-notes", "en")])
def test_the_language_follows_the_notebooks_folder(english, tmp_path, folder, lang):
    (tmp_path / folder).mkdir(parents=True)
    english.chdir(tmp_path / folder)
    assert i18n.language() == lang


def test_a_jupyter_session_names_the_notebook_whatever_the_kernels_folder(english, tmp_path):
    english.setenv(i18n.SESSION_ENV, "/srv/course/notebooks/zh/02-zombies.ipynb")
    assert i18n.language() == "zh"
    english.chdir(tmp_path)
    english.setenv(i18n.SESSION_ENV, "/srv/course/notebooks/02-zombies.ipynb")
    (tmp_path / "zh").mkdir()
    english.chdir(tmp_path / "zh")
    assert i18n.language() == "en"


def test_labkit_lang_overrides_the_folder_and_use_overrides_both(english, tmp_path):
    (tmp_path / "zh").mkdir()
    english.chdir(tmp_path / "zh")
    english.setenv(i18n.ENV, "en")
    assert i18n.language() == "en"
    with i18n.use("zh"):
        assert i18n.language() == "zh"
    assert i18n.language() == "en"


def test_use_refuses_a_language_it_does_not_speak():
    with pytest.raises(ValueError, match="en, zh"):
        with i18n.use("fr"):
            pass


def test_a_refusal_is_in_chinese_in_a_chinese_notebook_and_english_elsewhere(english):
    with pytest.raises(ValueError, match="n must be at least 1, not 0"):
        checks.count(0, "n", low=1)
    with i18n.use("zh"), pytest.raises(ValueError, match="n 至少为 1，而不是 0"):
        checks.count(0, "n", low=1)


def test_an_untranslated_message_falls_back_to_the_english(english):
    with i18n.use("zh"):
        assert i18n._("no catalogue has this sentence") == "no catalogue has this sentence"


def test_the_standard_library_reader_agrees_with_polib_on_every_catalogue():
    for module in i18n_messages.modules():
        path = i18n_messages.catalogue_path(module)
        expected = {e.msgid: e.msgstr for e in polib.pofile(path)
                    if e.msgstr and not e.fuzzy and not e.obsolete}
        with open(path, encoding="utf-8") as f:
            assert i18n.read_po(f.read()) == expected, module


def test_the_reader_keeps_escapes_and_wrapped_lines_and_skips_fuzzy_entries():
    po = polib.POFile(wrapwidth=30)
    po.append(polib.POEntry(msgid='say "{n}"\n\tand a \\ back', msgstr='说 "{n}"\n\t和 \\ 反斜杠'))
    po.append(polib.POEntry(msgid="a long message " * 5, msgstr="一条很长的消息 " * 5))
    po.append(polib.POEntry(msgid="old", msgstr="旧", flags=["fuzzy"]))
    assert i18n.read_po(str(po)) == {'say "{n}"\n\tand a \\ back': '说 "{n}"\n\t和 \\ 反斜杠',
                                     "a long message " * 5: "一条很长的消息 " * 5}


@pytest.fixture
def package(tmp_path):
    """A package with one module of two messages and its catalogue, translated."""
    pkg = tmp_path / "labkit"
    pkg.mkdir()
    (pkg / "mod.py").write_text('from labkit.i18n import _, N_\nA = N_("one {n}")\n'
                                'def f():\n    return _("two")\n')
    assert i18n_messages.extract(package=str(pkg))
    path = i18n_messages.catalogue_path("mod", package=str(pkg))
    po = polib.pofile(path)
    for e in po:
        e.msgstr = {"one {n}": "一 {n}", "two": "二"}[e.msgid]
    po.save(path)
    assert i18n_messages.problems(package=str(pkg)) == []
    return pkg, path


def test_a_new_message_without_translation_is_listed_with_its_line(package):
    pkg, _ = package
    (pkg / "mod.py").write_text((pkg / "mod.py").read_text() + 'B = _("three")\n')
    i18n_messages.extract(package=str(pkg))
    assert i18n_messages.problems(package=str(pkg)) == [
        "labkit/mod.py:5: no zh translation of 'three'"]


def test_a_changed_english_message_leaves_its_old_entry_obsolete(package):
    pkg, path = package
    (pkg / "mod.py").write_text((pkg / "mod.py").read_text().replace('"two"', '"two!"'))
    i18n_messages.extract(package=str(pkg))
    found = i18n_messages.problems(package=str(pkg))
    assert any("no zh translation of 'two!'" in p for p in found)
    assert any("obsolete 'two'" in p for p in found)


def test_a_translation_that_lost_a_field_is_listed(package):
    pkg, path = package
    po = polib.pofile(path)
    po.find("one {n}").msgstr = "一"
    po.save(path)
    assert i18n_messages.problems(package=str(pkg)) == [
        "labkit/mod.py:2: the zh translation has fields [], the English ['n']"]


def test_the_check_command_exits_0_on_the_repository():
    done = subprocess.run([sys.executable, os.path.join(REPO, "tools", "i18n_messages.py"),
                           "check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "every labkit message translated" in done.stdout
