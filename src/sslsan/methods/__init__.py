"""Localization methods as plug-ins: name -> `Method` (model, objective, evaluation map, checkpoints).

`get_method(name)` imports a built-in method's module on first use (so listing the names costs no
torch import); a module registers its `Method`s with `register_method`. Adding a method: one module
here, one line in `BUILTIN` (docs/ARCHITECTURE.md, "Extending -> a method"). Your own code may also
call `register_method` before training or loading a checkpoint of that method.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sslsan.methods.base import Method

# the built-in methods: name -> the module that registers it
BUILTIN: dict[str, str] = {
    "ssl_tie": "sslsan.methods.ssl_tie",
    "ssl_san": "sslsan.methods.ssl_tie",
    "ezvsl": "sslsan.methods.ezvsl",
    "slavc": "sslsan.methods.slavc",
    "fnac": "sslsan.methods.fnac",
    "lvs": "sslsan.methods.lvs",
    "rcgrad": "sslsan.methods.rcgrad",
    "sslalign": "sslsan.methods.sslalign",
}

_REGISTERED: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Make `method` available by its name (re-registering replaces it)."""
    _REGISTERED[method.name] = method
    return method


def method_names() -> list[str]:
    """Every method's name: the built-in ones, then those registered by other code."""
    return list(dict.fromkeys([*BUILTIN, *_REGISTERED]))


def get_method(name: str) -> Method:
    """The method `name` (a ValueError naming the known methods when there is none)."""
    if name not in _REGISTERED and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in _REGISTERED:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(method_names())} "
                         "(sslsan.methods.register_method adds one)")
    return _REGISTERED[name]


def all_methods() -> list[Method]:
    return [get_method(n) for n in method_names()]


__all__ = ["BUILTIN", "all_methods", "get_method", "method_names", "register_method"]
