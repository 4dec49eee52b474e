"""Lazy public names of a package (PEP 562): a name's module is imported when the name is first used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_names(package: str, modules: Mapping[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """The package's ``__getattr__`` and ``__dir__`` for ``modules`` (public name -> module relative to
    ``package``, e.g. ``".neurons"``); a looked-up name is cached in ``namespace`` (the package's globals)."""

    def __getattr__(name: str):
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *modules})

    return __getattr__, __dir__
