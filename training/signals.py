"""Ctrl-C (SIGINT) and SIGTERM stop training like the ``--max-minutes`` budget does.

While installed, the first signal only sets `StopRequests.received`; the training loop polls it
after each optimiser step, then validates, writes a resumable mid-epoch checkpoint and returns.
A second signal restores the previous handlers and raises KeyboardInterrupt (the user insists).
Handlers can only be installed from the main thread; elsewhere the signals keep their old effect.
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Turns SIGINT/SIGTERM into a polled stop request between `install` and `restore`."""

    def __init__(self):
        self.received: str | None = None
        """Name of the first signal received ("SIGINT", "SIGTERM"), None before any."""
        self._previous: dict[int, object] = {}

    def install(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            self.restore()
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(f"[train] {self.received} received: stopping after this step with a resumable checkpoint "
              "(send it again to abort without saving)", file=sys.stderr, flush=True)
