"""How many actors a pool should have: enough for its backlog, within its bounds and what the
cluster can place. (The demand-driven sizer with idle grace and autoscaler requests replaces
this in ``sizing.py``.)"""

from __future__ import annotations

import math

from ingest_ray.pipelines.catalog import PoolSpec


def target_size(spec: PoolSpec, backlog: int, calls: int, size: int, placeable: int) -> int:
    """Actors for ``backlog`` ready jobs plus ``calls`` in flight, bounded by ``min_size``,
    ``max_size`` and the ``placeable`` room beyond the current ``size``."""
    per_actor = max(1, spec.actor_concurrency)
    wanted_calls = math.ceil(backlog / max(1, spec.batch_size)) + calls
    wanted = math.ceil(min(wanted_calls, spec.max_in_flight) / per_actor)
    bounded = max(spec.min_size, min(spec.max_size, wanted))
    return max(spec.min_size, min(bounded, size + placeable))
