"""The Setup choices of this browser session, kept in the URL too (reload, new tab, bookmark)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from workbench.config import POOLINGS, CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import ParallelCorpus, list_corpora, load_corpus_spec, uploads
from workbench.errors import ParamError, user_message
from workbench.paths import cache_root
from workbench.presets import get_preset
from workbench.recipes.settings import Settings

log = logging.getLogger("workbench.app")

SETTINGS_KEY = "wb_settings"
PAGES = {
    "setup": "app_pages/setup.py",
    "layer_profile": "app_pages/layer_profile.py",
    "map": "app_pages/representation_map.py",
    "subspaces": "app_pages/language_subspaces.py",
    "neurons": "app_pages/neurons.py",
    "layer_predictions": "app_pages/layer_predictions.py",
    "analyses": "app_pages/analyses.py",
    "finetune": "app_pages/finetune.py",
    "intervene": "app_pages/intervene.py",
    "compare": "app_pages/compare.py",
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


def _corpus_ok(source: str) -> bool:
    """A corpus a URL may name: a bundled one, or a file uploaded into this cache (never any other path)."""
    return source in {c["name"] for c in list_corpora()} or uploads.is_upload(source)


def _parse_query(q: Mapping[str, str]) -> tuple[Settings | None, list[str]]:
    """Settings from URL parameters, field by field: a value that cannot be used is dropped and named.

    Returns:
        (the settings, or None when the URL names no model and corpus; one line per dropped value).
    """
    if "model" not in q and "corpus" not in q:
        return None, []
    dropped: list[str] = []
    default, base = Settings(), ModelSpec()

    def take(name: str, parse: Any, fallback: Any) -> Any:
        if name not in q or q[name] in ("", None):
            return fallback
        try:
            return parse(str(q[name]))
        except (ParamError, TypeError, ValueError) as e:
            dropped.append(f"`{name}={q[name]}` ({user_message(e)})")
            return fallback

    def model_field(name: str) -> Any:
        return take(name, lambda v: getattr(ModelSpec(**{"source": base.source, name: v}), name), getattr(base, name))

    source = take("model", lambda v: ModelSpec(source=v).source, default.model.source)
    model = ModelSpec(source=source, artifact=take("artifact", lambda v: ModelSpec(source=source, artifact=v).artifact,
                                                   None), **{n: model_field(n) for n in _MODEL_OPTIONS})
    corpus_source = take("corpus", lambda v: v if _corpus_ok(v) else _raise("not a bundled or uploaded corpus"),
                         default.corpus.source)
    langs = take("langs", lambda v: CorpusSpec(source=corpus_source, langs=tuple(x for x in v.split(",") if x)).langs,
                 default.corpus.langs)
    limit = take("limit", lambda v: CorpusSpec(source=corpus_source, limit=int(v)).limit, None)
    max_length = take("maxlen", lambda v: RecordSpec(max_length=int(v), batch_tokens=max(4096, int(v))).max_length,
                      default.max_length)
    pooling = take("pooling", lambda v: v if v in POOLINGS else _raise(f"choose one of {', '.join(POOLINGS)}"),
                   default.pooling)
    preset = take("preset", lambda v: get_preset(v).name, None)
    settings = Settings(model, CorpusSpec(source=corpus_source, langs=langs, limit=limit), max_length, pooling,
                        preset, q.get("remote") == "1")
    return settings, dropped


def _raise(message: str) -> Any:
    raise ValueError(message)


def _from_query(q: Mapping[str, str]) -> Settings | None:
    """Settings from URL parameters (values that cannot be used dropped: `_parse_query`)."""
    return _parse_query(q)[0]


URL_WARNINGS = "wb_url_dropped"


def get_settings() -> Settings:
    """The Setup choices: this session's, else the URL's (reload, bookmark, new tab), else the defaults."""
    raw = st.session_state.get(SETTINGS_KEY)
    if raw:
        try:
            return Settings.from_dict(raw)
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring unreadable settings in session state: %r", raw)
    from_url, dropped = _parse_query(st.query_params.to_dict())
    if dropped:  # shown once, by the page header: the other choices of the link are kept
        st.session_state[URL_WARNINGS] = dropped
        log.warning("dropped URL parameters: %s", "; ".join(dropped))
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
