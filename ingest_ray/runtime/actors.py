"""Finding and (re)creating the runtime's named actors.

The control plane (Dispatcher, outbox relay) is made of detached actors with
``max_restarts=-1``: Ray restarts one that crashed, and whoever needs one that is gone (killed
for good) creates it again by name (``get_if_exists``, so two creators get the same actor).
:class:`NamedActor` is a handle that does this by itself: it resolves the name on first use and
again after the actor died.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

from ingest_ray.config import Settings
from ingest_ray.errors import ConfigurationError

#: How control-plane actors are created.
CONTROL = {"lifetime": "detached", "max_restarts": -1, "num_cpus": 0, "get_if_exists": True}
#: How much of ``Settings.control_resource`` each long-lived actor asks for (a node that carries
#: 1 of it hosts up to a thousand of them: it marks nodes, it does not count).
CONTROL_SHARE = 0.001


def placement(settings: Settings) -> dict[str, Any]:
    """Ray options that keep a long-lived actor on the nodes carrying
    ``settings.control_resource`` (empty when it is not set: any node)."""
    if not settings.control_resource:
        return {}
    return {"resources": {settings.control_resource: CONTROL_SHARE}}


def control_options(settings: Settings) -> dict[str, Any]:
    """:data:`CONTROL` plus :func:`placement`: how the Dispatcher and the relay are
    created."""
    return {**CONTROL, **placement(settings)}


def check_placement(settings: Settings, cluster_resources: dict[str, float]) -> None:
    """Refuse to start a control plane that no node can host (it would wait forever)."""
    wanted = settings.control_resource
    if wanted and cluster_resources.get(wanted, 0.0) <= 0:
        raise ConfigurationError(
            f"INGEST_RAY_CONTROL_RESOURCE={wanted!r}, but no node of the Ray cluster carries "
            f"that resource: start the head with --resources='{{\"{wanted}\": 1}}' or unset it"
        )


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
