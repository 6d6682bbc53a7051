"""DOI and OpenAlex id handling shared by the clients and the replay server.

DOIs may hold almost any printable character: SICI DOIs such as
``10.1002/(SICI)1097-4571(199806)49:8<693::AID-ASI4>3.0.CO;2-O`` carry brackets, angle
brackets, colons and semicolons. In a URL path every character outside the unreserved set is
percent-encoded, except ``/`` (APIs expect the DOI's slash as is), ``:`` and parentheses.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from ingest_ray.events import normalize_doi

_OPENALEX_ID = re.compile(r"^(?:https?://(?:api\.)?openalex\.org/(?:works/)?)?(W\d+)$", re.I)
_DOI_SHAPE = re.compile(r"^10\.\d+(?:\.\d+)*/\S+$")

#: characters left unescaped in a DOI path segment (besides letters, digits and ``_.-~``)
PATH_SAFE = "/:()"


def bare_doi(value: str) -> str:
    """The DOI without resolver prefix, lower-cased (DOIs are case-insensitive)."""
    return normalize_doi(value)


def looks_like_doi(value: str) -> bool:
    """Whether ``value`` (after prefix stripping) has the ``10.prefix/suffix`` shape."""
    return bool(_DOI_SHAPE.match(bare_doi(value)))


def doi_path(doi: str) -> str:
    """The DOI percent-encoded for use inside a URL path."""
    return quote(bare_doi(doi), safe=PATH_SAFE)


def openalex_work_id(value: str) -> str:
    """``W123`` from ``W123``, ``w123`` or ``https://openalex.org/W123``.

    Raises ``ValueError`` for anything else.
    """
    match = _OPENALEX_ID.match(value.strip())
    if match is None:
        raise ValueError(f"not an OpenAlex work id: {value!r}")
    return match.group(1).upper()
