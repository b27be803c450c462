"""RUCAIBox Language-Specific-Neurons' mask format (`xxx.neuron.pth`), read and written.

Their format (README of RUCAIBox/Language-Specific-Neurons): `torch.save` of a
`List[List[LongTensor]]`, `neuron[i][j]` = the neuron indices of the i-th language in
the j-th layer (their published files: languages en, zh, fr, es, vi, id, ja in that
order). Their `ppl.py` / `generation.py` deactivate a set with `index_fill_` on the last
dimension of `act_fn(gate)` — our `neurons` kind with mode zero.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ParamError
from workbench.fileio import writing

__all__ = ["RUCAIBOX_LANGS", "read_neuron_pth", "write_neuron_pth"]

RUCAIBOX_LANGS = ("en", "zh", "fr", "es", "vi", "id", "ja")
"""The language order of RUCAIBox's published masks."""


def read_neuron_pth(path: str | Path) -> list[list[torch.Tensor]]:
    """Language -> layer -> LongTensor of neuron indices, as the file holds them.

    Raises:
        ParamError: unreadable, or not a list of lists of integer tensors (one line).
    """
    p = Path(path)
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:  # weights_only refuses code
        raise ParamError(f"{p}: cannot read it as a .neuron.pth mask ({type(e).__name__}: {str(e)[:150]})") from None
    ok = isinstance(data, list | tuple) and all(
        isinstance(lang, list | tuple) and all(isinstance(t, torch.Tensor) and not t.is_floating_point()
                                               for t in lang) for lang in data)
    if not ok or not data:
        raise ParamError(f"{p}: not a .neuron.pth mask (a list per language of per-layer LongTensors)")
    return [[t.long().flatten() for t in lang] for lang in data]


def write_neuron_pth(path: str | Path, sets: Mapping[str, Mapping[int, Sequence[int]]], langs: Sequence[str],
                     n_layers: int) -> Path:
    """Write `sets` (language -> block -> neuron indices) as a `.neuron.pth` in the order `langs`.

    Every language gets one (possibly empty) LongTensor per block `0 … n_layers-1`.
    """
    data: list[list[Any]] = [[torch.tensor(sorted(sets.get(lang, {}).get(layer, ())), dtype=torch.long)
                              for layer in range(n_layers)] for lang in langs]
    p = Path(path)
    with writing(p):
        torch.save(data, p)
    return p


def language_index(source: Mapping[str, Any], n_langs: int) -> int:
    """Which list of a mask a source means: `index=K`, or `lang=X` in `file_langs` (default RUCAIBox's order).

    Raises:
        ParamError: neither given, or out of range.
    """
    if "index" in source:
        i = source["index"]
    elif "lang" in source:
        order = str(source.get("file_langs", "+".join(RUCAIBOX_LANGS))).split("+")
        if source["lang"] not in order:
            raise ParamError(f"--intervention: {source['lang']!r} is not in the mask's languages {order} "
                             "(give file_langs=a+b+... or index=K)")
        i = order.index(source["lang"])
    else:
        raise ParamError("--intervention neurons:file=...: say which language (index=K or lang=X)")
    if not isinstance(i, int) or not 0 <= i < n_langs:
        raise ParamError(f"--intervention: the mask has {n_langs} languages; index {i!r} is out of range")
    return i
