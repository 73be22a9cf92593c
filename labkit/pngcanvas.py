"""The canvas labkit's figures live on: PNGs encoded cheaply, and text kept across figures.

matplotlib saves a PNG through Pillow, which tries every PNG row filter on every row to find the
smallest file (and compresses at zlib level 6): for a 1280 x 720 figure that took as long as
drawing a bare figure did (issue 11). A plot is mostly flat colour, which zlib compresses well
without row filters, so this module writes the rows unfiltered at zlib level 1: the same RGBA
pixels, the same metadata, in about a fifth of the time, in a file about a quarter larger.

Drawing text was the rest of what a lab figure cost beyond a bare one: matplotlib keeps text
sizes per renderer, one per figure, so every new figure had FreeType shape, measure and
rasterise its title, labels and legend again, glyph by glyph in Python (matplotlib 3.11). The
canvas's renderer keeps those results for the process, keyed on all that FreeType is given.

    rgba_png(pixels, dpi=128)      bytes of a PNG file holding an (height, width, 4) uint8 array
    PngCanvas(figure)              an Agg canvas whose print_png (savefig, _repr_png_) uses it,
                                   drawing with a TextKeepingRenderer

Knows no processes and no widgets; `labkit.plotstyle.LabFigure` puts its figures on this canvas.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib import cbook
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.font_manager import fontManager, get_font

LEVEL = 1  # zlib level: 1 is about twice as fast as 6 here, for about a third more bytes
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    # A PNG chunk: length, type, data, and the CRC-32 of type and data (PNG spec, 5.3).
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data)))


def rgba_png(pixels: np.ndarray, *, dpi: float | None = None,
             metadata: dict[str, str | None] | None = None) -> bytes:
    """A PNG file of `pixels` (height x width x 4, uint8, straight RGBA as Agg draws them).

    `dpi` goes into the pHYs chunk and `metadata` (keyword -> text, latin-1) into tEXt chunks,
    as matplotlib's own PNGs carry them; a None value leaves that keyword out."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
        raise ValueError(f"rgba_png needs a (height, width, 4) uint8 array, not "
                         f"{pixels.shape} {pixels.dtype}")
    height, width = pixels.shape[:2]
    rows = np.empty((height, 1 + 4 * width), np.uint8)
    rows[:, 0] = 0  # filter type 0 (None) on every row
    rows[:, 1:] = pixels.reshape(height, -1)
    parts = [_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))]
    if dpi:
        per_metre = round(dpi / 0.0254)
        parts.append(_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    for key, value in (metadata or {}).items():
        if value is not None:
            parts.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
    parts += [_chunk(b"IDAT", zlib.compress(rows, LEVEL)), _chunk(b"IEND", b"")]
    return b"".join(parts)


def software() -> dict[str, str | None]:
    """The tEXt metadata matplotlib writes into every PNG it saves."""
    return {"Software": f"Matplotlib version{mpl.__version__}, https://matplotlib.org/"}


# --- text kept across figures -------------------------------------------------------------

class _Kept:
    """Results keyed on their inputs, at most `size`, the least recently used dropped first:
    a dashboard's x tick labels, new every frame, must not push out the titles and legends
    every figure shows. OrderedDict's methods are single steps under the GIL, so a dashboard's
    thread and the notebook's may draw at once."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._size = size

    def get(self, key: tuple) -> Any:
        value = self._items.get(key)
        if value is not None:
            try:
                self._items.move_to_end(key)
            except KeyError:  # dropped by another thread meanwhile
                pass
        return value

    def put(self, key: tuple, value: Any) -> None:
        self._items[key] = value
        while len(self._items) > self._size:
            try:
                self._items.popitem(last=False)
            except KeyError:
                break


# A few figures' worth of texts (titles, legends, tick labels) and their fonts' measures.
_glyphs = _Kept(2048)
_metrics = _Kept(2048)
_heights = _Kept(256)


class _Recorder:
    """Stands in for a renderer's Agg core while matplotlib draws one text: passes every call
    through, and keeps a copy of each glyph bitmap and where it went."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.glyphs: list[tuple] = []
        self.other = False  # something besides glyph bitmaps was drawn: keep nothing

    def draw_text_image(self, image: Any, x: Any, y: Any, angle: Any, gc: Any) -> None:
        self.core.draw_text_image(image, x, y, angle, gc)
        try:  # matplotlib 3.11 passes a glyph's bitmap; older ones the font (a 2-D buffer)
            copy = np.array(image, dtype=np.uint8)
        except (TypeError, ValueError):
            copy = None
        if copy is None or copy.ndim != 2:
            self.other = True
        else:
            self.glyphs.append((copy, x, y, angle))

    def __getattr__(self, name: str) -> Any:
        self.other = True
        return getattr(self.core, name)


class TextKeepingRenderer(RendererAgg):
    """matplotlib's Agg renderer that keeps, across figures, what FreeType made of a text: its
    size (for layout) and its glyph bitmaps where they were drawn (for pixels).

    matplotlib keeps text sizes per renderer, and every figure has a renderer of its own, so a
    new figure shaped, measured and rasterised its title, legend and tick labels afresh, glyph
    by glyph: most of what plot.growth cost beyond a bare figure (issue 11). The kept results
    are keyed on everything matplotlib reads to make them (the font files, as resolved, the
    size, dpi, hinting, antialiasing, the text, its position and angle), so a text drawn again
    lands the same glyph bitmaps on the same pixels; its colour and clipping are applied anew.
    Maths text ($...$) and TeX are drawn as matplotlib draws them, unkept."""

    def _font_key(self, prop: Any) -> tuple:
        font = get_font(fontManager._find_fonts_by_props(prop))
        return font, prop.get_size_in_points(), self.dpi, get_hinting_flag()

    def get_text_width_height_descent(self, s: str, prop: Any, ismath: Any) -> Any:
        if ismath:
            return super().get_text_width_height_descent(s, prop, ismath)
        key = (*self._font_key(prop), s)
        size = _metrics.get(key)
        if size is None:
            size = super().get_text_width_height_descent(s, prop, ismath)
            _metrics.put(key, size)
        return size

    def _get_font_height_metrics(self, prop: Any) -> tuple:
        # Text._get_layout (matplotlib 3.11) asks a renderer for its font's ascent, descent and
        # line gap before reading them from the font's tables itself (the same arithmetic, here
        # at the renderer's dpi, which is the figure's whenever a figure draws).
        key = self._font_key(prop)
        heights = _heights.get(key)
        if heights is None:
            heights = _font_heights(key[0], key[1], self.dpi)
            _heights.put(key, heights)
        return heights

    def draw_text(self, gc: Any, x: float, y: float, s: str, prop: Any, angle: float,
                  ismath: Any = False, mtext: Any = None) -> None:
        if ismath:
            super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
            return
        try:
            key = (*self._font_key(prop), self.height, s, x, y, angle, gc.get_antialiased(),
                   *_shaping(mtext))
            glyphs = _glyphs.get(key)
        except TypeError:  # something unhashable: draw it as matplotlib does
            super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
            return
        if glyphs is None:
            glyphs = self._draw_and_record(gc, x, y, s, prop, angle, mtext)
            if glyphs is not None:
                _glyphs.put(key, glyphs)
            return
        for image, gx, gy, gangle in glyphs:
            self._renderer.draw_text_image(image, gx, gy, gangle, gc)

    def _draw_and_record(self, gc: Any, x: float, y: float, s: str, prop: Any, angle: float,
                         mtext: Any) -> tuple | None:
        recorder = _Recorder(self._renderer)
        self._renderer = recorder
        try:
            super().draw_text(gc, x, y, s, prop, angle, False, mtext)
        finally:
            self._renderer = recorder.core
        # Nothing recorded: matplotlib drew it some other way (or it was blank): keep nothing.
        return None if recorder.other or not recorder.glyphs else tuple(recorder.glyphs)


def _font_heights(font: Any, size: float, dpi: float) -> tuple:
    """Ascent, descent and line gap in pixels, as Text._get_layout reads them from the font's
    tables: OS/2's typographic values, else hhea's; (None, None, None) when it has neither."""
    for table_name, gap, ascent, descent in (
            ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
            ("hhea", "lineGap", "ascent", "descent")):
        table = font.get_sfnt_table(table_name)
        if table is None:
            continue
        scale = 1 / font.get_sfnt_table("head")["unitsPerEm"] * size * dpi / 72
        return table[ascent] * scale, -table[descent] * scale, table[gap] * scale
    return None, None, None


def _shaping(mtext: Any) -> tuple:
    """A Text's OpenType features and language (matplotlib 3.11 shapes text with them), as
    parts of a key; TypeError when one is unhashable."""
    options = (getattr(mtext, "get_fontfeatures", None), getattr(mtext, "get_language", None))
    return tuple(_hashable(get()) if get is not None else None for get in options)


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    hash(value)
    return value


class PngCanvas(FigureCanvasAgg):
    """matplotlib's Agg canvas, saving PNGs with `rgba_png` (savefig(..., format="png") and a
    LabFigure's `_repr_png_` come here). With `pil_kwargs` the caller asks for Pillow's
    options: then Pillow writes the file, as matplotlib does."""

    def get_renderer(self) -> RendererAgg:
        # FigureCanvasAgg.get_renderer, with the renderer that keeps text across figures.
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key:
            self.renderer = TextKeepingRenderer(w, h, self.figure.dpi)
            self._lastKey = key
        return self.renderer

    def print_png(self, filename_or_obj: Any, *, metadata: dict | None = None,
                  pil_kwargs: dict | None = None, **kwargs: Any) -> None:
        if pil_kwargs is not None:
            super().print_png(filename_or_obj, metadata=metadata, pil_kwargs=pil_kwargs)
            return
        self.draw()
        try:
            data = rgba_png(np.asarray(self.buffer_rgba()), dpi=self.figure.dpi,
                            metadata={**software(), **(metadata or {})})
        except UnicodeEncodeError:  # tEXt is latin-1: Pillow writes such metadata as iTXt
            super().print_png(filename_or_obj, metadata=metadata, pil_kwargs={})
            return
        with cbook.open_file_cm(filename_or_obj, "wb") as f:
            f.write(data)
