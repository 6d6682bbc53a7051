"""One lock for pdfium in this process.

pdfium (pypdfium2) is not thread-safe, even across documents: two threads of one process inside
it at once can crash the process. The project's in-process uses of it (the title of an uploaded
PDF's info dictionary, MinerU run in process) take :data:`PDFIUM_LOCK`; the CPU parser runs
pdfium in a child process of its own and needs no lock. MinerU's own code serialises its pdfium
calls with its own lock, taken inside ours, never the other way round.
"""

from __future__ import annotations

import threading

#: re-entrant, so a call holding it may reach code that takes it again
PDFIUM_LOCK = threading.RLock()
