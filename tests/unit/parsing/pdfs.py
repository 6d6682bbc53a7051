"""Tiny PDFs written byte by byte for tests (Helvetica text, no compression).

Made here rather than stored, so each test shows exactly what its document contains.
"""

from __future__ import annotations


def make_pdf(pages: list[list[str]], *, size: int = 10, page_tree: bool = True) -> bytes:
    """A PDF with one page per entry, each line set with ``size``-point Helvetica.

    ``page_tree=False`` leaves out the ``/Pages`` object the catalog points at (a damaged file).
    """
    font = 3 + 2 * len(pages)
    objects: dict[int, bytes] = {1: b"<< /Type /Catalog /Pages 2 0 R >>"}
    kids = []
    for index, lines in enumerate(pages):
        page, content = 3 + 2 * index, 4 + 2 * index
        kids.append(b"%d 0 R" % page)
        ops = [b"BT /F1 %d Tf %d TL 50 800 Td" % (size, round(size * 1.2))]
        ops += [b"(%s) '" % _escape(line).encode("latin-1") for line in lines]
        stream = b"\n".join([*ops, b"ET"])
        objects[page] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content, font)
        )
        objects[content] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    if page_tree:
        objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    objects[font] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    return _serialise(objects)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _serialise(objects: dict[int, bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n" % size
    for number in range(size):
        if number in offsets:
            out += b"%010d 00000 n \n" % offsets[number]
        else:
            out += b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)
