"""SIGINT and SIGTERM as a request to stop, for every long-running command.

A command installs :class:`StopSignals`, runs until ``stop.is_set()`` and then drains and
releases what it started. Both signals are handled explicitly, so a command started in the
background by a non-interactive shell (which starts it with SIGINT ignored) still stops on
SIGINT. A second signal while draining raises :class:`KeyboardInterrupt` in the main thread, to
cut a drain short; the command's ``finally`` blocks still run.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """An event set by the first SIGINT/SIGTERM; ``received`` names the signal."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: signal.Signals | None = None

    def install(self) -> StopSignals:
        """Handle both signals from now on (call from the main thread)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)
        self.event.set()

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self.event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is asked for (or ``timeout``); whether it was."""
        return self.event.wait(timeout)
