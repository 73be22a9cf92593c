"""The check that Chinese renders (tests/browser/cjk.py) tells real glyphs from tofu.

The same Chinese page in Debian's Chromium twice: with this machine's fonts the check passes;
with a fontconfig that keeps every font but the ones covering Chinese (as on a machine without
fonts-noto-cjk) Chromium draws .notdef boxes, and the check must say so. Without a CJK font
installed the first half fails, naming the package, as the course's Chinese pages would show
tofu.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from cjk import tofu
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, require_browser

pytestmark = pytest.mark.slow  # Chromium, twice: seconds

PAGE = """<!doctype html><html lang="zh-CN"><body style="font-family: sans-serif">
<h1>僵尸进程实验室——从这里开始</h1>
<p>已经退出、但还没有被 wait 的子进程就是僵尸进程。</p></body></html>"""


def font_files(env: dict[str, str], pattern: str = ":") -> set[str]:
    listed = subprocess.run(["fc-list", "--format", "%{file}\\n", pattern], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return set(listed.stdout.split())


def without_chinese_fonts(tmp: str) -> dict[str, str]:
    """An environment whose fontconfig sees every font of this machine except those covering
    Chinese: links to them in a directory of its own, and a config naming only that."""
    fonts = os.path.join(tmp, "fonts")
    os.makedirs(fonts)
    env = dict(os.environ)
    kept = sorted(font_files(env) - font_files(env, ":lang=zh"))
    assert kept, "no font without Chinese to keep: fc-list lists none"
    for i, path in enumerate(kept):
        os.symlink(path, os.path.join(fonts, f"{i}-{os.path.basename(path)}"))
    config = os.path.join(tmp, "fonts.conf")
    with open(config, "w") as f:
        f.write(f'<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
                f"<fontconfig><dir>{fonts}</dir><cachedir>{tmp}/cache</cachedir></fontconfig>\n")
    env["FONTCONFIG_FILE"] = config
    assert not font_files(env, ":lang=zh"), "the config still offers a Chinese font"
    return env


def problems_on_page(sync_playwright, env: dict[str, str] | None = None) -> list[str]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                    env=env)
        try:
            page = browser.new_page()
            page.set_content(PAGE)
            return tofu(page, "h1") + tofu(page, "p")
        finally:
            browser.close()


@pytest.mark.timeout(180)
def test_the_cjk_check_passes_with_a_chinese_font_and_fails_without_one(tmp_path):
    sync_playwright = require_browser()
    if not font_files(dict(os.environ), ":lang=zh"):
        pytest.fail("no font covers Chinese (fc-list :lang=zh is empty): the Chinese notebooks "
                    "would show tofu. Install one: apt-get install -y fonts-noto-cjk")
    assert problems_on_page(sync_playwright) == []

    problems = problems_on_page(sync_playwright, without_chinese_fonts(str(tmp_path)))
    assert len(problems) == 2 and all("tofu" in p for p in problems), problems
