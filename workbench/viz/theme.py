"""Colour-blind-safe palette, stable language colours and the ``"workbench"`` plotly template.

Colours come from Okabe & Ito (2008) and Paul Tol's "muted" and "vibrant" schemes, designed
to stay distinguishable under the common colour-vision deficiencies. A language keeps its
colour in every figure: common codes have a fixed colour; any other code gets one from a
deterministic hash (CRC-32, not Python's per-process salted ``hash``). Black and greys are
reserved for summary series (all pairs, with pivot), so no language line can be taken for
one: :data:`LANGUAGE_PALETTE` holds neither.
"""

from __future__ import annotations

import zlib

import plotly.graph_objects as go
import plotly.io as pio

__all__ = [
    "D2N_COLOR",
    "FONT_FAMILY",
    "LANGUAGE_PALETTE",
    "N2D_COLOR",
    "NEUTRAL_COLOR",
    "PALETTE",
    "SERIES_COLOR",
    "TEMPLATE",
    "language_color",
    "paper_layout",
]

OKABE_ITO = (
    "#000000",  # black
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
)
TOL_MUTED = (
    "#332288",  # indigo
    "#88CCEE",  # cyan
    "#44AA99",  # teal
    "#117733",  # green
    "#999933",  # olive
    "#DDCC77",  # sand
    "#CC6677",  # rose
    "#882255",  # wine
    "#AA4499",  # purple
)
TOL_MAGENTA = "#EE3377"  # Paul Tol "vibrant" magenta: English's colour, black being a series'
PALETTE: tuple[str, ...] = OKABE_ITO + TOL_MUTED + (TOL_MAGENTA,)
"""18 colour-blind-safe colours (Okabe–Ito, Paul Tol muted, Tol's vibrant magenta)."""
SERIES_COLOR = "#000000"
"""Black: summary series (all pairs); never a language's colour."""
LANGUAGE_PALETTE: tuple[str, ...] = tuple(c for c in PALETTE if c != SERIES_COLOR)
"""The colours languages get (no black)."""

NEUTRAL_COLOR = "#BBBBBB"
"""Grey for context marks (unselected layers, translation links)."""
N2D_COLOR = "#0072B2"
"""SiLP N2D layers (Okabe–Ito blue)."""
D2N_COLOR = "#D55E00"
"""SiLP D2N layers (Okabe–Ito vermillion)."""
FONT_FAMILY = "Helvetica, Arial, 'Liberation Sans', sans-serif"

_FIXED = {
    "en": TOL_MAGENTA,
    "zh": "#E69F00",
    "es": "#56B4E9",
    "de": "#009E73",
    "fr": "#0072B2",
    "ru": "#D55E00",
    "ja": "#CC79A7",
    "ar": "#332288",
    "hi": "#117733",
    "id": "#88CCEE",
    "ko": "#882255",
    "vi": "#44AA99",
    "th": "#999933",
    "sw": "#AA4499",
    "bn": "#CC6677",
    "pt": "#DDCC77",
    "it": "#F0E442",
}
# ISO 639-3 / FLORES codes of the fixed languages (e.g. the bundled Tatoeba files).
_ALIASES = {
    "eng": "en", "zho": "zh", "cmn": "zh", "spa": "es", "deu": "de", "ger": "de",
    "fra": "fr", "fre": "fr", "rus": "ru", "jpn": "ja", "ara": "ar", "arb": "ar",
    "hin": "hi", "ind": "id", "kor": "ko", "vie": "vi", "tha": "th", "swa": "sw",
    "swh": "sw", "ben": "bn", "por": "pt", "ita": "it",
}  # fmt: skip


def _canonical(code: str) -> str:
    """``"eng_Latn"``, ``"zh-CN"``, ``"ENG"`` -> ``"en"``, ``"zh"``, ``"en"``."""
    base = code.strip().lower().replace("-", "_").split("_")[0]
    return _ALIASES.get(base, base)


def language_color(code: str) -> str:
    """Colour of a language, the same in every figure and every process.

    Args:
        code: language code (ISO 639-1 or -3, optionally with a script/region suffix).

    Returns:
        A hex colour from :data:`LANGUAGE_PALETTE` (never black, the colour of summary series).
    """
    key = _canonical(code)
    if key in _FIXED:
        return _FIXED[key]
    return LANGUAGE_PALETTE[zlib.crc32(key.encode("utf-8")) % len(LANGUAGE_PALETTE)]


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
        "colorway": list(PALETTE),
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
