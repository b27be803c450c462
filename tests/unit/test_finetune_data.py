"""Fine-tune specs and data: split, tokenisation (loss on targets only), padding, data order."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.corpus import CorpusError
from workbench.examples import (
    IGNORE,
    DataSpec,
    build_split,
    encode_texts,
    encode_translation,
    epoch_batches,
    n_batches,
    prompt_and_target,
    translation_examples,
)
from workbench.finetune.data import collate
from workbench.finetune.lens import LENSSpec
from workbench.finetune.methods import METHODS, spec_for
from workbench.finetune.midalign import MidAlignSpec
from workbench.finetune.silp import SiLPSpec
from workbench.models import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.mark.parametrize("cls", [DataSpec, *(m.spec for m in METHODS.values())])
def test_specs_round_trip_and_help(cls):
    spec = cls()
    assert cls.from_dict(spec.to_dict()) == spec
    assert all(cls.help().values()), f"{cls.__name__}: a field has no help"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 1 if hasattr(spec, "seed") else spec.source  # type: ignore[misc]


def test_spec_defaults_follow_the_papers():
    s, m, lens = SiLPSpec(), MidAlignSpec(), LENSSpec()
    assert (s.lr, s.schedule, s.warmup, s.epochs) == (2e-5, "cosine", 0.03, 2.0)
    assert (m.r, m.alpha, m.dropout, m.tau, m.lr) == (8, 16.0, 0.1, 0.1, 5e-4)
    assert set(m.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert (lens.lr, lens.batch_size, lens.samples_per_lang, lens.lambda1, lens.lambda3) == (1e-5, 8, 200, 1.0, 1.0)


def test_spec_validation_and_json_lists():
    with pytest.raises(ValueError, match="unknown field"):
        spec_for("silp", {"learning_rate": 1})
    with pytest.raises(ValueError, match="unknown fine-tune method"):
        spec_for("sft", {})
    with pytest.raises(ValueError):
        MidAlignSpec(task_loss=False, align_loss=False)
    with pytest.raises(ValueError):
        LENSSpec(languages=("en", "sw"), central="zh")
    with pytest.raises(ValueError):
        DataSpec(template="{src_text} -> {tgt_text} (end)")
    lens = LENSSpec.from_dict({"languages": ["en", "sw", "zh"], "push_per_lang": [["sw", 0.2]]})
    assert lens.push_strength("sw") == 0.2 and lens.push_strength("zh") == 1.0
    assert lens.targets == ("sw", "zh")
    assert SiLPSpec.from_dict({"n2d_layers": [1, 2]}).n2d_layers == (1, 2)


def test_split_is_seeded_disjoint_and_limited():
    a = build_split(DataSpec(limit=20), ("en", "sw"))
    b = build_split(DataSpec(limit=20), ("en", "sw"))
    c = build_split(DataSpec(limit=20, split_seed=1), ("en", "sw"))
    assert a.train == b.train and a.heldout == b.heldout and a.data_hash == b.data_hash
    assert a.train != c.train and a.data_hash != c.data_hash
    assert len(a.train) == 20 and len(a.heldout) == round(0.1 * 434)
    assert not set(a.train) & set(a.heldout)
    full = build_split(DataSpec(), ("en", "sw"))
    assert len(full.train) + len(full.heldout) == 434
    assert a.pairs("sw", "en")[0] == (a.train[0][1], a.train[0][0])
    assert a.names == {"en": "English", "sw": "Swahili"}


def test_split_unknown_language_is_a_clear_error():
    with pytest.raises(CorpusError, match="unknown language 'xx'"):
        build_split(DataSpec(), ("en", "xx"))


def test_translation_example_has_loss_on_target_only(tok):
    prompt, target = prompt_and_target(DataSpec().template, {"en": "English", "sw": "Swahili"}, "en", "sw",
                                       "I eat bread.", "Ninakula mkate.")
    assert prompt == "Translate the following sentence from English to Swahili.\nI eat bread.\n"
    ex = encode_translation(tok, prompt, target, 128)
    p = tok(prompt)["input_ids"]
    t = tok(target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert list(ex.ids) == p + t
    assert list(ex.labels) == [IGNORE] * len(p) + t
    assert ex.ids[0] == tok.bos_token_id and not ex.count[0] and not ex.count[-1]
    short = encode_translation(tok, prompt, target, 10)
    assert len(short.ids) == 10 and sum(x != IGNORE for x in short.labels) >= 5


def test_collate_pads_right_with_ignored_labels(tok):
    split = build_split(DataSpec(limit=4), ("en", "sw"))
    exs = translation_examples(tok, split, [("en", "sw"), ("sw", "en")])
    assert len(exs) == 8
    b = collate(exs[:3], tok.pad_token_id)
    lens = [len(e.ids) for e in exs[:3]]
    for r, n in enumerate(lens):
        assert b["attention_mask"][r, :n].all() and not b["attention_mask"][r, n:].any()
        assert (b["input_ids"][r, n:] == tok.pad_token_id).all()
        assert (b["labels"][r, n:] == IGNORE).all()
        assert b["labels"][r, :n].tolist() == list(exs[r].labels)


def test_encode_texts_chat_template_keeps_the_prompt_end(tok):
    plain = encode_texts(tok, ["Habari yako"], 64)[0]
    chat = encode_texts(tok, ["Habari yako"], 64, chat_template=True)[0]
    assert plain.ids[0] == tok.bos_token_id and not plain.count[0]
    assert tok.decode(chat.ids).endswith("assistant:")
    cut = encode_texts(tok, ["Habari yako " * 30], 8, chat_template=True)[0]
    assert len(cut.ids) == 8 and tok.decode(cut.ids).endswith("assistant:")


def test_epoch_batches_are_deterministic_and_cover_each_epoch():
    a = list(epoch_batches(10, 4, 2, seed=3))
    assert a == list(epoch_batches(10, 4, 2, seed=3))
    assert a != list(epoch_batches(10, 4, 2, seed=4))
    assert len(a) == n_batches(10, 4, 2) == 6
    assert sorted(i for b in a[:3] for i in b) == list(range(10))
    assert sorted(i for b in a[3:] for i in b) == list(range(10))
    assert len(list(epoch_batches(10, 4, 0.5, seed=0))) == 2
