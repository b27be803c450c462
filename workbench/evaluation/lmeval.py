"""lm-evaluation-harness integration: a model class around a ModelState, hub tasks, one offline task.

- `WorkbenchLM`: an `lm_eval.api.model.LM` over a loaded state (no second model load).
  `loglikelihood` scores continuations teacher-forced in length-sorted, right-padded
  batches (context and continuation tokenised separately, as the fine-tune data is);
  `loglikelihood_rolling` uses lm-eval's disjoint rolling windows; `generate_until` uses
  the evaluation's batched generation. Every forward goes through the state's inference
  (`models.hooks`): a CC-Tuning state, for one, scores with its
  two-pass inference, the connection at the last context token (the position before the
  response) and generates with `cctuning_generate`; `loglikelihood_rolling` has no
  response position, so perplexity-type tasks raise `EvalError` for it.
- `OFFLINE_TASK` ("tatoeba_choice"): **choose the true translation of a held-out Tatoeba
  sentence among four candidates.** For a direction (s, t) each held-out unit of the
  split gives one item: the prompt is the fine-tune template up to `{tgt_text}` for
  s → t, the candidates are the unit's t sentence and three other held-out t sentences
  (texts different from the true one; the training part is never read, so the task does
  not depend on a fine-tune's training size),
  drawn with `numpy.random.default_rng([seed, item])`, and the true one's position is
  drawn from the same generator. Accuracy is lm-eval's `acc` (sum of log-probabilities of
  each candidate) and `acc_norm` (per byte). Chance is 25%. The distractors are random
  sentences, not hard negatives, so the task mostly measures whether the model links the
  two languages at all; it is small (one item per held-out unit) and its interval is wide.
  The data file and task YAML are written deterministically into the cache
  (`<cache>/lmeval_tasks/<hash>/`) and loaded through lm-eval's `TaskManager(include_path=...)`.
- Hub tasks (Belebele, XNLI, ...) run by name when the Hugging Face Hub is reachable;
  offline (`HF_HUB_OFFLINE`/`HF_DATASETS_OFFLINE`, or a 2-second connection check fails)
  they raise `EvalError` before any work.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from workbench.config import stable_hash
from workbench.errors import EvalError
from workbench.evaluation.generate import DecodingSpec, generate
from workbench.evaluation.metrics import bootstrap_mean
from workbench.examples import ParallelSplit, prompt_and_target, scoring_batches
from workbench.paths import cache_root
from workbench.progress import Advance

__all__ = ["OFFLINE_TASK", "WorkbenchLM", "check_task", "hub_reachable", "offline_task_dir", "run_task"]

log = logging.getLogger(__name__)

OFFLINE_TASK = "tatoeba_choice"
"""The shipped offline task (see the module docstring)."""
OFFLINE_TASK_VERSION = 2
N_CHOICES = 4
_MAX_LENGTH = 2048


class WorkbenchLM(LM):
    """lm-eval's model interface over a loaded ModelState (its inference: `state.inference`)."""

    def __init__(self, state: Any, *, batch_size: int = 8, on_batch: Advance | None = None) -> None:
        super().__init__()
        self.state, self.batch_size, self.on_batch = state, batch_size, on_batch
        tok = state.tokenizer
        self.prefix_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        cfg = state.model.config
        self.max_length = min(int(getattr(cfg, "max_position_embeddings", _MAX_LENGTH) or _MAX_LENGTH), _MAX_LENGTH)

    @property
    def tokenizer_name(self) -> str:
        """Name lm-eval records for the tokenizer."""
        return str(getattr(self.state.tokenizer, "name_or_path", "")).replace("/", "__")

    # -- scoring
    def _context_ids(self, context: str) -> list[int]:
        ids = list(self.state.tokenizer(context, add_special_tokens=True)["input_ids"]) if context else []
        return ids or [self.prefix_id]

    def _logits(self, ids: torch.Tensor, attn: torch.Tensor, lengths: list[int], n_cont: list[int]) -> torch.Tensor:
        pos = torch.tensor([n - c for n, c in zip(lengths, n_cont)], dtype=torch.long, device=ids.device)
        return self.state.inference.logits(self.state, ids, attn, pos.clamp(min=0))

    def _score_batch(self, seqs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """Score `(inputs, targets)` rows: the last `len(targets)` positions of `inputs` predict `targets`."""
        model, pad = self.state.model, self.state.tokenizer.pad_token_id
        dev = next(model.parameters()).device
        width = max(len(s) for s, _ in seqs)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s, _ in seqs], dtype=torch.long, device=dev)
        attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s, _ in seqs], dtype=torch.long, device=dev)
        with torch.inference_mode():
            logits = self._logits(ids, attn, [len(s) for s, _ in seqs], [len(t) for _, t in seqs])
            res = []
            for row, (s, targets) in enumerate(seqs):
                n, k = len(s), len(targets)
                lp = F.log_softmax(logits[row, n - k:n].float(), dim=-1)
                tgt = torch.tensor(targets, device=lp.device)  # the LM head may sit on a later GPU (device_map)
                res.append((float(lp.gather(1, tgt[:, None]).sum()), bool((lp.argmax(-1) == tgt).all())))
        return res

    def _pairs(self, requests: Sequence[Any]) -> list[tuple[list[int], list[int]]]:
        tok = self.state.tokenizer
        out = []
        for r in requests:
            context, continuation = r.args[0], r.args[1]
            cont = list(tok(continuation, add_special_tokens=False)["input_ids"])
            if not cont:
                raise EvalError(f"lm-eval continuation {continuation!r} has no tokens")
            out.append((self._context_ids(context), cont))
        return out

    def _run_pairs(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """Score (context ids, continuation ids) pairs in length-grouped batches (`scoring_batches`, longest first)."""
        seqs = []
        for ctx, cont in pairs:
            full = (ctx + cont)[-(self.max_length + 1):]  # keep the end: left-truncate long contexts
            k = min(len(cont), len(full) - 1)
            seqs.append((full[:-1], full[len(full) - k:]))
        out: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        for chunk in scoring_batches([len(s) for s, _ in seqs], batch_size=self.batch_size):
            for i, res in zip(chunk, self._score_batch([seqs[i] for i in chunk])):
                out[i] = res
            if self.on_batch is not None:
                self.on_batch(len(chunk))
        return out

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log p(continuation | context), greedy?) of each request's `(context, continuation)`."""
        return self._run_pairs(self._pairs(requests))

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of each whole string (disjoint rolling windows of the model's length)."""
        if self.state.inference.needs_position:
            raise EvalError(f"{self.state.inference.label} states cannot run perplexity-type lm-eval tasks "
                            "(loglikelihood_rolling): what they change at inference needs a response position")
        tok = self.state.tokenizer
        out = []
        for r in requests:
            ids = list(tok(r.args[0], add_special_tokens=False)["input_ids"])
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=ids, prefix_token=self.prefix_id, max_seq_len=self.max_length, context_len=1)]
            out.append(sum(lp for lp, _ in self._run_pairs([(list(c), list(t)) for c, t in windows])))
        return out

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy continuation of each context, cut at the first of its `until` strings.

        Requests with the same decoding (`max_gen_toks`, whether a newline stops) are
        generated together (`generate`: sorted by length, `batch_size` prompts per call);
        outputs come back in request order.
        """
        groups: dict[tuple[int, bool], list[int]] = {}
        untils = []
        for i, r in enumerate(requests):
            kw = dict(r.args[1] or {})
            until = kw.get("until") or []
            untils.append([until] if isinstance(until, str) else list(until))
            groups.setdefault((int(kw.get("max_gen_toks", 256)), "\n" in untils[-1]), []).append(i)
        out = [""] * len(requests)
        for (max_new, newline), idx in groups.items():
            decoding = DecodingSpec(max_new_tokens=max_new, stop_at_newline=newline, batch_size=self.batch_size)
            texts = generate(self.state, [requests[i].args[0] for i in idx], decoding,
                             on_batch=self.on_batch, raw=True)
            for i, text in zip(idx, texts):
                for stop in untils[i]:
                    if stop and stop in text:
                        text = text.split(stop, 1)[0]
                out[i] = text
        return out


# --------------------------------------------------------------------------- the offline task


def choice_items(split: ParallelSplit, src: str, tgt: str, *, seed: int = 0) -> list[dict[str, Any]]:
    """The offline task's items for `src → tgt` (see the module docstring): prompt, choices, label."""
    pool = sorted(set(split.column(tgt, "heldout")))
    items = []
    for k, (s_text, t_text) in enumerate(split.pairs(src, tgt, "heldout")):
        rng = np.random.default_rng([seed, k])
        others = [p for p in pool if p != t_text]
        if len(others) < N_CHOICES - 1:
            raise EvalError(f"{OFFLINE_TASK}: the data has too few distinct {tgt} sentences for {N_CHOICES} choices")
        picks = [others[i] for i in rng.choice(len(others), size=N_CHOICES - 1, replace=False)]
        label = int(rng.integers(N_CHOICES))
        choices = picks[:label] + [t_text] + picks[label:]
        prompt, _ = prompt_and_target(split.spec.template, split.names, src, tgt, s_text, t_text)
        items.append({"id": k, "prompt": prompt, "choices": choices, "label": label})
    return items


def _task_yaml(data_file: Path) -> str:
    return "\n".join([
        f"task: {OFFLINE_TASK}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {json.dumps(str(data_file))}",
        "test_split: test",
        "output_type: multiple_choice",
        'doc_to_text: "{{prompt}}"',
        'doc_to_choice: "{{choices}}"',
        'doc_to_target: "{{label}}"',
        'target_delimiter: ""',
        "metric_list:",
        "  - metric: acc",
        "    aggregation: mean",
        "    higher_is_better: true",
        "  - metric: acc_norm",
        "    aggregation: mean",
        "    higher_is_better: true",
        "metadata:",
        f"  version: {OFFLINE_TASK_VERSION}",
        "",
    ])


def offline_task_dir(split: ParallelSplit, src: str, tgt: str, *, seed: int = 0) -> Path:
    """Directory holding the offline task's YAML and data for `src → tgt` (written once, atomically)."""
    items = choice_items(split, src, tgt, seed=seed)
    key = stable_hash({"task": OFFLINE_TASK, "v": OFFLINE_TASK_VERSION, "items": items})
    d = cache_root() / "lmeval_tasks" / key
    if (d / f"{OFFLINE_TASK}.yaml").is_file():
        return d
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = d.parent / f".tmp-{key}-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    data = tmp / "items.jsonl"
    data.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
    (tmp / f"{OFFLINE_TASK}.yaml").write_text(_task_yaml(d / "items.jsonl"), encoding="utf-8")
    try:
        os.replace(tmp, d)
    except OSError:  # another process wrote it first: theirs is identical
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return d


# --------------------------------------------------------------------------- hub tasks


def hub_reachable(timeout: float = 2.0) -> bool:
    """False when offline mode is set or huggingface.co:443 does not accept a connection within `timeout`."""
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _hub_task_names() -> frozenset[str]:
    # building lm-eval's full index scans ~15k YAML files (~10 s); done once per process
    from lm_eval.tasks import TaskManager

    tm = TaskManager()
    return frozenset(tm.all_tasks)


def check_task(task: str) -> None:
    """Raise `EvalError` (one line) if `task` is unknown, or needs the Hub while it is unreachable."""
    if task == OFFLINE_TASK:
        return
    names = _hub_task_names()
    if task not in names:
        import difflib  # stdlib; only for the message

        close = difflib.get_close_matches(task, sorted(names), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EvalError(f"unknown lm-eval task {task!r}{hint} (offline task: {OFFLINE_TASK})")
    if not hub_reachable():
        raise EvalError(f"lm-eval task {task!r} needs the Hugging Face Hub, which is not reachable (offline); "
                        f"use the offline task {OFFLINE_TASK!r}")


def _rows_from(results: dict[str, Any], task_names: Sequence[str], n_boot: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    samples = results.get("samples", {})
    for task in task_names:
        for key, value in results["results"].get(task, {}).items():
            if "," not in key or "_stderr" in key or not isinstance(value, int | float):
                continue
            metric = key.split(",")[0]
            per = [s[metric] for s in samples.get(task, []) if isinstance(s.get(metric), int | float)]
            lo = hi = float("nan")
            if per and abs(float(np.mean(per)) - float(value)) < 1e-9:
                ci = bootstrap_mean(per, n_boot=n_boot, seed=seed)
                lo, hi = ci.low, ci.high
            rows.append({"task": task, "metric": metric, "value": float(value), "ci_low": lo, "ci_high": hi,
                         "n": len(per)})
    return rows


def run_task(state: Any, task: str, *, split: ParallelSplit | None = None, direction: tuple[str, str] | None = None,
             limit: int | None = None, batch_size: int = 8,
             on_batch: Advance | None = None, n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Run one lm-eval task on `state` through `lm_eval.simple_evaluate`.

    Returns:
        One dict per (task, metric): task, metric, value, ci_low, ci_high (bootstrap over
        items when lm-eval logged a per-item value whose mean is the metric), n.
    """
    from lm_eval import simple_evaluate  # importing the evaluator loads datasets/evaluate; only here
    from lm_eval.tasks import TaskManager

    check_task(task)
    if task == OFFLINE_TASK:
        if split is None or direction is None:
            raise EvalError(f"{OFFLINE_TASK} needs the parallel data and a direction")
        tm = TaskManager(include_path=str(offline_task_dir(split, *direction, seed=seed)), include_defaults=False)
    else:
        tm = TaskManager()
    lm = WorkbenchLM(state, batch_size=batch_size, on_batch=on_batch)
    results = simple_evaluate(model=lm, tasks=[task], task_manager=tm, limit=limit, log_samples=True,
                              bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                              fewshot_random_seed=seed)
    if results is None:
        raise EvalError(f"lm-eval returned no results for {task!r}")
    return _rows_from(results, [t for t in results["results"]], n_boot, seed)
