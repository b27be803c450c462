"""Cross-lingual patching of one pair: the batched trace vs a naive loop of L separate patched forwards.

    PYTHONPATH=. WORKBENCH_CACHE=... python bench/patching.py [--model gemma-3-270m] [--repeats 3] [--variant single]

The batched readout (`tracing.patching.patch_readout`) runs the prompts up to the patch
position once (a key/value cache) and then, as one batch, the source's last token, the L
patched copies of the target's last token and the unpatched target. The
baseline is the authors' loop (Butanium/llm-lang-agnostic ``object_lens``): one trace that
collects the source's last-token state at every layer, then one trace of the target per
patched layer. Both decode the target's last token with the model's own head (the same
`lens_logits`); the script checks that they give the same probabilities (1e-4) and prints
the median wall time of each over `--repeats` runs and their ratio, with the machine's load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch

from workbench.config import ModelSpec
from workbench.latent import WordPromptSpec, load_words
from workbench.latent.patching import patch_items
from workbench.lenses import PatchSpec
from workbench.models import get_path, load
from workbench.models.unembed import lens_logits
from workbench.tracing import patching
from workbench.tracing.patching import patch_readout
from workbench.tracing.recorder import _hidden, _nns, traced


def naive(state, source: str, target: str, variant: str) -> torch.Tensor:
    """`(L, V)` next-token probabilities of the target patched at each layer: 1 + L separate traces."""
    arch = dataclasses.asdict(state.arch)
    save = _nns().nnsight.save
    src = state.tokenizer(source, return_tensors="pt")["input_ids"].to(state.device)
    tgt = state.tokenizer(target, return_tensors="pt")["input_ids"].to(state.device)
    L = state.n_layers
    out = []
    with torch.inference_mode(), traced(state) as envoy:
        blocks = get_path(envoy, arch["layers"])
        with envoy.trace(input_ids=src, use_cache=False) as tracer:
            hs = save([_hidden(blocks[j].output)[0, -1].clone() for j in range(L)])
            tracer.stop()
        for layer in range(L):
            with envoy.trace(input_ids=tgt, use_cache=False) as tracer:
                for j in range(layer, L if variant == "from" else layer + 1):
                    _hidden(blocks[j].output)[0, -1] = hs[j]
                last = save(_hidden(blocks[L - 1].output)[0, -1:])
                tracer.stop()
            out.append(torch.softmax(lens_logits(state.model, state.arch, last).double(), -1)[0])
    return torch.stack(out)


SPENT: dict[str, float] = {}


def _timed(name: str):
    """Wrap a step of `tracing.patching` to add its wall time to `SPENT` (the batched readout's breakdown)."""
    fn = getattr(patching, name)

    def run(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name] = SPENT.get(name, 0.0) + time.perf_counter() - t0

    setattr(patching, name, run)


def main() -> None:
    """Time both ways on one fr→zh pair and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variant", default="single", choices=("single", "from"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    state = load(ModelSpec(source=a.model, device="cpu", dtype="float32"))
    items = patch_items(load_words("basic-nouns"), source="fr", target="zh", source_from=("de",), target_from="es",
                        tokenizer=state.tokenizer, spec=WordPromptSpec(n_shots=5, seed=0, drop_substring=False))
    it = items.items[0]
    sets = {"c1": list(it.token_sets["c1_in_target"])}
    spec = PatchSpec((it.source_prompts,), (-1,), a.variant)
    # one warm-up of each (nnsight's first trace of a model pays for its set-up)
    patch_readout(state, [it.target_prompt], spec, token_sets=sets)
    naive(state, it.source_prompts[0], it.target_prompt, a.variant)
    for name in ("_prefix_cache", "_suffix_pass", "_decode"):
        _timed(name)
    t_batched, t_naive = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        r = patch_readout(state, [it.target_prompt], spec, token_sets=sets)
        t_batched.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        p = naive(state, it.source_prompts[0], it.target_prompt, a.variant)
        t_naive.append(time.perf_counter() - t0)
    ref = p[:, sets["c1"]].sum(-1).numpy()
    diff = float(abs(r.set_mass["c1"][0, :-1] - ref).max())
    assert diff < 1e-4, f"batched and naive disagree by {diff}"
    b, n = statistics.median(t_batched), statistics.median(t_naive)
    n_tok = len(state.tokenizer(it.target_prompt)["input_ids"])
    print(f"model {a.model} ({state.n_layers} blocks), pair {it.name} ({n_tok} target tokens), variant {a.variant}, "
          f"{a.threads} threads, load {os.getloadavg()[0]:.2f}; max |Δp| batched vs naive {diff:.1e}")
    print(f"{'way':<44}{'median s':>10}")
    print(f"{'batched: prefix pass + 1 suffix batch':<44}{b:>10.3f}")
    print(f"{'naive: 1 source trace + L patched traces':<44}{n:>10.3f}")
    print(f"ratio naive / batched: {n / b:.2f}")
    parts = ", ".join(f"{k.strip('_')} {v / a.repeats:.3f} s" for k, v in SPENT.items())
    print(f"batched, per run: {parts}")


if __name__ == "__main__":
    main()
