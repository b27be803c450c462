"""When an interval says something: the fewest sentences a 95% interval is shown for, and why not below."""

from __future__ import annotations

import math

__all__ = ["MIN_N_INTERVAL", "interval_note"]

MIN_N_INTERVAL = 5
"""Fewest sentences an interval is shown for. Below it a percentile bootstrap has only a few
distinct resamples (n = 1: one, so the "interval" is the point itself) and its 2.5–97.5%
quantiles say nothing about the sampling error; tables and figures show why instead."""


def interval_note(n: float, low: float = math.nan, high: float = math.nan) -> str:
    """Why a row has no interval (``"n = 1: too few for an interval"``), or "" when it has one."""
    if isinstance(n, int | float) and math.isfinite(n) and n < MIN_N_INTERVAL:
        return f"n = {int(n)}: too few for an interval"
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    return ""
