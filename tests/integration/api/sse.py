"""A small Server-Sent Events reader for the tests (frames, comments, ids)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads("\n".join(self.data))


def frames(response: httpx.Response) -> Iterator[Frame]:
    """Frames in arrival order; a frame holding only comments is a heartbeat."""
    frame = Frame()
    for line in response.iter_lines():
        if line == "":
            if frame.data or frame.comments or frame.id is not None:
                yield frame
            frame = Frame()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            frame.comments.append(value)
        elif name == "id":
            frame.id = value
        elif name == "event":
            frame.event = value
        elif name == "data":
            frame.data.append(value)
    if frame.data or frame.comments:
        yield frame


def events(response: httpx.Response) -> list[Frame]:
    """Every data frame until the server ends the stream."""
    return [f for f in frames(response) if f.data]
