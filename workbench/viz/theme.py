"""One palette for languages, greys for everything else, and the ``"workbench"`` plotly template.

**Languages.** :data:`LANGUAGE_PALETTE` holds 12 colours from Paul Tol's schemes (bright,
vibrant, muted, medium- and high-contrast, dark), picked from those schemes by a max–min
search on CIEDE2000 distances under normal vision and simulated protanopia, deuteranopia
and tritanopia (Machado et al. 2009, severity 1): every pair of the 12 is at least ΔE00 16
apart in normal vision and 8 under each deficiency, and the first 8 (the languages the
papers and the default views use most: en, zh, sw, ar, hi, es, fr, ja) at least 22 and 13
(`tests/unit/test_palette.py` measures it; the previous palette had pairs at 8 and 3.5).
Each language also has a marker symbol (:func:`language_symbol`), distinct among the 12,
so that no two languages rely on colour alone. A language keeps its colour and symbol in
every figure: common codes are fixed (:data:`FIXED_LANGUAGES`; beyond the 12 first a colour
comes back with another symbol), any other code gets a pair from a deterministic hash
(CRC-32, not Python's per-process salted ``hash``).

**Everything else** (summary series, allocations, model states, training stages, measures)
is drawn in black and greys (:data:`SERIES_COLORS`), told apart by lightness, dash, marker
and bar pattern, so a language's colour never means anything but that language.
"""

from __future__ import annotations

import zlib

import plotly.graph_objects as go
import plotly.io as pio

__all__ = [
    "D2N_COLOR",
    "FIXED_LANGUAGES",
    "FONT_FAMILY",
    "LANGUAGE_PALETTE",
    "LANGUAGE_SYMBOLS",
    "N2D_COLOR",
    "NEUTRAL_COLOR",
    "PALETTE",
    "PIVOT_COLOR",
    "SERIES_COLOR",
    "SERIES_COLORS",
    "TEMPLATE",
    "language_color",
    "language_symbol",
    "paper_layout",
    "state_marker",
    "state_style",
]

LANGUAGE_PALETTE: tuple[str, ...] = (
    "#004488",  # Tol high-contrast blue: en
    "#666633",  # Tol dark olive: zh
    "#33BBEE",  # Tol vibrant cyan: sw
    "#009988",  # Tol vibrant teal: ar
    "#AAAA00",  # Tol light olive: hi
    "#EE3377",  # Tol vibrant magenta: es
    "#FFAABB",  # Tol light pink: fr
    "#663333",  # Tol dark red: ja
    "#0077BB",  # Tol vibrant blue: de
    "#AA4499",  # Tol muted purple: ru
    "#997700",  # Tol medium-contrast ochre: ko
    "#EE8866",  # Tol light orange: id
)
"""The 12 language colours (order = :data:`FIXED_LANGUAGES`' first 12)."""
LANGUAGE_SYMBOLS: tuple[str, ...] = ("circle", "square", "diamond", "triangle-up", "triangle-down", "pentagon",
                                     "hexagon", "star", "cross", "x", "triangle-left", "triangle-right")
"""Marker symbols of languages; the first 12 fixed languages each have their own."""
FIXED_LANGUAGES: tuple[str, ...] = ("en", "zh", "sw", "ar", "hi", "es", "fr", "ja", "de", "ru", "ko", "id",
                                    "pt", "it", "vi", "th", "bn", "tr", "fa", "ur", "pl", "nl", "uk", "he")
"""Codes with a fixed (colour, symbol): the i-th has colour ``i % 12`` and, past the 12th, a shifted symbol."""

SERIES_COLOR = "#000000"
"""Black: the main summary series (all pairs); never a language's colour."""
PIVOT_COLOR = "#777777"
"""Mid grey: the second summary series (with pivot)."""
NEUTRAL_COLOR = "#BBBBBB"
"""Light grey for context marks (unselected layers, translation links, a reference state)."""
N2D_COLOR = "#777777"
"""SiLP N2D layers (mid grey; other layers are light grey)."""
D2N_COLOR = "#000000"
"""SiLP D2N layers (black)."""
SERIES_COLORS: tuple[str, ...] = (SERIES_COLOR, "#444444", PIVOT_COLOR, NEUTRAL_COLOR)
"""Colours of non-language series: black and greys, none of them a language's."""
PALETTE: tuple[str, ...] = LANGUAGE_PALETTE + SERIES_COLORS
"""Every colour the theme draws series with."""
FONT_FAMILY = "Helvetica, Arial, 'Liberation Sans', sans-serif"

# ISO 639-3 / FLORES codes of the fixed languages (e.g. the bundled Tatoeba files).
_ALIASES = {
    "eng": "en", "zho": "zh", "cmn": "zh", "spa": "es", "deu": "de", "ger": "de",
    "fra": "fr", "fre": "fr", "rus": "ru", "jpn": "ja", "ara": "ar", "arb": "ar",
    "hin": "hi", "ind": "id", "kor": "ko", "vie": "vi", "tha": "th", "swa": "sw",
    "swh": "sw", "ben": "bn", "por": "pt", "ita": "it", "tur": "tr", "fas": "fa",
    "pes": "fa", "urd": "ur", "pol": "pl", "nld": "nl", "ukr": "uk", "heb": "he",
}  # fmt: skip
_N = len(LANGUAGE_PALETTE)
# (state colour, pattern) of model states in bar charts: the reference light grey, then darker, then patterned
_STATE_STYLES = (("#BBBBBB", ""), ("#444444", ""), ("#000000", ""), ("#888888", "/"), ("#444444", "x"),
                 ("#BBBBBB", "."))


def _canonical(code: str) -> str:
    """``"eng_Latn"``, ``"zh-CN"``, ``"ENG"`` -> ``"en"``, ``"zh"``, ``"en"``."""
    base = code.strip().lower().replace("-", "_").split("_")[0]
    return _ALIASES.get(base, base)


def _slot(code: str) -> tuple[int, int]:
    """(colour index, symbol index) of a language."""
    key = _canonical(code)
    if key in FIXED_LANGUAGES:
        i = FIXED_LANGUAGES.index(key)
        return i % _N, (i + i // _N) % len(LANGUAGE_SYMBOLS)
    h = zlib.crc32(key.encode("utf-8"))
    return h % _N, (h // _N) % len(LANGUAGE_SYMBOLS)


def language_color(code: str) -> str:
    """Colour of a language, the same in every figure and every process.

    Args:
        code: language code (ISO 639-1 or -3, optionally with a script/region suffix).

    Returns:
        A hex colour from :data:`LANGUAGE_PALETTE` (never black or grey: those are other series').
    """
    return LANGUAGE_PALETTE[_slot(code)[0]]


def language_symbol(code: str) -> str:
    """Marker symbol of a language (plotly name), the same in every figure."""
    return LANGUAGE_SYMBOLS[_slot(code)[1]]


def state_style(i: int) -> tuple[str, str]:
    """(fill colour, bar pattern shape) of the `i`-th model state in a chart (0 = the reference)."""
    return _STATE_STYLES[i % len(_STATE_STYLES)]


def state_marker(i: int) -> dict:
    """Bar ``marker`` of the `i`-th model state: its grey and, past the third state, a black pattern."""
    color, shape = state_style(i)
    if not shape:
        return {"color": color}
    return {"color": color, "pattern": {"shape": shape, "fgcolor": "#000000", "size": 5}}


def _axis() -> dict:
    return {
        "showgrid": True,
        "gridcolor": "#E5E5E5",
        "zeroline": False,
        "showline": True,
        "linecolor": "#444444",
        "ticks": "outside",
        "tickcolor": "#444444",
        "title": {"standoff": 8},
    }


TEMPLATE = "workbench"
"""Name of the registered plotly template; figures set ``template=TEMPLATE``."""

pio.templates[TEMPLATE] = go.layout.Template(
    layout={
        "font": {"family": FONT_FAMILY, "size": 13, "color": "#222222"},
        "title": {"font": {"size": 15}, "x": 0.0, "xanchor": "left"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "colorway": list(SERIES_COLORS),  # a trace left uncoloured never takes a language's colour
        "xaxis": _axis(),
        "yaxis": _axis(),
        "legend": {"bgcolor": "rgba(255,255,255,0.8)", "borderwidth": 0},
        "hoverlabel": {"font": {"family": FONT_FAMILY}},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    }
)


def paper_layout(fig: go.Figure, width_in: float = 3.3) -> go.Figure:
    """Size and style a figure for a paper column (modifies ``fig`` and returns it).

    Args:
        fig: the figure.
        width_in: width in inches (3.3 ≈ one column of a two-column paper); sizes are
            set in CSS pixels at 96 per inch, so export with ``scale`` for higher dpi.

    Returns:
        The same figure: 8 pt fonts, tight margins, legend above the plot, height
        ``0.75 ×`` width.
    """
    width = round(width_in * 96)
    fig.update_layout(
        template=TEMPLATE,
        width=width,
        height=round(0.75 * width),
        font={"family": FONT_FAMILY, "size": 8},
        title={"font": {"size": 9}},
        margin={"l": 40, "r": 8, "t": 30, "b": 34},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "font": {"size": 7}},
    )
    return fig
