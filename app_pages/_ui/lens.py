"""Lens views on a page: the lens choice, the empty state with a Record button, the tuned-lens job panel.

A lens view is drawn from the store only (`recipes.build` with `stored_only`); what the store
lacks is named and offered as a button that starts the background readout
(`recipes.lens_fetch.start_lens_need`): nothing records as a side effect of drawing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from app_pages._ui.recording import job_panel
from workbench import models
from workbench.config import CorpusSpec, ModelSpec
from workbench.errors import user_message
from workbench.jobs.warm import WARM
from workbench.lenses import TunedLensSpec
from workbench.lenses.artifacts import LOGIT, list_lenses
from workbench.paths import cache_root
from workbench.recipes import lens_fetch
from workbench.recipes.analysis import LensNeed
from workbench.recipes.build import lens_needs
from workbench.recipes.settings import Settings
from workbench.recordings.tuned_lens import start_tuned_lens, train_job_key

log = logging.getLogger("workbench.app")

__all__ = ["lens_choices", "require_lens", "tuned_lens_panel"]


def lens_choices(model: ModelSpec) -> dict[str, str]:
    """Lens value -> label: the logit lens, then every saved tuned lens of this state (newest first)."""
    out = {LOGIT: "Logit lens"}
    fp = models.fingerprint(model, download=False)
    for r in list_lenses(fp) if fp else []:
        kl = f", held-out KL {r['kl_logit']:.2f} → {r['kl_tuned']:.2f}" if r["kl_tuned"] is not None else ""
        out[r["id"]] = f"Tuned lens {r['id'][:8]} ({r['steps']} steps{kl})"
    return out


@st.cache_data(show_spinner="Building the prompts…", max_entries=64)
def _needs(spec: Mapping[str, Any], root: str) -> list[LensNeed]:
    return lens_needs(spec, stored_only=True)


def require_lens(spec: Mapping[str, Any], what: str) -> bool:
    """True when every lens readout of `spec` is stored; else an empty state with a Record button per readout."""
    try:
        needs = _needs(dict(spec), str(cache_root()))
        missing = [n for n, got in lens_fetch.lens_status(needs) if got is None]
    except Exception as e:  # noqa: BLE001 - a bad pair, an unconverted model, a missing lens: the user's to fix
        log.info("lens view rejected", exc_info=True)
        st.error(f"{what}: {user_message(e)}", icon=":material/error:")
        return False
    if not missing:
        return True
    n_prompts = sum(len(n.prompts) for n in missing)
    st.info(f"{what} reads the lens readout of {n_prompts} prompt(s) in {len(missing)} state(s); the store does not "
            "have it yet.", icon=":material/info:")
    for n in missing:
        key = lens_fetch.lens_job_of(n)
        job = WARM.get(key)
        if job is None or not job.snapshot().running:
            label = f"Record {n.about.get('unit') or 'the prompts'} ({n.role})"
            if st.button(label, type="primary", icon=":material/fiber_manual_record:", key=f"lens-rec-{key}"):
                lens_fetch.start_lens_need(n)
                st.rerun()
        job_panel(key)
    return False


def tuned_lens_panel(s: Settings) -> None:
    """Train a tuned lens of the Setup's model on the Setup's corpus and languages (a job), and list the saved ones."""
    st.caption("A tuned lens (Belrose et al. 2023) learns one affine translator per layer so that each layer's "
               "decoded distribution matches the final one (KL on ordinary text). It reads the same state; it "
               "does not change the model. Every tenth unit is held out to measure the KL before and after.")
    c = st.columns([1, 1, 2], vertical_alignment="bottom")
    steps = int(c[0].number_input("Steps", 1, 5000, TunedLensSpec().steps, key="lens_steps",
                                  help="Optimiser steps, one batch of sentences each (tuned-lens's default: 250)."))
    limit = c[1].number_input("Units per language", 1, 100_000, value=s.corpus.limit or None, key="lens_limit",
                              placeholder="all", help="The first N units of the corpus (empty: all).")
    corpus = CorpusSpec(source=s.corpus.source, langs=s.corpus.langs, limit=int(limit) if limit else None)
    spec = TunedLensSpec(steps=steps)
    key = train_job_key(s.model, corpus, spec)
    job = WARM.get(key)
    if job is None or not job.snapshot().running:
        if c[2].button(f"Train on {corpus.source} ({', '.join(corpus.langs)})", type="primary",
                       icon=":material/model_training:", key="lens-train"):
            start_tuned_lens(s.model, corpus, spec, rerun_done=True)
            st.rerun()
    snap = job_panel(key)
    if snap is not None and snap.state == "done" and snap.result:
        st.success(f"Tuned lens {snap.result['id']} saved: choose it as the lens above.", icon=":material/check:")
    fp = models.fingerprint(s.model, download=False)
    rows = list_lenses(fp) if fp else []
    if rows:
        st.dataframe(pd.DataFrame([{"id": r["id"], "steps": r["steps"], "held-out KL logit": r["kl_logit"],
                                    "held-out KL tuned": r["kl_tuned"],
                                    "text": f"{(r['data'] or {}).get('corpus')} {(r['data'] or {}).get('langs')}"}
                                   for r in rows]), hide_index=True)
    else:
        st.caption("No tuned lens of this model state is saved yet.")
