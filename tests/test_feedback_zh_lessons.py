"""What labkit prints into the lesson notebooks (05 to 07, the dashboard, the doctor of 00) is in
the notebook's language: Chinese in notebooks/zh/ (labkit.i18n), the English unchanged elsewhere.
The PID budget first, on a real lab: what enforces it, and the kernel's refusal in Chinese.
"""

from __future__ import annotations

import re

import pytest

import labkit
from labkit import budget, exhaustion, i18n

pytestmark = pytest.mark.user  # learners read these lines as uid 1000 (Binder, a hub)

# Three English words in a row: a sentence of the English text. The Chinese keeps man page names,
# code and the kernel's names (fork(2), RLIMIT_NPROC, pids.max), never three plain words together.
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{2,}(?: [A-Za-z]{2,}\b){2,}")
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def english_in(text: str) -> list[str]:
    return ENGLISH_RUN.findall(text)


@pytest.fixture
def english(monkeypatch, tmp_path):
    """A process with no language set: no LABKIT_LANG, no Jupyter session, an English folder."""
    monkeypatch.delenv(i18n.ENV, raising=False)
    monkeypatch.delenv(i18n.SESSION_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


# --- the PID budget (notebook 07) ------------------------------------------------------------

def test_a_pid_budget_where_no_cgroup_may_be_made_is_told_in_chinese_on_a_real_lab(
        english, tmp_path, monkeypatch):
    """A delegated "cgroup" that is no cgroup: root (exempt from RLIMIT_NPROC) is refused, with
    nothing started; uid 1000 gets RLIMIT_NPROC, which says in Chinese why there is no cgroup."""
    monkeypatch.setenv(budget.CGROUP_ENV, str(tmp_path))
    with i18n.use("zh"):
        try:
            lab = labkit.Lab(pid_limit=20)
        except labkit.BudgetUnavailable as refused:
            text = str(refused)
            assert text.startswith("Lab(pid_limit=20) 需要一种内核机制来强制执行"), text
            assert "不是一个 cgroup（没有 cgroup.procs）" in text
            assert "真实 uid 0（root）不受它约束" in text and "也没有任何模拟" in text
            assert not english_in(text), english_in(text)
        else:
            with lab:
                said = lab.limit_mechanism
                assert "RLIMIT_NPROC" in said and "它没有自己的 cgroup：" in said
                assert "不是一个 cgroup" in said and not english_in(said), said
                usage = str(exhaustion.describe(lab))
                assert "由内核强制执行：超出它的 fork 以 EAGAIN 失败" in usage, usage
    assert not CHINESE.search(str(budget.Usage("RLIMIT_NPROC", True, 9, 3, 9, True, ())))


def test_a_full_budget_says_in_chinese_that_zombies_hold_the_pids_and_in_english_outside(
        english):
    b = budget.Budget(40, "rlimit")
    b.per_namespace, b.nproc, b.baseline = True, 41, 1
    with i18n.use("zh"):
        text = b.full(lab_procs=40, zombies=37)
    assert text.startswith("实验环境的 PID 预算（其用户命名空间中的 RLIMIT_NPROC = 41"), text
    assert "37 个僵尸进程占着 PID" in text and "parent.reap()" in text
    assert not english_in(text), english_in(text)
    assert "is full: 37 zombies hold PIDs" in b.full(lab_procs=40, zombies=37)


def test_labkits_own_cap_is_labelled_not_the_kernel_in_chinese(english):
    usage = budget.Usage("max_procs", False, 10, 4, 10, True, ())
    with i18n.use("zh"):
        text = str(usage)
    assert "而不是由内核" in text and "CapacityError" in text, text
    assert "NOT by the kernel" in str(usage)


def test_a_reaped_zombie_is_told_in_chinese(english):
    with pytest.raises(labkit.LabError) as info, i18n.use("zh"):
        exhaustion.zombie_memory(2 ** 22 + 1)  # above any pid_max: no such process
    assert "僵尸进程一旦被回收，就什么也不会留下" in str(info.value)
