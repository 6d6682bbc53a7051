"""The multi-node scenario's parts: the cluster layout, the environment every node and the
worker get, the ingest worker as a Ray driver of its own (``ingest-ray worker start ingest``
with ``RAY_ADDRESS``), the requests, and what Ray's state API says about the actors.

The test process itself never joins the cluster (it may hold the suite's local Ray): it talks
to the cluster through Kafka, the ledger, the index and the dashboard's HTTP state API only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.util.state import list_actors, list_tasks

from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.simulate.cluster import LocalCluster
from ingest_ray.simulate.spec import NodeSpec
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[3]
CONTROL = "ingest_control"
#: carried by every worker node and not the head: a control plane that may live on any of them
ALT_CONTROL = "ingest_control_alt"
MINERU = "mineru"
TENANT = "mn"

#: no CPUs for stages on the head; the control plane pinned there by ``ingest_control``;
#: one CPU node; two "GPU" nodes that alone carry the resource the MinerU pool asks for
HEAD = NodeSpec(name="head", num_cpus=0, resources={CONTROL: 1})
WORKERS = (
    NodeSpec(name="cpu", num_cpus=8, resources={ALT_CONTROL: 1}),
    NodeSpec(name="gpu-1", num_cpus=8, resources={MINERU: 1, ALT_CONTROL: 1}),
    NodeSpec(name="gpu-2", num_cpus=8, resources={MINERU: 1, ALT_CONTROL: 1}),
)
#: fixture PDFs small enough for the CPU parser on two shared cores (one is encrypted: it
#: must fail cleanly, which is also terminal)
PDFS = (
    "sample-libreoffice-writer-1page.pdf", "sample-trivial-pdflatex-1page.pdf",
    "sample-pdflatex-4pages.pdf", "sample-latex-multicolumn-3pages.pdf",
    "sample-libreoffice-password-encrypted.pdf",
)  # fmt: skip
TOPICS = ("ribosome assembly", "glacier retreat", "graph colouring", "tidal energy",
          "bird migration", "protein folding", "volcanic ash", "soil microbes")  # fmt: skip


def text_of(i: int) -> str:
    """A short document of its own words (several chunks' worth is not needed)."""
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"Study {i} on {topic}. We measured {topic} across {i + 3} field sites and report "
        f"how the quantity number {1000 + i} changed over twelve seasons of observation. "
        f"The marker phrase for this text is zebra{i}quartz and appears once."
    )


@dataclass
class Plan:
    """What one run submits: real documents for the real stages, scripted ones for volume."""

    texts: int = 8
    scripted_auto: int = 24
    scripted_two_phase: int = 12
    #: seconds each scripted MinerU job holds the MinerU actor (a call runs its batch in turn);
    #: long enough that a call the state API reports running (its task events lag by a second
    #: or more on a loaded machine) is still running when the test kills its node
    mineru_s: float = 4.0
    pdfs: tuple[str, ...] = PDFS

    @classmethod
    def long(cls) -> Plan:
        """The benchmark form: every fixture PDF and ten times the documents."""
        every = tuple(sorted(p.name for p in (FIXTURES / "pdfs").glob("*.pdf")))
        return cls(texts=60, scripted_auto=240, scripted_two_phase=80, pdfs=every)

    def requests(self, fixtures: Path) -> list[IngestRequest]:
        """Every request of the run."""
        out = [_text(f"text-{i}", text_of(i), "auto") for i in range(self.texts)]
        out += [
            IngestRequest(tenant_id=TENANT, pipeline="two_phase", source=DocumentSource(
                kind=SourceKind.PDF_PATH, value=str(fixtures / "pdfs" / name)))
            for name in self.pdfs
        ]  # fmt: skip
        out += [
            scripted(f"s-auto-{i}", "auto_scripted", chunk_scripted=0.2, embed_scripted=0.2)
            for i in range(self.scripted_auto)
        ]
        out += [
            scripted(f"s-2p-{i}", "two_phase_scripted", mineru_scripted=self.mineru_s)
            for i in range(self.scripted_two_phase)
        ]
        return out


def _text(doc: str, text: str, pipeline: str, **script: Any) -> IngestRequest:
    return IngestRequest(
        tenant_id=TENANT, doc_key=doc, pipeline=pipeline, metadata=script,
        source=DocumentSource(kind=SourceKind.TEXT, value=text),
    )  # fmt: skip


def scripted(doc: str, pipeline: str, **sleep_s: float) -> IngestRequest:
    """A scripted job whose stages sleep as given (``{stage_name: seconds}``)."""
    return _text(doc, f"scripted {doc}", pipeline, sleep_s=sleep_s)


@dataclass(frozen=True)
class ActorRow:
    """One actor as the state API lists it, with its node's name."""

    name: str
    state: str
    node: str
    repr_name: str
    pid: int
    actor_id: str = ""

    @property
    def pool(self) -> str | None:
        """The pool of a stage actor (``<runtime>/<pool>/<incarnation>-<n>``), else None."""
        parts = self.name.split("/")
        return parts[1] if len(parts) == 3 and parts[1] not in _CONTROL_NAMES else None


_CONTROL_NAMES = {"dispatcher", "outbox-relay"}


def actors(cluster: LocalCluster, runtime: str) -> list[ActorRow]:
    """Every actor of ``runtime``, alive or dead, with the name of the node it ran on."""
    names = cluster.node_names()
    rows = list_actors(
        address=cluster.dashboard_url, detail=True, limit=10_000, timeout=60,
        raise_on_missing_output=False,
    )  # fmt: skip
    mine = [a for a in rows if (a.name or "").startswith(f"{runtime}/")]
    return [
        ActorRow(
            a.name,
            a.state,
            names.get(a.node_id or "", "?"),
            a.repr_name or "",
            a.pid or 0,
            a.actor_id,
        )
        for a in mine
    ]


def running_calls(cluster: LocalCluster, actor_id: str) -> int:
    """Stage calls (``StageActor.run``) the state API reports running on one actor."""
    tasks = list_tasks(
        address=cluster.dashboard_url, limit=10_000, timeout=60, raise_on_missing_output=False,
        filters=[("actor_id", "=", actor_id), ("state", "=", "RUNNING")],
    )  # fmt: skip
    return sum(1 for t in tasks if t.name.endswith(".run"))


@dataclass
class Worker:
    """``ingest-ray worker start ingest`` as a subprocess: a Ray driver joining the cluster."""

    env: Mapping[str, str]
    log: Path
    name: str = "mn-worker"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Worker:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingest_ray", "worker", "start", "ingest",
                 "--name", self.name, "--grace", "10"],
                env=dict(self.env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 120) -> int | None:
        """SIGTERM (drain), then wait; SIGKILL if it does not end."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def wait_for(what: str, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.5,
             worker: Worker | None = None) -> None:  # fmt: skip
    """Poll ``predicate``; fail naming ``what`` (and the worker's log) when it never holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker is not None and not worker.alive():
            raise AssertionError(f"{what}: the worker exited\n{worker.tail()}")
        time.sleep(poll_s)
    tail = worker.tail() if worker is not None else ""
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s\n{tail}")


def without_ray_address() -> dict[str, str]:
    """This process's environment minus anything that would point Ray elsewhere."""
    return {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAY_TMPDIR"}}
