"""The replay server's index of captured API responses, keyed by the identifiers inside them.

DOIs are compared after :func:`~ingest_ray.adapters.doi.bare_doi` (prefix stripped,
lower-cased); OpenAlex ids upper-cased. Error files (``error_<status>_*.json``) give the body
shape of that source's errors; the OpenAlex 400 file also lists the valid ``select`` fields.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest_ray.adapters.doi import bare_doi, openalex_work_id

_VALID_SELECT = re.compile(r"Valid fields for select are: (.*?)\.?\s*$", re.S)
_UNPAYWALL_HELP = "See https://support.unpaywall.org/a/solutions/articles/44001900286"


@dataclass(frozen=True, slots=True)
class Entry:
    """One captured JSON document: parsed, and the exact bytes to serve."""

    body: dict[str, Any]
    raw: bytes


def _read(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _entry(body: dict[str, Any], raw: bytes | None = None) -> Entry:
    return Entry(body, raw if raw is not None else json.dumps(body).encode())


def _error_body(directory: Path, status: int) -> dict[str, Any] | None:
    for path in sorted(directory.glob(f"error_{status}_*.json")):
        body = _read(path)
        if isinstance(body, dict):
            return body
    return None


@dataclass
class Catalog:
    """Captured works and records by DOI and id, and error templates, per source."""

    openalex_by_doi: dict[str, Entry] = field(default_factory=dict)
    openalex_by_id: dict[str, Entry] = field(default_factory=dict)
    unpaywall_by_doi: dict[str, Entry] = field(default_factory=dict)
    core_results: list[dict[str, Any]] = field(default_factory=list)
    openalex_400: dict[str, Any] | None = None
    unpaywall_404: dict[str, Any] | None = None

    @classmethod
    def load(cls, root: Path, *, core_dir: Path | None = None) -> Catalog:
        """Index ``root/openalex``, ``root/unpaywall`` and ``core_dir`` (default ``root/core``)."""
        catalog = cls()
        catalog._load_openalex(root / "openalex")
        catalog._load_unpaywall(root / "unpaywall")
        catalog._load_core(core_dir if core_dir is not None else root / "core")
        return catalog

    def _add_openalex(self, entry: Entry) -> None:
        work_id, doi = entry.body.get("id"), entry.body.get("doi")
        if isinstance(work_id, str):
            self.openalex_by_id.setdefault(work_id.rsplit("/", 1)[-1].upper(), entry)
        if isinstance(doi, str):
            self.openalex_by_doi.setdefault(bare_doi(doi), entry)

    def _load_openalex(self, directory: Path) -> None:
        if not directory.is_dir():
            return
        for path in sorted(directory.glob("work_*.json")):
            raw = path.read_bytes()
            self._add_openalex(_entry(json.loads(raw), raw))
        for path in sorted(directory.glob("list_*.json")):
            for result in _read(path).get("results") or []:
                self._add_openalex(_entry(result))
        self.openalex_400 = _error_body(directory, 400)

    def _load_unpaywall(self, directory: Path) -> None:
        if not directory.is_dir():
            return
        for path in sorted(directory.glob("doi_*.json")):
            raw = path.read_bytes()
            body = json.loads(raw)
            self.unpaywall_by_doi.setdefault(bare_doi(body["doi"]), _entry(body, raw))
        self.unpaywall_404 = _error_body(directory, 404)

    def _load_core(self, directory: Path) -> None:
        if not directory.is_dir():
            return
        for path in sorted(directory.glob("*.json")):
            body = _read(path)
            if isinstance(body, dict) and isinstance(body.get("results"), list):
                self.core_results.extend(r for r in body["results"] if isinstance(r, dict))
            elif isinstance(body, dict) and "id" in body:
                self.core_results.append(body)

    # -- lookups --------------------------------------------------------------------------

    def openalex_work(self, ident: str) -> Entry | None:
        """The work for ``W123``/its URL, or for ``doi:X`` / ``https://doi.org/X``."""
        try:
            return self.openalex_by_id.get(openalex_work_id(ident))
        except ValueError:
            return self.openalex_by_doi.get(bare_doi(ident))

    def invalid_select(self, fields: list[str]) -> list[str]:
        """The requested ``select`` fields OpenAlex would refuse (none known: accept all)."""
        if self.openalex_400 is None:
            return []
        match = _VALID_SELECT.search(str(self.openalex_400.get("message", "")))
        if match is None:
            return []
        valid = {f.strip() for f in match.group(1).split(",")}
        return [f for f in fields if f not in valid]

    def select_error(self, bad: list[str]) -> dict[str, Any]:
        """OpenAlex's 400 body, naming the first invalid field."""
        template = dict(self.openalex_400 or {"error": "Invalid query parameters error."})
        rest = str(template.get("message", "")).split(" is not a valid select field.", 1)[-1]
        template["message"] = f"{bad[0]} is not a valid select field.{rest}"
        return template

    def unpaywall_record(self, doi: str) -> Entry | None:
        """The captured record of ``doi``."""
        return self.unpaywall_by_doi.get(bare_doi(doi))

    def unpaywall_not_found(self, doi: str) -> dict[str, Any]:
        """Unpaywall's 404 body for ``doi``."""
        body = dict(self.unpaywall_404 or {"HTTP_status_code": 404, "error": True})
        body["message"] = f"'{doi}' isn't in Unpaywall. {_UNPAYWALL_HELP}"
        return body

    def core_works_by_doi(self, doi: str) -> list[dict[str, Any]]:
        """CORE works whose ``doi`` equals ``doi``."""
        wanted = bare_doi(doi)
        return [
            r
            for r in self.core_results
            if isinstance(r.get("doi"), str) and bare_doi(r["doi"]) == wanted
        ]

    def core_work(self, ident: str) -> dict[str, Any] | None:
        """The CORE work with this id."""
        return next((r for r in self.core_results if str(r.get("id")) == ident), None)
