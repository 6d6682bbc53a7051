"""A Ray cluster of several nodes on this machine, run by a host process of its own.

:class:`LocalCluster` starts ``python -m ingest_ray.simulate.host`` (see there), which starts a
head node and, on request, worker nodes: each a raylet of its own with the CPUs and custom
resources of its :class:`NodeSpec`. Drivers join it with ``RAY_ADDRESS`` =
:attr:`ClusterInfo.address` (the address is never written where a plain ``ray.init()`` on this
machine would find it). :meth:`LocalCluster.kill_raylet` kills one node's raylet by pid, as a
lost machine would; :meth:`LocalCluster.stop` stops exactly the processes the host started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ingest_ray.errors import StackError
from ingest_ray.simulate.spec import ClusterInfo, NodeInfo, NodeSpec

#: fast node-death detection for tests and benchmarks (Ray's defaults take ~30 s)
FAST_FAILURE_DETECTION: dict[str, Any] = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 3,
}


class LocalCluster:
    """A head node and worker nodes on this machine (one host process, one raylet per node)."""

    def __init__(
        self,
        head: NodeSpec,
        workers: Sequence[NodeSpec] = (),
        *,
        env: Mapping[str, str] | None = None,
        system_config: Mapping[str, Any] | None = None,
        log: Path | None = None,
        timeout_s: float = 180.0,
    ) -> None:
        self._head = head
        self._workers = list(workers)
        self._env = {**os.environ, **(env or {})}
        # the host starts a cluster and joins none; it makes a temp dir of its own
        self._env.pop("RAY_ADDRESS", None)
        self._env.pop("RAY_TMPDIR", None)
        self._system_config = dict(system_config or FAST_FAILURE_DETECTION)
        self._log = log
        self._timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.info: ClusterInfo | None = None
        self.nodes: dict[str, NodeInfo] = {}
        self.killed: list[str] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, attempts: int = 3) -> LocalCluster:
        """Start the host and every node; answers self. Ray gives a raylet 30 s to register,
        which a loaded machine can miss: then the whole cluster is started again (a fresh
        host, so no half-started node can join later)."""
        errors: list[str] = []
        for _ in range(attempts):
            try:
                return self._start_once()
            except StackError as exc:
                errors.append(str(exc))
                self.stop()
        raise StackError(f"the cluster did not start in {attempts} tries: {' | '.join(errors)}")

    def _start_once(self) -> LocalCluster:
        config = {"head": self._head.model_dump(), "system_config": self._system_config}
        stderr: IO[str] | int = subprocess.DEVNULL
        if self._log is not None:
            with self._log.open("a") as log:  # the child keeps its own descriptor
                self._proc = self._spawn(config, log)
        else:
            self._proc = self._spawn(config, stderr)
        try:
            first = self._read()
            if "cluster" not in first:
                raise StackError(f"cluster host: {first.get('error')}; see its log: {self._log}")
            self.info = ClusterInfo(**first["cluster"])
            self.nodes = {n.name: n for n in self.info.nodes}
            for spec in self._workers:
                self.add(spec)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, config: dict[str, Any], stderr: IO[str] | int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "ingest_ray.simulate.host", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env=self._env, start_new_session=True,
        )  # fmt: skip

    def add(self, spec: NodeSpec) -> NodeInfo:
        """Start one more worker node."""
        reply = self._call({"op": "add", "node": spec.model_dump()})
        node = NodeInfo(**reply["node"])
        self.nodes[node.name] = node
        return node

    def kill_raylet(self, name: str) -> int:
        """SIGKILL the raylet of node ``name`` (its workers and agents follow it); answers the
        pid. The node's leftovers are cleaned up by :meth:`stop`."""
        node = self.nodes[name]
        if node.head:
            raise ValueError("killing the head's raylet ends the cluster; pick a worker node")
        os.kill(node.raylet_pid, signal.SIGKILL)
        self.killed.append(name)
        return node.raylet_pid

    def stop(self) -> None:
        """Stop every node and the host (bounded waits; the host's own group is killed last)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
                proc.stdin.close()
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- facts ----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The GCS address drivers put in ``RAY_ADDRESS``."""
        return self._info().address

    @property
    def dashboard_url(self) -> str:
        """The head's dashboard (and state API), on 127.0.0.1."""
        return self._info().dashboard_url

    def node_names(self) -> dict[str, str]:
        """Node id -> node name."""
        return {n.node_id: n.name for n in self.nodes.values()}

    def metrics_urls(self) -> dict[str, str]:
        """Node name -> the node's Prometheus endpoint (Ray's metrics export port)."""
        return {n.name: f"http://127.0.0.1:{n.metrics_port}/metrics" for n in self.nodes.values()}

    def _info(self) -> ClusterInfo:
        if self.info is None:
            raise StackError("the cluster is not started")
        return self.info

    # --- the line protocol ----------------------------------------------------------------

    def _call(self, command: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._proc is None or self._proc.stdin is None:
                raise StackError("the cluster is not started")
            self._proc.stdin.write(json.dumps(command) + "\n")
            self._proc.stdin.flush()
            reply = self._read()
        if "error" in reply:
            raise StackError(f"cluster host: {reply['error']}")
        return reply

    def _read(self) -> dict[str, Any]:
        if self._proc is None or self._proc.stdout is None:
            raise StackError("the cluster is not started")
        out = self._proc.stdout
        result: dict[str, Any] = {}
        reader = threading.Thread(target=lambda: result.update(_next_json(out)), daemon=True)
        reader.start()
        reader.join(self._timeout_s)
        if not result:
            raise StackError(
                f"cluster host gave no answer within {self._timeout_s:.0f}s "
                f"(exit code {self._proc.poll()}); see its log: {self._log}"
            )
        return result


def _next_json(stream: IO[str]) -> dict[str, Any]:
    """The next line of ``stream`` that is a JSON object (Ray may print other lines)."""
    for raw in stream:
        line = raw.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    return parsed
    return {"error": "the cluster host exited"}
