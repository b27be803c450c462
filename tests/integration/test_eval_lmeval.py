"""lm-evaluation-harness: the offline task through the real `lm_eval` API on the tiny model.

The task's accuracy must equal what our own scoring of the same items gives (argmax of
the summed log-probabilities of each candidate), so the YAML, the data file, lm-eval's
request building and `WorkbenchLM` are all checked together.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from workbench.errors import EvalError
from workbench.evaluation.generate import DecodingSpec, generate
from workbench.evaluation.lmeval import OFFLINE_TASK, WorkbenchLM, choice_items, offline_task_dir, run_task
from workbench.models.hooks.cctuning import CCTuningInference


class _Req:
    def __init__(self, *args):
        self.args = args


def _manual_logprob(state, context: str, continuation: str) -> float:
    tok = state.tokenizer
    ctx = tok(context, add_special_tokens=True)["input_ids"]
    cont = tok(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(state.model(input_ids=ids).logits[0].float(), -1)
    return float(sum(logp[len(ctx) - 1 + i, t] for i, t in enumerate(cont)))


def test_choice_items_are_deterministic_and_honest(split):
    a, b = choice_items(split, "sw", "en"), choice_items(split, "sw", "en")
    assert a == b and len(a) == len(split.heldout)
    for item, (src, ref) in zip(a, split.pairs("sw", "en", "heldout")):
        assert item["choices"][item["label"]] == ref and src in item["prompt"]
        assert len(set(item["choices"])) == 4
        assert item["prompt"].startswith("Translate the following sentence from Swahili to English.")
    assert choice_items(split, "sw", "en", seed=1) != a
    d = offline_task_dir(split, "sw", "en")
    rows = [json.loads(x) for x in (d / "items.jsonl").read_text().splitlines()]
    assert rows == a and (d / f"{OFFLINE_TASK}.yaml").is_file()


def test_loglikelihood_matches_a_single_forward(tiny_state):
    lm = WorkbenchLM(tiny_state, batch_size=3)
    reqs = [_Req("Translate this.\nHabari\n", "Hello there"), _Req("a b c", " d"), _Req("", "Jambo"),
            _Req("Translate this.\nHabari\n", "Goodbye")]
    got = lm.loglikelihood(reqs)
    for r, (lp, greedy) in zip(reqs, got):
        ctx = r.args[0] or None
        want = _manual_logprob(tiny_state, ctx, r.args[1]) if ctx else None
        if want is not None:
            assert lp == pytest.approx(want, abs=1e-4)
        assert lp < 0 and isinstance(greedy, bool)
    rolling = lm.loglikelihood_rolling([_Req("Ninapenda kusoma vitabu.")])
    assert rolling[0] < 0


def test_offline_task_through_lm_eval_equals_our_scoring(tiny_state, split):
    rows = run_task(tiny_state, OFFLINE_TASK, split=split, direction=("sw", "en"), limit=8, n_boot=100)
    by = {r["metric"]: r for r in rows}
    assert set(by) == {"acc", "acc_norm"} and by["acc"]["n"] == 8
    lm = WorkbenchLM(tiny_state)
    hits = []
    for item in choice_items(split, "sw", "en")[:8]:
        scores = [lp for lp, _ in lm.loglikelihood([_Req(item["prompt"], c) for c in item["choices"]])]
        hits.append(max(range(4), key=scores.__getitem__) == item["label"])
    assert by["acc"]["value"] == pytest.approx(sum(hits) / 8)
    assert by["acc"]["ci_low"] <= by["acc"]["value"] <= by["acc"]["ci_high"]


def test_cctuning_state_scores_with_connection_and_refuses_rolling(tiny_state):
    d, n_layers = tiny_state.d_model, tiny_state.n_layers
    gen = torch.Generator().manual_seed(0)
    cc = dataclasses.replace(tiny_state, inference=CCTuningInference(torch.randn(d, n_layers, generator=gen),
                                                                     torch.eye(d) * 5.0))
    plain = WorkbenchLM(tiny_state).loglikelihood([_Req("Habari ya asubuhi\n", "Good morning")])[0][0]
    connected = WorkbenchLM(cc).loglikelihood([_Req("Habari ya asubuhi\n", "Good morning")])[0][0]
    assert connected != pytest.approx(plain, abs=1e-6)  # the connection changed the pass
    with pytest.raises(EvalError, match="CC-Tuning"):
        WorkbenchLM(cc).loglikelihood_rolling([_Req("text")])


def test_generate_until_batches_requests_and_keeps_their_order(tiny_state):
    contexts = ["Habari ya asubuhi", "Good", "All human beings are born free and equal in dignity", "Ndiyo",
                "The quick brown fox jumps"]
    reqs = [_Req(c, {"until": ["\n"], "max_gen_toks": 6}) for c in contexts[:3]]
    reqs += [_Req(c, {"until": [], "max_gen_toks": 4}) for c in contexts[3:]]
    calls = []
    lm = WorkbenchLM(tiny_state, batch_size=8, on_batch=calls.append)
    got = lm.generate_until(reqs)
    want = [generate(tiny_state, [r.args[0]], DecodingSpec(max_new_tokens=r.args[1]["max_gen_toks"],
                                                           stop_at_newline=bool(r.args[1]["until"]), batch_size=1),
                     raw=True)[0] for r in reqs]
    assert got == want and len(set(got)) > 2  # request order kept; distinct outputs, so a mix-up would show
    assert sum(calls) == len(reqs) and len(calls) == 2  # two decodings: two batches, not five calls
    cut = WorkbenchLM(tiny_state).generate_until([_Req(contexts[1], {"until": [want[1][2:4]], "max_gen_toks": 6})])
    assert cut == [want[1].split(want[1][2:4], 1)[0]]
