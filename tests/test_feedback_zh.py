"""The exercises' checks speak the notebook's language: Chinese in notebooks/zh/ (or under
`i18n.use("zh")`), the English unchanged everywhere else. Each check is called with a wrong and
a right answer in both languages, on real processes where the check measures them."""

from __future__ import annotations

import os
import re
import string
import subprocess
import sys

import nbformat
import pytest
from support import execute
from test_exercises import ONCE, RIGHT_BODY  # the handlers the English tests judge

from labkit import actions, exercises, i18n

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZH_FOLDER = os.path.join(REPO, "notebooks", "zh")
WHO = "ada"


@pytest.fixture(autouse=True)
def english_by_default(english):
    """No language from the environment: what is not under use("zh") is in an English folder."""


def english_sentences() -> list[str]:
    """The English text between the {fields} of every translated message: long enough, and
    with enough words, that finding one in feedback means an untranslated sentence."""
    found = []
    for msgid in i18n.catalogue("zh"):
        for literal, *_ in string.Formatter().parse(msgid):
            if len(literal) >= 16 and len(re.findall(r"[A-Za-z]{2,}", literal)) >= 3:
                found.append(literal)
    return found


def leaked(text: str) -> list[str]:
    return [s for s in english_sentences() if s in text]


def chinese(text: str, *words: str) -> None:
    """`text` holds each of `words` and no English sentence of labkit's."""
    for word in words:
        assert word in text, (word, text)
    assert leaked(text) == [], text


def both(call, *args, **kwargs):
    """`call` in Chinese and then in English: the two results."""
    with i18n.use("zh"):
        zh = call(*args, **kwargs)
    return zh, call(*args, **kwargs)


def test_the_english_sentences_are_found_where_they_are_left():
    """The leak finder itself: a hint left in English is found."""
    assert "Count tasks, not lines: every thread holds a PID" in " ".join(english_sentences())
    hint = exercises.check_ps({"zombies": -1}, WHO).problems[0]
    assert hint.startswith("zombies: not -1. Count the lines whose STAT begins with Z")
    assert leaked(hint)


def test_check_ps_hints_in_chinese_and_in_english_unchanged():
    right = exercises._ps_truth(exercises.ps_exercise(WHO))
    wrong = {"zombies": right["zombies"] + 1, "must_wait": 1, "pids_held": 3,
             "states": {"Z": "zombie", "S": "stopped", "R": "running", "l": "threads"}}
    zh, en = both(exercises.check_ps, wrong, WHO)
    chinese(str(zh), "ps 输出：还没对", "4 个答案中对了 0 个", "数一数 STAT 以 Z 开头的行",
            "只有僵尸进程的父进程才能回收它", "数任务，而不是数行", "S 的意思不是 'stopped'")
    assert str(en).startswith("ps listing: not yet (0 of 4 answers right)\n- zombies: not ")
    assert "Count tasks, not lines" in str(en) and not re.search("[\u4e00-\u9fff]", str(en))
    states = {"Z": "僵尸进程", "S": "可中断的睡眠", "R": "运行或可运行", "l": "多线程"}
    good = {k: right[k] for k in ("zombies", "must_wait", "pids_held")} | {"states": states}
    zh, en = both(exercises.check_ps, good, WHO)  # a Chinese answer is right in both
    assert str(zh) == "ps 输出：正确（correct）（4 个答案中对了 4 个）"
    assert str(en) == "ps listing: correct (4 of 4 answers right)"


def test_check_ps_rules_and_its_questions_in_chinese():
    ex = exercises.ps_exercise(WHO)
    with i18n.use("zh"):
        shown = exercises.ps_exercise(WHO).text()
    chinese(shown, "列表中有多少个僵尸进程？", "对其中一个僵尸进程执行 `kill -9` 会怎样？",
            "（在 Pod 内，shareProcessNamespace: true）")
    assert "How many zombies does the listing show?" in ex.text()
    wrong = {"adopter": 0, "after_exit": "z", "kill9": ex.letter("kill9", "removes the zombie")}
    zh, en = both(exercises.check_ps_rules, wrong, WHO)
    chinese(str(zh), "adopter：不是 0。0 不是一个进程。孤儿进程交给它父进程中另一个活着的线程",
            "after_exit：请从 'a', 'b', 'c' 中选一个作答", "僵尸进程身上还剩下什么能被一个信号终结",
            "without_e：还没有作答（在同一个容器里")
    assert "adopter: not 0. 0 is not a process. An orphan goes to another live thread" in str(en)
    right = {"adopter": exercises._ps_truth(ex)["adopter"],
             "after_exit": ex.letter("after_exit", "adopts them"),
             "kill9": ex.letter("kill9", "nothing"), "without_e": ex.letter("without_e", "own")}
    zh, en = both(exercises.check_ps_rules, right, WHO)
    assert str(zh) == "ps 背后的规则：正确（correct）（4 个答案中对了 4 个）"
    assert str(en) == "ps rules: correct (4 of 4 answers right)"


def test_check_pod_in_chinese_and_in_english_unchanged():
    pod = exercises.pod_exercise(WHO)
    wrong = {"budget": pod.pids_max - 1, "sigterm": pod.letter("sigterm", "exits at once"),
             "isolated": pod.letter("isolated", "the pause"),
             "teardown": pod.letter("teardown", "kills the pause")}
    zh, en = both(exercises.check_pod, wrong, WHO)
    chinese(str(zh), "Pod、PID 1 和 PID 预算：还没对", "pids 控制器计数的是 cgroup 中的每一个任务",
            "PID 命名空间的 PID 1 和普通进程一样吗", "而不是 kubelet 的流程")
    assert "not the kubelet's procedure" in str(en)
    right = {"budget": pod.pids_max - pod.threads - 2,
             "sigterm": pod.letter("sigterm", "grace period"),
             "isolated": pod.letter("isolated", "own PID namespace"),
             "teardown": pod.letter("teardown", "STOPSIGNAL")}
    zh, en = both(exercises.check_pod, right, WHO)
    assert str(zh) == "Pod、PID 1 和 PID 预算：正确（correct）（4 个答案中对了 4 个）"
    assert str(en) == "pods, PID 1 and budgets: correct (4 of 4 answers right)"
    with i18n.use("zh"):
        chinese(exercises.pod_exercise(WHO).text(), "工作进程能 fork 出多少个子进程", "宽限期")


def test_check_tree_in_chinese_on_real_processes():
    script = "a+b; b+c; b-; a+d"
    wrong = {"b": "a", "c": "a", "d": "a"}
    zh, en = both(exercises.check_tree, wrong, script)
    chinese(str(zh), "进程树预测：还没对",
            "b 和你写的不一样。沿着脚本跟踪 b 和它的父进程（动作 1、2、3 和 4）",
            "它的父进程先退出了吗？那么它成了孤儿进程，而 Linux 把孤儿进程交给")
    assert en.problems[0].startswith("b is not as you wrote it. Follow b and its parent "
                                     "through the script (actions 1, 2, 3 and 4).")
    right = {"b": ("a", "zombie"), "c": "init", "d": "a"}
    zh, en = both(exercises.check_tree, right, script)
    assert (str(zh), str(en)) == ("进程树预测：正确（correct）", "tree prediction: correct")


def test_check_actions_and_the_inverse_question_in_chinese():
    target = {"b": "a", "c": "init"}
    zh, en = both(actions.check_actions, "a+b; b+c", target, mode="subreaper")
    chinese(str(zh), "还不完全对：", "c 应当在 init 之下；你的动作运行完后它在 b 之下",
            "b fork 出了 c（动作 2），而 b 还没有退出")
    assert en.problems == ["c should be under init; your actions leave it under b: b forked c "
                           "(action 2) and b has not exited"]
    zh, en = both(actions.check_actions, "a+b; b+c; b-", target | {"b": ("a", "zombie")},
                  mode="subreaper")
    assert (str(zh), str(en)) == ("正确（correct）", "correct")
    with i18n.use("zh"):
        question = actions.inverse(3, mode="subreaper")
        run = actions.run("a+b; b+c; b-", mode="subreaper")
        shown = run.text()
        assert str(actions.check(shown, run)) == "正确（correct）"  # its headings are skipped
    chinese(question.text(), "进程树（init 是实验环境的根进程", "动作？")
    chinese(shown, "动作：a fork 出 b", "动作：b 退出")
    assert actions.check_actions(actions.random_script(3), question).correct


def test_a_bad_script_is_refused_in_chinese():
    with i18n.use("zh"), pytest.raises(actions.ScriptError) as caught:
        actions.parse("a+b; b+c; c-; a~c")
    chinese(str(caught.value), "动作 4 'a~c'：c 不是 a 的子进程（它的父进程是 b）")
    assert caught.value.index == 4
    with pytest.raises(actions.ScriptError, match="action 4 'a~c': c is not a's child"):
        actions.parse("a+b; b+c; c-; a~c")


def test_check_reaper_in_chinese_on_real_processes():
    zh, en = both(exercises.check_reaper, ONCE)
    assert not zh and not en
    chinese(str(zh), "SIGCHLD 回收处理函数：还没对", "“风暴”过后，1,000 个子进程中仍有",
            "它每个信号只调用一次 waitpid，但信号会合并", "个子进程同时退出")
    assert en.problems[0].startswith(f"{en.facts['storm_zombies']:,} of the 1,000 children "
                                     "remain zombies after the storm: your handler ran")
    zh, en = both(exercises.check_reaper, RIGHT_BODY)
    assert str(zh).startswith("SIGCHLD 回收处理函数：正确（correct）（1,000 个子进程同时退出；"
                              "剩下 0 个僵尸进程")
    assert str(en).startswith("SIGCHLD reaper: correct (1,000 children exited at once; "
                              "0 zombies remained")
    assert exercises.zombie_children() == []


jobs: list = []


def leaky(n):
    jobs.extend(subprocess.Popen(["true"]) for _ in range(n))
    return n


def test_check_popen_in_chinese_on_real_processes():
    zh, en = both(exercises.check_popen, leaky)
    chinese(str(zh), "Popen 循环：还没对",
            "你启动的 50 条 `true` 命令中，有 50 条成了这个进程的僵尸进程",
            "请在返回之前逐一 wait", "现已由检查器回收")
    assert en.problems[0].startswith("50 of the 50 `true` commands you started are zombies of "
                                     "this process (PIDs ")
    assert exercises.zombie_children() == []
    assert all(p.wait() == 0 for p in jobs)  # the check reaped them: each Popen takes status 0
    jobs.clear()

    def right(n):
        return sum(subprocess.run(["true"]).returncode == 0 for _ in range(n))

    zh, en = both(exercises.check_popen, right)
    assert str(zh) == "Popen 循环：正确（correct）（`true` 运行了 50 次；没有留下僵尸进程）"
    assert str(en) == "Popen loop: correct (`true` ran 50 times; no zombie was left)"


PROBE = ("from labkit import exercises; "
         "print(exercises.check_pod({'budget': 0}, 'ada'))")


@pytest.mark.parametrize(("folder", "words"), [
    (ZH_FOLDER, "budget：不是 0。僵尸进程在被回收之前一直占着它的 PID"),
    (os.path.join(REPO, "notebooks"), "budget: not 0. A zombie keeps its PID until it is reaped"),
], ids=["zh", "en"])
def test_a_kernel_started_in_the_notebooks_folder_speaks_its_language(folder, words):
    """A notebook's kernel starts in the notebook's folder: nothing else tells labkit the
    language, end to end in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in (i18n.ENV, i18n.SESSION_ENV)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=folder, env=env, check=True,
                         capture_output=True, text=True).stdout
    assert words in out, out


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.slow  # several seconds: `make check` leaves it to `make test`
def test_the_chinese_exercises_notebook_prints_chinese_feedback(kernel_under_an_init,
                                                                 monkeypatch):
    """notebooks/zh/08-exercises.ipynb run headless from its folder, as a learner opens it:
    the demonstrations' hints and every check's verdict are in Chinese."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
        REPO, os.environ.get("PYTHONPATH")])))
    path = os.path.join(ZH_FOLDER, "08-exercises.ipynb")
    nb = execute(nbformat.read(path, as_version=4), ZH_FOLDER)
    checks = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {})
              .get("grade")]
    assert len(checks) == 7
    for cell in checks:
        chinese(printed(cell), "正确（correct）")  # actions.check_actions has no title
    out = "".join(printed(c) for c in nb.cells if c.cell_type == "code")
    chinese(out, "列表中有多少个僵尸进程？", "有 50 条成了这个进程的僵尸进程",
            "它每个信号只调用一次 waitpid，但信号会合并", "SIGCHLD 回收处理函数：正确（correct）")
