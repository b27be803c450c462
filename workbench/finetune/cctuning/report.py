"""CC-Tuning's held-out numbers: FFN output pairs, the Transform Matrix fit, |Δ| and the selected layers.

The selected layers (Fig. 8) and |Δ| (Table 2) are measured in both inference modes of a
state (`models.hooks.cctuning`): the seeded hard Gumbel sample (its default, the authors')
and the deterministic argmax; the report's top-level `gap`, `agree` and `selected` are the
default mode's, `modes` holds both, and `layer_distribution` has a `mode` column.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from workbench.analysis.cctuning import (
    fit_transform_matrix,
    layer_distribution,
    parallel_gap,
    transform_fit_curve,
    transform_mse,
)
from workbench.examples import IGNORE, Example, collate, scoring_batches
from workbench.finetune.cctuning.examples import CCExample, collate_cc
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.models.hooks.cctuning import cctuning_forward, ffn_outputs

log = logging.getLogger(__name__)

__all__ = ["MODES", "cctuning_evaluate", "collect_ffn_pairs", "fit_and_report", "mode_distribution"]


def _score(logits: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: summed NLL of the labelled tokens, top-1 hits, token count."""
    lg, lb = logits[:, :-1].float(), labels[:, 1:].to(logits.device)  # the LM head may sit on a later GPU
    mask = lb != IGNORE
    nll = F.cross_entropy(lg.transpose(1, 2), lb.clamp(min=0), reduction="none") * mask
    hits = (lg.argmax(-1) == lb) & mask
    return nll.sum(1).cpu().numpy(), hits.sum(1).cpu().numpy(), mask.sum(1).cpu().numpy()


def collect_ffn_pairs(model: Any, arch: Any, examples: Sequence[CCExample], pad_id: int,
                      batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """`(A, B)`: `(N, L, d)` float32 FFN outputs at the connection position of `x` and of `x^en` (no connection).

    Rows in the order of `examples`. Each of the two passes is grouped by the tokens it
    feeds (`x` up to its connection position, the whole English prompt) with
    `examples.scoring_batches` (budget `batch_size` x the longest), so the
    vectors equal those of any other batching to float rounding.
    """
    dev = next(model.parameters()).device
    n = len(examples)
    out: list[np.ndarray | None] = [None, None]
    en = [Example(e.en, e.en, tuple(True for _ in e.en)) for e in examples]
    passes = ((0, [e.x for e in examples], [e.pos for e in examples]),
              (1, en, [len(e.en) - 1 for e in examples]))
    with torch.no_grad():
        for k, seqs, pos in passes:
            for idx in scoring_batches([p + 1 for p in pos], batch_size=batch_size):
                b = collate([seqs[i] for i in idx], pad_id, dev)
                f = ffn_outputs(model, arch, b["input_ids"], b["attention_mask"],
                                torch.tensor([pos[i] for i in idx], dtype=torch.long, device=dev))
                rows = f.float().cpu().numpy()
                if out[k] is None:
                    out[k] = np.zeros((n, *rows.shape[1:]), np.float32)
                out[k][idx] = rows  # type: ignore[index]  # allocated just above
    if out[0] is None or out[1] is None:
        raise ValueError("collect_ffn_pairs: no examples")
    return out[0], out[1]


MODES: dict[str, dict[str, Any]] = {"gumbel": {"decide": "gumbel", "seed": 0}, "argmax": {"decide": "argmax"}}
"""The Decision Maker's inference modes the report measures: a state's default (the authors') and the argmax."""


def cctuning_evaluate(state: Any, w_dm: torch.Tensor, w_t: torch.Tensor, examples: Sequence[CCExample], *,
                      embed: str = "position", batch_size: int = 4, f_en: np.ndarray | None = None,
                      modes: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Held-out numbers of Table 2 and Fig. 8: vanilla vs real-English vs `W_T` connection, per inference mode.

    Args:
        state: the tuned state (`.model`, `.arch`, `.tokenizer`).
        w_dm: `(d, L)` Decision Maker.
        w_t: `(d, d)` Transform Matrix.
        examples: held-out examples (responses are scored teacher-forced).
        embed: how `e` is read (the spec's `embed`).
        batch_size: examples per forward pass at the longest length (`scoring_batches`' budget).
        f_en: optional `(N, L, d)` English FFN outputs already collected for `examples`.
        modes: name -> `cctuning_forward` options (`decide`, `seed`); default `MODES` (the
            seeded Gumbel sample a state runs by default, then the deterministic argmax).

    Returns:
        `modes`: per mode `{"gap", "selected", "agree"}`: `gap` (parallel_gap of 'vanilla'
        (no connection), 'english', 'transform'), `selected` (`{"english": [...],
        "transform": [...]}`), `agree` (fraction of examples where both choose the same
        layer); the first mode's three again at the top level; `n` (examples).
    """
    modes = dict(modes or MODES)
    model, arch = state.model, state.arch
    dev = next(model.parameters()).device
    if f_en is None:
        f_en = collect_ffn_pairs(model, arch, examples, state.tokenizer.pad_token_id)[1]
    kinds = ("vanilla", "english", "transform")
    n = len(examples)
    nll = {(m, k): np.zeros(n, np.float32) for m in modes for k in kinds}
    hits = {(m, k): np.zeros(n, np.int64) for m in modes for k in kinds}
    sel = {(m, k): np.zeros(n, np.int64) for m in modes for k in ("english", "transform")}
    toks = np.zeros(n, np.int64)
    with torch.no_grad():
        # grouped by length like the other scoring loops; results go back to input order
        for idx in scoring_batches([len(e.x.ids) for e in examples], batch_size=batch_size):
            cb = collate_cc([examples[i] for i in idx], state.tokenizer.pad_token_id, dev)
            fe = torch.as_tensor(f_en[idx], device=dev, dtype=state.model.dtype)
            vanilla = model(input_ids=cb.x["input_ids"], attention_mask=cb.x["attention_mask"], use_cache=False).logits
            for m, opts in modes.items():
                logits = {"vanilla": vanilla}
                for k, real in (("english", fe), ("transform", None)):
                    out = cctuning_forward(state, w_dm, w_t, cb.x, positions=cb.pos, embed=embed, f_en=real, **opts)
                    logits[k] = out.logits
                    sel[m, k][idx] = out.selected.cpu().numpy()
                for k in kinds:
                    nll[m, k][idx], hits[m, k][idx], toks[idx] = _score(logits[k], cb.x["labels"])
    per = {}
    for m in modes:
        gap = parallel_gap({k: nll[m, k] for k in kinds}, {k: hits[m, k] for k in kinds}, toks)
        per[m] = {"gap": gap, "selected": {k: sel[m, k].tolist() for k in ("english", "transform")},
                  "agree": float(np.mean(sel[m, "english"] == sel[m, "transform"]))}
    first = per[next(iter(modes))]
    return {**first, "modes": per, "n": n}


def mode_distribution(ev: Mapping[str, Any], n_layers: int) -> Any:
    """Fig. 8 for every mode of `cctuning_evaluate`: `layer_distribution` rows with a `mode` column."""
    frames = [layer_distribution({"English input": r["selected"]["english"],
                                  "Transform Matrix": r["selected"]["transform"]}, n_layers).assign(mode=m)
              for m, r in ev["modes"].items()]
    return pd.concat(frames, ignore_index=True)


def _nan_to_none(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in records]


def fit_and_report(state: Any, w_dm: torch.Tensor, train_ex: Sequence[CCExample], held_ex: Sequence[CCExample],
                   spec: CCTuningSpec) -> tuple[torch.Tensor, dict[str, Any]]:
    """After training: fit `W_T` on `min(wt_pairs, N)` training pairs, then the Fig. 5 / Fig. 8 / Table 2 numbers.

    Returns:
        `(W_T (d, d) float32, report)`; the report is JSON-ready (it goes into the manifest).
    """
    model, arch = state.model, state.arch
    pad = state.tokenizer.pad_token_id
    n = min(spec.wt_pairs, len(train_ex))
    log.info("fitting the Transform Matrix on %d parallel pairs", n)
    a, b = collect_ffn_pairs(model, arch, train_ex[:n], pad)
    w_t = fit_transform_matrix(a, b)
    held = list(held_ex[: spec.eval_items] if spec.eval_items is not None else held_ex)
    log.info("held-out report on %d examples (fit curve, |Δ|, selected layers)", len(held))
    a_h, b_h = collect_ffn_pairs(model, arch, held, pad)
    curve = transform_fit_curve(a, b, a_h, b_h, points=spec.curve_points)
    w_t_t = torch.as_tensor(w_t, dtype=torch.float32)
    ev = cctuning_evaluate(state, w_dm, w_t_t, held, embed=spec.embed, f_en=b_h)
    n_layers = a.shape[1]
    dist = mode_distribution(ev, n_layers)
    report = {"n_layers": n_layers, "d_model": int(a.shape[2]), "wt_pairs": n, "n_eval": ev["n"],
              "fit_mse": transform_mse(a, b, w_t),
              "heldout_mse": transform_mse(a_h, b_h, w_t), "identity_mse": transform_mse(a_h, b_h, None),
              "fit_curve": _nan_to_none(curve.to_dict("records")), "layer_distribution": dist.to_dict("records"),
              "inference": {"embed": spec.embed, **MODES["gumbel"]},  # what gap/agree/selected were measured with
              "gap": ev["gap"], "agree": ev["agree"], "selected": ev["selected"], "modes": ev["modes"]}
    return w_t_t, report
