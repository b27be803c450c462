"""One palette for languages that stays distinct, and is never reused by a non-language series.

Distances are CIEDE2000 (Sharma, Wu & Dalal 2005; checked here against their test pairs)
between the colours as seen with normal vision and with simulated protanopia, deuteranopia
and tritanopia (Machado, Oliveira & Fernandes 2009, severity 1, applied in linear sRGB).
The previous palette failed these thresholds: sw/ja/en and es/fr (the report), down to
ΔE00 3.5 under deuteranopia.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from figure_kinds import KINDS, LANGS12

from workbench.viz.theme import (
    FIXED_LANGUAGES,
    LANGUAGE_PALETTE,
    LANGUAGE_SYMBOLS,
    language_color,
    language_symbol,
)

MACHADO = {
    "protan": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deutan": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritan": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}
VISIONS = ("normal", *MACHADO)
XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                [0.0193339, 0.1191920, 0.9503041]])


def _rgb(hexes: list[str]) -> np.ndarray:
    return np.array([[int(h.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)] for h in hexes])


def lab(hexes: list[str], vision: str = "normal") -> np.ndarray:
    """CIELAB (D65) of sRGB colours, as seen with `vision`."""
    c = _rgb(hexes)
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    if vision != "normal":
        c = np.clip(c @ np.array(MACHADO[vision]).T, 0, 1)
    xyz = c @ XYZ.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def de2000(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of Lab arrays (broadcasting)."""
    L1, a1, b1 = np.moveaxis(a, -1, 0)
    L2, a2, b2 = np.moveaxis(b, -1, 0)
    cb = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(cb**7 / (cb**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1p)) % 360, np.degrees(np.arctan2(b2, a2p)) % 360
    dh = h2 - h1
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1 * c2 == 0, 0, dh)
    dH = 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    lb, cbp, hs = (L1 + L2) / 2, (c1 + c2) / 2, h1 + h2
    wrapped = np.where(hs < 360, hs + 360, hs - 360) / 2
    hb = np.where(c1 * c2 == 0, hs, np.where(np.abs(h1 - h2) <= 180, hs / 2, wrapped))
    t = (1 - 0.17 * np.cos(np.radians(hb - 30)) + 0.24 * np.cos(np.radians(2 * hb))
         + 0.32 * np.cos(np.radians(3 * hb + 6)) - 0.20 * np.cos(np.radians(4 * hb - 63)))
    rt = -np.sin(np.radians(60 * np.exp(-(((hb - 275) / 25) ** 2)))) * 2 * np.sqrt(cbp**7 / (cbp**7 + 25.0**7))
    sl = 1 + 0.015 * (lb - 50) ** 2 / np.sqrt(20 + (lb - 50) ** 2)
    sc, sh = 1 + 0.045 * cbp, 1 + 0.015 * cbp * t
    return np.sqrt(((L2 - L1) / sl) ** 2 + ((c2 - c1) / sc) ** 2 + (dH / sh) ** 2 + rt * (c2 - c1) / sc * dH / sh)


def min_distance(hexes: list[str], vision: str) -> tuple[float, tuple[int, int]]:
    """Smallest pairwise ΔE00 and the pair's indices."""
    L = lab(hexes, vision)
    d = de2000(L[:, None, :], L[None, :, :])
    d[np.diag_indices(len(hexes))] = np.inf
    i, j = np.unravel_index(np.argmin(d), d.shape)
    return float(d[i, j]), (int(i), int(j))


@pytest.mark.parametrize("lab1,lab2,expected", [  # Sharma et al. (2005), Table 1, pairs 1, 7 and 17
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
])
def test_ciede2000_matches_the_published_test_data(lab1, lab2, expected):
    assert de2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("vision,floor12,floor8", [
    ("normal", 16.0, 22.0), ("protan", 8.0, 13.0), ("deutan", 8.0, 13.0), ("tritan", 8.0, 13.0)])
def test_twelve_languages_stay_distinct(vision, floor12, floor8):
    colors = [language_color(x) for x in LANGS12]
    assert len(set(colors)) == 12 and set(colors) == set(LANGUAGE_PALETTE)
    d12, (i, j) = min_distance(colors, vision)
    assert d12 >= floor12, f"{LANGS12[i]} and {LANGS12[j]}: ΔE00 {d12:.1f} ({vision})"
    d8, (i, j) = min_distance(colors[:8], vision)
    assert d8 >= floor8, f"{LANGS12[i]} and {LANGS12[j]}: ΔE00 {d8:.1f} ({vision})"


def test_the_reported_pairs_are_far_apart():
    for a, b in (("sw", "ja"), ("sw", "en"), ("ja", "en"), ("es", "fr")):
        for vision in VISIONS:
            d, _ = min_distance([language_color(a), language_color(b)], vision)
            assert d >= 13, (a, b, vision, d)


def test_no_language_relies_on_colour_alone():
    assert len({language_symbol(x) for x in LANGS12}) == 12
    pairs = [(language_color(x), language_symbol(x)) for x in FIXED_LANGUAGES]
    assert len(set(pairs)) == len(FIXED_LANGUAGES)  # past 12, a colour returns with another symbol
    for code in ("qaa", "xx-unknown", "yue", "oc"):  # hashed codes: stable and from the palette
        assert language_color(code) == language_color(code.upper()) in LANGUAGE_PALETTE
        assert language_symbol(code) in LANGUAGE_SYMBOLS


def _colors(trace) -> list[str]:
    out = []
    for part in ("line", "marker"):
        c = getattr(getattr(trace, part, None), "color", None)
        if isinstance(c, str):
            out.append(c.upper())
        elif c is not None and not isinstance(c, (int, float)):
            out += [x.upper() for x in c if isinstance(x, str)]
    return out


def _language_of(trace, langs: set[str]) -> str | None:
    """The language a trace draws (by name, 'zh · base' or '‖δ‖ zh · A', or legend group), if any."""
    for key in (trace.legendgroup, trace.name):
        if not key:
            continue
        head = str(key).split(" · ")[0].replace("‖δ‖ ", "").removeprefix("direction_norm_")
        if head in langs:
            return head
    return None


@pytest.mark.parametrize("kind", list(KINDS))
def test_language_colours_only_on_language_series(kind):
    fig = KINDS[kind]()
    langs = set(LANGS12)
    palette = {c.upper() for c in LANGUAGE_PALETTE}
    for t in fig.data:
        if t.type == "heatmap":
            continue
        lang = _language_of(t, langs)
        for c in _colors(t):
            if lang is not None:
                assert c == language_color(lang).upper(), (t.name, c)
                symbol = getattr(t.marker, "symbol", None)
                assert symbol in (None, language_symbol(lang)), (t.name, symbol)
            else:
                assert c not in palette, f"{t.name!r} (not a language) uses a language colour {c}"
                r, g, b = (int(c.lstrip("#")[k:k + 2], 16) for k in (0, 2, 4))
                assert r == g == b, f"{t.name!r}: non-language series are greys, got {c}"


def test_a_language_has_one_colour_across_figures():
    seen: dict[str, set[str]] = {}
    for make in KINDS.values():
        for t in make().data:
            lang = _language_of(t, set(LANGS12))
            if lang and t.type != "heatmap":
                seen.setdefault(lang, set()).update(_colors(t))
    assert set(LANGS12) <= set(seen)
    assert all(len(c) == 1 for c in seen.values()), seen
    assert len(set(itertools.chain.from_iterable(seen.values()))) == 12
