"""Paper presets (METHODS.md §8): the recording and analysis settings of each paper's own code.

Our defaults (special tokens excluded from pooling and FFN counts, the top block read
before the final norm) are deliberate. A user reproducing a paper must match its
pipeline instead; a preset holds exactly the fields the paper's code sets differently:

- ``midalign`` (Mid-align, its training code's pooling): mean over the attention mask,
  **BOS included**; retrieval = LASER's xsim ratio margin, k = 4; the model's single number
  is the mean all-pairs accuracy over its even layers in **its** numbering (layer ``m`` =
  the output of ``m`` blocks = our block ``m − 1``; ``retrieval.mid_align_score``). Its
  retrieval-evaluation code is not public in the repository we could read, so the top layer
  is left at our default (pre-norm block ``L − 1``); this is named, not guessed.
- ``mexa`` (MEXA): **weighted** pooling (weights 1…T over all tokens, BOS included) of HF
  ``hidden_states``, whose top entry is **after the final norm** (layer ``final``); the
  ``mexa`` criterion against English; the published numbers are the **mean and the max
  over layers** (``retrieval.mexa_summary``) over the HF layers ``emb, 0 … L−2, final``
  (:func:`hf_hidden_state_labels`).
- ``lape`` / ``silp`` (LAPE's neuron counts, which SiLP's overlap figure uses; SiLP's
  t-SNE pools "over all tokens"): FFN activations counted over **every** token, BOS included.
- ``lens`` (LENS): the **last token** of a **chat-templated** prompt, read **after the
  final norm** (``final``), every token position as the model sees it (special tokens
  included, as ``hidden_states[-1][:, -1]`` does).
- ``wendler`` (Wendler et al. 2024, "Do Llamas Work in English?"): no recording field; the
  lens views' prompts as their translation notebook builds them (word prompts, 4 shots,
  ``np.random.seed(42)``, the "English inside the target" filter, the first byte token for
  non-Latin scripts) and the band their translation figure draws (Gaussian, mean ±
  1.96 σ/√n; our default is the 95% percentile bootstrap).

A preset is applied to a :class:`~workbench.config.RecordSpec` with :func:`apply_preset`
(the result is an ordinary spec, so the preset's fields go into the store key and every
manifest); its analysis overrides are parameters of the registered analyses (``recipes``): a figure spec
with a preset takes each override its analysis declares (the ``mexa`` preset's ``layers`` and
``aggregate`` are `retrieval`'s), and every override is a parameter of some analysis (a test
pins it), so none is dropped everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from workbench.config import RecordSpec
from workbench.errors import ParamError

__all__ = ["PRESETS", "Preset", "analysis_overrides", "apply_preset", "describe", "get_preset",
           "hf_hidden_state_labels", "preset_names"]


@dataclass(frozen=True)
class Preset:
    """One paper's pipeline: RecordSpec overrides and analysis-parameter overrides.

    Attributes:
        name: the preset's name (``--preset NAME``).
        paper: the paper and code it follows.
        record: RecordSpec field -> value, exactly the fields the paper's code sets.
        analysis: analysis parameter -> value (retrieval method, layer set, aggregation, ...); each one a
            parameter of a registered analysis.
        note: one paragraph for ``describe``.
    """

    name: str
    paper: str
    record: MappingProxyType[str, Any]
    analysis: MappingProxyType[str, Any]
    note: str

    def __post_init__(self) -> None:
        known = {f.name for f in dataclasses.fields(RecordSpec)}
        unknown = sorted(set(self.record) - known)
        if unknown:
            raise ParamError(f"preset {self.name!r}: {unknown} are not RecordSpec fields")


def _preset(name: str, paper: str, record: dict[str, Any], analysis: dict[str, Any], note: str) -> Preset:
    return Preset(name, paper, MappingProxyType(dict(record)), MappingProxyType(dict(analysis)), note)


_MIDALIGN = _preset(
    "midalign", "Mid-align (dannigt/mid-align; LASER source/xsim.py for retrieval)",
    {"poolings": ("mean",), "include_special": True},
    {"method": "margin", "k": 4, "aggregate": "mid_align_score"},
    "Mean pooling over the attention mask with BOS included; xsim ratio-margin retrieval (k = 4); "
    "the score averages all-pairs accuracy over the paper's even layers m = 2, 4, … (layer m = the output "
    "of m blocks = our block m − 1, so our blocks 1, 3, 5, …). Top layer: our default (its retrieval code "
    "is not public).",
)
_MEXA = _preset(
    "mexa", "MEXA (weighted pooling, HF hidden_states, mean/max over layers)",
    {"poolings": ("weighted",), "include_special": True, "final_norm": True},
    {"method": "mexa", "pivot": "en", "layers": "hf_hidden_states", "aggregate": "mean_max"},
    "Position-weighted mean (weights 1…T over all tokens, BOS included) of HF hidden_states: the layers "
    "emb, 0 … L−2 and 'final' (the post-final-norm output of block L−1); the strict bidirectional mexa "
    "criterion against English; the model's numbers are the mean and the max over those layers.",
)
_LAPE = _preset(
    "lape", "LAPE (language activation probability entropy), as SiLP's neuron-overlap figure uses it",
    {"include_special": True, "ffn_stats": True},
    {},
    "FFN activation probabilities counted over every token, BOS included (SiLP's t-SNE also pools "
    "'over all tokens'); the recording's include_special does it, no analysis parameter differs.",
)
_LENS = _preset(
    "lens", "LENS (circle-hit/Lens: Probing/probe.py, Manipulation/src/trainer_lens.py)",
    {"poolings": ("last",), "chat_template": True, "include_special": True, "final_norm": True},
    {"layer": "final", "central": "en"},
    "The last token of the chat-templated prompt (user turn + generation prompt), after the final norm "
    "(HF hidden_states[-1]); the language subspaces are fitted on the 'final' layer.",
)

_WENDLER = _preset(
    "wendler", "Wendler et al. 2024 (epfl-dlab/llm-latent-language, Translation.ipynb)",
    {},
    {"prompts": "words", "n_shots": 4, "seed": 42, "drop_substring": True, "byte_fallback": "non-latin",
     "band": "gaussian"},
    "Latent-language curves as the authors' translation notebook computes them: k = 5 rows (4 solved lines and "
    "the query) drawn after np.random.seed(42), concepts whose English word is inside the target word dropped, "
    "the first byte token added for non-Latin scripts, the logit lens at the last token, and their figure's "
    "Gaussian band (mean ± 1.96 σ/√n). Recordings are unchanged. Their word lists are not bundled: give them as "
    "a TSV (words=FILE) to read their exact prompts.",
)

PRESETS: MappingProxyType[str, Preset] = MappingProxyType(
    {"midalign": _MIDALIGN, "mexa": _MEXA, "lape": _LAPE, "silp": _LAPE, "lens": _LENS, "wendler": _WENDLER})
"""Preset name -> preset (``silp`` is another name of ``lape``)."""


def preset_names() -> tuple[str, ...]:
    """Every accepted preset name, sorted (``silp`` and ``lape`` name the same preset)."""
    return tuple(sorted(PRESETS))


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ParamError: unknown name (the message lists the known ones).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ParamError(f"unknown preset {name!r}; choose from {', '.join(preset_names())}") from None


def apply_preset(name: str, record_spec: RecordSpec | None = None) -> RecordSpec:
    """``record_spec`` (default: ``RecordSpec()``) with the preset's recording fields set.

    Every other field is kept as given.

    Raises:
        ParamError: unknown preset, or the result is not a valid RecordSpec.
    """
    preset = get_preset(name)
    base = record_spec if record_spec is not None else RecordSpec()
    try:
        return dataclasses.replace(base, **dict(preset.record))
    except ValueError as e:  # RecordSpec.__post_init__ refuses the combination
        raise ParamError(f"preset {name!r} does not fit this recording: {e}") from e


def analysis_overrides(name: str) -> dict[str, Any]:
    """The preset's analysis parameters (a fresh dict).

    Raises:
        ParamError: unknown preset.
    """
    return dict(get_preset(name).analysis)


def describe(name: str) -> str:
    """One paragraph: the paper, what the preset sets and why.

    Raises:
        ParamError: unknown preset.
    """
    p = get_preset(name)
    rec = ", ".join(f"{k}={v!r}" for k, v in p.record.items()) or "unchanged"
    ana = ", ".join(f"{k}={v!r}" for k, v in p.analysis.items())
    return f"{p.name}: {p.paper}. Recording: {rec}. Analysis: {ana}. {p.note}"


def hf_hidden_state_labels(n_layers: int) -> list[int | str]:
    """The layer labels of HF ``hidden_states`` for a model with ``n_layers`` blocks.

    ``hidden_states[0]`` is the embedding output (``"emb"``), ``hidden_states[l+1]`` is
    block ``l`` for ``l < L−1``, and ``hidden_states[L]`` is the final norm of block ``L−1``
    (``"final"``), so block ``L−1`` before the norm is not among them (METHODS, notation).

    Raises:
        ParamError: ``n_layers < 1``.
    """
    if n_layers < 1:
        raise ParamError(f"n_layers must be >= 1, got {n_layers}")
    return ["emb", *range(n_layers - 1), "final"]
