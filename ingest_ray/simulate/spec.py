"""What a simulated cluster is made of: node specs in, node and cluster facts out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NodeSpec(BaseModel):
    """One Ray node to start: its name, logical CPUs and custom resources."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    num_cpus: float = Field(default=1.0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)
    #: where the node's metrics agent serves Prometheus text (0: a free port)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    object_store_mb: int = Field(default=100, ge=80)
    #: environment of this node's raylet and so of every actor on it (e.g. a node-local cache)
    env: dict[str, str] = Field(default_factory=dict)


class NodeInfo(BaseModel):
    """A started node, as its host reports it."""

    model_config = ConfigDict(frozen=True)

    name: str
    node_id: str
    raylet_pid: int
    metrics_port: int
    num_cpus: float
    resources: dict[str, float]
    head: bool = False


class ClusterInfo(BaseModel):
    """A started cluster: the address drivers use (``RAY_ADDRESS``), the dashboard (state API
    and the operator's view), its private temp dir, and its nodes."""

    model_config = ConfigDict(frozen=True)

    address: str
    dashboard_url: str
    temp_dir: str
    nodes: list[NodeInfo]
