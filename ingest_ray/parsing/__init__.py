"""PDF parsing: MinerU over HTTP, MinerU in-process, or a sandboxed CPU parser (pdfium).

All three produce MinerU's *content list*. This package ``__init__`` imports nothing on purpose:
the sandboxed child (:mod:`ingest_ray.parsing.worker`) must start fast and small.
"""
