"""Embedding throughput: numpy vs ONNX Runtime, one process with N threads vs N one-thread
processes, against the machine's compute bound (``ingest-ray bench embedding``).

    ingest-ray bench embedding --cpus 2 --rounds 3 --json benchmarks/results/embedding.json

The chunks are the real ones of the fixture PDFs (CPU parser, then the chunk stage's chunker).
Every configuration runs in worker processes started once (the model loads once per process);
each round runs every configuration once, in turn, so a noisy neighbour hits them alike; the
report takes each configuration's median round. Each worker also embeds the committed reference
texts and reports the smallest cosine to the committed reference vectors.

The compute bound: the encoder's matrix products cost ``2 x L x P`` FLOPs for a chunk of ``L``
tokens (``P`` = the weights of the encoder layers; the word-embedding table is a lookup, not
arithmetic) plus ``4 x L^2 x hidden`` per layer for attention; the machine's FLOP/s is a float32
numpy matmul of the encoder's own shape, per second of CPU time, so the bound (chunks one core
could embed per second) and the figure compared with it (chunks per CPU-second) both hold on a
machine whose cores other processes share. The issue's rule of thumb (``2 x all parameters x
tokens``) is reported too.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info

FIXTURE_PDFS = Path("/work/shared/fixtures/pdfs")
REFERENCE = Path(__file__).resolve().parents[1] / "tests/unit/text/data/minilm_reference.json"
BACKENDS = ("numpy", "onnx")


@dataclass(frozen=True, slots=True)
class Config:
    """One way of running the model: backend, processes, threads per process."""

    backend: str
    processes: int
    threads: int

    @property
    def name(self) -> str:
        """``onnx_2x1``: two processes of one thread each."""
        return f"{self.backend}_{self.processes}x{self.threads}"

    @property
    def cores(self) -> int:
        """Cores the configuration asks for."""
        return self.processes * self.threads


def configs(cpus: int, backends: Sequence[str] = BACKENDS) -> list[Config]:
    """Per backend: one thread (the per-core figure), one process of ``cpus`` threads, and
    ``cpus`` processes of one thread."""
    out = []
    for backend in backends:
        out.append(Config(backend, 1, 1))
        if cpus > 1:
            out += [Config(backend, 1, cpus), Config(backend, cpus, 1)]
    return out


def corpus_chunks(pdf_dir: Path = FIXTURE_PDFS, *, limit: int = 0) -> list[str]:
    """The chunk texts of every readable fixture PDF (encrypted ones are skipped)."""
    from ingest_ray.parsing.errors import ParseError  # noqa: PLC0415
    from ingest_ray.parsing.parsers import CpuParser  # noqa: PLC0415
    from ingest_ray.parsing.settings import ParseSettings  # noqa: PLC0415
    from ingest_ray.text.chunker import Chunker  # noqa: PLC0415
    from ingest_ray.text.settings import TextSettings  # noqa: PLC0415

    parser = CpuParser(ParseSettings(mode="cpu"))
    chunker = Chunker.from_settings(TextSettings())
    texts: list[str] = []
    for pdf in sorted(pdf_dir.glob("*.pdf")):
        try:
            parsed = asyncio.run(parser.parse(pdf))
        except ParseError:
            continue
        texts += [c.text for c in chunker.chunk_items(parsed.content_list)]
    return texts[:limit] if limit else texts


def token_lengths(texts: Sequence[str]) -> list[int]:
    """Wordpieces per text as the model reads them (special tokens in, truncated at 256)."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    from ingest_ray.text.models import resolve_model  # noqa: PLC0415

    files = resolve_model("all-MiniLM-L6-v2")
    tokenizer = Tokenizer.from_file(str(files.tokenizer_file))
    tokenizer.enable_truncation(max_length=files.max_seq_length())
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts))]


def model_shape() -> dict[str, int]:
    """Sizes of all-MiniLM-L6-v2 from its files: hidden, layers, intermediate, parameters."""
    from safetensors.numpy import load_file  # noqa: PLC0415

    from ingest_ray.text.models import resolve_model  # noqa: PLC0415

    files = resolve_model("all-MiniLM-L6-v2")
    config = files.read_json("config.json")
    weights = load_file(str(files.root / "model.safetensors"))
    total = sum(int(v.size) for v in weights.values())
    encoder = sum(int(v.size) for k, v in weights.items() if ".encoder." in f".{k}")
    return {
        "hidden": int(config["hidden_size"]), "layers": int(config["num_hidden_layers"]),
        "intermediate": int(config["intermediate_size"]), "parameters": total,
        "encoder_parameters": encoder,
    }  # fmt: skip


def flops(lengths: Sequence[int], shape: dict[str, int]) -> dict[str, float]:
    """FLOPs of embedding texts of these token lengths (see the module docstring)."""
    tokens = sum(lengths)
    attention = sum(4 * n * n * shape["hidden"] * shape["layers"] for n in lengths)
    return {
        "tokens": tokens,
        "encoder": 2.0 * shape["encoder_parameters"] * tokens + attention,
        "rule_of_thumb": 2.0 * shape["parameters"] * tokens,
    }


def matmul_gflops(threads: int, *, seconds: float = 2.0) -> dict[str, float]:
    """float32 GFLOP/s of ``(4096 x 384) @ (384 x 1536)`` (the encoder's largest product), per
    second of wall time and per second of this process's CPU time (the latter does not drop
    when other processes share the cores)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: PLC0415

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 384), dtype=np.float32)
    b = rng.standard_normal((384, 1536), dtype=np.float32)
    work = 2.0 * 4096 * 384 * 1536
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b
        done, started, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            a @ b
            done += 1
        elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": work * done / elapsed / 1e9, "cpu": work * done / used / 1e9}


def _serve(conn: Connection, backend: str, threads: int) -> None:
    """A worker process: load the model once, then embed what it is sent."""
    from ingest_ray.text.embedder import Embedder, load_encoder  # noqa: PLC0415
    from ingest_ray.text.settings import TextSettings  # noqa: PLC0415

    settings = TextSettings(embedding_backend=backend, embed_threads=threads)
    embedder = Embedder("all-MiniLM-L6-v2", load_encoder(settings), batch_size=32)
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    got = embedder.embed(reference["texts"])
    expected = np.array(reference["embeddings"], dtype=np.float32)
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    conn.send({"encoder": type(embedder.encoder).__name__, "min_cosine": float(cosine.min())})
    while True:
        texts = conn.recv()
        if texts is None:
            return
        cpu, started = time.process_time(), time.perf_counter()
        embedder.embed(texts)
        conn.send((time.perf_counter() - started, time.process_time() - cpu))


class Workers:
    """The processes of one configuration."""

    def __init__(self, config: Config) -> None:
        context = mp.get_context("spawn")
        self.config = config
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for _ in range(config.processes):
            parent, child = context.Pipe()
            proc = context.Process(target=_serve, args=(child, config.backend, config.threads))
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)
        self.hello = [c.recv() for c in self._conns]

    def run(self, texts: Sequence[str]) -> tuple[float, float]:
        """Embed ``texts`` split evenly over the processes; answers (wall s, CPU s)."""
        shares = [list(texts[i :: self.config.processes]) for i in range(self.config.processes)]
        started = time.perf_counter()
        for conn, share in zip(self._conns, shares, strict=True):
            conn.send(share)
        answers = [conn.recv() for conn in self._conns]
        return time.perf_counter() - started, sum(cpu for _, cpu in answers)

    def close(self) -> None:
        """Stop the processes."""
        for conn in self._conns:
            conn.send(None)
        for proc in self._procs:
            proc.join(timeout=30)


def run(
    *, cpus: int, rounds: int, limit: int = 0, backends: Sequence[str] = BACKENDS,
    command: str = "", log: Any = print,
) -> dict[str, Any]:  # fmt: skip
    """Measure every configuration ``rounds`` times; answers the JSON report."""
    machine = machine_info()
    texts = corpus_chunks(limit=limit)
    lengths = token_lengths(texts)
    shape = model_shape()
    work = flops(lengths, shape)
    log(f"{len(texts)} chunks, {work['tokens']} tokens; measuring matmul FLOP/s ...")
    peak = {"1": matmul_gflops(1), str(cpus): matmul_gflops(cpus)}
    log(f"matmul GFLOP/s: {peak}")
    chosen = configs(cpus, backends)
    pools = {c.name: Workers(c) for c in chosen}
    times: dict[str, list[tuple[float, float]]] = {c.name: [] for c in chosen}
    try:
        for w in pools.values():
            w.run(texts[: 4 * w.config.processes])  # warm-up: first calls allocate
        for r in range(rounds):
            for name, w in pools.items():
                times[name].append(w.run(texts))
                log(f"round {r + 1}: {name} {len(texts) / times[name][-1][0]:.1f} chunks/s")
    finally:
        for w in pools.values():
            w.close()
    results = {c.name: _figures(c, texts, work, times[c.name], pools[c.name].hello, peak)
               for c in chosen}  # fmt: skip
    machine["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return {
        "benchmark": "embedding", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command, "machine": machine, "model": {"name": "all-MiniLM-L6-v2", **shape},
        "corpus": {"chunks": len(texts), "tokens": work["tokens"],
                   "mean_tokens": round(work["tokens"] / len(texts), 1)},
        "flops_per_chunk": {k: round(work[k] / len(texts)) for k in ("encoder", "rule_of_thumb")},
        "matmul_gflops": {k: {m: round(x, 1) for m, x in v.items()} for k, v in peak.items()},
        "configs": results, "ratios": _ratios(results, cpus),
    }  # fmt: skip


def _figures(
    config: Config, texts: Sequence[str], work: dict[str, float],
    rounds: list[tuple[float, float]], hello: list[dict[str, Any]],
    peak: dict[str, dict[str, float]],
) -> dict[str, Any]:  # fmt: skip
    wall, cpu = sorted(rounds)[len(rounds) // 2]
    rate = len(texts) / wall
    per_core = rate / config.cores
    per_cpu_s = len(texts) / cpu if cpu > 0 else 0.0
    # what one core could do if every FLOP ran at the single-thread matmul rate
    bound = peak["1"]["cpu"] * 1e9 / (work["encoder"] / len(texts))
    return {
        "backend": config.backend, "processes": config.processes, "threads": config.threads,
        "encoder": hello[0]["encoder"],
        "min_cosine_to_reference": min(h["min_cosine"] for h in hello),
        "chunks_per_s": round(rate, 2), "chunks_per_s_per_core": round(per_core, 2),
        "rounds_chunks_per_s": [round(len(texts) / w, 2) for w, _ in rounds],
        "cpu_s": round(cpu, 2), "busy_cores": round(cpu / wall, 2),
        "chunks_per_cpu_s": round(per_cpu_s, 2),
        "achieved_gflops": round(work["encoder"] / wall / 1e9, 1),
        "cpu_share_of_matmul_bound": round(per_cpu_s / bound, 3),
        "bound_chunks_per_s_per_core": round(bound, 2),
    }  # fmt: skip


def _ratios(results: dict[str, dict[str, Any]], cpus: int) -> dict[str, float]:
    def rate(name: str) -> float | None:
        r = results.get(name)
        return None if r is None else float(r["chunks_per_s"])

    out: dict[str, float] = {}
    pairs = [("onnx_1x1", "numpy_1x1")]
    if cpus > 1:
        pairs += [(f"onnx_1x{cpus}", f"numpy_1x{cpus}"), (f"onnx_{cpus}x1", f"numpy_{cpus}x1"),
                  (f"numpy_{cpus}x1", f"numpy_1x{cpus}"), (f"onnx_{cpus}x1", f"onnx_1x{cpus}"),
                  (f"onnx_1x{cpus}", "onnx_1x1"), (f"onnx_{cpus}x1", "onnx_1x1")]  # fmt: skip
    for a, b in pairs:
        ra, rb = rate(a), rate(b)
        if ra is not None and rb:
            out[f"{a}_over_{b}"] = round(ra / rb, 2)
    return out


def markdown_table(doc: dict[str, Any]) -> str:
    """The figures as the table of ``docs/benchmarks.md``."""
    lines = ["| configuration | chunks/s | chunks/s per core | chunks per CPU-s | busy cores "
             "| GFLOP/s | chunks per CPU-s / bound | min cosine |", "|---" * 8 + "|"]  # fmt: skip
    for name, r in doc["configs"].items():
        lines.append(f"| {name} | {r['chunks_per_s']:.1f} | {r['chunks_per_s_per_core']:.1f} | "
                     f"{r['chunks_per_cpu_s']:.1f} | {r['busy_cores']:.2f} | "
                     f"{r['achieved_gflops']:.1f} | {100 * r['cpu_share_of_matmul_bound']:.0f}% | "
                     f"{r['min_cosine_to_reference']:.7f} |")  # fmt: skip
    return "\n".join(lines)


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Write the report, pretty-printed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
