"""The host process of a :class:`~ingest_ray.simulate.cluster.LocalCluster`.

Run as ``python -m ingest_ray.simulate.host``: it starts a Ray head node (``ray.cluster_utils``)
in a temporary directory of its own (``RAY_TMPDIR``, so no other process on the machine finds
this cluster by accident, and nothing is written to ``/tmp/ray``), then reads one JSON command
per line on stdin and answers one JSON line on stdout:

    {"op": "add", "node": {NodeSpec}}    -> {"node": {NodeInfo}}
    {"op": "remove", "name": NAME}       -> {"removed": NAME}
    {"op": "stop"}                       -> {"stopped": true}, then exits

The first line it prints is the cluster (``ClusterInfo``) with the head node. It stops every
process it started when told to, on SIGTERM, or when stdin closes (its parent died).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Any

from ray._private import ray_constants
from ray.cluster_utils import Cluster

from ingest_ray.ports import free_port
from ingest_ray.simulate.spec import ClusterInfo, NodeInfo, NodeSpec

_TMP = "RAY_TMPDIR"


def _node_args(spec: NodeSpec, *, head: bool, system_config: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {
        "num_cpus": spec.num_cpus,
        "num_gpus": 0,
        "resources": dict(spec.resources),
        "metrics_export_port": spec.metrics_port or free_port(),
        "object_store_memory": spec.object_store_mb * 1024 * 1024,
        "labels": {"ingest-ray/node-name": spec.name},
        "env_vars": dict(spec.env) or None,
    }
    if head:
        args.update(
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(),
            _system_config=system_config,
        )
    return args


class Host:
    """The cluster and its nodes by name."""

    def __init__(self, head: NodeSpec, system_config: dict[str, Any]) -> None:
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args=_node_args(head, head=True, system_config=system_config),
        )
        self.nodes: dict[str, Any] = {head.name: self.cluster.head_node}
        self.specs: dict[str, NodeSpec] = {head.name: head}

    def info(self) -> ClusterInfo:
        """Where the cluster is and what is in it."""
        head = self.cluster.head_node
        if head is None:
            raise RuntimeError("the head node is gone")
        return ClusterInfo(
            address=self.cluster.address,
            dashboard_url=f"http://{head.webui_url}" if head.webui_url else "",
            temp_dir=os.environ[_TMP],
            nodes=[self._node_info(n) for n in self.nodes],
        )

    def _node_info(self, name: str) -> NodeInfo:
        node = self.nodes[name]
        raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
        spec = self.specs[name]
        return NodeInfo(
            name=name,
            node_id=node.node_id,
            raylet_pid=raylet.pid,
            metrics_port=node.metrics_export_port,
            num_cpus=spec.num_cpus,
            resources=dict(spec.resources),
            head=node is self.cluster.head_node,
        )

    def add(self, spec: NodeSpec) -> NodeInfo:
        """Start a worker node."""
        if spec.name in self.nodes:
            raise ValueError(f"there is a node called {spec.name!r} already")
        self.nodes[spec.name] = self.cluster.add_node(**_node_args(spec, head=False,
                                                                    system_config={}))  # fmt: skip
        self.specs[spec.name] = spec
        return self._node_info(spec.name)

    def remove(self, name: str) -> None:
        """Stop a worker node's processes (whatever of them is still alive)."""
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=False)

    def stop(self) -> None:
        """Stop every node, workers first."""
        for name in [n for n in self.nodes if self.nodes[n] is not self.cluster.head_node]:
            self.remove(name)
        if self.cluster.head_node is not None:
            self.cluster.remove_node(self.cluster.head_node, allow_graceful=False)


def _answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _serve(host: Host) -> None:
    for line in sys.stdin:
        command = json.loads(line)
        op = command.get("op")
        try:
            if op == "add":
                _answer({"node": host.add(NodeSpec(**command["node"])).model_dump()})
            elif op == "remove":
                host.remove(command["name"])
                _answer({"removed": command["name"]})
            elif op == "stop":
                break
            else:
                _answer({"error": f"unknown op {op!r}"})
        except Exception as exc:  # answer the parent; keep serving
            _answer({"error": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    """Start the head from the JSON spec in argv[1], then serve commands until told to stop."""
    config = json.loads(sys.argv[1])
    made = not os.environ.get(_TMP)
    if made:  # short: Ray's socket paths under it must stay below 108 characters
        os.environ[_TMP] = tempfile.mkdtemp(prefix="irc-", dir="/tmp")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        host = Host(NodeSpec(**config["head"]), config.get("system_config", {}))
        try:
            _answer({"cluster": host.info().model_dump()})
            _serve(host)
        finally:
            host.stop()
            _answer({"stopped": True})
    finally:
        if made:
            shutil.rmtree(os.environ[_TMP], ignore_errors=True)


if __name__ == "__main__":
    main()
