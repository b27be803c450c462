"""Before/after tables for two model states (METHODS.md §7): side by side and as a difference.

A model state is a base model plus an optional fine-tune artifact (`ModelSpec(artifact=…)`);
its fingerprint covers the artifact, so each state's recordings are separate store entries.

- `tuned_states`: the states made by finished fine-tune jobs, for every model picker.
- `job_model_spec`, `same_base`: which states a fine-tune can start from and compare with.
- `retrieval_compare`, `sensitivity_compare`, `overlap_compare`, `separation_compare`,
  `retrieval_matrix_compare`, `map_compare`: the `recipes.tables` of two
  recordings joined by their keys.
- `eval_compare`: held-out translation loss in both directions and pivot perplexity
  (`workbench.evaluation.losses`) of two loaded states.

Every before/after table is long: the view's key columns (``layer``, ``series``, ``lang``,
…), ``measure``, ``a``, ``b`` and ``diff = b − a``. Nothing here re-implements a metric;
no Streamlit (HOUSE_STYLE 1).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench import models
from workbench.config import ModelSpec
from workbench.errors import JobError
from workbench.evaluation.losses import evaluate_state
from workbench.examples import DataSpec, build_split
from workbench.jobs import processes
from workbench.recipes import tables as views

log = logging.getLogger(__name__)

__all__ = [
    "METHOD_NAMES",
    "eval_compare",
    "job_model_spec",
    "map_compare",
    "overlap_compare",
    "retrieval_compare",
    "retrieval_matrix_compare",
    "same_base",
    "sensitivity_compare",
    "separation_compare",
    "side_by_side",
    "tuned_states",
]

METHOD_NAMES = {"silp": "SiLP", "midalign": "Mid-align", "lens": "LENS", "cctuning": "CC-Tuning"}


# --------------------------------------------------------------------------- model states


def job_model_spec(model: ModelSpec) -> ModelSpec:
    """The base a fine-tune job trains (jobs train a base model only).

    Raises:
        JobError: `model` is already a tuned state.
    """
    if model.artifact:
        raise JobError("a tuned state cannot be fine-tuned further; choose its base model")
    return model


def same_base(a: ModelSpec, b: ModelSpec) -> bool:
    """True when two states share their base model."""
    return (models.normalize(a).source, a.revision) == (models.normalize(b).source, b.revision)


def _pivot_of(method: str, spec: dict[str, Any]) -> str | None:
    """The pivot a job evaluates with (as `finetune.runner` does): SiLP's D, Mid-align's first, LENS's central."""
    return {"silp": spec.get("tgt"), "midalign": spec.get("src"), "lens": spec.get("central"),
            "cctuning": spec.get("pivot")}.get(method)


def tuned_states() -> list[dict[str, Any]]:
    """The model states made by finished fine-tune jobs, newest first.

    Returns:
        One dict per job that is done and whose artifact is readable: ``label``,
        ``source`` (base model), ``artifact`` (path), ``method``, ``job_id``,
        ``model`` (the state's ModelSpec dict, artifact included), ``languages``,
        ``data`` (the job's DataSpec dict: its held-out split is what `eval_compare`
        scores), ``pivot``, ``created``.
    """
    out = []
    for job in processes.list_jobs():
        if job.get("state") != "done" or not job.get("artifact"):
            continue
        path = Path(job["artifact"])
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            spec = ModelSpec.from_dict({**(manifest.get("base_model") or {}), "artifact": str(path)})
        except (OSError, ValueError, TypeError) as e:  # a deleted or foreign artifact: skip, say why
            log.warning("skipping job %s: unreadable artifact %s (%s)", job["id"], path, e)
            continue
        method = str(job.get("method") or manifest.get("method"))
        langs = [str(x) for x in manifest.get("languages") or []]
        created = str(job.get("created") or manifest.get("created") or "")[:16].replace("T", " ")
        label = (f"{METHOD_NAMES.get(method, method)} {'/'.join(langs)} on {Path(spec.source).name} "
                 f"· {created} · {job['id'][-6:]}")
        out.append({"label": label, "source": spec.source, "artifact": str(path), "method": method,
                    "job_id": job["id"], "model": spec.to_dict(), "languages": langs,
                    "data": manifest.get("data"), "pivot": _pivot_of(method, manifest.get("spec") or {}),
                    "created": created})
    return out


# --------------------------------------------------------------------------- before/after tables


def side_by_side(a: pd.DataFrame, b: pd.DataFrame, keys: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Join two tables of the same view: long, with ``measure, a, b, diff = b − a``.

    Rows keep `a`'s order; rows only in `b` follow (with ``a`` NaN). Values are float64,
    so ``diff`` is exactly ``b − a`` and identical inputs give exactly 0 (NaN stays NaN).

    Args:
        a: the view's table for state A.
        b: the same view's table for state B.
        keys: columns identifying a row (``layer``, ``series``, ``lang``, …).
        values: the numeric columns to compare (one ``measure`` each).
    """
    keys = list(keys)
    on = [*keys, "measure"]
    la = a.melt(id_vars=keys, value_vars=list(values), var_name="measure", value_name="a")
    lb = b.melt(id_vars=keys, value_vars=list(values), var_name="measure", value_name="b")
    # Layer labels mix "emb" and ints: a left merge keeps a's order (an outer one would sort them).
    out = la.merge(lb, on=on, how="left")
    only_b = lb.merge(la[on], on=on, how="left", indicator=True)
    only_b = only_b[only_b["_merge"] == "left_only"].drop(columns="_merge")
    if len(only_b):
        out = pd.concat([out, only_b.assign(a=np.nan)[out.columns]], ignore_index=True)
    out["a"] = out["a"].astype(np.float64)
    out["b"] = out["b"].astype(np.float64)
    out["diff"] = out["b"] - out["a"]
    return out


def retrieval_compare(rec_a: Any, rec_b: Any, pooling: str, *, method: str = "margin", k: int = 4,
                      pivot: str = "en", center: bool = False) -> pd.DataFrame:
    """Retrieval accuracy by layer (`views.retrieval_tables` summary): layer, series, measure, a, b, diff."""
    _, sa = views.retrieval_tables(rec_a, pooling, method=method, k=k, pivot=pivot, center=center)
    _, sb = views.retrieval_tables(rec_b, pooling, method=method, k=k, pivot=pivot, center=center)
    keys = ["center", "layer", "series"] if "center" in sa.columns else ["layer", "series"]
    out = side_by_side(sa, sb, keys, ["accuracy"])
    out.attrs.update(method=method, pivot=pivot, k=k, pooling=pooling)
    return out


def sensitivity_compare(pair_a: Any, pair_b: Any, unit: str, variant: str = "paper") -> pd.DataFrame:
    """SiLP projection sensitivity of one direction (`views.sensitivity_scores`): layer, measure, a, b, diff."""
    scores = (views.sensitivity_scores(pair_a, unit, variant), views.sensitivity_scores(pair_b, unit, variant))
    frames = [pd.DataFrame({"layer": range(len(s)), "sensitivity": np.asarray(s, np.float64)}) for s in scores]
    out = side_by_side(frames[0], frames[1], ["layer"], ["sensitivity"])
    out.attrs.update(unit=unit, variant=variant)
    return out


def overlap_compare(rec_a: Any, rec_b: Any, pivot: str, langs: Sequence[str], *, top_frac: float) -> pd.DataFrame:
    """Neuron overlap with the pivot (`views.overlap_table`): layer, lang, measure (jaccard, pivot_frac), a, b, diff."""
    ta = views.overlap_table(rec_a, pivot, langs, top_frac=top_frac)
    tb = views.overlap_table(rec_b, pivot, langs, top_frac=top_frac)
    out = side_by_side(ta, tb, ["layer", "lang"], ["jaccard", "pivot_frac"])
    out.attrs.update(pivot=pivot, top_frac=top_frac)
    return out


def separation_compare(rec_a: Any, rec_b: Any, pooling: str, *, rank: int | None, central: str,
                       holdout: bool) -> pd.DataFrame:
    """Subspace separation by layer (`views.separation_table`): layer, measure, a, b, diff.

    Measures: ``agnostic_ratio``, ``specific_ratio`` and ``direction_norm_<lang>``.
    """
    ta = views.separation_table(rec_a, pooling, rank=rank, central=central, holdout=holdout)
    tb = views.separation_table(rec_b, pooling, rank=rank, central=central, holdout=holdout)
    values = [c for c in ta.columns if c != "layer"]
    out = side_by_side(ta, tb, ["layer"], values)
    out.attrs.update(central=ta.attrs.get("central", central), rank=rank, holdout=holdout)
    return out


def retrieval_matrix_compare(rec_a: Any, rec_b: Any, pooling: str, layer: Any, *, method: str = "margin",
                             k: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Language × language retrieval at one layer (`views.retrieval_matrix_at`): (A, B, B − A)."""
    ma = views.retrieval_matrix_at(rec_a, pooling, layer, method=method, k=k)
    mb = views.retrieval_matrix_at(rec_b, pooling, layer, method=method, k=k)
    return ma, mb, mb.astype(np.float64) - ma.astype(np.float64)


def map_compare(rec_a: Any, rec_b: Any, corpus: Any, pooling: str, layer: Any, *, method: str = "pca",
                random_state: int = 0) -> pd.DataFrame:
    """2-D maps of one layer for both states (`views.map_points`), stacked with a ``state`` column ('a', 'b').

    Each state's map is its own projection (axes are not comparable point by point; a
    difference of maps is not defined), so only the layouts are compared.
    """
    pa = views.map_points(rec_a, corpus, pooling, layer, method=method, random_state=random_state)
    pb = views.map_points(rec_b, corpus, pooling, layer, method=method, random_state=random_state)
    return pd.concat([pa.assign(state="a"), pb.assign(state="b")], ignore_index=True)


# --------------------------------------------------------------------------- held-out loss and perplexity


def _metric_row(name: str) -> dict[str, str]:
    """``loss_en>sw`` -> translation loss en → sw; ``ppl_en`` -> perplexity of en."""
    if name.startswith("loss_"):
        src, _, tgt = name[len("loss_"):].partition(">")
        return {"kind": "translation loss", "what": f"{src} → {tgt}"}
    if name.startswith("ppl_"):
        return {"kind": "perplexity", "what": name[len("ppl_"):]}
    return {"kind": name, "what": ""}


def eval_compare(state_a: Any, state_b: Any, data: Any, languages: Sequence[str], *, pivot: str = "en",
                 max_items: int | None = 64) -> pd.DataFrame:
    """Held-out translation loss (both directions) and pivot perplexity of two states.

    Args:
        state_a: loaded ModelState A.
        state_b: loaded ModelState B.
        data: the DataSpec (or its dict) whose held-out split is scored, e.g. the tuned
            job's own, so the units were never trained on.
        languages: the split's languages (pivot included).
        pivot: the perplexity language and one side of every direction.
        max_items: held-out units scored per direction.

    Returns:
        One row per metric (``loss_<src>><tgt>`` in nats per target token, ``ppl_<pivot>``):
        measure, kind, what, a, b, diff (= b − a; negative = B is better).
    """
    spec = data if isinstance(data, DataSpec) else DataSpec.from_dict(dict(data))
    split = build_split(spec, list(languages))
    ea = evaluate_state(state_a, split, pivot=pivot, max_items=max_items)
    eb = evaluate_state(state_b, split, pivot=pivot, max_items=max_items)
    rows = [{"measure": m, **_metric_row(m), "a": float(ea[m]), "b": float(eb.get(m, np.nan))} for m in ea]
    out = pd.DataFrame(rows, columns=["measure", "kind", "what", "a", "b"])
    out["diff"] = out["b"] - out["a"]
    out.attrs.update(pivot=pivot, n_heldout=len(split.heldout), data_hash=split.data_hash)
    return out
