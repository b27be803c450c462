"""Widgets generated from a frozen spec's fields (a fine-tune method's spec, an analysis's parameters)."""

from __future__ import annotations

import dataclasses
from typing import Any

from workbench.errors import ParamError

__all__ = ["field_widget", "widget_fields"]


class _Bound:
    """A container whose widgets are bound to URL query parameters (Streamlit's `bind="query-params"`)."""

    def __init__(self, col: Any) -> None:
        self._col = col

    def __getattr__(self, name: str) -> Any:
        widget = getattr(self._col, name)
        return lambda *a, **kw: widget(*a, bind="query-params", **kw)


def widget_fields(cls: Any) -> list[dataclasses.Field]:
    """The fields of a spec that get a widget (scalars, choices, lists of names; not nested values)."""
    return [f for f in dataclasses.fields(cls)
            if not str(f.type).replace(" | None", "").startswith(("dict", "tuple[dict", "tuple[tuple"))]


def field_widget(prefix: str, f: dataclasses.Field, help_text: str, col: Any, *, persist: str | None = None) -> Any:
    """One widget for a spec field, typed from its annotation (choices from its metadata), with its default.

    The key is `<prefix>_<field>`; `persist` keeps the value across pages (Streamlit's `persist_state`).
    Returns the value in the field's type (None where the field allows it and the box is empty).
    """
    key, label, default, kind = f"{prefix}_{f.name}", f.name.replace("_", " "), f.default, str(f.type)
    PERSIST = persist
    col = _Bound(col)  # every field's value lives in the URL too (reload, a new browser, a shared link)
    if f.metadata.get("choices") and not kind.startswith("tuple"):
        options = list(f.metadata["choices"])
        return col.selectbox(label, options, index=options.index(default), key=key, help=help_text,
                             persist_state=PERSIST)
    if kind == "bool":
        return col.checkbox(label, value=bool(default), key=key, help=help_text, persist_state=PERSIST)
    if kind in ("int", "int | None"):
        v = col.number_input(label, value=default, step=1, key=key, help=help_text, persist_state=PERSIST,
                             placeholder="auto")
        return None if v is None else int(v)
    if kind in ("float", "float | None"):
        step = abs(float(default)) / 10 if default else 0.01
        v = col.number_input(label, value=None if default is None else float(default), step=step, format="%g",
                             key=key, help=help_text, persist_state=PERSIST, placeholder="none")
        return None if v is None else float(v)
    if kind == "tuple[str, ...]":
        options = list(dict.fromkeys([*(f.metadata.get("choices") or ()), *default]))
        if not options:  # free names (e.g. languages to show): comma-separated
            v = col.text_input(label, value="", key=key, help=help_text, persist_state=PERSIST, placeholder="none")
            return tuple(x.strip() for x in v.split(",") if x.strip())
        return tuple(col.multiselect(label, options, default=list(default), key=key, help=help_text,
                                     persist_state=PERSIST))
    if kind.startswith(("tuple[int", "tuple[float")):  # numbers, comma-separated (layers, strengths)
        return _numbers(col.text_input(label, value=", ".join(f"{x:g}" for x in default or ()), key=key,
                                       help=help_text, persist_state=PERSIST,
                                       placeholder="none" if "None" in kind else "e.g. 0, 2, 4"),
                        int if kind.startswith("tuple[int") else float, none_if_empty="None" in kind, label=label)
    v = col.text_input(label, value=default or "", key=key, help=help_text, persist_state=PERSIST, placeholder="none")
    return (v.strip() or None) if kind == "str | None" else v


def _numbers(text: str, cast: type, *, none_if_empty: bool, label: str) -> tuple[Any, ...] | None:
    """`"0, 2, 4"` → (0, 2, 4) in `cast`; empty → None where the field allows it, else ()."""
    parts = [x.strip() for x in str(text).split(",") if x.strip()]
    if not parts:
        return None if none_if_empty else ()
    try:
        return tuple(cast(float(x)) if cast is int and float(x).is_integer() else cast(x) for x in parts)
    except ValueError:
        raise ParamError(f"{label}: {text!r} is not a comma-separated list of numbers") from None
