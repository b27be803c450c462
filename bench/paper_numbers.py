"""The numbers of issue 11 on one model and corpus: xsim margin per layer, Mid-align score, MEXA mean/max.

    PYTHONPATH=. WORKBENCH_CACHE=... python bench/paper_numbers.py [--langs en,zh,sw,ar,hi,es,fr,ru] [--limit 50]

1. From the workbench recording (our defaults: mean pooling, special tokens excluded,
   pre-norm blocks): all-pairs accuracy per layer for ``margin`` (LASER xsim) and
   ``margin-all``, and the Mid-align score in its numbering (our odd blocks) and, for
   comparison, over our even blocks (the old reading).
2. MEXA as its code does it (the ``mexa`` preset): weighted pooling (weights 1…T over all
   tokens, BOS included) of HF ``hidden_states`` (emb, blocks 0…L−2, post-norm top), the
   ``mexa`` criterion against English, mean and max over layers. Computed here straight
   from ``output_hidden_states`` (independent of the recorder), and on the recording's
   own weighted pooling for comparison.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from workbench.analysis.retrieval import mexa_summary, mid_align_score, retrieval_by_layer, summarize_by_layer
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.corpus import load_corpus_spec
from workbench.models import load as get_state
from workbench.presets import apply_preset, hf_hidden_state_labels
from workbench.recordings import ensure_recording


def _allpairs(summary):
    s = summary[summary.series == "all_pairs"]
    return dict(zip(s["layer"], s["accuracy"]))


def _hf_weighted(state, texts: list[str], batch: int = 16) -> np.ndarray:
    """`(L+1, n, d)` MEXA vectors: position-weighted mean (1…T, BOS included) of every hidden_states entry."""
    tok, model = state.tokenizer, state.model
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            ids = [tok(t, add_special_tokens=True)["input_ids"] for t in texts[i:i + batch]]
            width = max(len(x) for x in ids)  # right padding: positions of real tokens are 0…T-1
            input_ids = torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x in ids])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
            w = (mask.cumsum(1) * mask).float().unsqueeze(-1)  # weights 1…T over the real tokens
            hs = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
            out.append(torch.stack([(h.float() * w).sum(1) / w.sum(1) for h in hs]).numpy())
    return np.concatenate(out, axis=1)


def main() -> None:
    """Print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--corpus", default="udhr")
    ap.add_argument("--langs", default="en,zh,sw,ar,hi,es,fr,ru")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    langs = a.langs.split(",")
    mspec = ModelSpec(source=a.model, device="cpu", dtype="float32")
    cspec = CorpusSpec(source=a.corpus, langs=tuple(langs), limit=a.limit)
    state = get_state(mspec)
    rec = ensure_recording(mspec, cspec, RecordSpec(), state=state)
    vec = rec.vectors("mean")
    n = next(iter(vec.values())).shape[1]
    print(f"{a.model}, {a.corpus}, {len(langs)} languages × {n} units, mean pooling (our defaults)")
    summ = {m: summarize_by_layer(retrieval_by_layer(vec, method=m, k=4, pivot="en", layer_labels=rec.layer_labels))
            for m in ("margin", "margin-all")}
    ap_x, ap_a = _allpairs(summ["margin"]), _allpairs(summ["margin-all"])
    print(f"{'layer':>6}{'xsim':>8}{'margin-all':>12}{'diff':>8}")
    for lab in ap_x:
        print(f"{lab!s:>6}{ap_x[lab]:>8.3f}{ap_a[lab]:>12.3f}{ap_a[lab] - ap_x[lab]:>+8.3f}")
    blocks = [b for b in ap_x if isinstance(b, (int, np.integer))]
    print("mean over layers: xsim {:.3f}, margin-all {:.3f}".format(np.mean([ap_x[b] for b in blocks]),
                                                                   np.mean([ap_a[b] for b in blocks])))
    for m, s in summ.items():
        old = np.mean([_allpairs(s)[b] for b in blocks if b % 2 == 0])
        print(f"Mid-align score ({m}): paper numbering (blocks 1,3,5,…) {mid_align_score(s):.3f}; "
              f"old reading (blocks 0,2,4,…) {old:.3f}")

    # MEXA: its own pipeline, from HF hidden_states.
    corpus = load_corpus_spec(cspec)
    mexa_vec = {lang: _hf_weighted(state, list(corpus.texts(lang))[: a.limit]) for lang in langs}
    labels = hf_hidden_state_labels(state.n_layers)
    ms = mexa_summary(summarize_by_layer(retrieval_by_layer(mexa_vec, method="mexa", pivot="en",
                                                            layer_labels=labels)), "en")
    print(f"\nMEXA preset ({apply_preset('mexa').poolings[0]} pooling, BOS included, HF hidden_states): "
          f"mean {ms['mean']:.3f}, max {ms['max']:.3f} at layer {ms['argmax']}")
    print("  curve: " + " ".join(f"{lab}:{v:.2f}" for lab, v in zip(ms["layers"], ms["curve"])))
    print("  per language: " + ", ".join(f"{k} {v['mean']:.3f}/{v['max']:.3f}" for k, v in ms["per_language"].items()))
    ours = mexa_summary(summarize_by_layer(retrieval_by_layer(rec.vectors("weighted"), method="mexa", pivot="en",
                                                              layer_labels=rec.layer_labels)), "en")
    print(f"MEXA on our recording (weighted pooling, specials excluded, pre-norm blocks): mean {ours['mean']:.3f}, "
          f"max {ours['max']:.3f} at layer {ours['argmax']}")


if __name__ == "__main__":
    main()
