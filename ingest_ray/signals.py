"""SIGINT and SIGTERM as a request to stop, for every long-running command.

A command installs :class:`StopSignals`, runs until ``stop.is_set()`` and then drains and
releases what it started. Both signals are handled explicitly, so a command started in the
background by a non-interactive shell (which starts it with SIGINT ignored) still stops on
SIGINT. A signal that arrives while the command is still starting lets the start finish for up
to ``start_grace_s`` (then it drains as usual); a start still running after that is interrupted
with :class:`KeyboardInterrupt` in the main thread, since a start may block for long (a Serve
replica waiting for a CPU, a broker that does not answer). A second signal interrupts at once,
also to cut a drain short. Either way the command's ``finally`` blocks still run.
"""

from __future__ import annotations

import _thread
import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """An event set by the first SIGINT/SIGTERM; ``received`` names the signal."""

    def __init__(self, *, start_grace_s: float = 10.0) -> None:
        self.event = threading.Event()
        self.received: signal.Signals | None = None
        #: until the command calls :meth:`started`, a stop may interrupt what it is doing
        self.starting = True
        self.start_grace_s = start_grace_s

    def install(self) -> StopSignals:
        """Handle both signals from now on (call from the main thread)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def started(self) -> None:
        """From now on the first signal only asks for a graceful stop."""
        self.starting = False

    def exit_code(self) -> int:
        """The shell's code for death by the signal received (130 for SIGINT), else 1."""
        return 128 + int(self.received) if self.received is not None else 1

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)
        self.event.set()
        if self.starting:
            timer = threading.Timer(self.start_grace_s, self._interrupt_a_slow_start)
            timer.daemon = True
            timer.start()

    def _interrupt_a_slow_start(self) -> None:
        if self.starting:
            _thread.interrupt_main()  # runs the SIGINT handler, which now interrupts

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self.event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is asked for (or ``timeout``); whether it was."""
        return self.event.wait(timeout)
