"""Resolve an intervention request to its tensors: LAPE neurons, mean activations, language vectors, LENS's basis.

`resolve_spec(model, corpus=..., record=...)` turns every unresolved `InterventionSpec` of
`model.interventions` into a concrete one: its tensors computed from the *base* state (the
model without its interventions) and the recording of `corpus` (recorded once, store
first), written content-addressed (`models.interventions.save_tensors`), and its `source`
extended with where they came from (`recording`: the hash of the recording's fingerprint,
corpus and record spec; the analysis parameters). Sources (keys of `requests.SOURCE_KEYS`):

- neurons `lang=X`: X's LAPE neurons (`analysis.overlap.language_specific_neurons` over the
  corpus languages, `entropy_quantile`, `prob_quantile`); `random=SEED` with `lang=X`: as
  many neurons per layer as X's set, drawn uniformly (the deactivation control; `lang=mean`:
  the languages' mean size per layer, rounded);
  `file=...neuron.pth` (+ `index=K` or `lang=X, file_langs=a+b+...`): a RUCAIBox mask;
  mode mean: the mean activation of `mean_lang` (default X) over its corpus sentences
  (counted tokens: no special tokens, no padding), by one forward pass with hooks.
- vector `src=`/`tgt=`: `v_L^l` = mean over L's sentences of their mean-pooled `h_l` from
  the recording (`lens=true`: LENS's language expression direction `δ_L = U_s U_sᵀ (m_L −
  m_c)` instead, `central=` c, default English). METHODS §10 says the mean over tokens; the recording keeps per-sentence
  means, so each sentence weighs equally here (the same when sentences are equally long).
- subspace `lang=`/`tgt=`: LENS's language-specific basis `U_s` (rank `rank`, default
  n − 1) of the corpus languages' mean vectors per layer, μ = their centre, and the
  target's mean for `swap`.
- any kind `file=...safetensors`: the tensors of a user file (names `layer.<l>.<what>`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from workbench import models
from workbench.analysis.overlap import language_specific_neurons
from workbench.analysis.subspace import language_subspace
from workbench.config import CorpusSpec, InterventionSpec, ModelSpec, RecordSpec, stable_hash
from workbench.corpus import load_corpus
from workbench.errors import ParamError
from workbench.examples import collate
from workbench.examples.encode import encode_texts
from workbench.interventions.neuron_pth import language_index, read_neuron_pth
from workbench.models.architectures import get_path
from workbench.models.interventions import KINDS, save_tensors
from workbench.progress import Progress, StatusFn
from workbench.recordings import Recording, ensure_recording

__all__ = ["lape_sets", "neuron_means", "corpus_of", "resolve_one", "resolve_spec"]


@dataclasses.dataclass
class _Sources:
    """What resolving needs, fetched at most once per call: the base spec, its recording."""

    base: ModelSpec
    corpus: CorpusSpec
    record: RecordSpec
    progress: Progress | None
    status: StatusFn | None
    _rec: Recording | None = None

    def recording(self) -> Recording:
        if self._rec is None:
            self._rec = ensure_recording(self.base, self.corpus, self.record, progress=self.progress,
                                         status=self.status)
        return self._rec

    def recording_id(self) -> str:
        return stable_hash({"state": models.fingerprint(self.base), "corpus": self.corpus.to_dict(),
                            "record": self.record.to_dict()})


def lape_sets(rec: Recording, langs: Sequence[str], *, entropy_quantile: float = 0.01,
              prob_quantile: float = 0.95) -> dict[str, dict[int, list[int]]]:
    """Language -> block -> its LAPE neurons (METHODS §3), from a recording's activation counts."""
    probs = rec.activation_probs()
    df = language_specific_neurons({x: probs[x] for x in langs}, entropy_quantile=entropy_quantile,
                                   prob_quantile=prob_quantile)
    out: dict[str, dict[int, list[int]]] = {x: {} for x in langs}
    for layer, neuron, lang in zip(df["layer"], df["neuron"], df["lang"]):
        out[str(lang)].setdefault(int(layer), []).append(int(neuron))
    return out


def neuron_means(state: Any, texts: Sequence[str], *, max_length: int = 256, batch_size: int = 8) -> torch.Tensor:
    """`(L, M)` mean activation `A = act(gate(x))` of each neuron over the counted tokens of `texts`.

    Counted tokens: real tokens that are not special (as the recording counts by default).
    """
    blocks = get_path(state.model, state.arch.layers)
    sums = torch.zeros(len(blocks), state.n_neurons, dtype=torch.float64)
    mask_box: list[torch.Tensor] = []
    hooks = []
    for i, block in enumerate(blocks):
        def hook(_m: Any, _a: Any, out: torch.Tensor, i: int = i) -> None:
            sums[i] += (out.double() * mask_box[0][..., None]).sum(dim=(0, 1)).cpu()
        hooks.append(get_path(block, state.arch.act).register_forward_hook(hook))
    tok = state.tokenizer
    special = set(tok.all_special_ids)
    examples = encode_texts(tok, list(texts), max_length)
    n = 0
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                batch = collate(examples[start:start + batch_size], tok.pad_token_id)
                ids, att = batch["input_ids"].to(state.device), batch["attention_mask"].to(state.device)
                keep = att.bool() & ~torch.isin(ids, torch.tensor(sorted(special), device=ids.device))
                mask_box[:] = [keep.to(state.dtype)]
                n += int(keep.sum())
                state.model(input_ids=ids, attention_mask=att, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return (sums / max(n, 1)).float()


def _neurons(iv: InterventionSpec, src: dict[str, Any], s: _Sources) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    info: dict[str, Any] = {}
    if "file" in src:
        masks = read_neuron_pth(src["file"])
        sets = {i: t.tolist() for i, t in enumerate(masks[language_index(src, len(masks))])}
    else:
        if "lang" not in src:
            raise ParamError("--intervention neurons: give lang=X (its LAPE neurons), with random=SEED for the "
                             "control, or file=...neuron.pth")
        rec = s.recording()
        eq, pq = float(src.get("entropy_quantile", 0.01)), float(src.get("prob_quantile", 0.95))
        control = src["lang"] == "mean" and "random" in src  # the control of a matrix: the languages' mean size
        if src["lang"] not in rec.entries and not control:
            raise ParamError(f"--intervention neurons: {src['lang']!r} is not among the corpus languages "
                             f"{list(rec.entries)} (--langs)")
        every = lape_sets(rec, list(rec.entries), entropy_quantile=eq, prob_quantile=pq)
        sets = every[str(src["lang"])] if not control else {
            layer: [0] * round(sum(len(v.get(layer, ())) for v in every.values()) / len(every))
            for layer in sorted({x for v in every.values() for x in v})}
        info = {"recording": s.recording_id(), "entropy_quantile": eq, "prob_quantile": pq,
                "langs": "+".join(rec.entries)}
        if "random" in src:
            m = int(np.asarray(next(iter(rec.entries.values()))["ffn_pos_counts"]).shape[1])
            rng = np.random.default_rng(int(src["random"]))
            sets = {layer: sorted(rng.choice(m, size=len(v), replace=False).tolist()) for layer, v in sets.items()}
    tensors = {f"layer.{layer}.index": torch.tensor(sorted(v), dtype=torch.long) for layer, v in sets.items()}
    if iv.option("mode", "zero") == "mean":
        lang = str(src.get("mean_lang", src.get("lang", "")))
        texts = load_corpus(s.corpus.source).texts(lang)[: s.corpus.limit]
        means = neuron_means(models.load(s.base), texts, max_length=s.record.max_length)
        tensors.update({f"layer.{layer}.value": means[layer][torch.tensor(sorted(v), dtype=torch.long)]
                        for layer, v in sets.items()})
        info["mean_lang"] = lang
    return tensors, info


def _lang_mean(rec: Recording, lang: str, layer: int) -> torch.Tensor:
    if lang not in rec.entries:
        raise ParamError(f"--intervention: {lang!r} is not among the corpus languages {list(rec.entries)} (--langs)")
    v = np.asarray(rec.vectors("mean")[lang][rec.layer_index(layer)], dtype=np.float64)
    return torch.from_numpy(v.mean(axis=0)).float()


def _blocks(iv: InterventionSpec, s: _Sources) -> list[int]:
    rec = s.recording()
    return list(iv.layers) if iv.layers is not None else [x for x in rec.layer_labels if isinstance(x, int)]


def _vector(iv: InterventionSpec, src: dict[str, Any], s: _Sources) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if "src" not in src and "tgt" not in src:
        raise ParamError("--intervention vector: give src=L and/or tgt=L (languages of the corpus)")
    rec = s.recording()
    if src.get("lens"):
        return _lens_vectors(iv, src, s)
    tensors = {f"layer.{layer}.{role}": _lang_mean(rec, str(src[role]), layer)
               for layer in _blocks(iv, s) for role in ("src", "tgt") if role in src}
    return tensors, {"recording": s.recording_id(), "pooling": "mean"}


def _lens_vectors(iv: InterventionSpec, src: dict[str, Any], s: _Sources) -> tuple[dict[str, torch.Tensor],
                                                                                   dict[str, Any]]:
    """LENS's language expression directions `δ_L = U_s U_sᵀ (m_L − m_c)` (METHODS §4) as the vectors."""
    rec = s.recording()
    langs = list(rec.entries)
    central = str(src.get("central", "en" if "en" in langs else langs[0]))
    tensors = {}
    for layer in _blocks(iv, s):
        means = {x: _lang_mean(rec, x, layer).double() for x in langs}
        basis = torch.tensor(np.array(language_subspace(torch.stack(list(means.values())).numpy(),
                                                        languages=langs).specific))
        for role in ("src", "tgt"):
            if role in src:
                delta = basis @ (basis.T @ (means[str(src[role])] - means[central]))
                tensors[f"layer.{layer}.{role}"] = delta.float()
    return tensors, {"recording": s.recording_id(), "pooling": "mean", "central": central, "langs": "+".join(langs)}


def _subspace(iv: InterventionSpec, src: dict[str, Any], s: _Sources) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    rec = s.recording()
    langs = list(rec.entries)
    target = str(src.get("tgt", src.get("lang", "")))
    rank = src.get("rank")
    tensors: dict[str, torch.Tensor] = {}
    for layer in _blocks(iv, s):
        means = torch.stack([_lang_mean(rec, x, layer) for x in langs]).double().numpy()
        sub = language_subspace(means, rank=None if rank is None else int(rank), languages=langs)
        tensors[f"layer.{layer}.basis"] = torch.tensor(np.array(sub.specific), dtype=torch.float32)
        tensors[f"layer.{layer}.mean"] = torch.from_numpy(means.mean(axis=0)).float()
        if target:
            tensors[f"layer.{layer}.target"] = _lang_mean(rec, target, layer)
    return tensors, {"recording": s.recording_id(), "langs": "+".join(langs), "rank": rank}


_KINDS = {"neurons": _neurons, "vector": _vector, "subspace": _subspace}


def resolve_one(iv: InterventionSpec, s: _Sources) -> InterventionSpec:
    """One concrete spec (already concrete ones are returned as they are)."""
    if iv.resolved:
        return iv
    src = dict(iv.source)
    if str(src.get("file", "")).endswith(".safetensors"):
        tensors, info = load_file(str(Path(src["file"]).expanduser())), dict[str, Any]()
    else:
        tensors, info = _KINDS[iv.kind](iv, src, s)
    source = {**src, **{k: v for k, v in info.items() if v is not None}}
    return dataclasses.replace(iv, file=save_tensors(tensors), source=tuple(sorted(source.items())))


def resolve_spec(model: ModelSpec, *, corpus: CorpusSpec | None = None, record: RecordSpec | None = None,
                 progress: Progress | None = None, status: StatusFn | None = None) -> ModelSpec:
    """`model` with every intervention concrete (see the module docstring); no-op without unresolved ones.

    `corpus`: the recording's corpus where an intervention names none (default `CorpusSpec()`).

    Raises:
        ParamError: a source that names no language of the corpus, a bad file (one line).
        RecordError / ModelError: as recording and loading do.
    """
    if all(iv.resolved for iv in model.interventions):
        return model
    for iv in model.interventions:  # a bad option: one line before any recording
        KINDS[iv.kind].check(iv)
    base = dataclasses.replace(model, interventions=())
    sources: dict[CorpusSpec, _Sources] = {}
    out = []
    for iv in model.interventions:
        c = corpus_of(iv, corpus)
        s = sources.setdefault(c, _Sources(base, c, record or RecordSpec(), progress, status))
        out.append(resolve_one(iv, s))
    return dataclasses.replace(model, interventions=tuple(out))


def corpus_of(iv: InterventionSpec, default: CorpusSpec | None) -> CorpusSpec:
    """The corpus an intervention's tensors come from: its `corpus`/`langs`/`limit` source keys over `default`."""
    src = dict(iv.source)
    d = default or CorpusSpec()
    langs = tuple(str(src["langs"]).split("+")) if "langs" in src else d.langs
    limit = src.get("limit", d.limit if "corpus" not in src else None)
    return CorpusSpec(source=str(src.get("corpus", d.source)), langs=langs, limit=limit)
