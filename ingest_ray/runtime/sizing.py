"""How big each stage pool should be: demand-driven sizing, with no Ray in here.

Interface (the pools call it; it proposes, the pool starts and stops actors):

- :class:`PoolShape` is what sizing needs of a :class:`~ingest_ray.pipelines.catalog.PoolSpec`:
  the resources one actor asks Ray for (``{"CPU": 1.0, "GPU": 1.0, "accel": 1.0}``), the size
  bounds, and what one actor takes at once (``actor_concurrency`` calls of up to ``batch_size``
  jobs). :meth:`PoolShape.from_spec` builds it; :func:`default_max_size` gives the machine
  default of ``max_size`` (the CPU-bound pools up to the CPUs Ray has, the accelerator pool up
  to its GPUs or custom resource).
- :class:`PoolLoad` is the backlog: jobs ready for the pool (queued, waiting for it), calls in
  flight on it, and jobs upstream of it (held at an earlier stage of its pipeline; counted for
  the pools of a pipeline with an accelerator pool).
- :func:`wanted_size` is the size the backlog asks for: ``ceil((ceil(ready / batch_size) +
  calls_in_flight) / actor_concurrency)``, within ``min_size..max_size`` (and within
  ``max_in_flight / actor_concurrency`` when a call budget is set: more actors would idle). An
  accelerator pool spreads its backlog (:func:`spread_batch`: a call takes its share of the
  ready jobs over the pool's call slots), so there each ready job counts as a call. The pools
  of a pipeline with an accelerator pool look ahead: the jobs upstream of a pool count as ready,
  so the accelerator's actors (slow to start: a model loads onto the device) start while the
  first jobs are still on the stages before it, and the other pools' start before the
  accelerator's work rather than in it (where their start would take the cores from its feed).
- :func:`placeable` counts how many more actors of a shape fit into free resources, given as
  ``ray.available_resources()`` (one dict for the cluster) or as one dict per node.
- :class:`PoolSizer` (one per pool, clock injected) tracks each actor's calls to know how long it
  has been idle, and :meth:`PoolSizer.decide` answers a :class:`Decision`: actors to start now
  (only what can be placed), idle actors to release (idle for ``idle_grace_s`` and beyond what
  the backlog needs, longest idle first, never below ``min_size``), how many wanted actors cannot
  be placed, and the resource bundles of the whole wanted size.
- Growth pays for its start: a pool that has an actor adds more only when its actors would need
  longer for the backlog than a new actor takes to start (:meth:`PoolSizer.drain_s` against
  :attr:`PoolSizer.start_s`), both learned as the pool runs: the seconds per job of its calls
  (``call_finished(..., jobs=, seconds=)``) and the time from asking for an actor to its first
  answer (``actor_ready``). Until one of its calls has ended, a pool stays at one actor (or
  ``min_size``). Otherwise a burst of short jobs (metadata look-ups, a chunker's batch) would
  start actors, each a worker process and a second of CPU, that are up only after the burst is
  over. An accelerator pool is exempt: its slots are what the look-ahead starts early.
- :func:`plan` decides every pool against one snapshot of free resources, in the order given (so
  the first pools get the free resources first), subtracting what each grant will take.
- :func:`autoscaler_bundles` joins the pools' bundles into the one list to pass to
  ``ray.autoscaler.sdk.request_resources(bundles=...)``: each call replaces the previous
  request, and Ray counts resources already in use against it, so the list names every wanted
  actor of the pools that are short of resources (placed or not), and is empty when none is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ingest_ray.pipelines.catalog import PoolSpec
from ingest_ray.pipelines.spec import Resources

#: pools whose work is CPU-bound: by default they may grow to the CPUs Ray has
CPU_BOUND_POOLS: frozenset[str] = frozenset({"mineru", "chunk", "embed"})
#: Ray's resource names for CPUs and GPUs
CPU, GPU = "CPU", "GPU"
_EPS = 1e-9
#: what an actor is taken to need to start until the pool has seen one start: a Ray worker
#: process and the stage's construction (the measured ones take 1-10 s on two cores)
DEFAULT_START_S = 2.0
#: weight of the newest observation in the moving averages of call and start times
_ALPHA = 0.3


def _average(old: float | None, new: float) -> float:
    return new if old is None else old + _ALPHA * (new - old)


Nodes = Mapping[str, float] | Sequence[Mapping[str, float]]


def resource_shape(resources: Resources) -> dict[str, float]:
    """What one actor asks Ray for, as Ray names it; zero amounts left out."""
    shape = {CPU: resources.num_cpus, GPU: resources.num_gpus, **resources.custom}
    return {name: float(amount) for name, amount in shape.items() if amount > 0}


@dataclass(frozen=True, slots=True)
class PoolShape:
    """What sizing needs to know of one pool."""

    name: str
    #: resources of one actor (``resource_shape`` of the pool's ``Resources``)
    resources: Mapping[str, float] = field(default_factory=dict)
    min_size: int = 0
    max_size: int = 1
    #: calls one actor runs at once
    actor_concurrency: int = 1
    #: jobs one call takes at most
    batch_size: int = 1
    #: calls in flight across the pool at most (``None``: no budget)
    max_in_flight: int | None = None
    #: whether calls share the ready jobs out over the call slots (``PoolSpec.accelerated``)
    spread: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError(f"pool {self.name}: need 0 <= min_size <= max_size")
        if self.actor_concurrency < 1 or self.batch_size < 1:
            raise ValueError(f"pool {self.name}: actor_concurrency and batch_size must be >= 1")

    @classmethod
    def from_spec(
        cls, spec: PoolSpec, *, max_size: int | None = None, budget: bool = True
    ) -> PoolShape:
        """The shape of a catalog pool; ``max_size`` overrides the spec's (e.g. with
        :func:`default_max_size`), ``budget=False`` ignores its ``max_in_flight``."""
        return cls(
            name=spec.name, resources=resource_shape(spec.resources), min_size=spec.min_size,
            max_size=max(spec.min_size, spec.max_size if max_size is None else max_size),
            actor_concurrency=spec.actor_concurrency, batch_size=spec.batch_size,
            max_in_flight=spec.max_in_flight if budget else None, spread=spec.accelerated,
        )  # fmt: skip

    @property
    def accelerator(self) -> bool:
        """Whether the pool is an accelerator pool: it spreads its backlog or asks for more
        than CPUs (GPUs, a custom resource)."""
        return self.spread or any(name != CPU for name in self.resources)

    @property
    def jobs_per_actor(self) -> int:
        """Jobs one busy actor holds: ``actor_concurrency x batch_size``."""
        return self.actor_concurrency * self.batch_size


@dataclass(frozen=True, slots=True)
class PoolLoad:
    """The backlog of one pool."""

    #: jobs ready to run on this pool (queued for it, not yet sent)
    ready: int = 0
    #: calls running on the pool's actors
    in_flight: int = 0
    #: jobs held at an earlier stage of the pool's pipeline (given for the pools of a pipeline
    #: with an accelerator pool: they start their actors ahead of the work)
    upstream: int = 0


def default_max_size(
    spec: PoolSpec, totals: Mapping[str, float], *, cpu_bound: Iterable[str] = CPU_BOUND_POOLS
) -> int:
    """The machine default of a pool's ``max_size``, from the cluster's total resources
    (``ray.cluster_resources()``): a pool that asks for GPUs or a custom resource grows to what
    the cluster has of it; a CPU-bound pool to the CPUs; any other pool keeps its spec's."""
    shape = resource_shape(spec.resources)
    accelerators = {k: v for k, v in shape.items() if k != CPU}
    if accelerators:
        fits = min(math.floor(totals.get(k, 0.0) / v + _EPS) for k, v in accelerators.items())
    elif spec.name in set(cpu_bound) and shape.get(CPU):
        fits = math.floor(totals.get(CPU, 0.0) / shape[CPU] + _EPS)
    else:
        return spec.max_size
    return max(spec.min_size, 1, fits)


def spread_batch(batch_size: int, ready: int, call_slots: int) -> int:
    """Jobs per call on a pool that spreads its backlog (an accelerator pool): the ``ready``
    jobs shared out over the pool's ``call_slots``, at most ``batch_size``. With 6 jobs ready
    and 8 slots each call takes one; with 100 ready, full batches; as a backlog runs out the
    calls shrink with it, so the last jobs end on every slot at about the same time rather
    than in one slot's full batch while the others idle."""
    if call_slots < 1:
        return batch_size
    return max(1, min(batch_size, math.ceil(ready / call_slots)))


def wanted_size(shape: PoolShape, load: PoolLoad) -> int:
    """Actors the backlog asks for, within the pool's bounds (and its call budget), counting the
    jobs on their way to the pool as ready. A pool that spreads its backlog can give each ready
    job a call of its own."""
    batch = 1 if shape.spread else shape.batch_size
    ready = load.ready + load.upstream
    calls = math.ceil(max(ready, 0) / batch) + max(load.in_flight, 0)
    wanted = math.ceil(calls / shape.actor_concurrency)
    upper = shape.max_size
    if shape.max_in_flight is not None:
        upper = min(upper, max(1, math.ceil(shape.max_in_flight / shape.actor_concurrency)))
    return max(shape.min_size, min(wanted, upper))


def _node_list(nodes: Nodes) -> list[Mapping[str, float]]:
    return [nodes] if isinstance(nodes, Mapping) else list(nodes)


def placeable(resources: Mapping[str, float], nodes: Nodes) -> int | None:
    """How many more actors of ``resources`` fit into the free ``nodes`` (one actor never spans
    two nodes); ``None`` when the shape asks for nothing (it always fits)."""
    if not resources:
        return None
    return sum(
        min(math.floor(node.get(k, 0.0) / v + _EPS) for k, v in resources.items())
        for node in _node_list(nodes)
    )


def _take(resources: Mapping[str, float], nodes: list[dict[str, float]], count: int) -> None:
    """Subtract ``count`` actors from the free resources, node by node (first fit)."""
    for node in nodes:
        while count and all(node.get(k, 0.0) + _EPS >= v for k, v in resources.items()):
            for k, v in resources.items():
                node[k] = node.get(k, 0.0) - v
            count -= 1


@dataclass(frozen=True, slots=True)
class Decision:
    """What one pool should do now."""

    pool: str
    size: int
    #: what the backlog asks for, within the bounds
    wanted: int
    #: actors to start now (wanted and placeable)
    start: int
    #: idle actors to stop now, longest idle first
    release: tuple[str, ...]
    #: wanted actors that do not fit into the free resources
    unplaceable: int
    #: resources of every wanted actor, for the autoscaler (empty when all fit)
    bundles: tuple[Mapping[str, float], ...]

    @property
    def target(self) -> int:
        """The size the pool will have once the starts and releases are done."""
        return self.size + self.start - len(self.release)


class PoolSizer:
    """Sizing of one pool: the actors it knows, when each went idle, and the decision."""

    def __init__(
        self, shape: PoolShape, *, idle_grace_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic, start_s: float = DEFAULT_START_S,
    ) -> None:  # fmt: skip
        self.shape = shape
        self.idle_grace_s = idle_grace_s
        self._clock = clock
        self._busy: dict[str, int] = {}
        self._idle_since: dict[str, float] = {}
        #: since when the pool has had jobs upstream but none ready and no call running
        self._ahead_since: float | None = None
        #: seconds from asking for an actor to its first answer (a moving average)
        self.start_s = start_s
        self._starts_seen = 0
        #: seconds one call slot takes per job (a moving average); ``None`` before a call ended
        self.job_s: float | None = None

    @property
    def size(self) -> int:
        """Actors alive in the pool."""
        return len(self._busy)

    def actor_started(self, actor: str) -> None:
        """A new actor joined (idle from now: it is not released before the grace period)."""
        self._busy[actor] = 0
        self._idle_since[actor] = self._clock()

    def actor_gone(self, actor: str) -> None:
        """An actor was stopped or died."""
        self._busy.pop(actor, None)
        self._idle_since.pop(actor, None)

    def call_started(self, actor: str) -> None:
        """A call was sent to ``actor``."""
        self._busy[actor] = self._busy.get(actor, 0) + 1
        self._idle_since.pop(actor, None)

    def call_finished(self, actor: str, *, jobs: int = 0, seconds: float | None = None) -> None:
        """A call on ``actor`` ended (whatever its outcome); a call that ran its ``jobs`` in
        ``seconds`` also teaches the pool its service time."""
        if jobs > 0 and seconds is not None and seconds >= 0:
            self.job_s = _average(self.job_s, seconds / jobs)
        if actor not in self._busy:
            return
        self._busy[actor] = max(0, self._busy[actor] - 1)
        if self._busy[actor] == 0:
            self._idle_since[actor] = self._clock()

    def actor_ready(self, seconds: float) -> None:
        """An actor answered for the first time, ``seconds`` after it was asked for."""
        self.start_s = seconds if self._starts_seen == 0 else _average(self.start_s, seconds)
        self._starts_seen += 1

    def drain_s(self, load: PoolLoad, actors: int | None = None) -> float | None:
        """Seconds ``actors`` (the pool's, at least one) would need for ``load`` at the service
        time seen so far; ``None`` before any call has ended."""
        if self.job_s is None:
            return None
        batch = 1 if self.shape.spread else self.shape.batch_size
        jobs = max(load.ready + load.upstream, 0) + max(load.in_flight, 0) * batch
        slots = max(actors if actors is not None else self.size, 1) * self.shape.actor_concurrency
        return jobs * self.job_s / slots

    def _paid_for(self, wanted: int, load: PoolLoad) -> int:
        """``wanted``, or what the pool has when more actors would not pay for their start
        (see the module docstring)."""
        have = max(self.size, 1)
        if self.shape.accelerator or wanted <= have:
            return wanted
        drain = self.drain_s(load, have)
        if drain is not None and drain > self.start_s:
            return wanted
        return max(min(have, wanted), self.shape.min_size)

    def idle_for(self) -> dict[str, float]:
        """Seconds each idle actor has been idle."""
        now = self._clock()
        return {actor: now - since for actor, since in self._idle_since.items()}

    def ahead(self, load: PoolLoad) -> PoolLoad:
        """``load`` with its upstream jobs counted for at most one idle grace period in which
        none of them reached the pool (nothing ready, no call running): the look-ahead starts
        actors for work on its way, but an upstream stall (a source's rate limit, a slow stage)
        must not hold them idle for as long as it lasts. Any job reaching the pool, or an empty
        upstream, starts the period again."""
        if load.upstream <= 0 or load.ready > 0 or load.in_flight > 0:
            self._ahead_since = None
            return load
        now = self._clock()
        if self._ahead_since is None:
            self._ahead_since = now
        if now - self._ahead_since < self.idle_grace_s:
            return load
        return replace(load, upstream=0)

    def decide(self, load: PoolLoad, free: Nodes) -> Decision:
        """Start what the backlog wants and the cluster can place; release actors idle beyond
        the grace period that the backlog does not need."""
        load = self.ahead(load)
        wanted = self._paid_for(wanted_size(self.shape, load), load)
        grow = max(0, wanted - self.size)
        fits = placeable(self.shape.resources, free)
        start = grow if fits is None else min(grow, fits)
        unplaceable = grow - start
        idle = sorted(self.idle_for().items(), key=lambda kv: -kv[1])
        spare = max(0, self.size - max(wanted, self.shape.min_size))
        release = tuple(a for a, t in idle if t >= self.idle_grace_s)[:spare]
        bundles = tuple(dict(self.shape.resources) for _ in range(wanted)) if unplaceable else ()
        return Decision(self.shape.name, self.size, wanted, start, release, unplaceable, bundles)


def plan(pools: Sequence[tuple[PoolSizer, PoolLoad]], free: Nodes) -> dict[str, Decision]:
    """Decide every pool against one snapshot of free resources, in order: the resources a pool
    is granted are taken off before the next pool is decided."""
    remaining = [dict(node) for node in _node_list(free)]
    decisions: dict[str, Decision] = {}
    for sizer, load in pools:
        decision = sizer.decide(load, remaining)
        _take(sizer.shape.resources, remaining, decision.start)
        decisions[sizer.shape.name] = decision
    return decisions


def autoscaler_bundles(decisions: Iterable[Decision]) -> list[dict[str, float]]:
    """The bundles for ``request_resources`` (one call for all pools; ``[]`` clears the request)."""
    return [dict(bundle) for d in decisions for bundle in d.bundles]
