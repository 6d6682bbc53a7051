"""Both pipelines on a real multi-node Ray cluster (four raylets on this machine), with a node
lost mid-run: placement by resources seen through Ray's state API, every job terminal once,
one index row per chunk in the shared pgvector table, the driver's search seeing it, and the
runtime's custom metrics on Ray's metrics export endpoint.

CI runs this short form (about three minutes); ``python -m benchmarks.multinode`` runs a long
form with more documents.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from ingest_ray.index.base import META_CHUNK_ID
from ingest_ray.states import JobStatus
from tests.integration.cluster.conftest import LONG, search
from tests.integration.cluster.scenario import PDFS
from tests.integration.cluster.steps import EXPORTED, Run, is_exported

pytestmark = pytest.mark.timeout(2400 if LONG else 900)

ENCRYPTED = "sample-libreoffice-password-encrypted.pdf"
GPU_NODES = {"gpu-1", "gpu-2"}
POOLS = {"metadata", "meta_index", "pdf_fetch", "mineru", "chunk", "embed", "index"}


def test_multinode_every_job_ends_terminal_once_despite_the_lost_node(run: Run) -> None:
    assert sorted(j.doc_key for j in run.jobs) == sorted(run.submitted)  # none lost or doubled
    for job in run.jobs:
        if run.submitted[job.doc_key].endswith(ENCRYPTED):
            assert job.status is JobStatus.FAILED, job
            assert job.error is not None and job.error.type == "EncryptedPdfError"
            continue
        assert job.status is JobStatus.COMPLETED, (job.doc_key, job.error)
    pdfs = [v for v in run.submitted.values() if v.endswith(".pdf")]
    assert len([j for j in run.jobs if j.pipeline == "two_phase"]) == len(pdfs) >= len(PDFS)
    assert run.worker_exit == 0, run.worker_log


def test_multinode_calls_lost_with_the_node_ran_again_on_another(run: Run) -> None:
    lost = [j for j in run.jobs if any(e.data.get("lost") for e in j.history)]
    assert lost, "no stage call was running on the killed node"
    stages = {e.stage for j in lost for e in j.history if e.data.get("lost")}
    assert stages & {"mineru", "mineru_scripted"}, stages  # the killed node hosted MinerU
    assert all(j.status.is_terminal for j in lost)
    assert all(j.status is JobStatus.COMPLETED for j in lost if j.pipeline.endswith("_scripted"))
    # a lost try is the infrastructure's fault: it is recorded as such, not as a stage error
    losses = [e for j in lost for e in j.history if e.data.get("lost")]
    assert {e.error.type for e in losses if e.error} <= {"ActorDied", "LeaseExpired"}, losses


def test_multinode_each_pool_ran_only_on_the_nodes_its_resources_allow(run: Run) -> None:
    rows = {a.name: a for a in [*run.before_kill, *run.after]}.values()
    # an actor released before it was ever placed (started and stopped by the sizer while
    # pending) has no node: it ran nowhere, so there is nothing to check about where
    stage_actors = [a for a in rows if a.pool and a.node != "?"]
    assert {a.pool for a in stage_actors} >= POOLS
    for actor in stage_actors:
        if actor.pool == "mineru":
            assert actor.node in GPU_NODES, actor  # only these carry the `mineru` resource
        else:
            assert actor.node != "head", actor  # the head has no CPUs for stages
        assert actor.repr_name.startswith(f"StageActor(pool={actor.pool} stages="), actor
    control = [a for a in rows if not a.pool]
    names = {a.name.split("/", 1)[1].split("/")[0] for a in control}
    assert names == {"dispatcher", "outbox-relay", "ingress"}
    assert {a.node for a in control} == {"head"}  # pinned by INGEST_RAY_CONTROL_RESOURCE


def test_multinode_the_lost_nodes_actors_were_replaced_on_surviving_nodes(run: Run) -> None:
    assert run.victim in GPU_NODES
    on_victim = {a.pool for a in run.before_kill if a.node == run.victim and a.state == "ALIVE"}
    assert "mineru" in on_victim
    alive = [a for a in run.after if a.state == "ALIVE"]
    assert not [a for a in alive if a.node == run.victim]
    assert all(a.state == "DEAD" for a in run.after if a.node == run.victim)
    for pool in on_victim - {None}:
        assert any(a.pool == pool for a in alive), f"pool {pool} has no actor left"
    (survivor,) = GPU_NODES - {run.victim}
    assert {a.node for a in alive if a.pool == "mineru"} == {survivor}


def test_multinode_one_index_row_per_chunk_and_the_drivers_search_sees_them(run: Run) -> None:
    table = sql.Identifier(run.chunks_table)
    with psycopg.connect(run.env["INGEST_RAY_INDEX_URI"]) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT doc_key, count(*), count(DISTINCT job_id) FROM {} GROUP BY doc_key"
            ).format(table)
        ).fetchall()
        counts = {doc: (n, jobs) for doc, n, jobs in rows}
        pdf_text = conn.execute(
            sql.SQL("SELECT doc_key, text FROM {} WHERE chunk_id <> %s AND length(text) > 200 "
                    "AND doc_key NOT LIKE 'text-%%' ORDER BY doc_key LIMIT 1").format(table),
            (META_CHUNK_ID,),
        ).fetchone()  # fmt: skip
    real = [j for j in run.jobs if j.pipeline in {"auto", "two_phase"}]
    assert real
    for job in real:
        if job.status is not JobStatus.COMPLETED:
            continue
        meta = int(job.outputs.get("meta_index", {}).get("indexed", 0))
        assert counts[job.doc_key] == (job.outputs["chunk"]["chunk_count"] + meta, 1), job.doc_key
    hits = search(run.env, "zebra3quartz")
    assert "text-3" in [h["doc_key"] for h in hits], hits
    assert pdf_text is not None
    words = pdf_text[1].split()
    hits = search(run.env, " ".join(words[5:20]))
    assert pdf_text[0] in [h["doc_key"] for h in hits], hits


@pytest.mark.parametrize(("series", "label"), EXPORTED)
def test_multinode_custom_metrics_reach_rays_metrics_export_endpoint(
    run: Run, series: str, label: str
) -> None:
    exported = "\n".join(run.metrics.values())
    assert is_exported(exported, series, label), f"{series}{{{label}}} not exported"


def test_multinode_control_plane_on_a_lost_node_comes_back_on_another(control_loss: Run) -> None:
    """Without pinning to the head, the Dispatcher and the relay may live on a worker
    node. When it is lost, Ray restarts them (detached, max_restarts=-1) on a node that still
    carries their resource, the worker's supervision restarts the Dispatcher's loop, recovery
    takes over every processing job, and every job still completes once. The price: the stage
    actors are owned by the Dispatcher, so every pool restarts, on every node."""
    run = control_loss
    assert sorted(j.doc_key for j in run.jobs) == sorted(run.submitted)
    assert all(j.status is JobStatus.COMPLETED for j in run.jobs), [j.error for j in run.jobs]
    before = {a.name: a for a in run.before_kill}
    assert before[f"{run.runtime}/dispatcher"].node == run.victim
    alive = {a.name: a for a in run.after if a.state == "ALIVE"}
    for part in ("dispatcher", "outbox-relay"):
        restarted = alive[f"{run.runtime}/{part}"]
        assert restarted.node not in {run.victim, "head"}, restarted
    # the calls running at the loss were done again: by the restarted Dispatcher's recovery
    redone = [
        j
        for j in run.jobs
        if any("resumed_attempt" in e.data or e.data.get("lost") for e in j.history)
    ]
    assert redone
    # every stage actor of before the loss is gone, wherever it ran
    assert not [n for n, a in before.items() if a.pool and a.state == "ALIVE" and n in alive]
    assert run.worker_exit == 0, run.worker_log
