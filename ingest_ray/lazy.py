"""Package exports that import their submodule on first use (PEP 562).

A Ray worker process imports the package of every class it unpickles. A package ``__init__``
that imports all its backends makes each stage actor pay for psycopg, redis, httpx and PyJWT
whether its stage uses them or not (about 0.2 s of CPU per process, on a machine where the
pools start a dozen). ``lazy_exports`` keeps the package's public names and imports the
submodule behind a name when the name is first read.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``; ``exports`` maps each public
    name to the submodule (relative to ``package``) that defines it. A name, once read, is set
    on the package so later reads are plain attribute reads."""

    def __getattr__(name: str) -> Any:
        try:
            submodule = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
