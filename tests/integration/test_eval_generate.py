"""Batched generation: order kept, batching does not change greedy outputs, seeded sampling, stops."""

from __future__ import annotations

import dataclasses

import torch

from workbench.evaluation.generate import DecodingSpec, generate, stop_token_ids
from workbench.examples import prompt_and_target
from workbench.models.hooks.cctuning import CCTuningInference


def _prompts(split, n=5):
    pairs = split.pairs("en", "sw", "heldout")[:n]
    return [prompt_and_target(split.spec.template, split.names, "en", "sw", s, t)[0] for s, t in pairs]


def test_batched_equals_one_at_a_time_and_keeps_order(tiny_state, split):
    prompts = _prompts(split) + ["x"]
    dec = DecodingSpec(max_new_tokens=6, stop_at_newline=False)
    one = [generate(tiny_state, [p], dec)[0] for p in prompts]
    batched = generate(tiny_state, prompts, DecodingSpec(max_new_tokens=6, stop_at_newline=False, batch_size=4))
    assert batched == one
    assert generate(tiny_state, prompts[::-1], dec) == one[::-1]


def test_outputs_are_one_line_and_stop_tokens(tiny_state, split):
    stops = stop_token_ids(tiny_state.tokenizer, stop_at_newline=True)
    assert stops[0] == tiny_state.tokenizer.eos_token_id and len(stops) > 1
    assert all("\n" in tiny_state.tokenizer.decode([i]) for i in stops[1:])
    outs = generate(tiny_state, _prompts(split), DecodingSpec(max_new_tokens=12))
    assert all("\n" not in o for o in outs)
    raw = generate(tiny_state, _prompts(split), DecodingSpec(max_new_tokens=12), raw=True)
    assert [r.split("\n", 1)[0].strip() for r in raw] == outs


def test_sampling_is_seeded(tiny_state, split):
    dec = DecodingSpec(max_new_tokens=6, do_sample=True, seed=3, stop_at_newline=False)
    a, b = generate(tiny_state, _prompts(split), dec), generate(tiny_state, _prompts(split), dec)
    c = generate(tiny_state, _prompts(split), DecodingSpec(max_new_tokens=6, do_sample=True, seed=4,
                                                           stop_at_newline=False))
    greedy = generate(tiny_state, _prompts(split), DecodingSpec(max_new_tokens=6, stop_at_newline=False))
    assert a == b and a != c and a != greedy


def test_cctuning_generation_runs_two_pass(tiny_state, split):
    d, n_layers = tiny_state.d_model, tiny_state.n_layers
    gen = torch.Generator().manual_seed(0)
    cc = dataclasses.replace(tiny_state, inference=CCTuningInference(torch.randn(d, n_layers, generator=gen),
                                                                     torch.eye(d) * 5.0))
    dec = DecodingSpec(max_new_tokens=6, stop_at_newline=False)
    outs = generate(cc, _prompts(split), dec)
    assert len(outs) == 5 and outs != generate(tiny_state, _prompts(split), dec)
