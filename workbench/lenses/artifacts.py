"""Saved tuned lenses: artifacts of their base model under the cache, content-addressed, listed, resolved.

A tuned lens (`lenses.tuned.TunedLens`) is saved once under ``<cache>/lenses/<id>/`` where
``id`` is the fingerprint of its translator tensors (`TunedLens.fingerprint`), so the same
translators are one artifact however often they are saved, and an id names exactly one set
of numbers. The directory is `save_tuned_lens`'s (``translators.safetensors`` and
``tuned-lens.json``, which holds the base model's fingerprint, the training spec and its
metrics) and is written into a temporary sibling and renamed into place, so a reader never
sees half a lens.

Every lens view takes ``lens = "logit"`` or one of these ids (`lens_label` is the store key's
part); `check_lens` compares a lens's base fingerprint with a model state's without loading
either.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from workbench.errors import ArtifactError, ParamError
from workbench.lenses.tuned import MANIFEST, TunedLens, load_tuned_lens, save_tuned_lens
from workbench.models import ModelState
from workbench.paths import cache_root

__all__ = ["LOGIT", "check_lens", "lens_dir", "lens_label", "lens_manifest", "lenses_root", "list_lenses",
           "load_lens", "save_lens"]

LOGIT = "logit"
"""The `lens` value of the logit lens (no translators)."""
_ID = re.compile(r"[0-9a-f]{16}")


def lenses_root() -> Path:
    """``<cache>/lenses`` (follows ``WORKBENCH_CACHE``)."""
    return cache_root() / "lenses"


def _check_id(lens_id: str) -> str:
    if not isinstance(lens_id, str) or not _ID.fullmatch(lens_id):
        raise ParamError(f"lens must be 'logit' or a tuned-lens id (16 hex digits, `workbench lens ls`); "
                         f"got {lens_id!r}")
    return lens_id


def lens_dir(lens_id: str) -> Path:
    """The directory of a saved tuned lens (whether or not it exists)."""
    return lenses_root() / _check_id(lens_id)


def lens_manifest(lens_id: str) -> dict[str, Any]:
    """The manifest (``tuned-lens.json``) of a saved tuned lens.

    Raises:
        ParamError: not an id. ArtifactError: no such lens, or a damaged manifest.
    """
    d = lens_dir(lens_id)
    try:
        m = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"no tuned lens {lens_id} under {lenses_root()} (`workbench lens ls` lists them; "
                            "`workbench lens train` makes one)") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{d / MANIFEST} cannot be read ({e})") from e
    if not isinstance(m, dict) or m.get("kind") != "tuned_lens" or m.get("fingerprint") != lens_id:
        raise ArtifactError(f"{d / MANIFEST} is not the manifest of tuned lens {lens_id}")
    return m


def lens_label(lens: str) -> str:
    """The readout's name of a lens choice: ``"logit"`` or ``"tuned:<id>"`` (what `lens_readout` writes)."""
    return LOGIT if lens == LOGIT else f"tuned:{_check_id(lens)}"


def check_lens(lens: str, fingerprint: str | None) -> None:
    """Raise unless `lens` can read the state of `fingerprint` (None: not known yet; only the id is checked).

    Raises:
        ParamError: a malformed lens value. ArtifactError: no such lens, or one of another base state.
    """
    if lens == LOGIT:
        return
    m = lens_manifest(lens)
    if fingerprint is not None and m.get("base_fingerprint") != fingerprint:
        raise ArtifactError(f"tuned lens {lens} was trained on {m.get('base_name') or 'another model'} "
                            f"({m.get('base_fingerprint')}), not on this state ({fingerprint}); train one for it")


def save_lens(lens: TunedLens) -> str:
    """Save a tuned lens under its id (the translators' fingerprint); an existing one is kept. Returns the id."""
    lens_id = lens.fingerprint
    final = lenses_root() / lens_id
    if (final / MANIFEST).is_file():
        return lens_id
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        save_tuned_lens(lens, tmp)
        try:
            os.replace(tmp, final)
        except OSError:  # another process saved the same translators first: keep theirs
            if not (final / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return lens_id


def load_lens(lens_id: str, state: ModelState) -> TunedLens:
    """The saved tuned lens `lens_id`, checked against `state` (tensors' checksum and base fingerprint)."""
    return load_tuned_lens(lens_dir(lens_id), state)


def list_lenses(base_fingerprint: str | None = None) -> list[dict[str, Any]]:
    """One row per saved tuned lens (of one base state, if given), newest first.

    Rows: ``id``, ``base_fingerprint``, ``base_name``, ``steps``, ``kl_logit`` and ``kl_tuned``
    (mean held-out KL to the final layer over the translated layers, nats; None if not
    measured), ``data`` (what it was trained on), ``created`` (the manifest's mtime), ``path``.
    Unreadable directories are left out.
    """
    root = lenses_root()
    rows = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not _ID.fullmatch(d.name):
            continue
        try:
            m = lens_manifest(d.name)
        except ArtifactError:
            continue
        if base_fingerprint is not None and m.get("base_fingerprint") != base_fingerprint:
            continue
        metrics = m.get("metrics") or {}
        rows.append({"id": d.name, "base_fingerprint": m.get("base_fingerprint"), "base_name": m.get("base_name"),
                     "steps": (m.get("spec") or {}).get("steps"), "kl_logit": _mean(metrics.get("heldout_kl_logit")),
                     "kl_tuned": _mean(metrics.get("heldout_kl_tuned")), "data": metrics.get("data"),
                     "created": (d / MANIFEST).stat().st_mtime, "path": str(d)})
    return sorted(rows, key=lambda r: -r["created"])


def _mean(values: Any) -> float | None:
    if not isinstance(values, list) or not values:
        return None
    return float(sum(values) / len(values))
