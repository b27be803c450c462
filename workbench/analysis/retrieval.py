"""Translation-retrieval accuracy (METHODS.md §1; Mid-align §2, SiLP §5.3, MEXA).

For an ordered language pair (source ``s``, target ``t``) with ``n`` parallel sentences,
rows are L2-normalised and ``C = X_s X_tᵀ`` is the ``(n, n)`` cosine matrix. Row ``i`` is
correct when its gold translation ``i`` wins:

- ``cosine``: ``C[i, i]`` is the strict maximum of row ``i``.
- ``margin``: LASER's xsim (``source/xsim.py``, ratio margin of Artetxe & Schwenk 2019),
  which Mid-align adapts: ``a_s[i]`` = mean of the ``k`` largest entries of row ``i`` of
  ``C``, ``a_t[j]`` = mean of the ``k`` largest entries of column ``j``,
  ``score[i, j] = C[i, j] / ((a_s[i] + a_t[j]) / 2)``. The **candidates** of row ``i`` are
  only its ``k`` nearest targets by cosine; the prediction is the candidate with the
  highest score. So the gold wins when it is among the ``k`` cosine-nearest targets and
  its score strictly beats the score of every other candidate.
- ``margin-all``: the same ratio-margin score, but the argmax runs over **all** ``n``
  targets (a gold outside the cosine top-``k`` can still win). Not LASER's procedure; it
  scores higher (≈2.5 points on Gemma-3-270M/UDHR) and is kept under its own name.
- ``mexa``: ``C[i, i]`` is the strict maximum of both row ``i`` and column ``i``.

Ties count as wrong (they are broken against the gold), so the result does not depend on
row order. For ``margin`` this holds for the candidate set too: the gold is a candidate
only if fewer than ``k`` other targets have a cosine ``>=`` its own, and every other target
whose cosine ties the ``(k-1)``-th largest non-gold cosine is a candidate. (LASER's faiss
search and ``argmax`` break such ties by index order instead, which depends on the order.)
NaN scores (e.g. a zero ratio-margin denominator) also count as wrong.

Everything is computed by one batched core over a stack of similarity matrices, so the
per-layer view scores all language pairs with one matrix product and batched numpy ops
(the single-pair function is the same core with one language on each side).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParamError

__all__ = [
    "METHODS",
    "mexa_summary",
    "mid_align_score",
    "retrieval_accuracy",
    "retrieval_by_layer",
    "retrieval_matrix",
    "summarize_by_layer",
]

METHODS = ("cosine", "margin", "margin-all", "mexa")
"""Names accepted by the ``method`` argument."""

_EPS = 1e-12  # rows with a smaller norm are treated as zero vectors (cosine 0 to all)
_MAX_BLOCK_ELEMENTS = 1 << 25  # similarity entries per batch (256 MiB in float64)


# --------------------------------------------------------------------------- validation


def _check_method(method: str, k: int) -> None:
    if method not in METHODS:
        raise ParamError(f"unknown retrieval method {method!r}; expected one of {METHODS}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParamError(f"k must be a positive integer, got {k!r}")


def _float_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number):
        raise ParamError(f"{name} must be numeric, got dtype {arr.dtype}")
    # float16/int inputs are lifted to float32; float64 stays float64.
    return arr.astype(np.result_type(arr.dtype, np.float32), copy=False)


def _check_languages(vectors: Mapping[str, Any], ndim: int, what: str) -> list[np.ndarray]:
    if len(vectors) < 2:
        raise ParamError(f"need at least 2 languages, got {len(vectors)}")
    arrays = [_float_array(v, f"vectors[{lang!r}]") for lang, v in vectors.items()]
    shape = arrays[0].shape
    for lang, arr in zip(vectors, arrays, strict=True):
        if arr.ndim != ndim:
            raise ParamError(f"vectors[{lang!r}] must be {what}, got shape {arr.shape}")
        if arr.shape != shape:
            raise ParamError(
                f"shape mismatch: vectors[{lang!r}] has shape {arr.shape}, "
                f"first language has {shape}"
            )
    if shape[-2] < 2:
        raise ParamError(f"need at least n=2 parallel sentences, got n={shape[-2]}")
    return arrays


# --------------------------------------------------------------------------- batched core


def _normalize(x: np.ndarray) -> np.ndarray:
    """L2-normalise the last axis; near-zero rows stay (near) zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, _EPS)


def _gram_blocks(n_src: int, n_tgt: int, n: int) -> list[tuple[int, int]]:
    """Source-language blocks ``[(start, stop), …]`` whose similarities fit the budget."""
    # Blocks only bound memory: a typical run (say 8 languages x 500 sentences) is one.
    size = max(1, _MAX_BLOCK_ELEMENTS // (n_tgt * n * n))
    return [(s, min(s + size, n_src)) for s in range(0, n_src, size)]


def _gram(src: np.ndarray, tgt: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Cosines of source languages ``start:stop`` against every target language, one GEMM.

    Returns:
        ``(stop - start, n, n_tgt, n)`` array ``g[s, i, t, j] = src[s, i] · tgt[t, j]``.
    """
    n_tgt, n, d = tgt.shape
    rows = src[start:stop].reshape(-1, d)
    return (rows @ tgt.reshape(-1, d).T).reshape(stop - start, n, n_tgt, n)


def _gold_wins_inplace(g: np.ndarray, *, column_too: bool) -> np.ndarray:
    """Strict gold test on ``(b, n, n_tgt, n)`` scores ``g[s, i, t, j]``.

    Args:
        g: scores; its gold entries ``g[s, i, t, i]`` are overwritten with ``-inf``.
        column_too: also require the gold to beat every other entry of its column.

    Returns:
        ``(b, n, n_tgt)`` bool: ``g[s, i, t, i]`` strictly beats every other entry of its
        row (and column), so a tie with the gold loses, whatever the row order.
    """
    idx = np.arange(g.shape[1])
    gold = g[:, idx, :, idx].transpose(1, 0, 2)  # advanced indices come first: (n, b, t)
    g[:, idx, :, idx] = -np.inf
    wins = gold > g.max(axis=3)
    if column_too:
        wins &= gold > g.max(axis=1).transpose(0, 2, 1)  # column max [s, t, j] -> [s, j, t]
    return wins


def _topk_mean(g: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Mean of the ``k`` largest entries along ``axis`` (which is removed)."""
    n = g.shape[axis]
    top = np.partition(g, n - k, axis=axis)
    return np.take(top, np.arange(n - k, n), axis=axis).mean(axis=axis)


def _margin_scores(g: np.ndarray, k: int) -> np.ndarray:
    """Ratio-margin scores of cosines ``g[s, i, t, j]`` (``(b, n, n_tgt, n)``), same shape."""
    a_s = _topk_mean(g, k, axis=3)  # [s, i, t]: k nearest targets of source i
    a_t = _topk_mean(g, k, axis=1)  # [s, t, j]: k nearest sources of target j
    denom = a_s[:, :, :, None] + a_t[:, None, :, :]
    denom *= 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(g, denom, out=denom)


def _xsim_wins(g: np.ndarray, k: int) -> np.ndarray:
    """LASER xsim on cosines ``g[s, i, t, j]``: the gold wins among the ``k`` cosine-nearest targets.

    Ties go against the gold (module docstring): the gold is a candidate only when the
    ``k``-th largest **other** cosine is strictly below its own, and every other target
    whose cosine reaches the ``(k-1)``-th largest other cosine is a candidate.

    Returns:
        ``(b, n, n_tgt)`` bool.
    """
    n = g.shape[1]
    score = _margin_scores(g, k)
    idx = np.arange(n)
    gold_cos = g[:, idx, :, idx].transpose(1, 0, 2)  # (n, b, t) -> (b, n, t)
    g[:, idx, :, idx] = -np.inf  # only the other targets from here on
    # Ascending partition: position n-m holds the m-th largest other cosine (the gold's
    # -inf sits at position 0, so for k = n the k-th largest "other" is -inf).
    kth = sorted({n - k, n - k + 1} & set(range(n)))
    part = np.partition(g, kth, axis=3)
    kth_other = part[..., n - k]  # [s, i, t]
    is_candidate = gold_cos > kth_other
    if k == 1:
        return is_candidate  # the gold is the only candidate
    bar = part[..., n - k + 1]  # (k-1)-th largest other cosine
    del part
    gold_score = score[:, idx, :, idx].transpose(1, 0, 2)
    score[g < bar[..., None]] = -np.inf  # keep the rivals only (the gold's cosine is -inf now)
    return is_candidate & (gold_score > score.max(axis=3))


def _pair_accuracies(src: np.ndarray, tgt: np.ndarray, method: str, k: int) -> np.ndarray:
    """Accuracy of every (source language, target language) pair, batched over pairs.

    Args:
        src: ``(n_src, n, d)`` L2-normalised source vectors.
        tgt: ``(n_tgt, n, d)`` L2-normalised target vectors.
        method: one of :data:`METHODS`.
        k: margin neighbourhood (already clipped to ``n``).

    Returns:
        ``(n_src, n_tgt)`` accuracies, ``[s, t]`` = source ``s`` -> target ``t``.
    """
    n_src, n, _ = src.shape
    wins = np.empty((n_src, n, tgt.shape[0]), dtype=bool)  # [s, i, t]
    for start, stop in _gram_blocks(n_src, tgt.shape[0], n):
        g = _gram(src, tgt, start, stop)  # [s, i, t, j]
        if method == "margin":
            wins[start:stop] = _xsim_wins(g, k)
            continue
        if method == "margin-all":
            g = _margin_scores(g, k)
        wins[start:stop] = _gold_wins_inplace(g, column_too=method == "mexa")
    return wins.mean(axis=1)


# --------------------------------------------------------------------------- public API


def retrieval_accuracy(
    src: np.ndarray, tgt: np.ndarray, *, method: str = "margin", k: int = 4
) -> float:
    """Translation-retrieval accuracy of ``src`` -> ``tgt``.

    Args:
        src: ``(n, d)`` source sentence vectors; row ``i`` translates ``tgt[i]``.
        tgt: ``(n, d)`` target sentence vectors.
        method: ``"cosine"``, ``"margin"`` (LASER xsim: ratio margin over the ``k``
            cosine-nearest candidates), ``"margin-all"`` (ratio margin over all targets)
            or ``"mexa"`` (strict, bidirectional); see the module docstring.
        k: neighbourhood size of the margin (its averages and, for ``margin``, its
            candidates); clipped to ``n``; ignored by ``cosine`` and ``mexa``.

    Returns:
        Fraction of rows whose prediction is the gold index (chance is ``1/n``).

    Raises:
        ParamError: for non-2-D or mismatched shapes, ``n < 2``, unknown ``method`` or a
            non-positive ``k``.
    """
    _check_method(method, k)
    src_a, tgt_a = _float_array(src, "src"), _float_array(tgt, "tgt")
    if src_a.ndim != 2 or tgt_a.ndim != 2:
        raise ParamError(f"src and tgt must be 2-D (n, d), got {src_a.shape} and {tgt_a.shape}")
    if src_a.shape != tgt_a.shape:
        raise ParamError(f"shape mismatch: src {src_a.shape} vs tgt {tgt_a.shape}")
    n = src_a.shape[0]
    if n < 2:
        raise ParamError(f"need at least n=2 parallel sentences, got n={n}")
    acc = _pair_accuracies(_normalize(src_a)[None], _normalize(tgt_a)[None], method, min(k, n))
    return float(acc[0, 0])


def retrieval_matrix(
    vectors: Mapping[str, np.ndarray], *, method: str = "margin", k: int = 4
) -> pd.DataFrame:
    """Accuracy of every ordered language pair at one layer.

    Args:
        vectors: language code -> ``(n, d)`` vectors, the same ``n`` parallel sentences in
            every language (row ``i`` are translations of each other).
        method: see :func:`retrieval_accuracy`.
        k: see :func:`retrieval_accuracy`.

    Returns:
        ``(n_lang, n_lang)`` DataFrame, index ``src`` and columns ``tgt`` (language codes in
        input order), NaN on the diagonal.
    """
    _check_method(method, k)
    arrays = _check_languages(vectors, 2, "2-D (n, d)")
    stack = _normalize(np.stack(arrays))
    acc = _pair_accuracies(stack, stack, method, min(int(k), stack.shape[1]))
    np.fill_diagonal(acc, np.nan)
    langs = list(vectors)
    return pd.DataFrame(acc, index=pd.Index(langs, name="src"), columns=pd.Index(langs, name="tgt"))


def retrieval_by_layer(
    vectors: Mapping[str, np.ndarray],
    *,
    method: str = "margin",
    k: int = 4,
    pivot: str | None = "en",
    center: bool = False,
    layer_labels: Sequence[int | str] | None = None,
) -> pd.DataFrame:
    """Accuracy of every ordered language pair at every layer (vectorised over pairs).

    Per layer, all languages are normalised once, all pairwise similarity matrices come
    from one matrix product (one per block of source languages when the
    ``(n_lang, n_lang, n, n)`` tensor would exceed ``_MAX_BLOCK_ELEMENTS``), and all
    accuracies from batched numpy ops; there is no Python loop over language pairs.

    Args:
        vectors: language code -> ``(n_layers, n, d)`` pooled vectors; the same ``n``
            parallel sentences and layers for every language.
        method: see :func:`retrieval_accuracy`.
        k: see :func:`retrieval_accuracy`.
        pivot: pivot language, stored in ``df.attrs["pivot"]`` for
            :func:`summarize_by_layer`; must be one of the languages (``None``: no pivot).
        center: subtract each language's mean vector per layer before normalising. This
            is a different variant, recorded in the ``center`` column and attrs.
        layer_labels: ``n_layers`` labels (ints for decoder blocks, ``"emb"`` for the
            embedding output); default ``0 … n_layers-1``.

    Returns:
        Long DataFrame with one row per (layer, src, tgt), ``src != tgt``, columns
        ``layer, src, tgt, accuracy, center``; ``attrs`` hold ``method, k, pivot, center,
        languages``.
    """
    _check_method(method, k)
    arrays = _check_languages(vectors, 3, "3-D (n_layers, n, d)")
    langs = list(vectors)
    if pivot is not None and pivot not in vectors:
        raise ParamError(f"pivot {pivot!r} is not among the languages {langs}")
    n_layers, n, _ = arrays[0].shape
    labels = list(range(n_layers)) if layer_labels is None else list(layer_labels)
    if len(labels) != n_layers:
        raise ParamError(f"{len(labels)} layer_labels for {n_layers} layers")
    k_eff = min(int(k), n)

    n_lang = len(langs)
    src_idx, tgt_idx = np.nonzero(~np.eye(n_lang, dtype=bool))  # ordered pairs, row-major
    acc = np.empty((n_layers, src_idx.size))
    for layer in range(n_layers):
        stack = np.stack([a[layer] for a in arrays])  # (n_lang, n, d)
        if center:
            stack = stack - stack.mean(axis=1, keepdims=True)
        stack = _normalize(stack)
        acc[layer] = _pair_accuracies(stack, stack, method, k_eff)[src_idx, tgt_idx]

    lang_arr = np.asarray(langs, dtype=object)
    df = pd.DataFrame(
        {
            # int64 when every label is a block index; object when "emb" is among them
            "layer": pd.Series(
                np.repeat(np.asarray(labels, dtype=object), src_idx.size)
            ).infer_objects(),
            "src": np.tile(lang_arr[src_idx], n_layers),
            "tgt": np.tile(lang_arr[tgt_idx], n_layers),
            "accuracy": acc.ravel(),
            "center": bool(center),
        }
    )
    df.attrs.update(method=method, k=k_eff, pivot=pivot, center=bool(center), languages=langs)
    return df


def summarize_by_layer(df: pd.DataFrame, pivot: str | None = None) -> pd.DataFrame:
    """Per-layer aggregates of :func:`retrieval_by_layer`'s table.

    Args:
        df: long table with columns ``layer, src, tgt, accuracy`` (and optionally
            ``center``; raw and centred rows are then summarised separately).
        pivot: pivot language; default ``df.attrs["pivot"]``.

    Returns:
        Long DataFrame with columns ``layer, series, accuracy`` (plus ``center`` if
        ``df`` has it), layers in input order. ``series`` is ``"all_pairs"`` (mean over
        all ordered pairs), ``"pivot"`` (mean over pairs with the pivot as source or
        target) or a language code (mean of ``lang -> pivot`` and ``pivot -> lang``).
        ``attrs`` carry ``pivot`` and the input's attrs.

    Raises:
        ParamError: if no pivot is given or it does not occur in ``df``.
    """
    pivot = pivot if pivot is not None else df.attrs.get("pivot")
    if pivot is None:
        raise ParamError("no pivot language given and none in df.attrs['pivot']")
    with_pivot = (df["src"] == pivot) | (df["tgt"] == pivot)
    if not with_pivot.any():
        raise ParamError(f"pivot {pivot!r} does not occur in the retrieval table")
    keys = ["center", "layer"] if "center" in df.columns else ["layer"]

    all_pairs = df.groupby(keys, sort=False)["accuracy"].mean().reset_index()
    all_pairs["series"] = "all_pairs"
    piv = df[with_pivot]
    pivot_mean = piv.groupby(keys, sort=False)["accuracy"].mean().reset_index()
    pivot_mean["series"] = "pivot"
    other = piv.assign(series=np.where(piv["src"] == pivot, piv["tgt"], piv["src"]))
    per_lang = other.groupby([*keys, "series"], sort=False)["accuracy"].mean().reset_index()

    out = pd.concat([all_pairs, pivot_mean, per_lang], ignore_index=True)
    # Order: layers as first seen, then all_pairs, pivot, languages in input order.
    layer_order = {lab: i for i, lab in enumerate(pd.unique(df["layer"]))}
    series_order = {s: i for i, s in enumerate(pd.unique(out["series"]))}
    order = np.lexsort(
        (
            out["series"].map(series_order).to_numpy(),
            out["layer"].map(layer_order).to_numpy(),
            *([out["center"].to_numpy()] if "center" in keys else []),
        )
    )
    out = out.iloc[order].reset_index(drop=True)
    out = out[["layer", "series", "accuracy", *(["center"] if "center" in keys else [])]]
    out.attrs = {**df.attrs, "pivot": pivot}
    return out


def _is_block_layer(label: object) -> bool:
    return isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_))


def mid_align_score(summary: pd.DataFrame, *, final_as_top: bool = False) -> float:
    """Mid-align's single number: mean all-pairs accuracy over its even-numbered layers.

    Mid-align numbers layers from 1 with the embedding output as layer 0, so its layer
    ``m`` is the output of ``m`` blocks, i.e. our block ``m - 1`` (Mid-align App. D.4;
    its code's ``--additional_loss_layer`` counts the same way). Its "even layers,
    excluding the input embedding layer" are ``m = 2, 4, 6, …``: **our blocks 1, 3, 5, …**
    (odd block labels). ``"emb"`` (its layer 0) is excluded.

    Args:
        summary: output of :func:`summarize_by_layer` for one variant (raw or centred).
        final_as_top: Mid-align reads HF ``hidden_states``, whose top entry (its layer
            ``L``) is after the final norm; True uses the ``"final"`` row in place of the
            highest block when the summary has one (and ``L`` is even).

    Returns:
        Mean of the ``"all_pairs"`` accuracy over the blocks ``1, 3, 5, …`` present.

    Raises:
        ParamError: if ``summary`` mixes raw and centred variants or has no odd block.
    """
    if "center" in summary.columns and summary["center"].nunique() > 1:
        raise ParamError("summary mixes centred and raw variants; select one first")
    rows = summary[summary["series"] == "all_pairs"]
    blocks = rows["layer"].map(_is_block_layer).astype(bool)
    even = blocks & rows["layer"].map(lambda lab: _is_block_layer(lab) and (int(lab) + 1) % 2 == 0)
    if not even.any():
        raise ParamError("summary has no even-numbered layer in Mid-align's numbering (our blocks 1, 3, 5, …)")
    acc = rows["accuracy"].where(even)
    if final_as_top and (rows["layer"] == "final").any():
        top = int(rows.loc[blocks, "layer"].max())
        if (top + 1) % 2 == 0:  # the paper's layer L is even: it is the post-norm state
            acc[rows["layer"] == top] = np.nan
            acc[rows["layer"] == "final"] = rows.loc[rows["layer"] == "final", "accuracy"]
    return float(acc.mean())


def mexa_summary(summary: pd.DataFrame, pivot: str = "en") -> dict[str, Any]:
    """MEXA's published numbers: mean and max over layers of the ``mexa`` accuracy against the pivot.

    MEXA aligns every language with English (the pivot) and reports, per language and for
    the model, the mean and the max over layers of that per-layer score. Use it on the
    summary of a ``method="mexa"`` table (MEXA's own pipeline: weighted pooling over all
    tokens and HF ``hidden_states``, i.e. the ``mexa`` preset, whose retrieval summary runs
    over exactly the HF layers ``emb, 0 … L−2, final``).

    Two "max" are returned, and they differ: ``max`` is the **peak of the language-averaged
    curve** (the pivot series: one layer for every language), and ``language_max`` is the
    **mean over languages of each language's own best layer** (MEXA's code scores each
    language per layer, ``compute_mexa.py``, and its "max pooling over layers" is taken per
    language; averaging those over languages gives ``language_max``). ``language_max >=
    max`` always. The mean needs no such care: the mean over layers of the language-averaged
    curve equals the mean over languages of each language's mean (the criterion is
    symmetric, so the pivot series is the mean of the language series).

    Args:
        summary: output of :func:`summarize_by_layer` for one variant; its ``"pivot"``
            series (mean over pairs with the pivot in either direction) is the per-layer
            curve, and each language series the curve of that language.
        pivot: the pivot language; must be the summary's pivot.

    Returns:
        ``{"pivot", "layers": [...], "curve": [...], "mean", "max", "argmax",
        "language_max", "per_language": {lang: {"mean", "max", "argmax"}}}``;
        ``layers``/``curve`` in the summary's layer order; ``max``/``argmax``: the peak of
        the curve and its layer (first on ties); ``language_max``: the mean of the
        languages' ``max`` (NaN without language series).

    Raises:
        ParamError: if the summary mixes variants, has another pivot or no pivot rows.
    """
    if "center" in summary.columns and summary["center"].nunique() > 1:
        raise ParamError("summary mixes centred and raw variants; select one first")
    if summary.attrs.get("pivot", pivot) != pivot:
        raise ParamError(f"summary was made with pivot {summary.attrs['pivot']!r}, not {pivot!r}")
    curve = summary[summary["series"] == "pivot"]
    if curve.empty:
        raise ParamError("summary has no 'pivot' rows; build it with summarize_by_layer")

    def agg(rows: pd.DataFrame) -> dict[str, Any]:
        acc = rows["accuracy"].to_numpy(dtype=np.float64)
        best = int(np.argmax(acc))  # first layer on ties
        return {"mean": float(acc.mean()), "max": float(acc[best]), "argmax": rows["layer"].iloc[best]}

    langs = [s for s in pd.unique(summary["series"]) if s not in ("all_pairs", "pivot")]
    per = {lang: agg(summary[summary["series"] == lang]) for lang in langs}
    language_max = float(np.mean([v["max"] for v in per.values()])) if per else float("nan")
    return {"pivot": pivot, "layers": curve["layer"].tolist(), "curve": curve["accuracy"].tolist(),
            **agg(curve), "language_max": language_max, "per_language": per}
