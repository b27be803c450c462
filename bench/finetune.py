"""Wall time per training step: the workbench's SiLP / Mid-align path vs a plain loop.

The plain baseline is what one would write with transformers/peft directly: the same
model copy, the same trainable parameters, AdamW + schedule + clipping, one fixed padded
batch. Ours is `train_silp` / `train_midalign` on a dataset of exactly one batch (so every
step sees the same examples), including its own collation, logging and cancellation
checks. Mid-align alternates task and alignment steps in both; the baseline's alignment
step takes `output_hidden_states` from a full forward, ours stops after block i.

Per-step time = the median time between the starts of consecutive steps after the
warm-up (ours: the `should_stop` callback marks each step start; the baseline: the same
point in its loop); the best of `--repeat` interleaved runs is kept. For Mid-align the
windows are one task step plus one alignment step (their mean per step).
Target: ratio ≤ 1.1.

    python bench/finetune.py                                  # tiny model, CPU
    python bench/finetune.py --model gemma-3-270m --steps 40  # the real model
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from typing import Any

import torch

from workbench.examples import DataSpec, build_split, encode_texts, translation_examples
from workbench.finetune.data import collate
from workbench.finetune.midalign import MidAlignSpec, contrastive_alignment_loss, lora_config, train_midalign
from workbench.finetune.silp import SiLPSpec, ffn_parameter_names, train_silp
from workbench.finetune.train import _schedule, masked_mean


def _sync(dev: Any) -> None:
    if str(dev).startswith("cuda"):
        torch.cuda.synchronize()


class _Marks:
    """should_stop() stand-in that records when each step starts."""

    def __init__(self, dev: Any) -> None:
        self.t: list[float] = []
        self.dev = dev

    def __call__(self) -> bool:
        self.t.append(time.perf_counter())
        return False

    def per_step(self, warmup: int, period: int = 1) -> float:
        """Median over windows of `period` steps after the warm-up, per step (robust to load spikes)."""
        t = self.t[warmup:]
        gaps = sorted((t[i + period] - t[i]) / period for i in range(0, len(t) - period, period))
        return gaps[len(gaps) // 2]


def _load(source: str, device: str) -> Any:
    from workbench.config import ModelSpec
    from workbench.models import load

    return load(ModelSpec(source=source, device=device, dtype="float32"), fresh=True)


def silp_ours(state: Any, split: Any, layers: list[int], a: argparse.Namespace) -> float:
    marks = _Marks(state.device)
    spec = SiLPSpec(src="sw", tgt="en", n2d_layers=tuple(layers), d2n_layers=(), max_steps=a.steps,
                    epochs=float(a.steps), batch_size=a.batch_size)
    train_silp(state, split, spec, should_stop=marks)
    return marks.per_step(a.warmup)


def silp_plain(state: Any, batch: dict[str, Any], layers: list[int], a: argparse.Namespace) -> float:
    model = copy.deepcopy(state.model)
    model.requires_grad_(False)
    model.train()
    params = dict(model.named_parameters())
    names = ffn_parameter_names(model, state.arch, layers)
    for n in names:
        params[n].requires_grad_(True)
    trainable = [params[n] for n in names]
    opt = torch.optim.AdamW(trainable, lr=2e-5, weight_decay=0.0)
    sched = _schedule(opt, "cosine", 0, a.steps)
    marks = _Marks(state.device)
    for _ in range(a.steps):
        marks()
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     labels=batch["labels"], use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    _sync(state.device)
    return marks.per_step(a.warmup)


def mid_ours(state: Any, split: Any, a: argparse.Namespace) -> float:
    marks = _Marks(state.device)
    spec = MidAlignSpec(src="en", tgt="sw", task_directions="forward", max_steps=a.steps, epochs=float(a.steps),
                        batch_size=a.batch_size, align_batch_size=a.batch_size)
    train_midalign(state, split, spec, should_stop=marks)
    return marks.per_step(a.warmup, 2)


def mid_plain(state: Any, task: dict[str, Any], align: dict[str, Any], a: argparse.Namespace) -> float:
    from peft import get_peft_model

    torch.manual_seed(0)
    base = copy.deepcopy(state.model)
    base.requires_grad_(False)
    model = get_peft_model(base, lora_config(MidAlignSpec(), base))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=5e-4, weight_decay=0.0)
    sched = _schedule(opt, "inverse_sqrt", 0, a.steps)
    layer, n = state.n_layers // 2, a.batch_size
    marks = _Marks(state.device)
    for step in range(a.steps):
        marks()
        if step % 2 == 0:
            loss = model(input_ids=task["input_ids"], attention_mask=task["attention_mask"],
                         labels=task["labels"], use_cache=False).loss
        else:
            out = model(input_ids=align["input_ids"], attention_mask=align["attention_mask"],
                        output_hidden_states=True, use_cache=False)
            h = masked_mean(out.hidden_states[layer + 1], align["count"])
            loss = contrastive_alignment_loss(h[:n], h[n:], 0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    _sync(state.device)
    return marks.per_step(a.warmup, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny:llama")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=6, help="steps not timed (even: Mid-align pairs)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if a.threads:
        torch.set_num_threads(a.threads)
    state = _load(a.model, a.device)
    data = DataSpec(limit=a.batch_size, max_length=128)
    split_silp = build_split(data, ("sw", "en"))
    split_mid = build_split(data, ("en", "sw"))
    tok, pad, dev = state.tokenizer, state.tokenizer.pad_token_id, state.device
    silp_batch = collate(translation_examples(tok, split_silp, [("sw", "en")]), pad, dev)
    mid_task = collate(translation_examples(tok, split_mid, [("en", "sw")]), pad, dev)
    mid_align = collate(encode_texts(tok, split_mid.column("en"), 128) + encode_texts(tok, split_mid.column("sw"), 128),
                        pad, dev)
    layers = list(range(1, min(5, state.n_layers)))  # 4 FFN blocks, as SiLP's k1 = 4
    runs: dict[str, list[float]] = {k: [] for k in ("silp_ours", "silp_plain", "mid_ours", "mid_plain")}
    for _ in range(a.repeat):  # interleaved, so machine load hits both sides alike
        runs["silp_ours"].append(silp_ours(state, split_silp, layers, a))
        runs["silp_plain"].append(silp_plain(state, silp_batch, layers, a))
        runs["mid_ours"].append(mid_ours(state, split_mid, a))
        runs["mid_plain"].append(mid_plain(state, mid_task, mid_align, a))
    best = {k: min(v) for k, v in runs.items()}
    cuda = str(dev).startswith("cuda")
    dev_name = torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)"
    print(f"model {state.name} ({state.n_layers} blocks, d={state.d_model}) on {dev_name}; batch {a.batch_size}, "
          f"{a.steps} steps ({a.warmup} warm-up), best of {a.repeat}")
    print(f"{'path':<10} {'ours ms/step':>13} {'plain ms/step':>14} {'ratio':>7}")
    for name, key in (("SiLP", "silp"), ("Mid-align", "mid")):
        ours, plain = best[f"{key}_ours"], best[f"{key}_plain"]
        print(f"{name:<10} {1e3 * ours:>13.2f} {1e3 * plain:>14.2f} {ours / plain:>7.3f}")
    print("target: ratio <= 1.1")


if __name__ == "__main__":
    main()
