"""Whether a page draws its Chinese text with real glyphs or as tofu (the box of a missing glyph).

A browser never says a glyph is missing: without a CJK font Chromium draws the fallback font's
.notdef glyph, the same empty box for every character, and the text still "renders". So the
pixels decide. The characters of a real element (a notebook's heading) are drawn again in that
element's computed font, each alone in a cell of its own at a whole-pixel position, beside
code points that no font has (their cells show the .notdef glyph); one screenshot, cut into
cells. Real glyphs give a different picture for every character and none like the missing-glyph
cells; tofu gives the same box in every cell. Chromium's own account of the fonts it used for the
element (the DevTools protocol's CSS.getPlatformFontsForNode) goes into the messages, to say why.
"""

from __future__ import annotations

import io
import re

from PIL import Image

# CJK Unified Ideographs and Extension A: the Han characters of Simplified Chinese prose.
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
# Code points no font maps: unassigned (U+0378) and the last private-use code point of plane 16.
MISSING = ["\u0378", "\U0010fffd"]
MIN_CHARACTERS = 4  # a translated heading has more; fewer would prove little
MAX_CHARACTERS = 8

# Marks the first element matching the selector whose text has enough distinct Han characters.
CHOOSE_JS = """([selector, pattern, least]) => {
  const han = new RegExp(pattern, 'gu');
  for (const el of document.querySelectorAll(selector)) {
    if (new Set(el.textContent.match(han) || []).size >= least) {
      el.setAttribute('data-cjk-probe', '');
      return el.textContent;
    }
  }
  return null;
}"""
CHOSEN = "[data-cjk-probe]"

DRAW_JS = """([selector, chars]) => {
  const source = document.querySelector(selector);
  const style = getComputedStyle(source);
  const cell = Math.ceil(parseFloat(style.fontSize) * 1.6);
  const box = document.createElement('div');
  box.id = 'cjk-probe';
  Object.assign(box.style, {
    position: 'fixed', left: '0px', top: '0px', zIndex: '2147483647', margin: '0',
    padding: '0', border: '0', background: '#ffffff', color: '#000000',
    width: `${cell * chars.length}px`, height: `${cell}px`, lineHeight: `${cell}px`,
    fontFamily: style.fontFamily, fontSize: style.fontSize, fontWeight: style.fontWeight,
    fontStyle: style.fontStyle,
  });
  chars.forEach((ch, i) => {
    const span = document.createElement('span');
    span.textContent = ch;
    Object.assign(span.style, {
      position: 'absolute', left: `${i * cell}px`, top: '0px', width: `${cell}px`,
      height: `${cell}px`, overflow: 'hidden', whiteSpace: 'pre',
    });
    box.appendChild(span);
  });
  document.body.appendChild(box);
  return {cell: cell, family: style.fontFamily, size: style.fontSize};
}"""


def han_characters(text: str) -> list[str]:
    """The distinct Han characters of `text`, in order, at most MAX_CHARACTERS."""
    seen: list[str] = []
    for ch in HAN.findall(text):
        if ch not in seen:
            seen.append(ch)
    return seen[:MAX_CHARACTERS]


def cells(page, selector: str, chars: list[str]) -> tuple[list[bytes], dict]:
    """Each of `chars` drawn alone in the font of the first element matching `selector`: the
    grey pixels of each cell, and what font was asked for."""
    drawn = page.evaluate(DRAW_JS, [selector, chars])
    try:
        png = page.locator("#cjk-probe").screenshot(animations="disabled")
    finally:
        page.evaluate("() => document.getElementById('cjk-probe').remove()")
    image = Image.open(io.BytesIO(png)).convert("L")
    width = image.width / len(chars)  # the device pixels of one cell
    return [image.crop((round(i * width), 0, round((i + 1) * width), image.height)).tobytes()
            for i in range(len(chars))], drawn


def platform_fonts(page, selector: str) -> str:
    """The fonts Chromium drew the element's text with, and how many glyphs each (DevTools)."""
    try:
        cdp = page.context.new_cdp_session(page)
        try:
            cdp.send("DOM.enable")
            cdp.send("CSS.enable")
            root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
            node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})
            fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
        finally:
            cdp.detach()
    except Exception as error:  # a diagnostic only: the pixels decide
        return f"(unknown: {error})"
    return ", ".join(f"{f['familyName']} ({f['glyphCount']} glyphs)" for f in fonts) or "none"


def tofu(page, selector: str) -> list[str]:
    """What is wrong with the Chinese of the first element matching `selector` that has at least
    MIN_CHARACTERS distinct Han characters: [] when they are drawn with real, distinct glyphs."""
    text = page.evaluate(CHOOSE_JS, [selector, HAN.pattern, MIN_CHARACTERS])
    if text is None:
        return [f"no {selector} shows {MIN_CHARACTERS} or more distinct Chinese characters"]
    try:
        return _judge(page, text)
    finally:
        page.evaluate("() => document.querySelectorAll('[data-cjk-probe]')"
                      ".forEach(el => el.removeAttribute('data-cjk-probe'))")


def _judge(page, text: str) -> list[str]:
    chars = han_characters(text)
    pictures, drawn = cells(page, CHOSEN, chars + MISSING)
    glyphs, notdef = pictures[:len(chars)], pictures[len(chars):]
    blank = bytes([255]) * len(glyphs[0])
    problems = []
    as_missing = [ch for ch, g in zip(chars, glyphs, strict=True) if g in notdef or g == blank]
    if as_missing:
        problems.append(f"{''.join(as_missing)} drawn as a missing glyph (tofu) or not at all")
    if len(set(glyphs)) < len(chars):
        problems.append(f"{len(chars)} different characters look like only "
                        f"{len(set(glyphs))} different pictures")
    if not problems:
        return []
    return [f"{text.strip()[:40]!r} ({drawn['size']}): {'; '.join(problems)}; Chromium drew it "
            f"with {platform_fonts(page, CHOSEN)}; the font asked for: {drawn['family']}"]
