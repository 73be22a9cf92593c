"""What labkit prints into the lesson notebooks (05 to 07, the dashboard, the doctor of 00) is in
the notebook's language: Chinese in notebooks/zh/ (labkit.i18n), the English unchanged elsewhere.
The PID budget first, on a real lab: what enforces it, and the kernel's refusal in Chinese.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
from support import CHINESE, english_in

import labkit
from labkit import adoption, budget, container, exhaustion, i18n, podtour, probing, recorded
from labkit.errors import NamespaceUnavailable

pytestmark = pytest.mark.user  # learners read these lines as uid 1000 (Binder, a hub)






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


# --- notebooks 05 and 06: the pause, the pod, and the recorded runs --------------------------

def test_the_pauses_signal_masks_are_named_in_chinese_while_their_keys_stay_english(english):
    with i18n.use("zh"):
        shown = container.signals_of_the_pauses()
    assert shown["sets"]["sleep 60"]["SigCgt"] == []  # compared by code: English keys, values
    assert any(line.startswith("  捕获（有处理函数）") for line in shown["lines"]), shown["lines"]
    assert "  忽略                 SIGPIPE SIGXFSZ" in shown["lines"]  # the Python pause
    with i18n.use("zh"), pytest.raises(labkit.AgentError) as info:
        container.wait_until(lambda: False, "x", timeout=0)
    assert str(info.value) == "0 秒内未能等到：x"
    with pytest.raises(labkit.AgentError) as info:
        container.wait_until(lambda: False, "x", timeout=0)
    assert str(info.value) == "x did not happen within 0 s"


def test_the_subreaper_pod_is_described_in_chinese_and_in_english_outside(english):
    with i18n.use("zh"):
        near = podtour.subreaper_pod()
    assert near["orphan_adopted_by_pause"] is True  # the same real facts, said in Chinese
    assert "：一个子进程收割者，处在这个 notebook 的命名空间中" in near["lines"][0], near["lines"]
    assert near["lines"][-1].endswith("（没有任何隔离）：全部")
    assert "a child subreaper" in podtour.subreaper_pod()["lines"][0]


def test_a_bad_pod_hostname_is_refused_in_chinese_before_anything_starts(english):
    with i18n.use("zh"), pytest.raises(ValueError) as info:
        labkit.Pod(hostname="no spaces")
    assert str(info.value).startswith("不允许使用 hostname 'no spaces'"), str(info.value)
    with pytest.raises(ValueError, match="is not allowed: use 1 to 64 characters"):
        labkit.Pod(hostname="no spaces")


def denied() -> dict:
    """What container.pause_as_pid1 raises where the kernel refuses a PID namespace."""
    raise NamespaceUnavailable(container._("no new PID namespace here: {said}").format(
        said="labkit.unshare: new pid namespaces (unshare) refused: EPERM"))


def test_a_recorded_run_is_labelled_recorded_in_chinese_with_the_kernels_reason(english):
    out = io.StringIO()
    with i18n.use("zh"), redirect_stdout(out):
        lesson = recorded.Lesson("05-the-pause-container")
        lesson.show("pause_as_pid1", denied)
        lesson.show("sighup_then_sigterm_to_pid1", denied)
    text = out.getvalue()
    assert text.count("RECORDED（录制的结果，不是在这里运行的）") == 2, text
    assert "在这台机器上无法运行：这里无法创建新的 PID 命名空间：labkit.unshare" in text
    assert "在这台机器上无法运行：（见上文）" in text
    out = io.StringIO()
    with redirect_stdout(out):
        recorded.Lesson("05-the-pause-container").show("pause_as_pid1", denied)
    assert "Not possible on this machine: no new PID namespace here: " in out.getvalue()
    assert "RECORDED, not run here: a real run on " in out.getvalue()


# --- the dashboard (notebook 02) -------------------------------------------------------------

def test_the_dashboards_status_line_speaks_chinese_and_english_outside(english):
    from labkit.widgets import Dashboard  # only this test needs ipywidgets

    with labkit.Lab(max_procs=50) as lab:
        dash = Dashboard(lab, policy="none", children=5, autostart=False)
        try:
            assert dash.message.endswith("is ready (policy 'none'): press Fork"), dash.message
            with i18n.use("zh"):
                dash.fork_button.click()
                assert dash.message.startswith(f"父进程 {dash.parent.pid}（策略 'none'）fork 了 "
                                               "5 个子进程；它们立即退出"), dash.message
                lab.wait_for(lambda s: len(s.zombies) == 5)
                dash.kill_button.click()
                assert "它仍然是僵尸进程——只有 wait() 才能清除它" in dash.message, dash.message
                assert "它仍然是僵尸进程" in dash.status.value
                dash.reap_button.click()
                assert "回收了 5 个子进程：它们的 PID 又空出来了" in dash.message, dash.message
            dash.kill_button.click()  # nothing left to kill: the refusal, in English again
            assert dash.message == "LabError: there is no zombie to kill right now"
        finally:
            dash.close()


# --- the doctor (notebook 00) ----------------------------------------------------------------

def test_the_doctor_speaks_chinese_and_keeps_its_keys_and_values_english(english):
    with i18n.use("zh"):
        report = labkit.doctor(measure=False)
        text = str(report)
        table = report._repr_html_()
    assert text.startswith("labkit doctor：这台机器允许做什么，逐项实际试过或测量过"), text
    assert "\n  孤儿进程交给  " in text and CHINESE.search(report["orphans"]["summary"]), text
    assert "<th>本机情况</th>" in table and "<b>子进程收割者</b>" in table
    assert report["lab_mode"]["summary"] == report["lab_mode"]["mode"]  # a mode's name, as code
    exempt = report["rlimit_nproc"]["exempt"]
    assert exempt is None or not CHINESE.search(exempt)  # the fact's value: English for code
    english_report = str(labkit.doctor(measure=False))
    assert english_report.startswith("labkit doctor: what this machine allows, tried or measured")
    assert "\n  Orphans go to      " in english_report


def test_who_adopts_orphans_is_told_in_chinese(english):
    measured = {"adopter_pid": 1, "adopter_name": "bash", "measured_at": 0.0, "orphan_pid": 9,
                "reaped": False, "reap_ms": None, "timeout_s": 5.0}
    with i18n.use("zh"):
        fact = adoption.describe_orphans(measured, cached=True)
        failed = probing._answer(3, b"", b"boom")
    assert fact["summary"].startswith("PID 1（bash）；它在 5 秒内没有回收测试用的孤儿进程（测量于 ")
    assert fact["meaning"].startswith("它不回收：落到它手里的每个孤儿进程都会一直是僵尸")
    assert failed["error"] == "探测进程失败（退出状态 3）：boom"
    assert adoption.describe_orphans(measured, cached=True)["summary"].startswith(
        "PID 1 (bash); it did NOT reap the test orphan within 5 s")


def test_the_reason_for_the_largest_lab_is_said_in_the_notebooks_language():
    from labkit import limits
    assert "PIDs" in limits.ceiling()[1] and "half of" in limits.ceiling()[1]
    with i18n.use("zh"):
        reason = limits.ceiling()[1]
    assert "的一半" in reason and "half" not in reason


def test_the_labs_own_refusals_are_in_chinese_and_unchanged_in_english(english):
    from labkit import limits
    from labkit.errors import CapacityError, LabClosedError, LabError, ParentGoneError
    with i18n.use("zh"), labkit.Lab(mode="subreaper", max_procs=limits.MIN_PROCS) as lab:
        with pytest.raises(LabError, match="现在没有可以 kill 的僵尸进程"):
            lab.kill_zombie()
        parent = lab.parent("none")
        with pytest.raises(CapacityError, match="再多 .* 个就放不下了") as refused:
            parent.fork(limits.MIN_PROCS)
        assert not english_in(str(refused.value).replace("max_procs", "")), refused.value
        parent.exit()
        with pytest.raises(ParentGoneError, match=f"父进程 {parent.pid} 已经退出"):
            parent.fork(1)
    with i18n.use("zh"), pytest.raises(LabClosedError, match="这个实验环境已经关闭"):
        lab.parent("none")
    with pytest.raises(LabClosedError, match="this lab is closed: its processes are gone"):
        lab.parent("none")
