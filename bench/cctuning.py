"""Extra cost of CC-Tuning at inference (paper Table 4: ≈1.1× vanilla) and in training (Table 3: 1.12–1.16×).

Same tuned weights, same batches, measured in the same run:

- scoring: teacher-forced forward over prompt + response (held-out loss). Vanilla = one pass;
  CC-Tuning = first pass over the prompt (body only, no LM head) → `F W_T` → Decision
  Maker → connected pass.
- generation: greedy decoding of exactly `--new-tokens` tokens from left-padded prompts (EOS
  suppressed until then, so both do the same number of steps). Vanilla =
  `generate`; CC-Tuning = the same first pass, then `generate` with the connection on the
  prefill (the paper's setting: its XNLI timings are generation).
- training step (LoRA, AdamW): vanilla SFT step vs CC-Tuning step (+ an English forward
  without gradients, the Decision Maker and the connection).

Each row is the best of `--repeat` interleaved runs. The matrices come from `--artifact`
(a CC-Tuning artifact) or, without one, are random `W_DM` and a `W_T` fitted on the base
model (the cost does not depend on their values).

    python bench/cctuning.py                                            # tiny model
    python bench/cctuning.py --model gemma-3-270m --artifact <dir>      # the real model
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import torch

from workbench.analysis.cctuning import fit_transform_matrix
from workbench.examples import DataSpec, build_split
from workbench.finetune.cctuning import (
    cc_examples,
    cc_loss,
    collate_cc,
    collect_ffn_pairs,
    load_cctuning,
    lora_config,
)
from workbench.finetune.cctuning.spec import CCTuningSpec
from workbench.models.hooks.cctuning import cctuning_forward, cctuning_generate


def _load(source: str, device: str) -> Any:
    from workbench.config import ModelSpec
    from workbench.models import load

    return load(ModelSpec(source=source, device=device, dtype="float32"), fresh=True)


def _time(fn: Callable[[], Any], dev: Any) -> float:
    if str(dev).startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if str(dev).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _best(pairs: dict[str, Callable[[], Any]], dev: Any, repeat: int) -> dict[str, float]:
    """Best time of each callable over `repeat` interleaved rounds (after one warm-up round)."""
    for fn in pairs.values():
        fn()
    best = {k: float("inf") for k in pairs}
    for _ in range(repeat):
        for k, fn in pairs.items():
            best[k] = min(best[k], _time(fn, dev))
    return best


def _matrices(state: Any, a: argparse.Namespace, spec: CCTuningSpec, split: Any) -> tuple[Any, Any, Any]:
    if a.artifact:
        tuned = load_cctuning(state, a.artifact)
        return tuned.state, tuned.w_dm, tuned.w_t
    ex = cc_examples(state.tokenizer, split, spec)[: a.wt_pairs]
    f, f_en = collect_ffn_pairs(state.model, state.arch, ex, state.tokenizer.pad_token_id)
    torch.manual_seed(0)
    w_dm = torch.randn(state.d_model, state.n_layers, device=state.device) / state.d_model ** 0.5
    return state, w_dm, torch.as_tensor(fit_transform_matrix(f, f_en), dtype=torch.float32, device=state.device)


def _train_steps(state: Any, batch: Any, spec: CCTuningSpec, repeat: int) -> dict[str, float]:
    from peft import get_peft_model

    model = copy.deepcopy(state.model)
    model.requires_grad_(False)
    peft_model = get_peft_model(model, lora_config(spec, model))
    peft_model.train()
    net = peft_model.base_model.model
    w_dm = torch.nn.Parameter(torch.zeros(state.d_model, state.n_layers, device=state.device))
    params = [p for p in peft_model.parameters() if p.requires_grad] + [w_dm]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)

    def step(loss: torch.Tensor) -> None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    x = batch.x
    return _best({
        "train step, vanilla SFT": lambda: step(net(input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                                                    labels=x["labels"], use_cache=False).loss),
        "train step, CC-Tuning": lambda: step(cc_loss(net, state.arch, batch, w_dm)[0]),
    }, state.device, repeat)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny:llama")
    p.add_argument("--device", default="cpu")
    p.add_argument("--artifact", default=None, help="a CC-Tuning artifact of --model (else random W_DM, fitted W_T)")
    p.add_argument("--corpus", default="tatoeba:sw")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--wt-pairs", type=int, default=64, help="pairs for W_T without --artifact")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-train", action="store_true", help="skip the training-step rows")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if a.threads:
        torch.set_num_threads(a.threads)
    base = _load(a.model, a.device)
    split = build_split(DataSpec(source=a.corpus), ("en", "sw"))
    spec = CCTuningSpec()
    state, w_dm, w_t = _matrices(base, a, spec, split)
    held = cc_examples(state.tokenizer, split, spec, "heldout")[: a.batch_size]
    batch = collate_cc(held, state.tokenizer.pad_token_id, state.device)
    prompts = [e.x.ids[: e.pos + 1] for e in held]
    model = state.model
    fixed = {"max_new_tokens": a.new_tokens, "min_new_tokens": a.new_tokens}  # same work whatever EOS does
    with torch.no_grad():
        rows = _best({
            "scoring, vanilla": lambda: model(input_ids=batch.x["input_ids"],
                                              attention_mask=batch.x["attention_mask"], use_cache=False),
            "scoring, CC-Tuning (W_T)": lambda: cctuning_forward(state, w_dm, w_t, batch.x, positions=batch.pos),
            "generation, vanilla": lambda: cctuning_generate(state, w_dm, w_t, prompts, connect=False, **fixed),
            "generation, CC-Tuning (W_T)": lambda: cctuning_generate(state, w_dm, w_t, prompts, **fixed),
        }, state.device, a.repeat)
    if not a.no_train:
        rows.update(_train_steps(base, batch, spec, a.repeat))
    print(f"model {a.model} ({state.n_layers} layers, d={state.d_model}), device {a.device}, "
          f"threads {torch.get_num_threads()}, batch {len(held)}, {a.new_tokens} new tokens, best of {a.repeat}")
    print(f"{'what':34s} {'seconds':>9s} {'ratio':>7s}")
    for kind in ("scoring", "generation", "train step"):
        names = [k for k in rows if k.startswith(kind)]
        if not names:
            continue
        ref = rows[names[0]]
        for k in names:
            print(f"{k:34s} {rows[k]:9.4f} {rows[k] / ref:7.3f}")


if __name__ == "__main__":
    main()
