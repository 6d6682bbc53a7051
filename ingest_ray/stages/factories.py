"""Factories of the built-in stages: each builds one stage from the process settings.

The catalog names stages by these functions (``ingest_ray.stages.factories:<stage>``); a Ray
actor calls one with the :class:`~ingest_ray.config.Settings` it was given. Each area's own
settings (adapters, fetch, parse, text, index, storage) read their environment variables on the
node where the stage runs, overridden by ``Settings.sections[area]``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.config import Settings
from ingest_ray.errors import ConfigurationError
from ingest_ray.fetch.settings import FetchSettings
from ingest_ray.index.search import query_embedder
from ingest_ray.index.settings import IndexSettings
from ingest_ray.parsing.parsers import choose_parser
from ingest_ray.parsing.sandbox import Prober
from ingest_ray.parsing.settings import ParseSettings
from ingest_ray.stages.base import Stage
from ingest_ray.stages.chunk import ChunkStage
from ingest_ray.stages.embed import EmbedStage
from ingest_ray.stages.index import IndexStage, MetaIndexStage
from ingest_ray.stages.mapping import MappingStage
from ingest_ray.stages.metadata import MetadataStage
from ingest_ray.stages.mineru import MineruStage
from ingest_ray.stages.pdf_fetch import PdfFetchStage
from ingest_ray.storage import BlobStore, StorageSettings, open_blob_store
from ingest_ray.text.settings import TextSettings

S = TypeVar("S", bound=BaseSettings)


def section(settings: Settings, area: str, cls: type[S], **base: Any) -> S:
    """``cls`` built from its environment, ``base`` and the overrides for ``area``."""
    return cls(**{**base, **settings.sections.get(area, {})})


def adapter_settings(settings: Settings) -> AdapterSettings:
    """Adapters share the runtime's Redis (for the cluster-wide rate limits)."""
    return section(
        settings, "adapters", AdapterSettings,
        redis_url=settings.redis_url, redis_prefix=settings.redis_prefix,
    )  # fmt: skip


def blob_store(settings: Settings) -> BlobStore:
    """The blob store every stage (and the job API's upload) reads and writes: the one
    ``sections["storage"]["blob_url"]`` or ``INGEST_RAY_BLOB_URL`` names."""
    if "blob_dir" in settings.sections.get("fetch", {}):
        raise ConfigurationError(
            'sections["fetch"]["blob_dir"] is gone: set sections["storage"]["blob_url"] '
            "(a path, file:///path or s3://bucket/prefix)"
        )
    return open_blob_store(section(settings, "storage", StorageSettings))


def metadata(settings: Settings) -> Stage:
    """OpenAlex metadata (or the request's own for local files and text)."""
    return MetadataStage(adapter_settings(settings), blobs=blob_store(settings))


def pdf_fetch(settings: Settings) -> Stage:
    """The open-access chain and the safe fetcher (and the prober, when it probes ahead)."""
    fetch, parse = (
        section(settings, "fetch", FetchSettings),
        section(settings, "parse", ParseSettings),
    )
    prober = Prober(parse) if probes_ahead(settings, fetch, parse) else None
    return PdfFetchStage.from_settings(
        adapter_settings(settings), fetch, blob_store(settings), prober=prober
    )


def probes_ahead(settings: Settings, fetch: FetchSettings, parse: ParseSettings) -> bool:
    """Whether ``pdf_fetch`` probes the PDFs it stores: as ``fetch.probe_pdfs`` says, else when
    the ``mineru`` pool holds an accelerator (``mineru_num_gpus``, ``mineru_resource``) or MinerU
    parses (its parser probes every PDF before it sends it; the CPU parser counts pages as it
    parses)."""
    if fetch.probe_pdfs is not None:
        return fetch.probe_pdfs
    if settings.mineru_resource or settings.mineru_num_gpus > 0:
        return True
    try:
        return choose_parser(parse) != "pdfium"
    except ConfigurationError:  # the mineru stage reports it
        return False


def mineru(settings: Settings) -> Stage:
    """MinerU (HTTP API or in-process) or the sandboxed CPU parser."""
    return MineruStage(section(settings, "parse", ParseSettings), blob_store(settings))


def chunk(settings: Settings) -> Stage:
    """Section-aware chunking with the embedding model's tokenizer."""
    return ChunkStage(section(settings, "text", TextSettings), blob_store(settings))


def embed(settings: Settings) -> Stage:
    """Batched sentence embeddings."""
    return EmbedStage(section(settings, "text", TextSettings), blob_store(settings))


def meta_index(settings: Settings) -> Stage:
    """Index title and abstract right after metadata. The embedder loads here, as the pool's
    actor starts: loaded at the first call, it held that call (and the actor's calls queued
    behind it) for the seconds the model takes to load, in front of every later stage."""
    text = section(settings, "text", TextSettings)
    embedder = query_embedder(text)
    return MetaIndexStage(section(settings, "index", IndexSettings), text, embedder=embedder)


def index(settings: Settings) -> Stage:
    """Upsert chunks and vectors."""
    return IndexStage(section(settings, "index", IndexSettings), blob_store(settings))


def mapping(settings: Settings) -> Stage:
    """Entity mentions (authors, institutions, topics, cited DOIs)."""
    return MappingStage(section(settings, "index", IndexSettings), blob_store(settings))
