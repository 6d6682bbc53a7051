"""Finding and (re)creating the runtime's named actors.

The control plane (Dispatcher, LedgerCache, outbox relay) is made of detached actors with
``max_restarts=-1``: Ray restarts one that crashed, and whoever needs one that is gone (killed
for good) creates it again by name (``get_if_exists``, so two creators get the same actor).
:class:`NamedActor` is a handle that does this by itself: it resolves the name on first use and
again after the actor died.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

#: How control-plane actors are created.
CONTROL = {"lifetime": "detached", "max_restarts": -1, "num_cpus": 0, "get_if_exists": True}


def find(name: str, namespace: str) -> Any | None:
    """The live actor called ``name``, or ``None``."""
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


class NamedActor:
    """A handle to a named actor that is created by ``make`` when it does not exist."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._handle: Any | None = None

    def get(self) -> Any:
        """The actor (created, or found by name, on first use and after :meth:`reset`)."""
        if self._handle is None:
            self._handle = self._make()
        return self._handle

    def reset(self) -> None:
        """Forget the handle: the actor died; the next :meth:`get` finds or makes a new one."""
        self._handle = None
