"""GPU check: the workbench on a real model shape, in one command (under 8 minutes on an H200).

    python bench/gpu_check.py                  # Llama-3-8B shape, bf16, on CUDA
    python bench/gpu_check.py --shape small    # a dry run (CPU is fine): a 4-block model

Needs only torch, transformers, accelerate and peft on the machine (nnsight and the
workbench carried as wheels or a checkout). Nothing is downloaded: the model is
random-initialised from a config of the real architecture's shape, and the tokenizer is
the workbench's bundled tiny BPE (so token counts per sentence are not Llama-3's).

It prints, in order:

1. recording the bundled UDHR (20 languages x 50 units by default) with the workbench
   (`tracing.record` into a scratch store) and with a tuned plain loop (base model only,
   length-sorted batches, `output_hidden_states`, masked mean) at several token budgets
   (the best one counts): sentences/s for both and the peak GPU memory;
2. the agreement of CUDA-bf16 against CPU-fp32 pooled vectors on a small model: relative
   error `||a - b|| / ||b||` of the mean-pooled vectors per layer (CPU-bf16 without CUDA);
3. two training steps of each fine-tune method (SiLP, Mid-align, LENS, CC-Tuning) on the
   big model, with the loss and the seconds per step;
4. with two or more visible GPUs: the small model split over all of them by a
   `device_map` (blocks in contiguous runs, as `device_map="auto"` places a large model)
   against the same weights on one GPU, both float32: relative error per layer of the
   mean-pooled vectors, the largest difference of the FFN statistics, and whether a plain
   forward of the split model still runs after recording.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, if not installed

from workbench import models, tracing  # noqa: E402
from workbench.config import RecordSpec  # noqa: E402
from workbench.corpus import load_corpus  # noqa: E402
from workbench.examples import DataSpec, build_split
from workbench.finetune.methods import languages_for, spec_for
from workbench.finetune.runner import train  # noqa: E402
from workbench.store import Store  # noqa: E402

log = logging.getLogger("gpu_check")

SHAPES: dict[str, dict[str, Any]] = {
    # meta-llama/Meta-Llama-3-8B's config.json
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                      rms_norm_eps=1e-5),
    "small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=2000, max_position_embeddings=1024),
}
METHOD_SPECS: dict[str, dict[str, Any]] = {
    "silp": {"src": "sw", "tgt": "en", "n2d_layers": [1], "d2n_layers": [2], "max_steps": 1, "batch_size": 4},
    "midalign": {"src": "en", "tgt": "sw", "max_steps": 2, "batch_size": 4, "align_batch_size": 4},
    "lens": {"languages": ["en", "sw"], "central": "en", "max_steps": 2, "batch_size": 4, "samples_per_lang": 8},
    "cctuning": {"pivot": "en", "lang": "sw", "max_steps": 2, "batch_size": 4, "wt_pairs": 16},
}


def build(shape: str, dtype: torch.dtype, device: str, seed: int = 0) -> Any:
    """A random-initialised Llama of `shape` on `device` (initialised there, in `dtype`)."""
    tok = models.tiny_tokenizer()
    cfg = LlamaConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      **SHAPES[shape])
    torch.manual_seed(seed)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device=device).to(dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, cfg.initializer_range, generator=gen)
    # to_empty left the rotary buffers uninitialised (and .to(dtype) would round them): rebuild in fp32
    model.model.rotary_emb = type(model.model.rotary_emb)(cfg).to(device)
    model.eval()
    return models.state_from_model(model, tok, name=f"random-{shape}", fingerprint=f"random-{shape}-{seed}-{dtype}")


def converted(state: Any, dtype: torch.dtype, device: str) -> Any:
    """The same weights in `dtype` on `device` (a copy; the rotary buffers stay fp32, as the loader's)."""
    model = copy.deepcopy(state.model).to(device=device, dtype=dtype)
    model.model.rotary_emb = type(model.model.rotary_emb)(model.config).to(device)
    return models.state_from_model(model, state.tokenizer, name=f"{state.name}-{dtype}",
                                   fingerprint=f"{state.fingerprint}-{dtype}-{device}")


def corpus(langs: int, units: int) -> Any:
    """The first `units` units of the bundled UDHR in its first `langs` languages."""
    c = load_corpus("udhr")
    return c.subset(list(c.languages)[:langs], limit=units)


def sync() -> None:
    """Wait for the GPU (timings)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def record_workbench(state: Any, c: Any, spec: RecordSpec) -> tuple[float, Any]:
    """Seconds to record every language of `c` into a scratch store, and the Recording."""
    with tempfile.TemporaryDirectory() as d:
        sync()
        t0 = time.perf_counter()
        rec = tracing.record(state, c, list(c.languages), spec, store=Store(d))
        sync()
        secs = time.perf_counter() - t0
        vecs = {u: np.array(v) for u, v in rec.vectors("mean").items()}  # read before the store goes
    return secs, vecs


def plain_loop(state: Any, c: Any, budget: int, max_length: int) -> float:
    """Seconds of a tuned plain loop: length-sorted batches under `budget` tokens, masked means."""
    tok = state.tokenizer
    texts = [t for lang in c.languages for t in c.texts(lang)]
    ids = [tok(t, add_special_tokens=True)["input_ids"][:max_length] for t in texts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * len(ids[cur[0]]) > budget:
            batches.append(cur)
            cur = []
        cur.append(i)
    batches.append(cur)
    base, dev = state.model.model, state.device
    sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            width = len(ids[b[0]])
            x = torch.full((len(b), width), tok.pad_token_id, dtype=torch.long)
            m = torch.zeros((len(b), width), dtype=torch.long)
            for r, i in enumerate(b):
                x[r, : len(ids[i])] = torch.tensor(ids[i])
                m[r, : len(ids[i])] = 1
            x, m = x.to(dev), m.to(dev)
            hs = base(input_ids=x, attention_mask=m, output_hidden_states=True, use_cache=False).hidden_states
            w = m.unsqueeze(-1).to(hs[0].dtype)
            pooled = torch.stack([(h * w).sum(1) / w.sum(1) for h in hs[:-1]]).float().cpu()
            del pooled
    sync()
    return time.perf_counter() - t0


def agreement(langs: int, units: int, spec: RecordSpec) -> list[float]:
    """Relative error per recorded layer of bf16 (CUDA if present) against CPU fp32, small model."""
    c = corpus(langs, units)
    ref_state = build("small", torch.float32, "cpu")
    low_state = converted(ref_state, torch.bfloat16, "cuda" if torch.cuda.is_available() else "cpu")
    _, ref = record_workbench(ref_state, c, spec)
    _, low = record_workbench(low_state, c, spec)
    errs = []
    for li in range(next(iter(ref.values())).shape[0]):
        a = np.concatenate([low[u][li] for u in ref]).astype(np.float64)
        b = np.concatenate([ref[u][li] for u in ref]).astype(np.float64)
        errs.append(float(np.linalg.norm(a - b) / np.linalg.norm(b)))
    return errs


def split_over(model: Any, devices: list[Any]) -> Any:
    """`model` dispatched by accelerate: embedding first, blocks in contiguous runs, norm and head last."""
    from accelerate import dispatch_model  # only the multi-GPU section needs it

    n, k = model.config.num_hidden_layers, len(devices)
    dmap = {"model.embed_tokens": devices[0], "model.rotary_emb": devices[0], "model.norm": devices[-1],
            "lm_head": devices[-1], **{f"model.layers.{i}": devices[i * k // n] for i in range(n)}}
    return dispatch_model(model, device_map=dmap)


def multi_gpu_agreement(langs: int, units: int, spec: RecordSpec, devices: list[Any] | None = None) -> dict[str, Any]:
    """The small model split over `devices` (default: every visible GPU) vs on the first alone (float32)."""
    devices = devices or list(range(torch.cuda.device_count()))
    first = str(torch.device(devices[0]))
    c = corpus(langs, units)
    one = build("small", torch.float32, first)
    two = models.state_from_model(split_over(copy.deepcopy(one.model), devices), one.tokenizer,
                                  name="split", fingerprint=f"{one.fingerprint}-split{len(devices)}")
    a = tracing.record_units(one, c, list(c.languages), spec)
    b = tracing.record_units(two, c, list(c.languages), spec)
    errs = []
    for li in range(next(iter(a.values()))["pooled_mean"].shape[0]):
        x = np.concatenate([b[u]["pooled_mean"][li] for u in a]).astype(np.float64)
        y = np.concatenate([a[u]["pooled_mean"][li] for u in a]).astype(np.float64)
        errs.append(float(np.linalg.norm(x - y) / np.linalg.norm(y)))
    ffn = max(float(np.nanmax(np.abs(b[u][k].astype(np.float64) - a[u][k]))) for u in a
              for k in ("ffn_layer_mean", "ffn_pos_counts"))
    try:
        two.model(input_ids=torch.tensor([[5, 6, 7, 8]], device=first), use_cache=False)
        after = "ok"
    except RuntimeError as e:  # accelerate's device moves lost by the recorder
        after = f"{type(e).__name__}: {str(e)[:120]}"
    return {"n_gpus": len(devices), "errors": errs, "ffn_max_abs": ffn, "forward_after_recording": after}


def train_two_steps(state: Any, train_dtype: torch.dtype) -> list[dict[str, Any]]:
    """Two optimiser steps of each method on a copy of `state` in `train_dtype`."""
    rows = []
    model = state.model if state.dtype == train_dtype else state.model.to(train_dtype)
    st = dataclasses.replace(state, model=model) if dataclasses.is_dataclass(state) else state
    for method, raw in METHOD_SPECS.items():
        spec = spec_for(method, raw)
        split = build_split(DataSpec(source="tatoeba:sw", limit=32, max_length=64), languages_for(method, spec))
        sync()
        t0 = time.perf_counter()
        try:
            result = train(method, st, split, spec)
            sync()
            secs = time.perf_counter() - t0
            rows.append({"method": method, "steps": len(result.history), "seconds": round(secs, 2),
                         "loss_last": round(result.history[-1]["loss"], 4), "error": ""})
            del result
        except Exception as e:  # noqa: BLE001 - report every method, do not stop at the first
            rows.append({"method": method, "steps": 0, "seconds": None, "loss_last": None,
                         "error": f"{type(e).__name__}: {str(e)[:160]}"})
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table."""
    cols = list(rows[0])
    w = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in cols}
    return "\n".join(["  ".join(k.ljust(w[k]) for k in cols)] + ["  ".join(str(r[k]).ljust(w[k]) for k in cols)
                                                                 for r in rows])


def main() -> int:
    """Run the check; print its tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=["llama3-8b", "small"], default="llama3-8b")
    p.add_argument("--langs", type=int, default=20, help="UDHR languages")
    p.add_argument("--units", type=int, default=50, help="units per language")
    p.add_argument("--budgets", default="8192,16384,32768,65536", help="token budgets of the plain loop")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--train-dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--skip-train", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name() if cuda else 'cpu'}, "
          f"shape {a.shape}, dtype {dtype}", flush=True)
    t_all = time.perf_counter()
    state = build(a.shape, dtype, dev)
    n_params = sum(p.numel() for p in state.model.parameters())
    print(f"built {n_params / 1e6:.1f} M parameters in {time.perf_counter() - t_all:.1f} s", flush=True)
    c = corpus(a.langs, a.units)
    n = len(c) * len(c.languages)
    rows = []
    for ffn in (False, True):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        spec = RecordSpec(poolings=("mean",), max_length=a.max_length, ffn_stats=ffn)
        wb_s, _ = record_workbench(state, c, spec)
        peak_wb = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        rows.append({"method": f"workbench (tracing.record, FFN stats {'on' if ffn else 'off'})", "sentences": n,
                     "seconds": round(wb_s, 2), "sent/s": round(n / wb_s, 1),
                     "peak GPU GiB": round(peak_wb, 1) if cuda else "n/a"})
    for budget in [int(x) for x in a.budgets.split(",")]:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            s = plain_loop(state, c, budget, a.max_length)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            rows.append({"method": f"plain loop, {budget} tokens", "sentences": n, "seconds": "OOM",
                         "sent/s": "", "peak GPU GiB": ""})
            continue
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        rows.append({"method": f"plain loop, {budget} tokens", "sentences": n, "seconds": round(s, 2),
                     "sent/s": round(n / s, 1), "peak GPU GiB": round(peak, 1) if cuda else "n/a"})
    print("\n## recording\n" + table(rows), flush=True)
    best = max((r for r in rows[2:] if r["sent/s"] != ""), key=lambda r: r["sent/s"], default=None)
    if best:
        print(f"workbench (FFN stats off) / best plain loop: {rows[0]['sent/s'] / best['sent/s']:.2f}x the speed",
              flush=True)
    errs = agreement(min(a.langs, 5), min(a.units, 20), RecordSpec(poolings=("mean",), max_length=a.max_length))
    what = "CUDA-bf16" if cuda else "CPU-bf16 (no CUDA)"
    print(f"\n## agreement: {what} vs CPU-fp32, small model, relative error per layer (emb, 0, 1, ...)")
    print("  ".join(f"{e:.2e}" for e in errs), flush=True)
    if torch.cuda.device_count() >= 2:
        mg = multi_gpu_agreement(min(a.langs, 5), min(a.units, 20),
                                 RecordSpec(poolings=("mean",), max_length=a.max_length))
        print(f"\n## multi-GPU device_map: small model split over {mg['n_gpus']} GPUs vs one GPU, float32")
        print("relative error per layer (emb, 0, 1, ...): " + "  ".join(f"{e:.2e}" for e in mg["errors"]))
        print(f"FFN statistics, largest difference: {mg['ffn_max_abs']:.2e}; "
              f"plain forward after recording: {mg['forward_after_recording']}", flush=True)
    else:
        print(f"\n## multi-GPU device_map: skipped ({torch.cuda.device_count()} GPU visible)", flush=True)
    if not a.skip_train:
        rows = train_two_steps(state, getattr(torch, a.train_dtype))
        print("\n## fine-tunes: two steps each (SiLP: one per stage)\n" + table(rows), flush=True)
        if cuda:
            print(f"peak GPU memory overall: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
