"""The Setup choices of this browser session, kept in the URL too (reload, new tab, bookmark)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from workbench.config import POOLINGS, CorpusSpec, ModelSpec
from workbench.corpus import ParallelCorpus, load_corpus_spec
from workbench.errors import ParamError, user_message
from workbench.paths import cache_root
from workbench.recipes.settings import Settings

log = logging.getLogger("workbench.app")

SETTINGS_KEY = "wb_settings"
PAGES = {
    "setup": "pages/setup.py",
    "layer_profile": "pages/layer_profile.py",
    "map": "pages/representation_map.py",
    "subspaces": "pages/language_subspaces.py",
    "neurons": "pages/neurons.py",
    "layer_predictions": "pages/layer_predictions.py",
    "analyses": "pages/analyses.py",
    "finetune": "pages/finetune.py",
    "compare": "pages/compare.py",
}
# The URL parameters of the Setup choices. Model options that change the store key (device
# and dtype: the fingerprint holds the dtype; revision: other weights) are written only when
# they differ from the defaults, to keep the address short. `trust_remote_code` is never
# taken from a URL: a link someone sends must not switch on running the hub's code.
# `remote=1`: record on NDIF (nothing starts before the Record button is pressed).
_QUERY = ("model", "revision", "device", "dtype", "artifact", "corpus", "langs", "limit", "maxlen", "pooling",
          "preset", "remote")
_MODEL_OPTIONS = ("revision", "device", "dtype")


def _to_query(s: Settings) -> dict[str, str]:
    q = {"model": s.model.source, "corpus": s.corpus.source, "langs": ",".join(s.corpus.langs),
         "maxlen": str(s.max_length), "pooling": s.pooling}
    default = ModelSpec()
    for name in _MODEL_OPTIONS:
        if getattr(s.model, name) != getattr(default, name):
            q[name] = str(getattr(s.model, name))
    if s.model.artifact:
        q["artifact"] = s.model.artifact
    if s.corpus.limit:
        q["limit"] = str(s.corpus.limit)
    if s.preset:
        q["preset"] = s.preset
    if s.remote:
        q["remote"] = "1"
    return q


def _from_query(q: Mapping[str, str]) -> Settings | None:
    """Settings from URL parameters, or None when the URL holds none (or unreadable ones)."""
    if "model" not in q or "corpus" not in q or "langs" not in q:
        return None
    try:
        langs = tuple(x for x in str(q["langs"]).split(",") if x)
        limit = int(q["limit"]) if q.get("limit") else None
        default = ModelSpec()
        model = ModelSpec(source=str(q["model"]), artifact=q.get("artifact") or None,
                          revision=q.get("revision") or default.revision, device=q.get("device") or default.device,
                          dtype=q.get("dtype") or default.dtype)
        pooling = str(q.get("pooling") or "mean")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}")
        return Settings(model, CorpusSpec(source=str(q["corpus"]), langs=langs, limit=limit),
                           int(q.get("maxlen") or 256), pooling, q.get("preset") or None, q.get("remote") == "1")
    except ParamError as e:  # an unknown preset name
        log.warning("ignoring unreadable URL parameters %r: %s", dict(q), e)
        return None
    except (TypeError, ValueError) as e:
        log.warning("ignoring unreadable URL parameters %r: %s", dict(q), e)
        return None


def get_settings() -> Settings:
    """The Setup choices: this session's, else the URL's (reload, bookmark, new tab), else the defaults."""
    raw = st.session_state.get(SETTINGS_KEY)
    if raw:
        try:
            return Settings.from_dict(raw)
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring unreadable settings in session state: %r", raw)
    from_url = _from_query(st.query_params.to_dict())
    if from_url is not None:
        st.session_state[SETTINGS_KEY] = from_url.to_dict()
        return from_url
    return Settings()


def save_settings(settings: Settings) -> None:
    """Keep the choices for every page of this session, and in the URL."""
    st.session_state[SETTINGS_KEY] = settings.to_dict()
    sync_url(settings)


def sync_url(settings: Settings) -> None:
    """Write the choices into the URL (only when they differ: each write is a browser history entry)."""
    want = _to_query(settings)
    have = {k: v for k, v in st.query_params.to_dict().items() if k in _QUERY}
    if have != want:
        for k in set(have) - set(want):
            del st.query_params[k]
        st.query_params.update(want)


def data_key(settings: Settings) -> dict[str, Any]:
    """Hashable key of everything a cached table depends on (specs and the store root)."""
    return {"settings": settings.to_dict(), "root": str(cache_root())}


def corpus_of(settings: Settings) -> ParallelCorpus:
    """The corpus with the chosen languages and limit."""
    return load_corpus_spec(settings.corpus)


def figure_spec(s: Settings, analysis: str, params: Mapping[str, Any], *, langs: Sequence[str] | None = None,
                title: str | None = None) -> dict[str, Any]:
    """The registry's figure spec of a view: the Setup choice plus the view's parameters."""
    return s.figure_spec(analysis, params, langs=langs, title=title)


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Show an error inside a view as a readable message; the traceback goes to the log."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - one view failing must not take the page down
        log.warning("%s failed", what, exc_info=True)
        st.error(f"Could not compute {what}: {user_message(e)}", icon=":material/error:")


def language_label(settings: Settings) -> Any:
    """A format_func for language codes: "sw — Swahili"."""
    languages = corpus_of(settings).languages

    def fmt(code: str) -> str:
        lang = languages.get(code)
        return f"{code} — {lang.name}" if lang is not None else code

    return fmt


def default_pair(langs: Sequence[str], pivot: str) -> tuple[str, str]:
    """A default translation direction: pivot → the first other language."""
    other = [x for x in langs if x != pivot]
    return pivot, (other[0] if other else pivot)


def settings_line(s: Settings) -> str:
    """One markdown line naming the current choice."""
    langs = list(s.corpus.langs)
    shown = ", ".join(langs[:8]) + (f" … (+{len(langs) - 8})" if len(langs) > 8 else "")
    limit = f" · first {s.corpus.limit} units" if s.corpus.limit else ""
    model = Path(s.model.source).name + (f" + {Path(s.model.artifact).parent.name}" if s.model.artifact else "")
    return (f"**Model** `{model}` · **Corpus** `{Path(s.corpus.source).name}`{limit} · "
            f"**Languages** {shown} · **Pooling** {s.pooling} · **Max length** {s.max_length}")
