"""Config and analysis input checks: one ParamError line naming the field, before any work."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.analysis.embed2d import embed_2d
from workbench.config import DEVICES, DTYPES, CorpusSpec, ModelSpec, RecordSpec
from workbench.errors import ParamError, WorkbenchError, user_message


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = user_message(e.value)
    assert "\n" not in msg and isinstance(e.value, WorkbenchError) and isinstance(e.value, ValueError)
    return msg


@pytest.mark.parametrize("device", ["tpu", "meta", "banana", "cuda:x", "cuda:", "CPU", "gpu", ""])
def test_unknown_devices_are_refused_with_the_choices(device):
    with pytest.raises(ParamError) as e:
        ModelSpec(device=device)
    msg = _one_line(e)
    assert msg.startswith("ModelSpec.device (--device)") and repr(device) in msg
    assert "auto, cpu, cuda, cuda:N, mps" in msg


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_known_devices_are_accepted(device):
    assert ModelSpec(device=device).device == device


@pytest.mark.parametrize("dtype", ["float8", "fp32", "int8", "half", ""])
def test_unknown_dtypes_are_refused(dtype):
    with pytest.raises(ParamError, match=r"ModelSpec.dtype \(--dtype\): unknown dtype .*auto, float32, bfloat16, "
                                         r"float16"):
        ModelSpec(dtype=dtype)


def test_every_documented_choice_is_accepted():
    for dtype in DTYPES:
        ModelSpec(dtype=dtype)
    assert set(DEVICES) == {"auto", "cpu", "cuda", "cuda:N", "mps"}


@pytest.mark.parametrize("kw,match", [
    ({"source": ""}, r"ModelSpec.source \(--model\) is empty"),
    ({"trust_remote_code": "yes"}, "ModelSpec.trust_remote_code must be true or false"),
    ({"artifact": 3}, "ModelSpec.artifact must be a string or None"),
])
def test_model_spec_fields(kw, match):
    with pytest.raises(ParamError, match=match):
        ModelSpec(**kw)


@pytest.mark.parametrize("kw,match", [
    ({"limit": 0}, r"CorpusSpec.limit \(--limit\) must be at least 1 unit per language .*got 0"),
    ({"limit": -3}, r"CorpusSpec.limit \(--limit\) must be at least 1 .*got -3"),
    ({"limit": 2.5}, "CorpusSpec.limit must be a whole number or None, got 2.5"),
    ({"limit": True}, "CorpusSpec.limit must be a whole number"),
    ({"langs": ()}, r"CorpusSpec.langs \(--langs\) is empty"),
    ({"langs": ("en", "en")}, r"CorpusSpec.langs \(--langs\) lists 'en' twice"),
    ({"langs": ("en", "sw", "en", "sw")}, r"lists 'en', 'sw' twice"),
    ({"langs": ("en", "")}, r"CorpusSpec.langs \(--langs\) must be non-empty language codes"),
    ({"langs": "en,sw"}, "CorpusSpec.langs must be a tuple of language codes"),
    ({"source": " "}, r"CorpusSpec.source \(--corpus\) is empty"),
])
def test_corpus_spec_fields(kw, match):
    with pytest.raises(ParamError, match=match) as e:
        CorpusSpec(**kw)
    _one_line(e)


def test_corpus_spec_accepts_the_ordinary_cases():
    assert CorpusSpec(limit=1).limit == 1 and CorpusSpec(limit=None).limit is None
    assert CorpusSpec(langs=("en",)).langs == ("en",)


@pytest.mark.parametrize("kw,field", [
    ({"poolings": ("max",)}, "poolings"),
    ({"poolings": ()}, "poolings"),
    ({"poolings": ("mean", "mean")}, "poolings"),
    ({"poolings": "mean"}, "poolings"),
    ({"embeddings": "no"}, "embeddings"),
    ({"ffn_stats": 1}, "ffn_stats"),
    ({"chat_template": None}, "chat_template"),
    ({"include_special": "true"}, "include_special"),
    ({"max_length": 1}, "max_length"),
    ({"max_length": 8.5, "batch_tokens": 64}, "max_length"),
    ({"batch_tokens": 0}, "batch_tokens"),
    ({"batch_tokens": True}, "batch_tokens"),
    ({"template": "no placeholder"}, "template"),
    ({"template": 5}, "template"),
    ({"token_span": "middle"}, "token_span"),
    ({"token_span": "source"}, "token_span"),
    ({"layers": (-1,)}, "layers"),
    ({"layers": ()}, "layers"),
    ({"layers": (1, 1)}, "layers"),
    ({"layers": (1.0,)}, "layers"),
    ({"layers": [0, 1]}, "layers"),
])
def test_every_record_spec_error_names_its_field(kw, field):
    with pytest.raises(ParamError) as e:
        RecordSpec(**kw)
    assert _one_line(e).startswith(f"RecordSpec.{field}")


def test_from_dict_unknown_field_is_a_param_error():
    with pytest.raises(ParamError, match=r"RecordSpec: unknown field\(s\) \['nope'\]"):
        RecordSpec.from_dict({"nope": 1})
    assert RecordSpec.from_dict(RecordSpec(layers=(0, 2)).to_dict()) == RecordSpec(layers=(0, 2))


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
@pytest.mark.parametrize("n", [0, 1, 2])
def test_embed_2d_too_few_points_is_a_param_error(method, n):
    names = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
    with pytest.raises(ParamError, match=f"a {names[method]} map needs at least n=3 points .*got n={n}"):
        embed_2d(np.ones((n, 4)), method=method)


def test_embed_2d_unknown_method_is_a_param_error():
    with pytest.raises(ParamError, match="unknown embedding method 'mds'"):
        embed_2d(np.ones((5, 4)), method="mds")
