"""What the chain passes around: PDF candidates and the record of each attempt."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PdfCandidate:
    """A URL that may serve the document's PDF, and who suggested it."""

    source: str
    url: str
    version: str | None = None
    license: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape kept in stage outputs."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PdfCandidate:
        """Read back what :meth:`to_dict` wrote (unknown keys ignored)."""
        return cls(
            source=str(data["source"]),
            url=str(data["url"]),
            version=data.get("version"),
            license=data.get("license"),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One step of the chain: a lookup or a download, and how it ended."""

    source: str
    url: str | None
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape kept in stage outputs."""
        return asdict(self)


def dedupe(candidates: list[PdfCandidate]) -> list[PdfCandidate]:
    """Drop later candidates whose URL was already offered."""
    seen: set[str] = set()
    kept = []
    for candidate in candidates:
        if candidate.url not in seen:
            seen.add(candidate.url)
            kept.append(candidate)
    return kept
