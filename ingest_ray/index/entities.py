"""Entity mapping: which authors (ORCID), institutions (ROR), topics, works and DOIs a document
is linked to, as normalised ids that users can look documents up by.

Every entity id has one canonical form with a scheme prefix, so ``https://orcid.org/0000-…``
and ``0000-…`` find the same rows: ``orcid:0000-0002-1825-0097``, ``ror:03yrm5c26``,
``doi:10.1371/journal.pone.0000030`` (lower case), ``openalex:T10001`` (upper case).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from ingest_ray.index.base import EntityMention
from ingest_ray.index.errors import InvalidEntityError

AUTHOR: Final = "author"
INSTITUTION: Final = "institution"
TOPIC: Final = "topic"
DOI: Final = "doi"  # the document's own DOI
WORK: Final = "work"  # the document's own OpenAlex id
CITED_DOI: Final = "cited_doi"  # a DOI found in the document's text
CITED_WORK: Final = "cited_work"  # an OpenAlex work in ``referenced_works``

_ORCID = re.compile(
    r"^(?:orcid:|https?://(?:www\.)?orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])/?$", re.I
)
_ROR = re.compile(
    r"^(?:ror:|https?://(?:www\.)?ror\.org/)?(0[a-hj-km-np-tv-z0-9]{6}\d{2})/?$", re.I
)
_OPENALEX = re.compile(r"^(?:openalex:|https?://(?:www\.)?openalex\.org/)?([WAISCTFP]\d+)/?$", re.I)
_DOI_PREFIX = re.compile(r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/)", re.I)
#: a DOI in running text: registrant code, slash, then anything up to whitespace or quotes
_DOI_IN_TEXT = re.compile(r"\b10\.\d{4,9}/[^\s\"'<>{}|\\^`]+", re.I)
_TRAILING = ".,;:!?*"
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def orcid_checksum_ok(orcid: str) -> bool:
    """ISO 7064 MOD 11-2 check digit of an ORCID iD (``0000-0002-1825-0097``)."""
    digits = orcid.replace("-", "")
    total = 0
    for char in digits[:-1]:
        total = (total + int(char)) * 2
    check = (12 - total % 11) % 11
    return digits[-1].upper() == ("X" if check == 10 else str(check))


def normalize_orcid(value: str) -> str | None:
    """``orcid:0000-0002-1825-0097`` from a bare iD or an orcid.org URL; None if not valid."""
    match = _ORCID.match(value.strip())
    if match is None or not orcid_checksum_ok(match.group(1)):
        return None
    return f"orcid:{match.group(1).upper()}"


def normalize_ror(value: str) -> str | None:
    """``ror:03yrm5c26`` from a bare ROR id or a ror.org URL; None if not one."""
    match = _ROR.match(value.strip())
    return f"ror:{match.group(1).lower()}" if match else None


def normalize_openalex(value: str) -> str | None:
    """``openalex:W2741809807`` (any entity letter) from a bare id or URL; None if not one."""
    match = _OPENALEX.match(value.strip())
    return f"openalex:{match.group(1).upper()}" if match else None


def clean_doi(doi: str) -> str | None:
    """A DOI lower-cased, resolver prefix and trailing punctuation (unbalanced closing
    brackets included: SICI DOIs contain balanced ones) removed; None if not a DOI."""
    doi = _DOI_PREFIX.sub("", doi.strip()).lower()
    while doi:
        last = doi[-1]
        if last in _TRAILING or (last in _CLOSERS and doi.count(_CLOSERS[last]) < doi.count(last)):
            doi = doi[:-1]
            continue
        break
    if not re.match(r"^10\.\d{4,9}/\S+$", doi):
        return None
    return doi


def normalize_doi(value: str) -> str | None:
    """``doi:10.…`` (lower case) from a bare DOI, ``doi:…`` or a doi.org URL."""
    doi = clean_doi(value)
    return f"doi:{doi}" if doi else None


def normalize_entity(value: str) -> str:
    """The canonical id of whatever the user typed: ORCID, ROR, DOI or OpenAlex id."""
    text = value.strip()
    for normalize in (normalize_orcid, normalize_ror, normalize_openalex):
        if found := normalize(text):
            return found
    if text.lower().startswith(("doi:", "http://", "https://", "10.")) and (
        found := normalize_doi(text)
    ):
        return found
    raise InvalidEntityError(
        f"not an ORCID, ROR id, DOI or OpenAlex id: {value!r}", stage="mapping"
    )


def extract_dois(texts: Iterable[str]) -> list[str]:
    """Every distinct DOI in the texts, normalised, in order of first appearance."""
    found: dict[str, None] = {}
    for text in texts:
        for match in _DOI_IN_TEXT.finditer(text):
            if doi := clean_doi(match.group(0)):
                found.setdefault(doi, None)
    return list(found)


class _Institution(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    name: str | None = None
    ror: str | None = None


class _Author(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    name: str | None = None
    orcid: str | None = None
    institutions: list[_Institution] = Field(default_factory=list)


class _Topic(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str | None = None
    name: str | None = None


class WorkEntities(BaseModel):
    """The parts of the metadata stage's ``work`` that mapping uses (the rest is ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    openalex_id: str | None = None
    doi: str | None = None
    title: str | None = None
    authors: list[_Author] = Field(default_factory=list)
    topics: list[_Topic] = Field(default_factory=list)
    referenced_works: list[str] = Field(default_factory=list)


def work_mentions(work: Mapping[str, Any]) -> list[EntityMention]:
    """The document itself, its authors with an ORCID, their institutions with a ROR id, its
    topics and the works it references. Entities without such an id are left out."""
    parsed = WorkEntities.model_validate(work)
    return [*_own_ids(parsed), *_people(parsed), *_topics_and_references(parsed)]


def _own_ids(work: WorkEntities) -> list[EntityMention]:
    mentions = []
    if work.doi and (doi := normalize_doi(work.doi)):
        mentions.append(EntityMention(doi, DOI, doi.removeprefix("doi:")))
    if work.openalex_id and (own := normalize_openalex(work.openalex_id)):
        mentions.append(EntityMention(own, WORK, work.title))
    return mentions


def _people(work: WorkEntities) -> list[EntityMention]:
    mentions = []
    for author in work.authors:
        if author.orcid and (orcid := normalize_orcid(author.orcid)):
            mentions.append(EntityMention(orcid, AUTHOR, author.name))
        for institution in author.institutions:
            if institution.ror and (ror := normalize_ror(institution.ror)):
                mentions.append(EntityMention(ror, INSTITUTION, institution.name))
    return mentions


def _topics_and_references(work: WorkEntities) -> list[EntityMention]:
    mentions = [
        EntityMention(topic_id, TOPIC, topic.name)
        for topic in work.topics
        if topic.id and (topic_id := normalize_openalex(topic.id))
    ]
    mentions.extend(
        EntityMention(ref_id, CITED_WORK, None)
        for ref in work.referenced_works
        if (ref_id := normalize_openalex(ref))
    )
    return mentions


def map_document(work: Mapping[str, Any] | None, texts: Iterable[str]) -> list[EntityMention]:
    """All mentions of a document: from its metadata, then DOIs cited in its text (its own DOI
    is not a citation). One mention per entity id, the first (strongest) one kept."""
    mentions = work_mentions(work or {})
    seen = {mention.entity_id for mention in mentions}
    for doi in extract_dois(texts):
        entity_id = f"doi:{doi}"
        if entity_id not in seen:
            seen.add(entity_id)
            mentions.append(EntityMention(entity_id, CITED_DOI, doi))
    unique: dict[str, EntityMention] = {}
    for mention in mentions:
        unique.setdefault(mention.entity_id, mention)
    return list(unique.values())
