"""The house style every lab figure shares: colours, size, type, and the fixed page layout.

Apart from the figures themselves (`labkit.plot` for the charts over time, `labkit.treeplot` for
the process tree) so that each of those draws with the same palette, the same 1280 x 720 canvas
and the same legends, and so that the dashboard's badges (`labkit.widgets`) take their colours
from the one place the pictures do. Knows no processes and no widgets. The public names are
re-exported by `labkit.plot`, where notebooks find them; the underscored ones are the layout
helpers the figure modules share, not for notebooks.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.transforms import offset_copy

from labkit.observe import ZOMBIE
from labkit.pngcanvas import PngCanvas

# Okabe & Ito (2008), "Color Universal Design": eight colours that colour-blind readers tell apart.
OKABE_ITO = {
    "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7", "black": "#000000",
}

# State (psutil's names) -> colour. Zombies are the undead green; the living are calm blues.
PALETTE: dict[str, str] = {
    ZOMBIE: OKABE_ITO["bluish green"],
    "sleeping": OKABE_ITO["sky blue"],
    "running": OKABE_ITO["blue"],
    "disk-sleep": OKABE_ITO["reddish purple"],
    "stopped": OKABE_ITO["orange"],
    "tracing-stop": OKABE_ITO["orange"],
    "dead": OKABE_ITO["yellow"],
}
UNKNOWN_COLOUR = "#999999"  # any state not in PALETTE
ALERT = OKABE_ITO["vermillion"]  # what the kernel refused: the budget line, a failed fork
ZOMBIE_HATCH = "//"  # a second cue besides colour, for print and for projectors that wash out

FIGSIZE = (10.0, 5.625)  # inches: 1280 x 720 pixels at DPI
DPI = 128
NO_SAMPLES = "no samples yet"

# Applied while a figure is built (Text and ticks read these when they are created).
_STYLE = {
    "font.size": 13, "axes.titlesize": 16, "axes.titleweight": "bold", "axes.labelsize": 14,
    "xtick.labelsize": 12, "ytick.labelsize": 12, "legend.fontsize": 12,
    "legend.title_fontsize": 12, "figure.titlesize": 17, "figure.titleweight": "bold",
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "axes.axisbelow": True, "grid.alpha": 0.3, "font.family": "DejaVu Sans",
}


class LabFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in Jupyter.

    A bare Figure only becomes an image there through pyplot's inline backend, which labkit
    never imports; this one renders itself (at its own size: 1280 x 720 for the standard figures),
    so `plot.growth(series)` as the last line of a cell shows the picture, in JupyterLab and
    under nbclient/nbconvert alike. It lives on a `labkit.pngcanvas.PngCanvas`: its PNGs (here
    and from savefig) hold the pixels Agg drew, encoded in a fraction of Pillow's time, and its
    text is measured and rasterised once for all figures that show it again.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        PngCanvas(self)  # the canvas attaches itself: figure.canvas

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()


def colour(state: str) -> str:
    """The colour every figure gives a state (grey for a state not in PALETTE)."""
    return PALETTE.get(state, UNKNOWN_COLOUR)

def ink(face: str) -> str:
    """Black or white text, whichever contrasts more with `face` (WCAG 2 relative luminance
    and contrast ratio); for the tree's boxes and the dashboard's badges alike."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
               for c in to_rgb(face))
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if (y + 0.05) / 0.05 >= 1.05 / (y + 0.05) else "white"


def _figure(size: tuple[float, float] = FIGSIZE) -> LabFigure:
    return LabFigure(figsize=size, dpi=DPI, facecolor="white")


# Margins are fixed, in inches, for the fixed type sizes above. matplotlib's constrained layout
# would measure every label instead, and took half the time of a redraw (issue 4: <= 100 ms).
_LEFT, _RIGHT, _TOP = 1.05, 0.3, 0.55  # y tick labels up to 5 digits and the y label; a title
_AXIS_BELOW = 0.75   # x tick labels and the x label
_LEGEND_ROW = 0.34   # one row of legend entries
_LEGEND_WIDTH = 9.2  # inches a row of legend entries may take


def _margins(fig: Figure, *, top: float = _TOP, bottom: float, columns: int = 1,
             rows: int = 1) -> None:
    w, h = fig.get_size_inches()
    width = (w - _LEFT - _RIGHT - 0.35 * (columns - 1)) / columns
    height = (h - top - bottom - 0.9 * (rows - 1)) / rows
    fig.subplots_adjust(left=_LEFT / w, right=1 - _RIGHT / w, top=1 - top / h,
                        bottom=bottom / h, wspace=0.35 / width, hspace=0.9 / height)


def _bottom(legend_rows: int) -> float:
    return _AXIS_BELOW + _LEGEND_ROW * legend_rows + (0.12 if legend_rows else 0.0)


def _legend_columns(labels: list[str]) -> int:
    """As many columns as fit in one row's width. matplotlib splits the entries into columns in
    order (numpy's array_split) and makes each column as wide as its widest entry: an entry is
    its handle and padding (~3 em) and its text (~0.6 em a character), at 12 pt."""
    widths = [(0.6 * len(label) + 3.0) * 12 / 72 for label in labels]
    for columns in range(len(labels), 1, -1):
        if sum(max(c) for c in np.array_split(widths, columns)) <= _LEGEND_WIDTH:
            return columns
    return 1


def _legend_rows(labels: list[str]) -> int:
    return math.ceil(len(labels) / _legend_columns(labels))


def _legend_below(ax: Axes, handles: list, labels: list[str]) -> None:
    """A legend centred under the axes' x label, wherever the axes are."""
    below = offset_copy(ax.transAxes, fig=ax.figure, y=-_AXIS_BELOW, units="inches")
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
              bbox_transform=below, ncols=_legend_columns(labels), frameon=False,
              borderaxespad=0.0)


def _title(ax: Axes, text: str) -> None:
    # A fixed height: matplotlib otherwise measures the axes on every draw to place the title
    # above any top ticks (there are none here), a fifth of the redraw time.
    ax.set_title(text, loc="left", y=1.0, pad=8)


def _say(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            fontsize=18, color="#666666", gid="message")
    ax.set_yticks([])
