"""Benchmark: the lens recording against a plain loop, on Gemma-3-270M (262k vocabulary), fp32, CPU or GPU.

Prompts: Wendler et al.'s word-translation prompts over the bundled word list, English →
each of 8 languages (fr de es ru zh ja sw hi), the first `--prompts` kept items each, read
at the last position (what `workbench analyze latent` records).

  lens       `recordings.lens.ensure_lens` into a fresh store, one request per language
             (nnsight trace stopped after the last block, length-grouped batches under
             the default token budget, every layer decoded in float64: top-5, entropy, KL to
             the final layer, the masses of the 3 token sets of each item; stored)
  plain@B    the plain loop of issue 22: the causal LM called as a user calls it,
             `model(input_ids, attention_mask, output_hidden_states=True)` (HF then runs the
             final norm and the LM head over every position, as its default
             `logits_to_keep=0` does), prompts in their order, B per padded batch; then at
             each prompt's last token every layer's final norm, the unembedding (and
             Gemma's soft-cap) and a float32 softmax. No reductions, nothing stored.
  lean@B     the same without the LM head over the sequence (the base model only): the
             stricter baseline, reported beside it.
B is searched on a subset (`--search` prompts per language; the lens is timed on it too) and
the best B of plain is the baseline of the full run.

The full run times lens, plain@best and lean@best in one process, interleaved language by
language in a rotating order (the load of a shared machine drifts; `--repeats` rounds, the
minimum per language counts); the ratio lens / plain@best is the number to read (target <=
0.9). Then two child processes record 8 × `--small` and 8 × `--large` prompts: their peak RSS
must not grow with the prompts.

    PYTHONPATH=. python bench/lens.py [--prompts 50] [--small 10] [--large 50] [--search 4] [--batch-sizes 4,8,16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

TARGETS = ["fr", "de", "es", "ru", "zh", "ja", "sw", "hi"]


def _prompts(state, per_lang: int) -> list[tuple[str, list[str], list[tuple[str, tuple[int, ...]]]]]:
    from workbench.latent import ROLES, load_words, word_latent_items

    out = []
    for tgt in TARGETS:
        items = word_latent_items(load_words(), source="en", target=tgt, tokenizer=state.tokenizer).items[:per_lang]
        sets = [(f"{r}:{it.concept}", tuple(it.token_sets[r])) for it in items for r in ROLES]
        out.append((tgt, [it.prompt for it in items], sets))
    return out


def run_lens(state, data) -> float:
    """Seconds for the lens recordings of every language, each into a fresh store."""
    from workbench.lenses import LensSpec
    from workbench.recordings.lens import LensRequest, ensure_lens
    from workbench.store import Store

    with tempfile.TemporaryDirectory() as d:
        store = Store(d)
        t0 = time.perf_counter()
        for tgt, prompts, sets in data:
            ensure_lens(state.spec, LensRequest(tuple(prompts), tuple(sets), LensSpec(), "logit",
                                                {"unit": f"en>{tgt}"}), store=store, state=state)
        return time.perf_counter() - t0


def run_plain(state, data, batch: int, *, full_head: bool = True) -> float:
    """Seconds for the plain loop over every language's prompts with `batch` prompts per padded batch.

    `full_head`: call the causal LM (its LM head runs over every position); else its base model.
    """
    import torch

    from workbench.models import get_path
    from workbench.models.unembed import lens_logits, postprocess_logits

    base, head = get_path(state.model, state.arch.base), get_path(state.model, state.arch.unembed)
    forward = state.model if full_head else base
    tok = state.tokenizer
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _, prompts, _ in data:
            ids = [tok(p)["input_ids"] for p in prompts]
            for i in range(0, len(ids), batch):
                b = ids[i:i + batch]
                width = max(map(len, b))
                x = torch.full((len(b), width), tok.pad_token_id)
                mask = torch.zeros_like(x)
                for r, seq in enumerate(b):
                    x[r, :len(seq)], mask[r, :len(seq)] = torch.tensor(seq), 1
                hs = forward(input_ids=x.to(state.device), attention_mask=mask.to(state.device),
                             output_hidden_states=True, use_cache=False).hidden_states
                rows, last = torch.arange(len(b)), mask.sum(1) - 1
                for layer in range(1, len(hs)):  # hidden_states[l+1] = block l; the last one is final-normed
                    h = hs[layer][rows, last]
                    logits = (lens_logits(state.model, state.arch, h) if layer < len(hs) - 1
                              else postprocess_logits(state.model, state.arch, head(h)))
                    torch.softmax(logits.float(), dim=-1)
    return time.perf_counter() - t0


def interleaved(methods: dict, data: list, repeats: int) -> dict[str, float]:
    """Seconds per method over every language, the methods interleaved language by language.

    On a shared machine the load drifts; running every method on one language before the
    next language (in a rotating order) exposes them to the same drift. Per language the
    minimum over `repeats` rounds counts; the sum over languages is returned.
    """
    names = list(methods)
    best: dict[str, list[float]] = {m: [float("inf")] * len(data) for m in names}
    for r in range(repeats):
        for i, one in enumerate(data):
            k = (i + r) % len(names)
            for m in names[k:] + names[:k]:
                best[m][i] = min(best[m][i], methods[m]([one]))
    return {m: sum(v) for m, v in best.items()}


def child(n: int) -> None:
    """Record 8 × n prompts in this process; print seconds and peak RSS as JSON."""
    from workbench.models import load

    state = load("gemma-3-270m")
    data = _prompts(state, n)
    secs = run_lens(state, data)
    print(json.dumps({"prompts": sum(len(p) for _, p, _ in data), "seconds": secs,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    """Time lens vs plain@best in one process, then the peak RSS of two sizes in child processes."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--small", type=int, default=10)
    ap.add_argument("--large", type=int, default=None, help="prompts per language of the larger child")
    ap.add_argument("--search", type=int, default=4, help="prompts per language of the batch-size search")
    ap.add_argument("--batch-sizes", default="4,8,16")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child)
        return
    import torch

    from workbench.models import load

    state = load("gemma-3-270m")
    print(f"gemma-3-270m on {state.device}, {torch.get_num_threads()} threads, vocabulary "
          f"{state.tokenizer.vocab_size:,}, {state.n_layers} blocks")
    search = _prompts(state, a.search)
    run_lens(state, search[:1])  # warm: nnsight's first trace imports it
    sizes = [int(x) for x in a.batch_sizes.split(",")]
    methods = {"lens": lambda d: run_lens(state, d),
               **{f"plain@{b}": (lambda d, b=b: run_plain(state, d, b)) for b in sizes},
               **{f"lean@{b}": (lambda d, b=b: run_plain(state, d, b, full_head=False)) for b in sizes}}
    found = interleaved(methods, search, 1)
    best = min(sizes, key=lambda b: found[f"plain@{b}"])
    lean = min(sizes, key=lambda b: found[f"lean@{b}"])
    print(f"batch-size search, 8 × {a.search} prompts: " + ", ".join(f"{k} {v:.1f} s" for k, v in found.items()))
    print(f"  lens / plain@{best} = {found['lens'] / found[f'plain@{best}']:.2f}, "
          f"lens / lean@{lean} = {found['lens'] / found[f'lean@{lean}']:.2f}")
    data = _prompts(state, a.prompts)
    n = sum(len(p) for _, p, _ in data)
    chosen = {k: methods[k] for k in ("lens", f"plain@{best}", f"lean@{lean}")}
    times = interleaved(chosen, data, a.repeats)
    print(f"\n| method | prompts | seconds (sum over languages, min of {a.repeats}) | prompts/s |")
    print("|---|---:|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {n} | {t:.1f} | {n / t:.2f} |")
    print(f"\nratio lens / plain@{best} = {times['lens'] / times[f'plain@{best}']:.2f} (target <= 0.9); "
          f"lens / lean@{lean} = {times['lens'] / times[f'lean@{lean}']:.2f}")
    rss = []
    for k in (a.small, a.large or a.prompts):
        out = subprocess.run([sys.executable, __file__, "--child", str(k)], capture_output=True, text=True, check=True)
        rss.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("\n| child process | prompts | seconds | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for r in rss:
        print(f"| lens | {r['prompts']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    print(f"peak RSS growth from {rss[0]['prompts']} to {rss[1]['prompts']} prompts: "
          f"{100 * (rss[1]['peak_rss_mb'] / rss[0]['peak_rss_mb'] - 1):+.1f}%")


if __name__ == "__main__":
    main()
