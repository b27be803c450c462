"""The registry of fine-tune methods: one `register_method` per method, duplicates refused.

To add a method: a module with its frozen spec, its trainer and `METHOD = Method(...)`
(`finetune.method`), and one line in `BUILTIN` below. Everything else (the runner, jobs,
`workbench finetune <name>` with a flag per spec field, the Fine-tune page with a widget
per field, Compare's labels) reads the registry. A method in another package registers
through the entry-point group `workbench.methods` (its value: a `Method`, or a list of
them), so the job worker processes see it too; `register_method` at run time serves this
process only.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from workbench import plugins
from workbench.config import Spec
from workbench.errors import ParamError
from workbench.finetune import cctuning, lens, midalign, silp
from workbench.finetune.method import Method

__all__ = ["METHODS", "Method", "get_method", "languages_for", "load_plugins", "register_method", "spec_for",
           "unregister_method"]

BUILTIN = (silp.METHOD, midalign.METHOD, lens.METHOD, cctuning.METHOD)

_METHODS: dict[str, Method] = {}
METHODS: Mapping[str, Method] = MappingProxyType(_METHODS)
"""name -> Method, in registration order (read-only view of the registry)."""


def register_method(method: Method) -> Method:
    """Add a method to the registry.

    Raises:
        ParamError: a method of that name is registered already.
    """
    if method.name in _METHODS:
        raise ParamError(f"a fine-tune method named {method.name!r} is registered already")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method (tests that register a toy one)."""
    _METHODS.pop(name, None)


def get_method(name: str) -> Method:
    """The registered method `name`.

    Raises:
        ParamError: unknown method (the message lists the registered ones).
    """
    if name not in _METHODS:
        raise ParamError(f"unknown fine-tune method {name!r}; choose one of {', '.join(_METHODS)}")
    return _METHODS[name]


def spec_for(method: str, d: Mapping[str, Any] | Spec | None = None) -> Any:
    """The spec of `method` from a dict, the spec itself, or None (defaults): `Method.spec_from`."""
    return get_method(method).spec_from(d)


def languages_for(method: str, spec: Any) -> tuple[str, ...]:
    """The corpus languages `method` needs, in the order its data split stores them."""
    return get_method(method).languages(spec_for(method, spec))


def load_plugins(group: str = "workbench.methods") -> list[str]:
    """Register the records installed packages declare in the entry-point group (`workbench.plugins`)."""
    return plugins.load_plugins(group, register_method)


for _m in BUILTIN:
    register_method(_m)
load_plugins()
