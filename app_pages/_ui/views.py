"""A view on a page = the registry's build of its figure spec, from the store, cached per spec.

The page's widgets fill the analysis's parameters (`recipes.PARAMS`), the spec names the
stored recordings (`recipes.needs`), and `recipes.build` makes the table and the figure:
the same code path as `workbench analyze`, `export`, `report` and figure sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from workbench.paths import cache_root
from workbench.recipes.analysis import Need
from workbench.recipes.build import build, needs
from workbench.recipes.spec import normalize_spec


@st.cache_data(show_spinner=False, max_entries=128)
def _built(spec: Mapping[str, Any], root: str) -> tuple[go.Figure, pd.DataFrame, dict[str, Any], dict]:
    b = build(spec, stored_only=True)
    return b.figure, b.table, b.info, b.extra


def view(spec: Mapping[str, Any]) -> tuple[go.Figure, pd.DataFrame, dict[str, Any], dict[str, pd.DataFrame]]:
    """(figure, table, provenance, side tables) of a figure spec, built from stored recordings.

    Cached per spec and store root; the figure is a copy, so a page may restyle it.
    """
    fig, table, info, extra = _built(dict(spec), str(cache_root()))
    return go.Figure(fig), table, info, extra


def needs_of(spec: Mapping[str, Any]) -> list[Need]:
    """The recordings a figure spec reads (the registry's `needs` of its canonical form)."""
    return needs(normalize_spec(spec))
