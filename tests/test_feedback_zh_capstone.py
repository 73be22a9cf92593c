"""The feedback labkit prints into a lesson notebook is in the notebook's language: Chinese in
notebooks/zh/ (labkit.i18n), the English unchanged elsewhere. The capstone's grader first (its
verdicts, measurements and hints, on real runs of the inits in tests/capstone_solutions/), then
one representative message each of labkit.lessons, labkit.dashboard_text and labkit.errors.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import english_in

from labkit import capstone, dashboard_text, errors, i18n, lessons

pytestmark = pytest.mark.user  # learners read this feedback as uid 1000 (Binder, a hub)

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "tests" / "capstone_solutions"
NOT_COMPILING = "import os\nwhile True\n    pass\n"






def test_the_english_detector_finds_an_english_sentence_and_passes_the_chinese():
    assert english_in("your init was killed by SIGTERM")
    assert not english_in("孤儿进程由最近的祖先收养（prctl(2)；kernel/exit.c find_new_reaper）"
                          "：`docker stop` 会等上 10 秒，被 SIGKILL 杀死")


# --- the capstone ----------------------------------------------------------------------------

def test_an_init_that_does_not_compile_is_told_so_in_chinese_and_in_english(english):
    """No process is started for it: the fast proof that the grade's every line is translated."""
    with i18n.use("zh"):
        grade = capstone.grade(NOT_COMPILING, checks=["exit-code", "sigterm"])
    text = str(grade)
    assert text.startswith("你的 init：2 项检查中通过了 0 项"), text
    assert all(c.hint.startswith("你的 init 无法编译：第 2 行") for c in grade.checks), text
    assert "尚未通过  exit-code：未运行" in text and "提示：" in text
    assert not english_in(text.replace("expected ':'", "")), text  # Python's own SyntaxError
    grade = capstone.grade(NOT_COMPILING, checks=["exit-code"])
    assert str(grade).startswith("your init: 0 of 1 checks pass\nNOT YET  exit-code: not run")


def test_a_refusal_of_bad_input_is_in_chinese(english):
    with i18n.use("zh"), pytest.raises(ValueError, match="未知的检查 'bogus'：请从 exit-code"):
        capstone.grade("import os\n", checks=["bogus"])
    with pytest.raises(ValueError, match="unknown check 'bogus'"):
        capstone.grade("import os\n", checks=["bogus"])


@pytest.mark.slow  # six runs of the init, the storm's 500 orphans among them
def test_the_model_init_is_told_in_chinese_that_every_check_passes(english):
    with i18n.use("zh"):
        grade = capstone.grade(SOLUTIONS / "model.py")
    text = str(grade)
    assert grade.correct, text
    assert "6 项检查中通过了 6 项" in text and text.count("\n通过      ") == 6, text
    assert "其中 0 个一直是僵尸进程" in grade["orphan-storm"].measured
    assert "它的命令收到了这个信号" in grade["sigterm"].measured
    assert not english_in(text), text


# wrong init -> {check: Chinese words its hint must say (the rule, and where it is written)}
WRONG_ZH = {
    "wrong_waits_for_its_command_only.py": {
        "orphans": ("收养", "子进程收割者", "任何一个已退出的子进程", "waitpid(2)"),
    },
    "wrong_forwards_no_signals.py": {
        "sigterm": ("自己被 SIGTERM 杀死了", "没有为 SIGTERM 设置处理函数", "pid_namespaces(7)",
                    "转发给它的命令（kill(2)）"),
        "sigint": ("KeyboardInterrupt", "处理函数", "kill(2)"),
    },
    "wrong_exit_status_negative.py": {
        "killed-by-signal": ("247 是 -9 对 256 取模的结果", "一个字节", "128 + N"),
    },
}


@pytest.mark.slow  # several seconds: each run waits for zombies that never go
@pytest.mark.parametrize("name", sorted(WRONG_ZH))
def test_a_tempting_wrong_init_is_told_its_rule_in_chinese(english, name):
    with i18n.use("zh"):
        grade = capstone.grade(SOLUTIONS / name, checks=sorted(WRONG_ZH[name]))
    text = str(grade)
    for check_name, words in WRONG_ZH[name].items():
        check = grade[check_name]
        assert not check.passed, text
        for word in words:
            assert word in check.hint, f"{check_name}: {word!r} not in the hint {check.hint!r}"
        assert "你的 init" in check.measured, check.measured
    assert "尚未通过" in text and "NOT YET" not in text and "hint:" not in text
    assert not english_in(text), text


# --- the lessons, the dashboard, the errors ----------------------------------------------------

def test_a_lesson_sentence_is_in_chinese(english):
    lab = SimpleNamespace(mode="subreaper", mode_reason="")
    assert lessons.where_orphans_go(lab).startswith("No PID namespace for this lab")
    with i18n.use("zh"):
        said = lessons.where_orphans_go(lab)
        missing = str(lessons.kernel_memory_per_process("/nonexistent/slabinfo"))
    assert "子进程收割者" in said and "实验环境的根进程" in said and not english_in(said), said
    assert "不存在" in missing and not english_in(missing), missing


def test_the_dashboards_words_are_in_chinese(english):
    assert dashboard_text.reasons(None, None, None)["fork"] == "the lab is closed"
    assert dashboard_text.exit_status(-9) == "killed by SIGKILL"
    with i18n.use("zh"):
        assert dashboard_text.reasons(None, None, None)["fork"] == "实验环境已关闭"
        assert dashboard_text.exit_status(-9) == "被 SIGKILL 杀死"
        assert dashboard_text.exit_status(3) == "退出状态 3"


def test_an_errors_explanation_is_in_chinese(english):
    refused = errors.ForkRefused(errno.EAGAIN, "Resource temporarily unavailable", [11, 12])
    assert str(refused).endswith("fork() was refused after 2 children")
    unreadable = errors.ProcUnreadable.about(OSError(errno.ENFILE, "Too many open files in "
                                                     "system"), "/proc/1/stat")
    with i18n.use("zh"):
        assert str(refused).endswith("fork() 在创建了 2 个子进程之后被拒绝"), str(refused)
        unreadable = errors.ProcUnreadable.about(OSError(errno.ENFILE, "Too many open files in "
                                                         "system"), "/proc/1/stat")
    said = unreadable.args[1]
    assert "/proc/sys/fs/file-max" in said and "无法读取" in said, said
    assert not english_in(said.replace("Too many open files in system", "")), said


# --- the folder rule, end to end ---------------------------------------------------------------

PRINT_BOTH = ("from labkit import capstone, lessons\n"
              f"print(capstone.grade({NOT_COMPILING!r}, checks=['exit-code']))\n"
              "print(lessons.kernel_memory_per_process('/nonexistent/slabinfo'))\n")


@pytest.mark.parametrize("folder, words", [
    ("notebooks/zh", ("你的 init 无法编译：第 2 行", "不存在")),
    ("notebooks", ("your init does not compile: line 2", "does not exist here")),
])
def test_a_kernel_started_in_a_notebooks_folder_speaks_its_language(folder, words):
    """Jupyter starts a kernel in its notebook's folder: nothing else says the language."""
    env = {k: v for k, v in os.environ.items() if k not in (i18n.ENV, i18n.SESSION_ENV)}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", PRINT_BOTH], cwd=REPO / folder, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for word in words:
        assert word in done.stdout, done.stdout
