"""Progress of a run: tqdm bars when tqdm is installed, plain lines otherwise, nothing when quiet.

One bar counts wells; a second shows the steps of the wells in flight.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

__all__ = ["Progress"]


class Progress:
    """Reports wells and steps; safe to call from the listener thread and the main thread."""

    def __init__(self, total: int, *, enabled: bool = True, stream: IO[str] | None = None, description: str = "wells") -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.active: dict[str, str] = {}
        self._lock = threading.Lock()
        self._bar: Any = None
        self._steps: Any = None
        self._started = time.perf_counter()
        if not self.enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=total, desc=description, unit="well", file=self.stream, position=0, dynamic_ncols=True)
            self._steps = tqdm(total=0, desc="steps", unit="step", file=self.stream, position=1, leave=False, dynamic_ncols=True, bar_format="{desc}")

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def step(self, well: str, index: int, count: int, name: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.active[well] = f"{well} {index + 1}/{count} {name}"
            if self._steps is not None:
                self._steps.set_description_str(" | ".join(self.active.values()) or "steps", refresh=True)
            else:
                self._line(f"  well {well}: step {index + 1}/{count} {name}")

    def well_done(self, well: str, ok: bool, seconds: float, message: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += 1
            self.active.pop(well, None)
            status = "done" if ok else f"FAILED: {message}"
            if self._bar is not None:
                self._bar.update(1)
                if not ok:
                    self._bar.write(f"well {well} {status}", file=self.stream)
                if self._steps is not None:
                    self._steps.set_description_str(" | ".join(self.active.values()) or "steps", refresh=True)
            else:
                self._line(f"[{self.done}/{self.total}] well {well} {status} ({seconds:.1f} s)")

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()
        if self._bar is not None:
            self._bar.close()
        self._bar = self._steps = None
