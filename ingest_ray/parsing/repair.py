"""Last-resort recovery of a PDF pdfium refuses as malformed: rebuild it from its objects.

Damaged files (a truncated or zero-filled tail, a lost cross-reference table, a missing page
tree) often still hold most of their objects intact. Like ``mutool clean`` or pdfminer's
fallback, we scan the bytes for ``N G obj ... endobj``, write those objects into a fresh file with
a new cross-reference table, and when the catalog's page tree is missing we synthesise one from
the ``/Type /Page`` objects in file order. Scope, honestly: objects inside object streams
(PDF 1.5 compression) and streams that happen to contain ``endobj`` are not recovered; the
caller only tries this after pdfium failed with a format error, never for encrypted files.
"""

from __future__ import annotations

import re

_HEADER = re.compile(rb"(?<![0-9])(\d{1,7})\s+(\d{1,5})\s+obj\b")
_CATALOG = re.compile(rb"/Type\s*/Catalog\b")
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_PAGES_REF = re.compile(rb"/Pages\s+(\d+)\s+(\d+)\s+R")
_MAX_OBJECTS = 500_000


def rebuild(data: bytes) -> bytes | None:
    """A rewritten PDF with a fresh xref (and page tree if lost), or ``None`` if hopeless."""
    objects = _scan(data)
    if objects is None:
        return None
    catalog = next((num for num, (_, body) in objects.items() if _CATALOG.search(body)), None)
    if catalog is None:
        return None
    pages_ref = _PAGES_REF.search(objects[catalog][1])
    if pages_ref is None:
        return None
    if int(pages_ref.group(1)) not in objects:
        kids = [num for num, (_, body) in objects.items() if _PAGE.search(body)]
        if not kids:
            return None
        refs = b" ".join(b"%d %d R" % (num, objects[num][0]) for num in kids)
        tree = b"\n<< /Type /Pages /Kids [%s] /Count %d >>\n" % (refs, len(kids))
        objects[int(pages_ref.group(1))] = (int(pages_ref.group(2)), tree)
    return _write(objects, catalog)


def _scan(data: bytes) -> dict[int, tuple[int, bytes]] | None:
    """``{number: (generation, body)}`` of every ``N G obj ... endobj`` in the bytes.

    An object ends at the first ``endobj`` before the next object header (one without is
    skipped), so hostile input costs one pass over the bytes, never a quadratic search.
    """
    headers = list(_HEADER.finditer(data))
    if len(headers) > _MAX_OBJECTS:
        return None
    objects: dict[int, tuple[int, bytes]] = {}
    for index, header in enumerate(headers):
        stop = headers[index + 1].start() if index + 1 < len(headers) else len(data)
        end = data.find(b"endobj", header.end(), stop)
        if end >= 0:
            objects[int(header.group(1))] = (int(header.group(2)), data[header.end() : end])
    return objects


def _write(objects: dict[int, tuple[int, bytes]], catalog: int) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num in sorted(objects):
        generation, body = objects[num]
        offsets[num] = len(out)
        out += b"%d %d obj" % (num, generation) + body + b"endobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n" % size
    for num in range(size):
        if num in offsets:
            out += b"%010d %05d n \n" % (offsets[num], objects[num][0])
        else:
            out += b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root %d %d R >>\n" % (size, catalog, objects[catalog][0])
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
