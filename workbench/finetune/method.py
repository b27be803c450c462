"""The `Method` record: everything the house needs to know about one fine-tune method, in one place.

A method module (`silp`, `midalign`, `lens`, `cctuning`) defines its frozen spec, its
trainer and one `METHOD = Method(...)`; `finetune.methods` registers it (peft's
`register_peft_method` is the model). The runner, the job system, Compare's state
labels, the CLI (`workbench finetune <name>`: one flag per spec field, generated) and the
Fine-tune page (one widget per spec field) read only this record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.config import Spec
from workbench.errors import ParamError

__all__ = ["Method", "Prefill"]


@dataclass(frozen=True)
class Prefill:
    """Spec fields a page can pre-fill from a stored analysis (SiLP: its layers from the stored allocation).

    `params(langs, knobs)` gives the analysis parameter sets to try, in order (the first one
    stored wins); `fields(table)` maps that analysis's table to spec field values.
    """

    analysis: str
    params: Callable[[Sequence[str], Mapping[str, Any]], list[dict[str, Any]]]
    fields: Callable[[Any], dict[str, Any]]
    note: str = ""  # one line for the page: where the values came from (formatted with the params that matched)


@dataclass(frozen=True)
class Method:
    """One fine-tune method.

    `train(state, split, spec, *, progress=None, should_stop=None, inplace=False) -> TrainResult`
    trains a copy of `state.model`. `languages(spec)` are the corpus languages the method
    needs, in the order its data split stores them; `pivot(spec)` the language its before/after
    evaluation pairs with every other (both directions); `from_langs(langs)` the spec fields
    that a language choice sets (`langs[0]` = the pivot / central language, then the targets),
    and `lang_fields` their names (the CLI's `--pair`/`--langs` and the page's language
    widgets set them; every other spec field gets its own flag and widget).
    """

    name: str  # the CLI sub-command, the job id prefix and the artifact manifest's "method"
    label: str  # display name ("SiLP")
    caption: str  # one line: what it trains (the page's caption, `workbench finetune --help`)
    spec: type[Spec]
    train: Callable[..., Any]
    languages: Callable[[Any], tuple[str, ...]]
    pivot: Callable[[Any], str]
    from_langs: Callable[[Sequence[str]], dict[str, Any]]
    lang_fields: tuple[str, ...]
    many_languages: bool = False  # a language set (LENS) rather than a pair
    shardable: bool = False  # its steps can be split across N processes (`finetune.distributed`)
    inference: str | None = None  # the `models.hooks` kind its artifacts run at inference (CC-Tuning's)
    aliases: Mapping[str, str] = field(default_factory=dict)  # short CLI flag -> spec field ("n2d": "n2d_layers")
    layer_fields: tuple[str, ...] = ()  # block-list fields: "" = computed by the method, "none" = ()
    stages: tuple[str, ...] = ()  # stages that each get `max_steps` (SiLP: N2D, D2N); () = `max_steps` is the total
    prefill: Prefill | None = None

    def __post_init__(self) -> None:
        names = {f.name for f in dataclasses.fields(self.spec)}
        bad = [f for f in (*self.lang_fields, *self.layer_fields, *self.aliases.values()) if f not in names]
        if bad:
            raise ParamError(f"method {self.name!r}: {bad} are not fields of {self.spec.__name__}")

    def spec_from(self, d: Mapping[str, Any] | Spec | None = None) -> Any:
        """The method's spec from a dict (or the spec itself, or the defaults for None).

        Raises:
            ParamError: unknown field, a spec of another method, or an invalid value.
        """
        if d is None:
            return self.spec()
        if isinstance(d, Spec):
            if not isinstance(d, self.spec):
                raise ParamError(f"method {self.name!r} takes a {self.spec.__name__}, got {type(d).__name__}")
            return d
        return self.spec.from_dict(dict(d))

    def pivot_of(self, spec: Mapping[str, Any] | Spec | None) -> str | None:
        """The pivot of a spec (or of a manifest's spec dict; None if it cannot be read)."""
        try:
            return self.pivot(self.spec_from(spec))
        except (ParamError, TypeError, ValueError):
            return None

    def own_fields(self) -> list[dataclasses.Field[Any]]:
        """The spec fields that get their own flag / widget (all but those the language choice sets)."""
        return [f for f in dataclasses.fields(self.spec) if f.name not in self.lang_fields]
