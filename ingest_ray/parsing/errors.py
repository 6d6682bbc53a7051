"""Errors of PDF parsing.

A document that cannot be parsed fails its job for good (the same bytes fail the same way, so
retrying is pointless): encrypted, broken, too long, too slow, too hungry. A MinerU server that is
busy or away is worth trying again later.
"""

from __future__ import annotations

from ingest_ray.errors import IngestError, PermanentError, RetryableError


class ParseError(IngestError):
    """Base of the parsing errors (never raised itself)."""


# --- the document -----------------------------------------------------------------------------


class EncryptedPdfError(ParseError, PermanentError):
    """The PDF needs a password (or uses a security handler we cannot open)."""


class BrokenPdfError(ParseError, PermanentError):
    """The bytes are not a readable PDF, even after trying to rebuild its cross-reference table."""


class TooManyPagesError(ParseError, PermanentError):
    """The PDF has more pages than ``max_pages``; it is refused rather than truncated."""


class NoTextError(ParseError, PermanentError):
    """The parse found no text at all (e.g. a scan, which the CPU parser cannot OCR)."""


# --- the sandboxed child ----------------------------------------------------------------------


class ParseTimeoutError(ParseError, PermanentError):
    """The parser child ran out of wall-clock time and was killed (the same bytes would again)."""


class ParseMemoryError(ParseError, PermanentError):
    """The parser child hit its address-space limit (``memory_mb``)."""


class ParserCrashedError(ParseError, PermanentError):
    """The parser child died without an answer (a signal, an unexpected exit)."""


# --- MinerU over HTTP -------------------------------------------------------------------------


class MineruUnavailableError(ParseError, RetryableError):
    """MinerU did not answer, timed out, or answered 5xx/429 (``retry_after`` when it said)."""


class MineruTimeoutError(ParseError, RetryableError):
    """A submitted task did not finish within ``mineru_task_timeout_s`` (the queue may be long)."""


class MineruRequestError(ParseError, PermanentError):
    """MinerU refused the request (4xx): the file or the options are wrong for it."""


class MineruTaskFailedError(ParseError, PermanentError):
    """MinerU ran the task (or this file of it) and reported that it failed."""


class MineruTaskCanceledError(ParseError, RetryableError):
    """MinerU cancelled the task (a server shutting down cancels what it holds), or a file of
    it never ran: nothing is wrong with the document, it is worth sending again."""


class MineruResultError(ParseError, PermanentError):
    """MinerU answered, but not with a content list we can read."""


# --- the stage --------------------------------------------------------------------------------


class MissingPdfError(ParseError, PermanentError):
    """The job has no fetched PDF to parse (no ``pdf_fetch`` output, or its blob is gone)."""
