"""The deactivation matrix on a planted model (METHODS §10): neurons that alone carry a planted language raise
that language's perplexity when switched off, and not the others'; the random control barely moves anything.

The plant (a tiny Llama): three synthetic languages whose words use disjoint letters, so their
tokens are disjoint; each language L gets a direction e_L added to its tokens' embeddings and
four FFN neurons in block 0 that fire (A > 0) exactly on L's tokens and write a direction u_L
that the LM head turns into high logits for L's tokens. LAPE must find those neurons from the
recording, and switching them off must undo the prediction of L only.
"""

from __future__ import annotations

import random

import pytest
import torch

from workbench import models
from workbench.config import CorpusSpec, ModelSpec, RecordSpec
from workbench.interventions.experiments import deactivation_matrix
from workbench.interventions.resolve import lape_sets
from workbench.recordings import ensure_recording

LANGS = {"en": "abcde", "sw": "fghij", "fr": "klmno"}
N_PER_LANG = 4
EQ = len(LANGS) * N_PER_LANG / (2 * 128)  # LAPE keeps as many neurons as were planted (2 blocks x 128)


def _sentences(letters: str, n: int, rng: random.Random) -> list[str]:
    word = lambda: "".join(rng.choice(letters) for _ in range(rng.randint(2, 4)))  # noqa: E731
    return [" ".join(word() for _ in range(8)) for _ in range(n)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    rng = random.Random(0)
    texts = {lang: _sentences(letters, 30, rng) for lang, letters in LANGS.items()}
    tok = models.tiny_tokenizer()
    special = set(tok.all_special_ids)
    seen = {lang: {i for t in ts for i in tok(t)["input_ids"]} - special for lang, ts in texts.items()}
    shared = {i for a in seen for b in seen if a != b for i in seen[a] & seen[b]}  # a bare word-start marker
    assert len(shared) <= 2
    seen = {lang: ids - shared for lang, ids in seen.items()}
    model = models.tiny_model("llama", seed=0, n_layers=2)
    eye = torch.eye(64)
    mlp, plants = model.model.layers[0].mlp, {}
    with torch.no_grad():
        planted_dirs = [*range(len(LANGS)), *range(10, 10 + len(LANGS))]
        for block in model.model.layers:  # only the planted neurons read the language directions (e_L, u_L)
            for w in (block.mlp.gate_proj.weight, block.mlp.up_proj.weight, block.self_attn.v_proj.weight):
                w[:, planted_dirs] = 0
        for k, (lang, ids) in enumerate(seen.items()):
            e, u = eye[k], eye[10 + k]
            others = sum(eye[j] for j in range(len(LANGS)) if j != k)
            idx = torch.tensor(sorted(ids))
            model.model.embed_tokens.weight[idx] += e
            neurons = list(range(10 * k, 10 * k + N_PER_LANG))
            plants[lang] = neurons
            mlp.gate_proj.weight[neurons] = e - others
            mlp.up_proj.weight[neurons] = e
            mlp.down_proj.weight[:, neurons] = 4.0 * u[:, None]
            model.lm_head.weight[idx] += 3.0 * u
    d = tmp_path_factory.mktemp("planted") / "model"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    corpus = tmp_path_factory.mktemp("corpus") / "planted.tsv"
    rows = ["\t".join(LANGS)] + ["\t".join(texts[lang][i] for lang in LANGS) for i in range(30)]
    corpus.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return ModelSpec(source=str(d), device="cpu", dtype="float32"), str(corpus), texts, plants


def test_lape_finds_the_planted_neurons(planted):
    spec, corpus, _, plants = planted
    rec = ensure_recording(spec, CorpusSpec(corpus, tuple(LANGS), 20), RecordSpec(max_length=48))
    sets = lape_sets(rec, list(LANGS), entropy_quantile=EQ)
    assert {lang: sets[lang].get(0, []) for lang in LANGS} == plants


def test_switching_off_a_planted_languages_neurons_raises_only_its_perplexity(planted):
    spec, corpus, texts, _ = planted
    held = {lang: ts[20:30] for lang, ts in texts.items()}
    matrix, shift = deactivation_matrix(spec, CorpusSpec(corpus, tuple(LANGS), 20), RecordSpec(max_length=48), held,
                                        entropy_quantile=EQ, n_gen=0, n_boot=200)
    assert shift.empty
    cell = matrix.set_index(["row", "lang"])
    for i in LANGS:
        own = cell.loc[(i, i)]
        assert own["ci_low"] > 0 and own["neurons"] == N_PER_LANG
        for j in LANGS:
            if j != i:
                assert abs(cell.loc[(i, j), "delta"]) < 0.01 * own["delta"], (i, j)
        assert abs(cell.loc[("random", i), "delta"]) < 0.05 * own["delta"]
